// oslab-threads: the anatomy of a thread. What creating one costs next to creating a process;
// what each thread has of its own (tid, stack, errno, thread-local storage, CPU clock) and
// what all share (globals, heap, file descriptors, pid), shown from several live threads;
// the states /proc shows for a running, a sleeping and a blocked thread; what a thread and a
// process cost in memory, for 1 to 1000 of each; the process states around exit (a zombie, an
// orphan); and what fork() does in a multithreaded process.
//
// Try:     oslab-threads
//          oslab-threads --counts 1,100,2000      memory for up to 2000 threads and processes
//          oslab-threads --json | jq '.verdicts[] | select(.holds | not)'
// Expect:  a thread is created several times faster than a process and costs a fraction of its
//          memory (a stack's touched pages, a page-table page; no copied page tables); every
//          thread has its own tid, stack, errno and TLS but the same pid, globals, heap and fds;
//          a sleeping and a blocked thread are both 'S', told apart by the system call they sit
//          in; an exited child is a zombie until reaped; an orphan is adopted by the subreaper;
//          fork() copies only the calling thread, and a lock another thread held stays locked in
//          the child unless pthread_atfork handlers take it around the fork.
// Compare: oslab-fork (creation costs, by memory size), oslab-clone-flags (the sharing table
//          by clone flag), oslab-ctxswitch (switching between threads and processes).

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>

#include <fmt/format.h>

#include "../process/fork_driver_client.hpp"
#include "oslab/clock.hpp"
#include "oslab/cpu.hpp"
#include "oslab/error.hpp"
#include "oslab/handles.hpp"
#include "oslab/lab.hpp"
#include "oslab/process.hpp"
#include "oslab/procfs.hpp"
#include "oslab/shared.hpp"

namespace {

using namespace std::chrono_literals;
using oslab::check_errno;
using oslab::check_errnum;
constexpr auto kDeadline = 10s;

std::string hex(const void* address) {
  return fmt::format("{:#x}", reinterpret_cast<uintptr_t>(address));
}

// Polls `done` every millisecond until it holds or `limit` passes; returns whether it held.
template <typename Done>
bool poll_until(Done done, std::chrono::milliseconds limit = 2000ms) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= until) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

// ---- What each thread has of its own, and what all share ------------------------------------

std::atomic<int> g_global{0};   // one for the whole process (atomic: its writers must not call the kernel)
thread_local int t_value = -1;  // one per thread

constexpr int kAnatomyThreads = 4;

struct Anatomy {
  pid_t tid = 0, pid = 0;
  const void* stack = nullptr;
  const int* errno_address = nullptr;
  int errno_set = 0, errno_later = 0;
  const int* tls_address = nullptr;
  int tls_set = 0, tls_later = 0;
  double cpu_target_ms = 0, cpu_ms = 0;
  int global_seen = 0;
  const void* global_address = nullptr;
  bool heap_all_seen = false;
  bool fd_usable = false;
};

// Each thread makes a system call fail in its own way: errno then holds its own error.
int provoke_errno(int index, int pipe_fd) {
  switch (index) {
    case 0: ::close(-1); break;                                     // EBADF
    case 1: ::open("/nonexistent/oslab-threads", O_RDONLY); break;  // ENOENT
    case 2: ::lseek(pipe_fd, 0, SEEK_SET); break;                   // ESPIPE
    default: ::kill(::getpid(), 12345); break;                      // EINVAL
  }
  return errno;
}

double thread_cpu_ms() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

double process_cpu_ms() {
  timespec ts{};
  ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

// ---- fork() in a multithreaded process ------------------------------------------------------

pthread_mutex_t g_held = PTHREAD_MUTEX_INITIALIZER;
std::atomic<bool> g_atfork_enabled{false};
// The cure: take the lock around fork, so that the child gets it in a known state (held by
// the forking thread, which the child has) and can release it. Registered once; active only
// while the experiment wants it.
void atfork_prepare() {
  if (g_atfork_enabled) ::pthread_mutex_lock(&g_held);
}
void atfork_parent() {
  if (g_atfork_enabled) ::pthread_mutex_unlock(&g_held);
}
void atfork_child() {
  if (g_atfork_enabled) ::pthread_mutex_unlock(&g_held);
}

// The threads of the calling process, counted with open and getdents64 only (safe after fork).
int count_own_tasks() noexcept {
  const int fd = ::open("/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return -1;
  alignas(8) char buffer[4096];
  int tasks = 0;
  for (;;) {
    const long n = ::syscall(SYS_getdents64, fd, buffer, sizeof buffer);
    if (n <= 0) break;
    for (long offset = 0; offset < n;) {
      auto* entry = reinterpret_cast<dirent64*>(buffer + offset);
      if (entry->d_name[0] != '.') ++tasks;
      offset += entry->d_reclen;
    }
  }
  ::close(fd);
  return tasks;
}

// What the child of a multithreaded fork saw.
struct ForkReport {
  std::atomic<int> tasks{-1};
  std::atomic<int> lock_result{-1};
};

// The child's side: count its threads, try the lock with a deadline. pthread_mutex_clocklock is
// not on the async-signal-safe list; trying it after a multithreaded fork is this experiment.
int child_after_fork(ForkReport& report, std::chrono::milliseconds wait) noexcept {
  report.tasks = count_own_tasks();
  timespec deadline{};
  ::clock_gettime(CLOCK_MONOTONIC, &deadline);
  deadline.tv_sec += static_cast<time_t>(wait.count() / 1000);
  deadline.tv_nsec += static_cast<long>(wait.count() % 1000) * 1'000'000;
  if (deadline.tv_nsec >= 1'000'000'000) {
    deadline.tv_sec += 1;
    deadline.tv_nsec -= 1'000'000'000;
  }
  const int rc = ::pthread_mutex_clocklock(&g_held, CLOCK_MONOTONIC, &deadline);
  report.lock_result = rc;
  if (rc == 0) ::pthread_mutex_unlock(&g_held);
  return 0;
}

// ---- The experiment ---------------------------------------------------------------------

struct Memory {
  double rss_kib = 0, pss_kib = 0, page_tables_kib = 0, virtual_kib = 0;
};

struct Experiment {
  const oslab::Lab& lab;
  std::vector<long> counts;
  std::chrono::milliseconds wait{200};
  int cpu = 0;

  // ---- What creating one costs: oslab-fork's measurement, from its lean parent ----
  void creation(oslab::Report& report) const {
    const std::string driver_path = oslab::helper_path("oslab-fork-driver");
    const std::string static_target = oslab::helper_path("oslab-exec-target");
    const std::string dynamic_target = oslab::helper_path("oslab-exec-target-dynamic");
    // One lean parent for processes, one for threads (a process that has made a thread keeps
    // its stack mapped, and fork would copy that too), as oslab-fork does.
    oslab::ForkDriver processes(driver_path, static_target, dynamic_target);
    oslab::ForkDriver threads(driver_path, static_target, dynamic_target);
    processes.touch(0, false);
    threads.touch(0, false);
    oslab::set_affinity({cpu}, processes.pid());
    oslab::set_affinity({cpu}, threads.pid());
    oslab::Interleaver interleaver(lab.plan(), 2);
    interleaver.run([&](size_t index, int samples, oslab::Measurement& into) {
      if (index == 0)
        processes.block(M_FORK, samples, into);
      else
        threads.block(M_PTHREAD, samples, into);
    });
    const nlohmann::json where = {{"placement", "same-cpu"}, {"cpus", std::to_string(cpu)}, {"parent", "lean"}};
    const oslab::Result& fork = report.add(
        "fork+exit+wait", where, interleaver.measurements()[0],
        {.what =
             "fork(); child _exit(0); parent waitpid(); from oslab-fork-driver, a small static program (oslab-fork's "
             "lean parent)",
         .headline = false});
    const oslab::Result& thread =
        report.add("pthread_create+join", where, interleaver.measurements()[1],
                   {.what = "pthread_create() of a thread that returns at once; pthread_join(); from oslab-fork-driver",
                    .headline = true});
    const oslab::Estimate ratio = oslab::ratio_of(fork.summary, thread.summary);
    report.verdict("thread-creation-cheaper", "creating (and ending) a thread is cheaper than a process", ratio,
                   oslab::Compare::above, 1.0,
                   fmt::format("on CPU {}, from the same small parent: fork+exit+wait {} vs pthread_create+join {}: "
                               "{:.1f}x",
                               cpu, oslab::format_duration(fork.summary.p50),
                               oslab::format_duration(thread.summary.p50), ratio.value));
  }

  // ---- What each thread has of its own, and what they share ----
  void anatomy(oslab::Report& report) const {
    std::vector<Anatomy> seen(kAnatomyThreads);
    std::vector<int> heap(kAnatomyThreads, 0);  // on the heap, written by one thread each
    oslab::Pipe pipe = oslab::Pipe::create();
    std::atomic<int> shared_fd{-1};
    // A barrier that makes no system call (a futex wait could set errno): spin and yield.
    std::atomic<int> arrived[2] = {0, 0};
    auto meet = [&](int phase) {
      arrived[phase].fetch_add(1);
      while (arrived[phase].load() < kAnatomyThreads) std::this_thread::yield();
    };
    g_global = 0;
    const double process_before = process_cpu_ms();
    {
      std::vector<std::jthread> threads;
      for (int i = 0; i < kAnatomyThreads; ++i)
        threads.emplace_back([&, i] {
          Anatomy& a = seen[static_cast<size_t>(i)];
          int on_stack = i;
          a.tid = ::gettid();
          a.pid = ::getpid();
          a.stack = &on_stack;
          a.errno_address = &errno;
          a.errno_set = provoke_errno(i, pipe.read_end.get());
          t_value = 100 + i;
          a.tls_set = t_value;
          a.tls_address = &t_value;
          g_global.fetch_or(1 << i);
          heap[static_cast<size_t>(i)] = 1000 + i;
          if (i == 0) {
            const int fd = ::memfd_create("oslab-threads", MFD_CLOEXEC);
            if (fd >= 0 && ::write(fd, "thread 0", 8) == 8) shared_fd = fd;
          }
          // Burn CPU until this thread's own clock shows its share: (i + 1) x 5 ms.
          a.cpu_target_ms = 5.0 * (i + 1);
          const double start = thread_cpu_ms();
          while (thread_cpu_ms() - start < a.cpu_target_ms) {
          }
          a.cpu_ms = thread_cpu_ms();
          meet(0);  // every thread has set its errno, TLS, global bit, heap slot
          a.errno_later = errno;
          a.tls_later = t_value;
          a.global_address = &g_global;
          a.global_seen = g_global.load();
          a.heap_all_seen = std::all_of(heap.begin(), heap.end(), [](int v) { return v >= 1000; });
          char text[8] = {};
          a.fd_usable =
              shared_fd >= 0 && ::pread(shared_fd, text, sizeof text, 0) == 8 && std::memcmp(text, "thread 0", 8) == 0;
          meet(1);  // nobody closes the fd while another still reads it
          if (i == 0 && shared_fd >= 0) ::close(shared_fd);
        });
    }
    const double process_ms = process_cpu_ms() - process_before;

    oslab::Table own{
        fmt::format("{} live threads of process {}: what each has of its own", kAnatomyThreads, ::getpid()),
        {"thread", "tid", "pid", "a local (stack)", "&errno", "errno set", "errno later", "&t_value (TLS)", "t_value",
         "CPU clock"},
        {},
        "errno later: read after every thread had made its own call fail. CPU clock: "
        "CLOCK_THREAD_CPUTIME_ID, read as soon as each had burned (i+1) x 5 ms of its own.",
        1};
    for (int i = 0; i < kAnatomyThreads; ++i) {
      const Anatomy& a = seen[static_cast<size_t>(i)];
      own.rows.push_back({std::to_string(i), std::to_string(a.tid), std::to_string(a.pid), hex(a.stack),
                          hex(a.errno_address), oslab::errno_name(a.errno_set), oslab::errno_name(a.errno_later),
                          hex(a.tls_address), std::to_string(a.tls_later), fmt::format("{:.1f} ms", a.cpu_ms)});
    }
    report.table(own);

    auto distinct = [&](auto field) {
      std::vector<decltype(field(seen[0]))> values;
      for (const Anatomy& a : seen) values.push_back(field(a));
      std::sort(values.begin(), values.end());
      return std::adjacent_find(values.begin(), values.end()) == values.end();
    };
    auto all = [&](auto predicate) { return std::all_of(seen.begin(), seen.end(), predicate); };
    std::string tids, stacks, errnos, tls, cpus;
    for (const Anatomy& a : seen) {
      tids += (tids.empty() ? "" : ", ") + std::to_string(a.tid);
      stacks += (stacks.empty() ? "" : ", ") + hex(a.stack);
      errnos +=
          fmt::format("{}{} at {}", errnos.empty() ? "" : ", ", oslab::errno_name(a.errno_later), hex(a.errno_address));
      tls += fmt::format("{}{} at {}", tls.empty() ? "" : ", ", a.tls_later, hex(a.tls_address));
      cpus += fmt::format("{}{:.1f}", cpus.empty() ? "" : ", ", a.cpu_ms);
    }
    const pid_t pid = ::getpid();
    report.fact("own/tid", "every thread has its own thread id, and they all share one process id",
                distinct([](const Anatomy& a) { return a.tid; }) &&
                    all([&](const Anatomy& a) { return a.pid == pid && a.tid != pid; }),
                fmt::format("tids {}; getpid() = {} in every thread", tids, pid));
    report.fact("own/stack", "every thread has its own stack: a local variable lives at a different address in each",
                distinct([](const Anatomy& a) { return reinterpret_cast<uintptr_t>(a.stack); }),
                "a local variable at " + stacks);
    report.fact("own/errno", "every thread has its own errno: another thread's failing call does not change it",
                distinct([](const Anatomy& a) { return reinterpret_cast<uintptr_t>(a.errno_address); }) &&
                    all([](const Anatomy& a) { return a.errno_later == a.errno_set; }) &&
                    distinct([](const Anatomy& a) { return a.errno_set; }),
                "after every thread's call failed: " + errnos);
    report.fact("own/tls", "a thread_local variable is one per thread",
                distinct([](const Anatomy& a) { return reinterpret_cast<uintptr_t>(a.tls_address); }) &&
                    all([](const Anatomy& a) { return a.tls_later == a.tls_set; }),
                "t_value = " + tls);
    double sum_ms = 0;
    for (const Anatomy& a : seen) sum_ms += a.cpu_ms;
    report.fact("own/cpu-clock",
                "every thread has its own CPU clock (CLOCK_THREAD_CPUTIME_ID); the process's clock adds them up",
                all([](const Anatomy& a) { return a.cpu_ms >= a.cpu_target_ms; }) && process_ms >= 0.9 * sum_ms,
                fmt::format("each thread burned until its own clock showed (i+1) x 5 ms: {} ms; the process clock "
                            "advanced {:.1f} ms, the threads' sum being {:.1f} ms",
                            cpus, process_ms, sum_ms));
    const int expected_global = (1 << kAnatomyThreads) - 1;
    report.fact(
        "shared/global", "a global variable is one for all threads: each sees the others' writes",
        all([&](const Anatomy& a) { return a.global_seen == expected_global && a.global_address == &g_global; }),
        fmt::format("each thread set its own bit of g_global (at {}); every thread then read {} ({} expected)",
                    hex(&g_global), seen[0].global_seen, expected_global));
    report.fact("shared/heap", "the heap is one for all threads: memory one allocates, every thread reads and writes",
                all([](const Anatomy& a) { return a.heap_all_seen; }),
                fmt::format("a heap array at {}, each slot written by one thread, read complete by every thread",
                            hex(heap.data())));
    report.fact("shared/fd", "file descriptors are one table for all threads: an fd one opens, the others use",
                all([](const Anatomy& a) { return a.fd_usable; }),
                "thread 0 opened a memfd and wrote to it; every thread pread() the same fd number and read it back");
  }

  // ---- States ----
  void states(oslab::Report& report) const {
    std::atomic<bool> stop{false};
    std::atomic<pid_t> spinner{0}, sleeper{0}, blocked{0}, exited{0};
    std::mutex held;
    std::unique_lock hold(held);  // the blocked thread waits for this
    std::vector<std::jthread> threads;
    threads.emplace_back([&] {
      spinner = ::gettid();
      while (!stop.load(std::memory_order_relaxed)) {
      }
    });
    threads.emplace_back([&] {
      sleeper = ::gettid();
      while (!stop) std::this_thread::sleep_for(20ms);
    });
    threads.emplace_back([&] {
      blocked = ::gettid();
      std::lock_guard lock(held);  // a futex wait until the main thread lets go
    });
    std::jthread finished([&] { exited = ::gettid(); });
    try {
      look_at_states(report, spinner, sleeper, blocked, exited);
    } catch (...) {
      stop = true;
      hold.unlock();
      throw;
    }
    stop = true;
    hold.unlock();
  }

  void look_at_states(oslab::Report& report, const std::atomic<pid_t>& spinner, const std::atomic<pid_t>& sleeper,
                      const std::atomic<pid_t>& blocked, const std::atomic<pid_t>& exited) const {
    const bool started = poll_until([&] { return spinner && sleeper && blocked && exited; });
    const pid_t pid = ::getpid();
    struct Probe {
      std::string what, id, claim;
      pid_t tid;
      char expected_state;
      std::string expected_call;  // "" any
    };
    const std::vector<Probe> probes = {
        {"spins on the CPU", "state/running", "a thread that computes is R (running or runnable)", spinner.load(), 'R',
         ""},
        {"sleeps (sleep_for)", "state/sleeping",
         "a thread that sleeps is S (interruptible sleep), inside clock_nanosleep", sleeper.load(), 'S',
         "clock_nanosleep"},
        {"waits for a held mutex", "state/blocked-on-lock",
         "a thread that waits for a mutex is S as well, inside futex: the state does not tell sleeping from "
         "waiting for a lock, the system call it sleeps in does",
         blocked.load(), 'S', "futex"},
        {"reads its own state", "state/self", "the thread reading /proc is R", static_cast<pid_t>(::gettid()), 'R', ""},
    };
    oslab::Table table{fmt::format("Thread states of process {}, from /proc/{}/task/<tid>/stat", pid, pid),
                       {"thread", "tid", "state", "in system call"},
                       {},
                       "The state letter is the kernel's (fs/proc/array.c); the system call, from "
                       "/proc/<pid>/task/<tid>/syscall, tells what a sleeping thread waits for.",
                       1};
    for (const Probe& probe : probes) {
      std::optional<oslab::TaskStat> stat;
      std::optional<std::string> call;
      // A state is a moment: look until the expected one shows (a sleeper wakes every 20 ms).
      poll_until([&] {
        stat = oslab::read_task_stat(pid, probe.tid);
        call = oslab::task_syscall(pid, probe.tid);
        return stat && stat->state == probe.expected_state &&
               (probe.expected_call.empty() || (call && *call == probe.expected_call));
      });
      const char state = stat ? stat->state : '?';
      table.rows.push_back(
          {probe.what, std::to_string(probe.tid), oslab::describe_task_state(state), call.value_or("(unreadable)")});
      report.fact(
          probe.id, probe.claim,
          started && state == probe.expected_state && (probe.expected_call.empty() || call == probe.expected_call),
          fmt::format("tid {}: state {}, system call {}", probe.tid, oslab::describe_task_state(state),
                      call.value_or("unreadable")));
    }
    // A thread that has returned is gone from /proc at once, joined or not: no zombie threads.
    const pid_t gone = exited.load();
    const bool vanished = poll_until([&] { return !oslab::read_task_stat(pid, gone); });
    table.rows.push_back(
        {"has returned, not yet joined", std::to_string(gone), vanished ? "(gone)" : "still there", ""});
    report.fact("state/exited-thread-gone",
                "a thread (other than the main one) that has ended leaves /proc at once, before it is joined: it "
                "does not linger as a zombie the way a process does",
                vanished,
                fmt::format("tid {} returned; /proc/{}/task/{} {} while it was still unjoined", gone, pid, gone,
                            vanished ? "vanished" : "remained"));
    report.table(table);
  }

  // ---- Memory ----
  // Threads: a fresh child process (no cached thread stacks) creates `n` threads that block in
  // read(2); it compares its memory before and after.
  Memory threads_memory(long n) const {
    struct Seen {
      Memory before, after;
      std::atomic<int> started{0};
      std::atomic<int> ok{0};
    };
    oslab::Shared<Seen> seen;
    oslab::Child child = oslab::Child::fork([&] {
      auto read_memory = [](Memory& m) {
        const auto use = oslab::read_memory_use(::getpid());
        if (!use) return false;
        m = {use->rss_kib, use->pss_kib, oslab::status_kib(::getpid(), "VmPTE").value_or(0),
             oslab::status_kib(::getpid(), "VmSize").value_or(0)};
        return true;
      };
      oslab::Pipe release = oslab::Pipe::create();
      std::vector<std::thread> threads;
      auto start_one = [&] {
        threads.emplace_back([&] {
          seen->started.fetch_add(1);
          char byte;
          while (::read(release.read_end.get(), &byte, 1) == -1 && errno == EINTR) {
          }
        });
      };
      // One thread before the baseline takes what a first thread costs once (glibc's set-up,
      // and the stack of this lab's watchdog thread, which fork left in glibc's stack cache).
      start_one();
      if (!poll_until([&] { return seen->started.load() == 1; }, 10'000ms)) return 1;
      if (!read_memory(seen->before)) return 1;
      for (long i = 0; i < n; ++i) start_one();
      if (!poll_until([&] { return seen->started.load() == n + 1; }, 10'000ms)) return 1;
      const bool read = read_memory(seen->after);
      release.write_end.reset();  // end of file: every thread returns
      for (auto& thread : threads) thread.join();
      seen->ok = read ? 1 : 0;
      return 0;
    });
    child.wait_success(60s, fmt::format("the process with {} threads", n));
    if (!seen->ok) throw std::runtime_error("could not read the threads' memory from /proc");
    const double count = static_cast<double>(n);
    return {(seen->after.rss_kib - seen->before.rss_kib) / count, (seen->after.pss_kib - seen->before.pss_kib) / count,
            (seen->after.page_tables_kib - seen->before.page_tables_kib) / count,
            (seen->after.virtual_kib - seen->before.virtual_kib) / count};
  }

  // Processes: this lab forks `n` children that block in read(2); their memory is summed (PSS
  // divides each shared page among the processes that map it), with this process's change.
  Memory processes_memory(long n) const {
    const pid_t self = ::getpid();
    const auto before = oslab::read_memory_use(self);
    oslab::Pipe release = oslab::Pipe::create();
    std::vector<oslab::Child> children;
    children.reserve(static_cast<size_t>(n));
    oslab::Shared<std::atomic<long>> started(0);
    for (long i = 0; i < n; ++i)
      children.push_back(oslab::Child::fork([&] {
        release.write_end.reset();
        started->fetch_add(1);
        char byte;
        while (::read(release.read_end.get(), &byte, 1) == -1 && errno == EINTR) {
        }
        return 0;
      }));
    if (!poll_until([&] { return started->load() == n; }, 30'000ms))
      throw std::runtime_error("the children did not all start within 30 s");
    Memory sum;
    for (const oslab::Child& child : children) {
      const auto use = oslab::read_memory_use(child.pid());
      if (!use) throw std::runtime_error(fmt::format("could not read /proc/{}/smaps_rollup", child.pid()));
      sum.rss_kib += use->rss_kib;
      sum.pss_kib += use->pss_kib;
      sum.page_tables_kib += oslab::status_kib(child.pid(), "VmPTE").value_or(0);
      sum.virtual_kib += oslab::status_kib(child.pid(), "VmSize").value_or(0);
    }
    const auto after = oslab::read_memory_use(self);
    release.write_end.reset();
    for (oslab::Child& child : children) child.wait_success(kDeadline, "a blocked child");
    const double count = static_cast<double>(n);
    const double parent_pss_change = before && after ? after->pss_kib - before->pss_kib : 0;
    return {sum.rss_kib / count, (sum.pss_kib + parent_pss_change) / count, sum.page_tables_kib / count,
            sum.virtual_kib / count};
  }

  void memory(oslab::Report& report) const {
    oslab::Table table{
        "Memory per task: N threads of one process vs N processes (forks of this lab), all blocked in "
        "read()",
        {"N", "kind", "RSS", "PSS", "page tables", "virtual"},
        {},
        "Per task: (after - before) / N for threads; for processes, each child's own figures (RSS "
        "counts every shared page in full in every process; PSS divides it among them) plus the "
        "parent's change. Page tables: VmPTE. The kernel's own per-task structures (a 16 KiB kernel "
        "stack, the task_struct) are the same for both and not in these figures. At small N the figures still "
        "hold one-time costs (code and data pages touched for the first time).",
        2};
    std::vector<std::pair<Memory, Memory>> per_count;
    for (long n : counts) {
      const Memory thread = threads_memory(n);
      const Memory process = processes_memory(n);
      per_count.emplace_back(thread, process);
      for (const auto& [kind, m] : {std::pair{"thread", thread}, std::pair{"process", process}}) {
        table.rows.push_back({std::to_string(n), kind, fmt::format("{:.1f} KiB", m.rss_kib),
                              fmt::format("{:.1f} KiB", m.pss_kib), fmt::format("{:.1f} KiB", m.page_tables_kib),
                              fmt::format("{:.0f} KiB", m.virtual_kib)});
        report.add_samples(fmt::format("memory per {}", kind), {{"tasks", n}}, {m.pss_kib + m.page_tables_kib},
                           {.what = fmt::format("PSS + page tables per {} of {} blocked in read(), KiB", kind, n),
                            .unit = "KiB",
                            .counters = {{"rss_kib", m.rss_kib},
                                         {"pss_kib", m.pss_kib},
                                         {"page_tables_kib", m.page_tables_kib},
                                         {"virtual_kib", m.virtual_kib}}});
      }
    }
    report.table(table);
    const auto& [thread, process] = per_count.back();
    const double thread_cost = thread.pss_kib + thread.page_tables_kib;
    const double process_cost = process.pss_kib + process.page_tables_kib;
    report.fact("memory/thread-cheaper-than-process",
                "shared resources mean less memory: a thread costs less memory than a process (seed 003)",
                thread_cost < process_cost,
                fmt::format("with {} of each: a thread {:.1f} KiB (PSS {:.1f} + page tables {:.1f}), a process {:.1f} "
                            "KiB (PSS {:.1f} + page tables {:.1f}): {:.1f}x",
                            counts.back(), thread_cost, thread.pss_kib, thread.page_tables_kib, process_cost,
                            process.pss_kib, process.page_tables_kib, process_cost / std::max(thread_cost, 0.1)));
  }

  // ---- Zombie and orphan ----
  void zombie(oslab::Report& report) const {
    oslab::Child child = oslab::Child::fork([] { return 0; });
    const pid_t pid = child.pid();
    std::optional<oslab::TaskStat> stat;
    poll_until([&] {
      stat = oslab::read_task_stat(pid);
      return stat && stat->state == 'Z';
    });
    const auto rss = oslab::status_field(pid, "VmRSS");
    const auto ppid = oslab::status_field(pid, "PPid");
    const oslab::ExitStatus status = child.wait(kDeadline);
    const bool gone = !oslab::read_task_stat(pid);
    const char state = stat ? stat->state : '?';
    report.fact("zombie/state", "a child that has exited but is not yet reaped is a zombie (state Z)", state == 'Z',
                fmt::format("child {} exited at once; before waitpid, /proc/{}/stat said {} (parent {})", pid, pid,
                            oslab::describe_task_state(state), ppid.value_or("?")));
    report.fact("zombie/no-memory", "a zombie keeps its pid and exit status, but no memory", state == 'Z' && !rss,
                fmt::format("/proc/{}/status of the zombie had {}", pid, rss ? "VmRSS: " + *rss : "no VmRSS line"));
    report.fact("zombie/reaped", "waitpid() collects the exit status and the zombie disappears",
                status.success() && gone,
                fmt::format("waitpid returned '{}'; /proc/{} is then {}", status.describe(), pid,
                            gone ? "gone" : "still there"));
  }

  void orphan(oslab::Report& report) const {
    int was_subreaper = 0;
    check_errno("prctl(PR_GET_CHILD_SUBREAPER)", ::prctl(PR_GET_CHILD_SUBREAPER, &was_subreaper));
    check_errno("prctl(PR_SET_CHILD_SUBREAPER)", ::prctl(PR_SET_CHILD_SUBREAPER, 1));
    struct Family {
      std::atomic<pid_t> grandchild{0};
      std::atomic<int> parent_may_exit{0};
    };
    oslab::Shared<Family> family;
    oslab::Pipe hold = oslab::Pipe::create();  // the grandchild lives until this lab closes (or dies)
    pid_t grandchild = 0;
    try {
      oslab::Child parent = oslab::Child::fork([&] {
        const pid_t pid = ::fork();
        if (pid == -1) return 1;
        if (pid == 0) {
          hold.write_end.reset();
          char byte;
          while (::read(hold.read_end.get(), &byte, 1) == -1 && errno == EINTR) {
          }
          _exit(0);
        }
        family->grandchild = pid;
        poll_until([&] { return family->parent_may_exit.load() != 0; }, kDeadline);
        return 0;  // the parent exits; its child is now an orphan
      });
      const pid_t parent_pid = parent.pid();
      grandchild =
          poll_until([&] { return family->grandchild.load() != 0; }, kDeadline) ? family->grandchild.load() : 0;
      const auto ppid_before = grandchild ? oslab::status_field(grandchild, "PPid") : std::nullopt;
      family->parent_may_exit = 1;
      const oslab::ExitStatus status = parent.wait(kDeadline);
      std::optional<std::string> ppid_after;
      poll_until([&] {
        ppid_after = oslab::status_field(grandchild, "PPid");
        return ppid_after && *ppid_after != std::to_string(parent_pid);
      });
      const auto stat = grandchild ? oslab::read_task_stat(grandchild) : std::nullopt;
      const pid_t self = ::getpid();
      hold.write_end.reset();  // end of file: the orphan exits, and we, its new parent, reap it
      const auto reaped = grandchild ? oslab::wait_for(grandchild, kDeadline) : std::nullopt;
      report.fact("orphan/reparented",
                  "when a process dies, its children are orphans and are adopted: by the nearest subreaper, else "
                  "by init",
                  status.success() && ppid_before == std::to_string(parent_pid) && ppid_after == std::to_string(self) &&
                      stat && stat->state != 'Z' && reaped.has_value(),
                  fmt::format("process {}'s parent was {} (PPid {}); after {} {}, its PPid became {}: this lab, a "
                              "subreaper (PR_SET_CHILD_SUBREAPER); it kept running (state {}) and this lab reaped it "
                              "({}). Without a subreaper it would have gone to PID 1 of its PID namespace",
                              grandchild, parent_pid, ppid_before.value_or("?"), parent_pid, status.describe(),
                              ppid_after.value_or("?"), stat ? oslab::describe_task_state(stat->state) : "?",
                              reaped ? reaped->describe() : "not reaped"));
    } catch (...) {
      hold.write_end.reset();
      if (grandchild) oslab::wait_for(grandchild, kDeadline);
      ::prctl(PR_SET_CHILD_SUBREAPER, was_subreaper);
      throw;
    }
    ::prctl(PR_SET_CHILD_SUBREAPER, was_subreaper);
  }

  // ---- fork() in a multithreaded process ----
  void fork_with_threads(oslab::Report& report) const {
    static const int registered = ::pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
    check_errnum("pthread_atfork", registered);
    std::atomic<int> phase{0};  // 1: the holder has the lock; 2: let it go
    std::jthread holder([&] {
      ::pthread_mutex_lock(&g_held);
      phase = 1;
      poll_until([&] { return phase.load() == 2; }, kDeadline);
      ::pthread_mutex_unlock(&g_held);
    });
    poll_until([&] { return phase.load() == 1; }, kDeadline);
    const int parent_tasks = static_cast<int>(oslab::list_tasks(::getpid()).size());

    oslab::Shared<ForkReport> plain;
    oslab::Child child = oslab::Child::fork([&] { return child_after_fork(*plain, wait); });
    child.wait_success(kDeadline + wait, "the child of a multithreaded fork");
    phase = 2;
    holder.join();

    // The cure: the same, with pthread_atfork handlers that take the lock around fork().
    std::atomic<int> phase2{0};
    std::jthread holder2([&] {
      ::pthread_mutex_lock(&g_held);
      phase2 = 1;
      std::this_thread::sleep_for(20ms);  // holds it a while, as real code does, then lets go
      ::pthread_mutex_unlock(&g_held);
    });
    poll_until([&] { return phase2.load() == 1; }, kDeadline);
    oslab::Shared<ForkReport> cured;
    g_atfork_enabled = true;
    oslab::Child child2 = oslab::Child::fork([&] { return child_after_fork(*cured, wait); });
    g_atfork_enabled = false;
    child2.wait_success(kDeadline + wait, "the child of a multithreaded fork with pthread_atfork");
    holder2.join();

    auto result = [](int rc) { return rc == 0 ? std::string("acquired") : oslab::errno_name(rc); };
    report.fact("fork/copies-only-the-caller", "fork() in a multithreaded process copies only the calling thread",
                plain->tasks == 1 && parent_tasks >= 2,
                fmt::format("the parent had {} threads when it forked; the child's /proc/self/task listed {}",
                            parent_tasks, plain->tasks.load()));
    report.fact("fork/inherits-held-locks",
                "a mutex another thread held at fork() stays locked in the child for ever: its owner was not copied",
                plain->lock_result == ETIMEDOUT,
                fmt::format("another thread held the mutex while the main thread forked; in the child, "
                            "pthread_mutex_clocklock with a {} ms deadline returned {}",
                            wait.count(), result(plain->lock_result)));
    report.fact("fork/atfork-cures-it",
                "pthread_atfork handlers that take the lock before fork() and release it after, in parent and "
                "child, leave the child a usable lock",
                cured->lock_result == 0 && cured->tasks == 1,
                fmt::format("with the handlers, fork() waited for the other thread to let go, the child released the "
                            "lock its forking thread held, and its own lock then returned {}",
                            result(cured->lock_result)));
  }
};

}  // namespace

int main(int argc, char** argv) {
  oslab::Lab lab({
      .name = "threads",
      .purpose = "the anatomy of a thread: creation cost, what is own and shared, states, memory, zombies, "
                 "fork with threads",
      .claim = "The notes: a thread has its own id, registers, stack, errno and thread-specific data, and\n"
               "shares memory, files and signal handling with its process; threads are created faster and,\n"
               "sharing resources, use less memory; a thread's status is init, ready, running, waiting or\n"
               "finished; 'there is no fork' for threads. Here each of these is looked at in live threads.",
      .explain = "Creation: the same lean parent as oslab-fork (a small static C program) times\n"
                 "pthread_create + join against fork + exit + waitpid, pinned to one CPU.\n\n"
                 "Own and shared: four live threads each record their tid, the address of a local variable\n"
                 "(their stack), the address and value of errno after making a call fail in their own way,\n"
                 "a thread_local variable, and their CPU clock (CLOCK_THREAD_CPUTIME_ID) after burning a\n"
                 "different amount of CPU; then, after a barrier, they read errno and the TLS again (still\n"
                 "their own), a global each set one bit of (all bits), a heap array each wrote one slot of\n"
                 "(all slots), and an fd thread 0 opened (usable by all). errno is per thread because glibc\n"
                 "keeps it in thread-local storage, which the fs register points at, one block per thread.\n\n"
                 "States: a spinning, a sleeping and a mutex-blocked thread, read from\n"
                 "/proc/self/task/<tid>/stat. A thread in nanosleep and one waiting for a pthread mutex (a\n"
                 "futex) are both S (interruptible sleep: a signal wakes it); D is a sleep in the kernel\n"
                 "that signals cannot end (a disk read); /proc/<pid>/task/<tid>/syscall shows which call\n"
                 "the thread sleeps in (clock_nanosleep, futex). R means running or ready to run. A thread\n"
                 "that has returned is released at once: threads are not zombies; pthread_join only\n"
                 "collects the return value glibc kept.\n\n"
                 "Memory: N threads of one fresh process against N forked processes, all blocked in read().\n"
                 "A thread costs its stack's touched pages (8 MiB reserved, a few KiB used), glibc's thread\n"
                 "control block, and a page-table page; a process costs its own page tables (copied by fork\n"
                 "for its private mappings) and every page it writes (copy-on-write). RSS counts every\n"
                 "shared page in every process; PSS divides it among them, which is the fair sum.\n\n"
                 "Process exits: a child that exits stays a zombie (Z), keeping only its pid and status, until\n"
                 "its parent calls waitpid. A child whose parent dies is an orphan: the kernel gives it to\n"
                 "the nearest ancestor marked PR_SET_CHILD_SUBREAPER, else to init; this lab marks itself.\n\n"
                 "fork() with threads: the child gets a copy of the memory but only the thread that called\n"
                 "fork. A mutex another thread held is copied locked, and nobody in the child will unlock it\n"
                 "(tried here with a deadline). pthread_atfork handlers can take such locks before fork and\n"
                 "release them in both parent and child; POSIX otherwise allows only async-signal-safe calls\n"
                 "in the child of a multithreaded process until it execs.\n\n"
                 "Questions: why must errno be per thread? Why does a thread's 8 MiB stack cost only a few KiB?\n"
                 "Who reaps a zombie whose parent never calls wait? Why is exec right after fork safe even in\n"
                 "a multithreaded program?",
  });
  const auto& counts = lab.list_option("--counts", "How many threads and processes for the memory figures",
                                       {.full = {1, 10, 100, 1000}, .quick = {1, 10, 100}}, 1, 10'000);
  const long& wait_ms = lab.integer_option("--wait", "How long a child waits for an inherited lock, ms",
                                           {.full = 200, .quick = 100}, 1, 60'000);
  lab.sampling({.samples = {.full = 200, .quick = 30}, .budget_s = {.full = 0.5, .quick = 0.05}, .warmup = 2});

  std::unique_ptr<Experiment> experiment;
  auto prepare = [&](oslab::Report&) {
    experiment = std::make_unique<Experiment>(Experiment{lab, counts, std::chrono::milliseconds(wait_ms), 0});
    std::sort(experiment->counts.begin(), experiment->counts.end());
    experiment->counts.erase(std::unique(experiment->counts.begin(), experiment->counts.end()),
                             experiment->counts.end());
    experiment->cpu = lab.options().cpus.front();
    rlimit processes{};
    check_errno("getrlimit", ::getrlimit(RLIMIT_NPROC, &processes));
    const long largest = experiment->counts.back();
    if (processes.rlim_cur != RLIM_INFINITY && static_cast<rlim_t>(largest) * 2 > processes.rlim_cur)
      throw oslab::UsageError(
          fmt::format("--counts: {} tasks of each kind need more than this user's process limit "
                      "allows (RLIMIT_NPROC {})",
                      largest, processes.rlim_cur));
  };
  return lab.run(
      argc, argv,
      [&](oslab::Report& report) {
        // Memory first: no thread stack cached by glibc yet to be reused by the new threads.
        report.run_case("memory per thread and per process", [&] { experiment->memory(report); });
        report.run_case("creation cost", [&] { experiment->creation(report); });
        report.run_case("what threads own and share", [&] { experiment->anatomy(report); });
        report.run_case("thread states", [&] { experiment->states(report); });
        report.run_case("zombie", [&] { experiment->zombie(report); });
        report.run_case("orphan", [&] { experiment->orphan(report); });
        report.run_case("fork in a multithreaded process", [&] { experiment->fork_with_threads(report); });
        report.show_results_table = false;
      },
      prepare);
}
