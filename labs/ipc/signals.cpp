// oslab-signals: signals from the OS, between processes and within a process, shown by
// experiment: who receives one, what it carries, which ones are lost and which are queued,
// what they do to a blocked system call, and how long one takes to arrive.
//
// Try:     oslab-signals
//          oslab-signals --sends 5000 --placement two-cpus
// Expect:  SIGSEGV carries the faulting address; SIGCHLD the child's pid and status; SIGPIPE
//          kills a writer to a pipe nobody reads (EPIPE once ignored); SIGALRM comes from the
//          kernel when the timer expires. kill() says who sent it, sigqueue() adds a value. A
//          signal to one thread goes to that thread; one to the process goes to a thread that
//          does not block it. 1000 standard signals sent while blocked arrive once; 1000
//          real-time signals arrive 1000 times, in order. Without SA_RESTART a blocked read()
//          fails with EINTR; with it, it goes on. A signal takes microseconds to arrive: a
//          wake-up, across CPUs an interrupt too.
// Compare: oslab-ipc --transport signal (signals as a message transport).

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <optional>
#include <thread>

#include <fmt/format.h>

#include "oslab/clock.hpp"
#include "oslab/error.hpp"
#include "oslab/format.hpp"
#include "oslab/futex.hpp"
#include "oslab/lab.hpp"
#include "oslab/parties.hpp"
#include "oslab/process.hpp"
#include "oslab/shared.hpp"

namespace {

using oslab::check_errno;
using oslab::Placement;

// ---- What a test process observed (in shared memory; the lab decides) --------------------

struct Observations {
  // From the OS
  int segv_unhandled_signal = 0;
  uintptr_t segv_page = 0, segv_addr = 0;
  int segv_code = 0;
  pid_t chld_child = 0, chld_pid = 0;
  int chld_code = 0, chld_status = 0;
  int pipe_unhandled_signal = 0, pipe_ignored_errno = 0;
  long alarm_interval_ns = 0, alarm_after_ns = 0;
  int alarm_code = 0;
  // Between processes
  pid_t sender = 0, kill_pid = 0;
  int kill_code = 0;
  uid_t kill_uid = 0, my_uid = 0;
  pid_t queue_pid = 0;
  int queue_code = 0, queue_value = 0;
  // Within a process
  int raise_handled_before_return = 0, raise_code = 0;
  pid_t thread_tids[3] = {};
  pid_t pthread_kill_target = 0, pthread_kill_handler = 0;
  pid_t process_unblocked = 0, process_handler = 0;
  // Coalescing and queuing
  int sends = 0, standard_sent = 0, standard_got = 0, realtime_sent = 0, realtime_got = 0, realtime_in_order = 0;
  long sigpending_limit = 0;
  int realtime_refused_errno = 0;
  // SA_RESTART
  int plain_rc = 0, plain_errno = 0, restart_rc = 0, restart_errno = 0, restart_interrupted = 0;
  // signalfd
  uint32_t sfd_signo = 0, sfd_code = 0;
  uint32_t sfd_pid = 0;
  int sfd_int = 0;
  pid_t sfd_expected_pid = 0;
  char failed[240] = {};
};

Observations* g_seen = nullptr;  // the test process's view of the shared observations

// Handlers record into these (async-signal-safe: plain stores to lock-free atomics).
std::atomic<int> g_handled{0}, g_code{0}, g_standard{0}, g_realtime{0}, g_realtime_in_order{1};
std::atomic<pid_t> g_handler_tid{0};
std::atomic<int64_t> g_handled_at{0};

void record(int, siginfo_t* info, void*) {
  g_code = info->si_code;
  g_handler_tid = static_cast<pid_t>(::syscall(SYS_gettid));
  g_handled_at = oslab::now_ns();
  g_handled.fetch_add(1);
}

void on_segv(int, siginfo_t* info, void*) {
  g_seen->segv_addr = reinterpret_cast<uintptr_t>(info->si_addr);
  g_seen->segv_code = info->si_code;
  _exit(42);  // returning would fault again
}

void count_standard(int) {
  g_standard.fetch_add(1);
}

void count_realtime(int, siginfo_t* info, void*) {
  const int expected = g_realtime.fetch_add(1);
  if (info->si_value.sival_int != expected) g_realtime_in_order = 0;
}

void install(int signo, void (*action)(int, siginfo_t*, void*), int flags = 0) {
  struct sigaction sa {};
  sa.sa_sigaction = action;
  sa.sa_flags = SA_SIGINFO | flags;
  sigemptyset(&sa.sa_mask);
  check_errno("sigaction", ::sigaction(signo, &sa, nullptr));
}

sigset_t set_of(std::initializer_list<int> signals) {
  sigset_t set;
  sigemptyset(&set);
  for (int s : signals) sigaddset(&set, s);
  return set;
}

siginfo_t wait_for_signal(int signo, const char* what) {
  const sigset_t set = set_of({signo});
  const timespec timeout{5, 0};
  siginfo_t info{};
  while (::sigtimedwait(&set, &info, &timeout) == -1) {
    if (errno == EAGAIN) throw std::runtime_error(fmt::format("{}: no signal within 5 s", what));
    if (errno != EINTR) throw oslab::SysError("sigtimedwait", errno);
  }
  return info;
}

int killed_by(pid_t pid) {
  int status = 0;
  check_errno("waitpid", ::waitpid(pid, &status, 0));
  return WIFSIGNALED(status) ? WTERMSIG(status) : 0;
}

// Waits until thread `tid` of this process sleeps inside system call `number`.
void wait_in_syscall(pid_t tid, long number) {
  const std::string path = fmt::format("/proc/self/task/{}/syscall", tid);
  for (int i = 0; i < 5000; ++i) {
    std::ifstream in(path);
    long current = -2;
    if (in >> current && current == number) {
      std::ifstream stat(fmt::format("/proc/self/task/{}/stat", tid));
      std::string pid_field, comm, state;
      if (stat >> pid_field >> comm >> state && state == "S") return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  throw std::runtime_error(fmt::format("thread {} did not block in system call {} within 5 s", tid, number));
}

// ---- The demonstrations, each in the single-threaded test process -----------------------

void from_the_os(Observations& seen) {
  // SIGSEGV: a page with no access. Without a handler the process dies of it; with one, the
  // handler is told the address.
  void* page = ::mmap(nullptr, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  oslab::check_errno_ptr("mmap", page, MAP_FAILED);
  seen.segv_page = reinterpret_cast<uintptr_t>(page);
  pid_t pid = check_errno("fork", ::fork());
  if (pid == 0) {
    (void)::signal(SIGSEGV, SIG_DFL);  // no handler, not even a sanitizer's
    *static_cast<volatile int*>(page) = 1;
    _exit(0);
  }
  seen.segv_unhandled_signal = killed_by(pid);
  pid = check_errno("fork", ::fork());
  if (pid == 0) {
    install(SIGSEGV, on_segv);  // it records into the shared observations
    *static_cast<volatile int*>(page) = 1;
    _exit(0);
  }
  ::waitpid(pid, nullptr, 0);
  ::munmap(page, 4096);

  // SIGCHLD: the parent learns who ended and how. Blocked first: its default is to ignore it.
  const sigset_t child_set = set_of({SIGCHLD});
  ::sigprocmask(SIG_BLOCK, &child_set, nullptr);
  pid = check_errno("fork", ::fork());
  if (pid == 0) _exit(7);
  const siginfo_t child = wait_for_signal(SIGCHLD, "SIGCHLD");
  seen.chld_child = pid;
  seen.chld_pid = child.si_pid;
  seen.chld_code = child.si_code;
  seen.chld_status = child.si_status;
  ::waitpid(pid, nullptr, 0);
  ::sigprocmask(SIG_UNBLOCK, &child_set, nullptr);

  // SIGPIPE: writing to a pipe whose read end is closed.
  pid = check_errno("fork", ::fork());
  if (pid == 0) {
    int ends[2];
    if (::pipe(ends) == -1) _exit(1);
    ::close(ends[0]);
    (void)::signal(SIGPIPE, SIG_DFL);
    char byte = 'x';
    (void)!::write(ends[1], &byte, 1);
    _exit(0);
  }
  seen.pipe_unhandled_signal = killed_by(pid);
  {
    int ends[2];
    check_errno("pipe", ::pipe(ends));
    ::close(ends[0]);
    (void)::signal(SIGPIPE, SIG_IGN);
    char byte = 'x';
    seen.pipe_ignored_errno = ::write(ends[1], &byte, 1) == -1 ? errno : 0;
    (void)::signal(SIGPIPE, SIG_DFL);
    ::close(ends[1]);
  }

  // SIGALRM: a real-time interval timer of 20 ms.
  const sigset_t alarm_set = set_of({SIGALRM});
  ::sigprocmask(SIG_BLOCK, &alarm_set, nullptr);
  itimerval timer{{0, 0}, {0, 20'000}};
  seen.alarm_interval_ns = 20'000'000;
  const int64_t armed = oslab::now_ns();
  check_errno("setitimer", ::setitimer(ITIMER_REAL, &timer, nullptr));
  const siginfo_t alarm = wait_for_signal(SIGALRM, "SIGALRM");
  seen.alarm_after_ns = oslab::now_ns() - armed;
  seen.alarm_code = alarm.si_code;
}

void between_processes(Observations& seen) {
  const int queued = SIGRTMIN + 1;
  const sigset_t set = set_of({SIGUSR1, queued});
  ::sigprocmask(SIG_BLOCK, &set, nullptr);
  const pid_t me = ::getpid();
  const pid_t pid = check_errno("fork", ::fork());
  if (pid == 0) {
    ::kill(me, SIGUSR1);
    sigval value{};
    value.sival_int = 42;
    ::sigqueue(me, queued, value);
    _exit(0);
  }
  const siginfo_t killed = wait_for_signal(SIGUSR1, "kill()");
  const siginfo_t with_value = wait_for_signal(queued, "sigqueue()");
  ::waitpid(pid, nullptr, 0);
  seen.sender = pid;
  seen.kill_pid = killed.si_pid;
  seen.kill_code = killed.si_code;
  seen.kill_uid = killed.si_uid;
  seen.my_uid = ::getuid();
  seen.queue_pid = with_value.si_pid;
  seen.queue_code = with_value.si_code;
  seen.queue_value = with_value.si_value.sival_int;
  ::sigprocmask(SIG_UNBLOCK, &set, nullptr);
}

void within_a_process(Observations& seen) {
  // raise(): to the calling thread, handled before raise() returns.
  install(SIGUSR1, record);
  g_handled = 0;
  (void)::raise(SIGUSR1);
  seen.raise_handled_before_return = g_handled.load();
  seen.raise_code = g_code.load();

  // Three threads; SIGUSR2 blocked in all but thread 1 (and in this one).
  const sigset_t usr2 = set_of({SIGUSR2});
  ::sigprocmask(SIG_BLOCK, &usr2, nullptr);
  install(SIGUSR2, record);
  std::atomic<int> started{0};
  std::atomic<bool> done{false};
  std::vector<std::thread> threads;
  for (int i = 0; i < 3; ++i)
    threads.emplace_back([&, i] {
      if (i == 1) ::pthread_sigmask(SIG_UNBLOCK, &usr2, nullptr);
      seen.thread_tids[i] = static_cast<pid_t>(::syscall(SYS_gettid));
      started.fetch_add(1);
      while (!done.load()) ::usleep(1000);
    });
  struct Join {
    std::vector<std::thread>& threads;
    std::atomic<bool>& done;
    ~Join() {
      done = true;
      for (auto& t : threads) t.join();
    }
  } join{threads, done};
  while (started.load() < 3) ::usleep(1000);
  // pthread_kill: SIGUSR1 to thread 2 only.
  g_handled = 0;
  oslab::check_errnum("pthread_kill", ::pthread_kill(threads[2].native_handle(), SIGUSR1));
  for (int i = 0; i < 5000 && g_handled.load() == 0; ++i) ::usleep(1000);
  seen.pthread_kill_target = seen.thread_tids[2];
  seen.pthread_kill_handler = g_handler_tid.load();
  // kill(getpid()): to the process; the one thread that does not block it takes it.
  g_handled = 0;
  ::kill(::getpid(), SIGUSR2);
  for (int i = 0; i < 5000 && g_handled.load() == 0; ++i) ::usleep(1000);
  seen.process_unblocked = seen.thread_tids[1];
  seen.process_handler = g_handler_tid.load();
}

void coalescing_and_queuing(Observations& seen, int sends) {
  const int realtime = SIGRTMIN + 2;
  const sigset_t set = set_of({SIGUSR1, realtime});
  ::sigprocmask(SIG_BLOCK, &set, nullptr);
  (void)::signal(SIGUSR1, count_standard);
  install(realtime, count_realtime);
  rlimit limit{};
  ::getrlimit(RLIMIT_SIGPENDING, &limit);
  seen.sigpending_limit = limit.rlim_cur == RLIM_INFINITY ? -1 : static_cast<long>(limit.rlim_cur);
  seen.sends = sends;
  for (int i = 0; i < sends; ++i) {
    if (::kill(::getpid(), SIGUSR1) == 0) ++seen.standard_sent;
    sigval value{};
    value.sival_int = i;
    if (::sigqueue(::getpid(), realtime, value) == 0)
      ++seen.realtime_sent;
    else if (seen.realtime_refused_errno == 0)
      seen.realtime_refused_errno = errno;
  }
  ::sigprocmask(SIG_UNBLOCK, &set, nullptr);  // every pending one is delivered now
  seen.standard_got = g_standard.load();
  seen.realtime_got = g_realtime.load();
  seen.realtime_in_order = g_realtime_in_order.load();
}

void restart_or_eintr(Observations& seen) {
  for (bool restart : {false, true}) {
    install(SIGUSR1, record, restart ? SA_RESTART : 0);
    int ends[2];
    check_errno("pipe", ::pipe(ends));
    std::atomic<pid_t> reader_tid{0};
    int rc = 0, error = 0;
    std::thread reader([&] {
      reader_tid = static_cast<pid_t>(::syscall(SYS_gettid));
      char byte;
      rc = static_cast<int>(::read(ends[0], &byte, 1));
      error = rc == -1 ? errno : 0;
    });
    while (reader_tid.load() == 0) ::usleep(100);
    wait_in_syscall(reader_tid, SYS_read);
    g_handled = 0;
    oslab::check_errnum("pthread_kill", ::pthread_kill(reader.native_handle(), SIGUSR1));
    for (int i = 0; i < 5000 && g_handled.load() == 0; ++i) ::usleep(1000);
    if (restart) {
      seen.restart_interrupted = g_handled.load();
      wait_in_syscall(reader_tid, SYS_read);  // back in read() after the handler
      char byte = 'x';
      check_errno("write", ::write(ends[1], &byte, 1));
    } else {
      // Unblock it in case the read was restarted after all.
      ::usleep(20'000);
      char byte = 'x';
      (void)!::write(ends[1], &byte, 1);
    }
    reader.join();
    (restart ? seen.restart_rc : seen.plain_rc) = rc;
    (restart ? seen.restart_errno : seen.plain_errno) = error;
    ::close(ends[0]);
    ::close(ends[1]);
  }
}

void through_signalfd(Observations& seen) {
  const sigset_t set = set_of({SIGUSR2});
  ::sigprocmask(SIG_BLOCK, &set, nullptr);
  oslab::UniqueFd fd(check_errno("signalfd", ::signalfd(-1, &set, SFD_CLOEXEC)));
  sigval value{};
  value.sival_int = 77;
  check_errno("sigqueue", ::sigqueue(::getpid(), SIGUSR2, value));
  signalfd_siginfo info{};
  if (check_errno("read(signalfd)", ::read(fd.get(), &info, sizeof info)) != sizeof info)
    throw std::runtime_error("signalfd: short read");
  seen.sfd_signo = info.ssi_signo;
  seen.sfd_code = static_cast<uint32_t>(info.ssi_code);
  seen.sfd_pid = info.ssi_pid;
  seen.sfd_int = info.ssi_int;
  seen.sfd_expected_pid = ::getpid();
}

// ---- Delivery latency ---------------------------------------------------------------------

enum class Receiver { handler, sigwaitinfo, signalfd };
const char* to_string(Receiver r) {
  return r == Receiver::handler ? "handler" : r == Receiver::sigwaitinfo ? "sigwaitinfo" : "signalfd";
}

struct Relay {
  std::atomic<int64_t> sent_at{0}, received_at{0};
  std::atomic<uint32_t> received{0};
  std::atomic<bool> stop{false};
  pid_t receiver = 0;
};
Relay* g_relay = nullptr;

void on_timed_signal(int) {
  g_relay->received_at = oslab::now_ns();
}

oslab::Measurement delivery(Receiver how, const oslab::Assignment& assignment, const oslab::SamplingPlan& plan) {
  oslab::Shared<Relay> relay;
  oslab::SharedMeasurement measured(static_cast<size_t>(plan.max_samples), static_cast<size_t>(plan.max_samples));
  const int signo = SIGRTMIN + 4;
  const int total = plan.warmup + plan.max_samples;
  oslab::run_parties({.threads = false, .assignment = assignment, .deadline = std::chrono::seconds(30)},
                     {[&](oslab::Party& party) {
                        party.ready();
                        std::vector<double> samples;
                        const auto started = std::chrono::steady_clock::now();
                        for (int i = 0; i < total; ++i) {
                          const uint32_t before = relay->received.load();
                          relay->sent_at = oslab::now_ns();
                          check_errno("kill", ::kill(relay->receiver, signo));
                          while (relay->received.load() == before) {
                            oslab::futex_wait(&relay->received, before, std::chrono::milliseconds(250));
                            if (party.stop_requested()) throw std::runtime_error("the receiver stopped answering");
                          }
                          if (i >= plan.warmup)
                            samples.push_back(static_cast<double>(relay->received_at - relay->sent_at));
                          if (static_cast<int>(samples.size()) >= plan.min_samples &&
                              std::chrono::steady_clock::now() - started > plan.budget)
                            break;
                        }
                        relay->stop = true;
                        check_errno("kill", ::kill(relay->receiver, signo));
                        oslab::Measurement m;
                        for (size_t start = 0; start < samples.size(); start += 10) {
                          const size_t size = std::min<size_t>(10, samples.size() - start);
                          m.add_block({samples.data() + start, size}, {}, {});
                        }
                        measured.store(m);
                      },
                      [&](oslab::Party& party) {
                        g_relay = relay.get();
                        relay->receiver = ::getpid();
                        const sigset_t set = set_of({signo});
                        ::sigprocmask(SIG_BLOCK, &set, nullptr);
                        oslab::UniqueFd fd;
                        if (how == Receiver::handler) {
                          struct sigaction sa {};
                          sa.sa_handler = on_timed_signal;
                          sigemptyset(&sa.sa_mask);
                          check_errno("sigaction", ::sigaction(signo, &sa, nullptr));
                        } else if (how == Receiver::signalfd) {
                          fd.reset(check_errno("signalfd", ::signalfd(-1, &set, SFD_CLOEXEC)));
                        }
                        sigset_t waiting;  // for sigsuspend: everything as now, but the timed signal let in
                        ::sigprocmask(SIG_BLOCK, nullptr, &waiting);
                        sigdelset(&waiting, signo);
                        party.ready();
                        for (;;) {
                          switch (how) {
                            case Receiver::handler: {
                              const int64_t before = relay->received_at.load();
                              ::sigsuspend(&waiting);  // returns after a handler ran
                              if (relay->received_at.load() == before) continue;
                              break;
                            }
                            case Receiver::sigwaitinfo: {
                              siginfo_t info;
                              if (::sigwaitinfo(&set, &info) == -1) continue;
                              relay->received_at = oslab::now_ns();
                              break;
                            }
                            case Receiver::signalfd: {
                              signalfd_siginfo info;
                              if (::read(fd.get(), &info, sizeof info) != sizeof info) continue;
                              relay->received_at = oslab::now_ns();
                              break;
                            }
                          }
                          if (relay->stop.load()) return;
                          relay->received.fetch_add(1);
                          oslab::futex_wake(&relay->received, 1);
                        }
                      }});
  return measured.load();
}

// ---- The experiment -----------------------------------------------------------------------

struct Experiment {
  Experiment(const oslab::Lab& the_lab, long sends_count) : lab(the_lab), sends(sends_count) {}
  const oslab::Lab& lab;
  long sends;
  oslab::Shared<Observations> seen;

  void observe(oslab::Report& report) {
    g_seen = seen.get();
    const int sends_count = static_cast<int>(sends);
    oslab::Child child = oslab::Child::fork([&] {
      // A single-threaded process of its own: the lab's threads would take process-directed
      // signals, and its signal dispositions stay as they were.
      auto run = [&](const char* what, const std::function<void()>& body) {
        try {
          body();
        } catch (const std::exception& e) {
          if (seen->failed[0] == '\0')
            fmt::format_to_n(seen->failed, sizeof seen->failed - 1, "{}: {}", what, e.what());
        }
      };
      run("from the OS", [&] { from_the_os(*seen); });
      run("between processes", [&] { between_processes(*seen); });
      run("coalescing and queuing", [&] { coalescing_and_queuing(*seen, sends_count); });
      run("within a process", [&] { within_a_process(*seen); });
      run("SA_RESTART", [&] { restart_or_eintr(*seen); });
      run("signalfd", [&] { through_signalfd(*seen); });
      return 0;
    });
    child.wait_success(std::chrono::seconds(60), "the signal test process");
    if (seen->failed[0] != '\0') report.fail("signal demonstrations", seen->failed);
  }

  void facts(oslab::Report& report) const {
    const Observations& s = *seen;
    oslab::Table table{
        "What each signal did (observed in a test process)", {"source", "signal", "observed"}, {}, "", 3};
    auto fact = [&](const std::string& id, const std::string& source, const std::string& signal,
                    const std::string& claim, bool holds, const std::string& evidence) {
      report.fact(id, claim, holds, evidence);
      table.rows.push_back({source, signal, (holds ? "" : "! ") + evidence});
    };
    fact("sigsegv-kills", "the OS", "SIGSEGV", "a process that touches a page it may not access is killed by SIGSEGV",
         s.segv_unhandled_signal == SIGSEGV,
         fmt::format("child killed by signal {} ({})", s.segv_unhandled_signal, ::strsignal(s.segv_unhandled_signal)));
    fact("sigsegv-says-where", "the OS", "SIGSEGV", "a SIGSEGV handler is told the faulting address (si_addr)",
         s.segv_addr == s.segv_page && s.segv_code == SEGV_ACCERR,
         fmt::format("si_addr {:#x} for the page at {:#x}, si_code {} ({})", s.segv_addr, s.segv_page, s.segv_code,
                     s.segv_code == SEGV_ACCERR ? "SEGV_ACCERR: no permission" : "not SEGV_ACCERR"));
    fact("sigchld", "the OS", "SIGCHLD", "when a child ends, its parent gets SIGCHLD with the child's pid and status",
         s.chld_pid == s.chld_child && s.chld_code == CLD_EXITED && s.chld_status == 7,
         fmt::format("si_pid {} (the child {}), si_code {} ({}), si_status {} (it called _exit(7))", s.chld_pid,
                     s.chld_child, s.chld_code, s.chld_code == CLD_EXITED ? "CLD_EXITED" : "?", s.chld_status));
    fact("sigpipe", "the OS", "SIGPIPE",
         "writing to a pipe nobody reads kills the writer with SIGPIPE; ignored, the write fails with EPIPE",
         s.pipe_unhandled_signal == SIGPIPE && s.pipe_ignored_errno == EPIPE,
         fmt::format("killed by signal {}; with SIGPIPE ignored, write() failed with {}", s.pipe_unhandled_signal,
                     oslab::errno_name(s.pipe_ignored_errno)));
    fact("sigalrm", "the OS", "SIGALRM", "a timer's SIGALRM comes from the kernel, no sooner than the timer expires",
         s.alarm_after_ns >= s.alarm_interval_ns && s.alarm_code == SI_KERNEL,
         fmt::format("setitimer({}) then SIGALRM after {}, si_code {} ({})",
                     oslab::format_duration(static_cast<double>(s.alarm_interval_ns)),
                     oslab::format_duration(static_cast<double>(s.alarm_after_ns)), s.alarm_code,
                     s.alarm_code == SI_KERNEL ? "SI_KERNEL" : "?"));
    fact("kill-says-who", "another process", "SIGUSR1 by kill()",
         "kill() tells the receiver who sent the signal: pid and user (si_code SI_USER)",
         s.kill_pid == s.sender && s.kill_code == SI_USER && s.kill_uid == s.my_uid,
         fmt::format("si_pid {} (the sender {}), si_uid {}, si_code {} ({})", s.kill_pid, s.sender, s.kill_uid,
                     s.kill_code, s.kill_code == SI_USER ? "SI_USER" : "?"));
    fact("sigqueue-carries-a-value", "another process", "SIGRTMIN+1 by sigqueue()",
         "sigqueue() adds a value that the receiver reads (si_value; si_code SI_QUEUE)",
         s.queue_pid == s.sender && s.queue_code == SI_QUEUE && s.queue_value == 42,
         fmt::format("si_value {} (42 sent), si_pid {}, si_code {} ({})", s.queue_value, s.queue_pid, s.queue_code,
                     s.queue_code == SI_QUEUE ? "SI_QUEUE" : "?"));
    fact("raise-is-synchronous", "this process", "SIGUSR1 by raise()",
         "raise() sends to the calling thread, and the handler runs before raise() returns",
         s.raise_handled_before_return == 1 && s.raise_code == SI_TKILL,
         fmt::format("handler ran {} time(s) before raise() returned; si_code {} ({})", s.raise_handled_before_return,
                     s.raise_code, s.raise_code == SI_TKILL ? "SI_TKILL: tgkill, to one thread" : "?"));
    fact("pthread-kill-to-one-thread", "this process", "SIGUSR1 by pthread_kill()",
         "pthread_kill() delivers to the thread it names", s.pthread_kill_handler == s.pthread_kill_target,
         fmt::format("sent to thread {}; the handler ran in thread {}", s.pthread_kill_target, s.pthread_kill_handler));
    fact("process-signal-to-unblocking-thread", "this process", "SIGUSR2 by kill(getpid())",
         "a signal to the process goes to a thread that does not block it", s.process_handler == s.process_unblocked,
         fmt::format("blocked in every thread but {}; the handler ran in thread {}", s.process_unblocked,
                     s.process_handler));
    fact("standard-signals-coalesce", "this process", "SIGUSR1 x " + std::to_string(s.sends),
         "standard signals sent while blocked coalesce: one is pending, however many were sent",
         s.standard_sent == s.sends && s.standard_got == 1,
         fmt::format("{} sent while blocked, {} delivered on unblocking", s.standard_sent, s.standard_got));
    const bool all_queued = s.realtime_sent == s.sends;
    fact("realtime-signals-queue", "this process", "SIGRTMIN+2 x " + std::to_string(s.sends),
         "real-time signals sent while blocked queue: each is delivered, in the order sent",
         s.realtime_got == s.realtime_sent && s.realtime_in_order == 1 && s.realtime_sent > 1,
         fmt::format("{} sent while blocked{}, {} delivered on unblocking, {}", s.realtime_sent,
                     all_queued ? ""
                                : fmt::format(" (the rest refused with {}: RLIMIT_SIGPENDING is {})",
                                              oslab::errno_name(s.realtime_refused_errno), s.sigpending_limit),
                     s.realtime_got, s.realtime_in_order ? "in the order sent" : "out of order"));
    fact("eintr-without-sa-restart", "this process", "SIGUSR1 during read()",
         "without SA_RESTART, a signal handled during a blocked read() makes it fail with EINTR",
         s.plain_rc == -1 && s.plain_errno == EINTR,
         fmt::format("read() returned {} ({})", s.plain_rc,
                     s.plain_rc == -1 ? oslab::errno_name(s.plain_errno) : "data"));
    fact("sa-restart-restarts", "this process", "SIGUSR1 during read()",
         "with SA_RESTART, the read() goes on after the handler and returns the data",
         s.restart_interrupted == 1 && s.restart_rc == 1,
         fmt::format("the handler ran {} time(s); read() then returned {}", s.restart_interrupted, s.restart_rc));
    fact("signalfd-reads-signals", "this process", "SIGUSR2 to a signalfd",
         "a blocked signal can be read from a signalfd, with its sender and value",
         s.sfd_signo == static_cast<uint32_t>(SIGUSR2) && s.sfd_int == 77 &&
             s.sfd_pid == static_cast<uint32_t>(s.sfd_expected_pid) && s.sfd_code == static_cast<uint32_t>(SI_QUEUE),
         fmt::format("read() gave ssi_signo {}, ssi_pid {} (this process {}), ssi_int {} (77 sent), ssi_code {}",
                     s.sfd_signo, s.sfd_pid, s.sfd_expected_pid, s.sfd_int, static_cast<int>(s.sfd_code)));
    table.footnote = "'!' marks a claim that did not hold; the verdicts give the details.";
    report.table(table);
  }

  void latency(oslab::Report& report, const std::vector<Placement>& placements) const {
    oslab::Table table{"Delivery latency: kill() to the receiver, in another process (median, p99)",
                       {"placement", "handler", "sigwaitinfo", "signalfd"},
                       {},
                       "From just before kill() to the receiver's first instruction after it (in the handler; after "
                       "sigwaitinfo() or read() returned); CLOCK_MONOTONIC read by both, one sample per signal.",
                       1};
    for (Placement placement : placements) {
      const oslab::Assignment assignment = oslab::assign_cpus(placement, 2, lab.options().cpus);
      std::vector<std::string> row{assignment.describe()};
      for (Receiver how : {Receiver::handler, Receiver::sigwaitinfo, Receiver::signalfd}) {
        bool ok = report.run_case(fmt::format("delivery to a {}, {}", to_string(how), to_string(placement)), [&] {
          const oslab::Measurement m = delivery(how, assignment, lab.plan());
          nlohmann::json params = assignment.to_json();
          params["receiver"] = to_string(how);
          const auto& r = report.add(
              "delivery", params, m,
              {.what = fmt::format(
                   "one way: kill() of a real-time signal to a process that waits in {}, to its "
                   "first instruction after delivery; {}",
                   how == Receiver::handler ? "sigsuspend() (the time is taken in the handler)" : to_string(how),
                   assignment.describe()),
               .headline = how == Receiver::sigwaitinfo});
          row.push_back(
              fmt::format("{} ({})", oslab::format_duration(r.summary.p50), oslab::format_duration(r.summary.p99)));
        });
        if (!ok) row.emplace_back("-");
      }
      table.rows.push_back(row);
    }
    report.table(table);
    const std::string claim =
        "a handler costs more than taking the signal with sigwaitinfo(): the kernel builds a signal frame on the "
        "user stack and switches to the handler";
    const Placement first = placements.front();
    const nlohmann::json where = oslab::assign_cpus(first, 2, lab.options().cpus).to_json();
    nlohmann::json handler = where, waiting = where;
    handler["receiver"] = "handler";
    waiting["receiver"] = "sigwaitinfo";
    const oslab::Result* by_handler = report.find("delivery", handler);
    const oslab::Result* by_waiting = report.find("delivery", waiting);
    if (by_handler == nullptr || by_waiting == nullptr) {
      report.skip(claim, "needs both delivery measurements");
      return;
    }
    const oslab::Estimate factor = oslab::ratio_of(by_handler->summary, by_waiting->summary);
    report.verdict("handler-costs-more-than-sigwaitinfo", claim, factor, oslab::Compare::above, 1.0,
                   fmt::format("{}: kill() to handler {}, to sigwaitinfo() {} ({:.2f}x)", to_string(first),
                               oslab::format_duration(by_handler->summary.p50),
                               oslab::format_duration(by_waiting->summary.p50), factor.value));
  }
};

}  // namespace

int main(int argc, char** argv) {
  oslab::Lab lab({
      .name = "signals",
      .purpose = "signals from the OS, between processes and threads: who gets them, what they carry, coalescing, "
                 "EINTR, signalfd, delivery time",
      .claim = "The notes list three kinds of signals: from the OS to a process, between processes, and\n"
               "within a process (between its threads).",
      .explain = "A test process of its own (single-threaded: the lab's own threads would take signals sent\n"
                 "to the process) does each experiment and records what it saw; the lab checks it.\n\n"
                 "From the OS: a child touches a PROT_NONE page and dies of SIGSEGV; with a handler, the\n"
                 "handler gets the address (si_addr) and SEGV_ACCERR. A child that _exit(7)s sends its\n"
                 "parent SIGCHLD with its pid and status. Writing to a pipe whose read end is closed kills\n"
                 "with SIGPIPE; ignored, write() fails with EPIPE. setitimer() makes the kernel send SIGALRM\n"
                 "(si_code SI_KERNEL) when the timer expires.\n\n"
                 "Between processes: kill() tells the receiver the sender's pid and uid (SI_USER);\n"
                 "sigqueue() adds a value (SI_QUEUE). Within a process: raise() sends to the calling thread\n"
                 "(tgkill: SI_TKILL) and the handler runs before raise() returns; pthread_kill() reaches the\n"
                 "thread it names; kill(getpid()) reaches a thread that does not block the signal.\n\n"
                 "Coalescing: with both blocked, --sends SIGUSR1s and --sends SIGRTMIN+2s are sent to the\n"
                 "process, then unblocked. A standard signal is one bit of 'pending': it arrives once. Real-\n"
                 "time signals queue, with their values, in order (up to RLIMIT_SIGPENDING).\n\n"
                 "SA_RESTART: a thread blocks in read() on an empty pipe; another pthread_kill()s it. With a\n"
                 "handler installed without SA_RESTART, read() fails with EINTR; with SA_RESTART, it goes\n"
                 "on after the handler and returns the byte written later. A signalfd turns a blocked\n"
                 "signal into data to read(), with its sender and value.\n\n"
                 "Delivery latency: one process kill()s another with a real-time signal; the receiver waits\n"
                 "in sigsuspend() with a handler, in sigwaitinfo(), or in read() of a signalfd, reads the\n"
                 "clock first thing, and answers through a futex. One sample per signal, one way, on one\n"
                 "CPU (a context switch) and on two (a wake-up across CPUs).\n\n"
                 "Questions: why can a standard signal not count? Why does the handler case cost more than\n"
                 "sigwaitinfo? What must a program do about EINTR without SA_RESTART? Why would a server\n"
                 "rather read signals from a signalfd in its event loop?",
      .placements = {Placement::same_cpu, Placement::two_cpus, Placement::unpinned},
      .default_placements = {Placement::same_cpu, Placement::two_cpus},
  });
  const long& sends = lab.integer_option("--sends", "Signals of each kind sent while blocked",
                                         {.full = 1000, .quick = 1000}, 2, 100'000);
  lab.sampling({.samples = {.full = 200, .quick = 30}, .budget_s = {.full = 0.3, .quick = 0.05}, .warmup = 3});
  std::optional<Experiment> experiment;
  return lab.run(argc, argv, [&](oslab::Report& report) {
    experiment.emplace(lab, sends);
    report.run_case("signal demonstrations", [&] { experiment->observe(report); });
    experiment->facts(report);
    std::vector<Placement> placements = lab.options().placements;
    if (lab.options().cpus.size() < 2) std::erase(placements, Placement::two_cpus);
    experiment->latency(report, placements);
    report.show_results_table = false;
    report.show_holding_verdicts = false;  // the table shows every fact; --json lists them all
  });
}
