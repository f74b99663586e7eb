// oslab-clone-flags: the notes' table of what a thread shares and a process does not,
// found by experiment. For fork, vfork, clone with one flag at a time, the flag set of a
// thread, and pthread_create, the child changes things and the parent looks for the change.
//
// Try:     oslab-clone-flags
//          oslab-clone-flags --json | jq '.verdicts[] | select(.holds | not)'
// Expect:  fork shares nothing; vfork and CLONE_VM share memory; CLONE_FILES the fd table;
//          CLONE_FS the working directory and umask; CLONE_SIGHAND the signal handlers; a
//          thread (and pthread_create) all four. The kernel makes no other difference
//          between a process and a thread.
// Compare: oslab-fork (what each of these costs as memory grows).

#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <climits>

#include <fmt/format.h>

#include "oslab/error.hpp"
#include "oslab/handles.hpp"
#include "oslab/lab.hpp"
#include "oslab/measure.hpp"
#include "oslab/process.hpp"

namespace {

using oslab::check_errno;
using oslab::check_errnum;

// What the child changes, and what the parent then checks (one row of the table each).
enum Resource { kMemory, kFdOpened, kFdClosed, kCwd, kUmask, kHandler, kResources };
constexpr std::array<const char*, kResources> kResourceLabels = {
    "memory: child writes a variable", "fds: child opens a file",
    "fds: child closes a file",        "fs: child chdir()s",
    "fs: child sets umask()",          "signals: child installs a handler"};
constexpr std::array<const char*, kResources> kResourceNouns = {
    "memory", "an fd the child opens", "an fd the child closes", "the cwd", "the umask", "a signal handler"};
constexpr std::array<const char*, kResources> kNotesRows = {
    "Memoria",          "File descriptors", "File descriptors", "Contexto de filesystem", "Contexto de filesystem",
    "Manejo de senales"};

enum class How { fork, vfork, clone, clone_thread, pthread };

struct Variant {
  std::string label;
  How how;
  int flags;                            // clone flags, for How::clone and How::clone_thread
  std::array<bool, kResources> shared;  // Linux semantics
};

constexpr int kThreadFlags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD;
const std::vector<Variant> kVariants = {
    {"fork", How::fork, 0, {false, false, false, false, false, false}},
    {"vfork", How::vfork, 0, {true, false, false, false, false, false}},
    {"CLONE_VM", How::clone, CLONE_VM, {true, false, false, false, false, false}},
    {"CLONE_FILES", How::clone, CLONE_FILES, {false, true, true, false, false, false}},
    {"CLONE_FS", How::clone, CLONE_FS, {false, false, false, true, true, false}},
    {"CLONE_SIGHAND|VM", How::clone, CLONE_SIGHAND | CLONE_VM, {true, false, false, false, false, true}},
    {"thread flags", How::clone_thread, kThreadFlags, {true, true, true, true, true, true}},
    {"pthread_create", How::pthread, 0, {true, true, true, true, true, true}},
};

// The variable the child writes: a global, so every variant sees the same address.
volatile int g_variable = 0;
constexpr int kChildValue = 42;
constexpr mode_t kParentUmask = 022, kChildUmask = 077;
constexpr const char* kParentDir = "/";
constexpr const char* kChildDir = "/dev";

void child_handler(int) {}

// Lives in a MAP_SHARED page, so that a child with its own memory can still report.
struct Probe {
  int fd_to_close;   // the parent opened it; the child closes it
  int fd_opened;     // the child's new fd number
  int failed_errno;  // first failure in the child
  const char* failed_call;
};

// The child's side: async-signal-safe calls only (it may be a vfork child or share our TLS).
void child_changes_things(Probe* probe) {
  auto fail = [&](const char* call) {
    if (probe->failed_call == nullptr) {
      probe->failed_call = call;
      probe->failed_errno = errno;
    }
  };
  g_variable = kChildValue;
  probe->fd_opened = ::open("/dev/null", O_RDONLY);
  if (probe->fd_opened == -1) fail("open");
  if (::close(probe->fd_to_close) == -1) fail("close");
  if (::chdir(kChildDir) == -1) fail("chdir");
  ::umask(kChildUmask);
  struct sigaction action {};
  action.sa_handler = child_handler;
  if (::sigaction(SIGUSR1, &action, nullptr) == -1) fail("sigaction");
}

struct ChildArgs {
  Probe* probe;
  bool act;  // false: do nothing (for timing the variant's own cost)
};

int clone_child(void* raw) {
  auto* args = static_cast<ChildArgs*>(raw);
  if (args->act) child_changes_things(args->probe);
  return 0;
}

void* thread_child(void* raw) {
  clone_child(raw);
  return nullptr;
}

constexpr auto kDeadline = std::chrono::seconds(10);

// Waits for a CLONE_THREAD child: the kernel clears *tid and wakes the futex when it exits
// (CLONE_CHILD_CLEARTID); such a child cannot be waited for with waitpid.
void wait_for_thread(volatile pid_t* tid) {
  const auto deadline = std::chrono::steady_clock::now() + kDeadline;
  while (pid_t current = *tid) {
    auto left = deadline - std::chrono::steady_clock::now();
    if (left <= std::chrono::nanoseconds::zero())
      throw std::runtime_error("the CLONE_THREAD child did not exit within 10 s");
    timespec timeout{0, static_cast<long>(std::min<int64_t>(
                            std::chrono::duration_cast<std::chrono::nanoseconds>(left).count(), 100'000'000))};
    long rc = ::syscall(SYS_futex, tid, FUTEX_WAIT, current, &timeout, nullptr, 0);
    if (rc == -1 && errno != EAGAIN && errno != EINTR && errno != ETIMEDOUT) throw oslab::SysError("futex", errno);
  }
}

void expect_success(pid_t pid, const std::string& label) {
  oslab::ExitStatus status = oslab::wait_or_kill(pid, kDeadline, label + " child");
  if (!status.success()) throw std::runtime_error(fmt::format("{} child {}", label, status.describe()));
}

// Creates one child of `variant`, lets it act (or not), and waits until it has ended.
void run_child(const Variant& variant, ChildArgs& args, const oslab::Mapping& stack) {
  char* stack_top = reinterpret_cast<char*>(stack.data()) + stack.size();
  switch (variant.how) {
    case How::fork: {
      oslab::flush_stdio();
      pid_t pid = check_errno("fork", ::fork());
      if (pid == 0) _exit(clone_child(&args));
      expect_success(pid, variant.label);
      break;
    }
    case How::vfork: {
      pid_t pid = check_errno("vfork", ::vfork());
      if (pid == 0) _exit(clone_child(&args));
      expect_success(pid, variant.label);
      break;
    }
    case How::clone: {
      pid_t pid = check_errno("clone", ::clone(clone_child, stack_top, variant.flags | SIGCHLD, &args));
      expect_success(pid, variant.label);
      break;
    }
    case How::clone_thread: {
      volatile pid_t tid = 0;
      check_errno("clone", ::clone(clone_child, stack_top, variant.flags | CLONE_PARENT_SETTID | CLONE_CHILD_CLEARTID,
                                   &args, &tid, nullptr, &tid));
      wait_for_thread(&tid);
      break;
    }
    case How::pthread: {
      pthread_t thread;
      check_errnum("pthread_create", ::pthread_create(&thread, nullptr, thread_child, &args));
      timespec deadline{};
      ::clock_gettime(CLOCK_MONOTONIC, &deadline);
      deadline.tv_sec += kDeadline.count();
      check_errnum("pthread_clockjoin_np", ::pthread_clockjoin_np(thread, nullptr, CLOCK_MONOTONIC, &deadline));
      break;
    }
  }
}

bool fd_is_open(int fd) {
  return fd >= 0 && ::fcntl(fd, F_GETFD) != -1;
}

// Puts the parent back in the state every variant starts from.
void reset_parent(Probe* probe, int devnull) {
  g_variable = 0;
  check_errno("chdir", ::chdir(kParentDir));
  ::umask(kParentUmask);
  struct sigaction action {};
  action.sa_handler = SIG_DFL;
  check_errno("sigaction", ::sigaction(SIGUSR1, &action, nullptr));
  *probe = Probe{check_errno("dup", ::dup(devnull)), -1, 0, nullptr};
}

struct Seen {
  std::array<bool, kResources> shared;
  std::array<std::string, kResources> evidence;
};

Seen observe(Probe* probe) {
  Seen seen;
  seen.shared[kMemory] = g_variable == kChildValue;
  seen.evidence[kMemory] = fmt::format("the parent read the variable as {} after the child set it to {}",
                                       static_cast<int>(g_variable), kChildValue);
  seen.shared[kFdOpened] = fd_is_open(probe->fd_opened);
  seen.evidence[kFdOpened] = fmt::format("the child opened fd {}; in the parent fd {} is {}", probe->fd_opened,
                                         probe->fd_opened, seen.shared[kFdOpened] ? "open" : "not open");
  seen.shared[kFdClosed] = !fd_is_open(probe->fd_to_close);
  seen.evidence[kFdClosed] = fmt::format("the child closed fd {}; in the parent it is {}", probe->fd_to_close,
                                         seen.shared[kFdClosed] ? "closed" : "still open");
  char cwd[PATH_MAX] = "";
  if (::getcwd(cwd, sizeof cwd) == nullptr) throw oslab::SysError("getcwd", errno);
  seen.shared[kCwd] = std::string(cwd) == kChildDir;
  seen.evidence[kCwd] = fmt::format("the child chdir()ed to {}; the parent's cwd is {}", kChildDir, cwd);
  mode_t mask = ::umask(kParentUmask);
  seen.shared[kUmask] = mask == kChildUmask;
  seen.evidence[kUmask] = fmt::format("the child set umask {:03o}; the parent's is {:03o}", kChildUmask, mask);
  struct sigaction current {};
  check_errno("sigaction", ::sigaction(SIGUSR1, nullptr, &current));
  seen.shared[kHandler] = current.sa_handler == child_handler;
  seen.evidence[kHandler] = fmt::format("the child installed a SIGUSR1 handler; the parent's disposition is {}",
                                        seen.shared[kHandler] ? "that handler" : "still SIG_DFL");
  // Close what the child left in our table, if it is ours.
  if (seen.shared[kFdOpened]) ::close(probe->fd_opened);
  if (!seen.shared[kFdClosed]) ::close(probe->fd_to_close);
  return seen;
}

}  // namespace

int main(int argc, char** argv) {
  oslab::Lab lab({
      .name = "clone-flags",
      .purpose = "what fork, vfork, each clone flag, a thread and pthread_create share, by experiment",
      .claim = "The notes' table: a thread shares memory, file descriptors, the filesystem context and\n"
               "signal handling with its process; a forked process shares none of them. On Linux both\n"
               "are clone(): each CLONE_* flag shares one of these, and a thread is the set of all.",
      .explain = "For each variant the parent sets a known state (a variable = 0, an open fd, cwd /, umask\n"
                 "022, SIGUSR1 at SIG_DFL), creates the child, and waits until it has ended. The child sets\n"
                 "the variable to 42, opens /dev/null, closes the parent's fd, chdir()s to /dev, sets umask\n"
                 "077 and installs a SIGUSR1 handler. The parent then looks: whatever changed for it too is\n"
                 "shared. CLONE_VM shares the address space, CLONE_FILES the fd table, CLONE_FS the cwd,\n"
                 "root and umask, CLONE_SIGHAND the handler table (only with CLONE_VM: a handler is an\n"
                 "address). vfork() is CLONE_VM|CLONE_VFORK. A CLONE_THREAD child is waited for through\n"
                 "CLONE_CHILD_CLEARTID and a futex, as pthread_join does, since waitpid cannot see it.\n\n"
                 "The cost row is create + end + reap of a child that does nothing, median of --iterations.\n\n"
                 "Questions: why must CLONE_SIGHAND come with CLONE_VM? What does a thread share that is\n"
                 "not in this table (pid, credentials, timers)? Why is vfork's memory row 'yes'?",
  });
  auto prepare = [](oslab::Report&) {
    if (oslab::kThreadSanitizer)
      throw oslab::SkipError(
          "built with ThreadSanitizer, whose interceptors crash in a raw clone(CLONE_VM) child; "
          "use the release build");
  };
  return lab.main(argc, argv, prepare, [&](oslab::Report& report) {
    const int iterations = lab.iterations(100, 20);
    report.params["iterations"] = iterations;

    // Restored at the end: the lab changes its own cwd and umask on purpose.
    oslab::UniqueFd original_cwd(check_errno("open .", ::open(".", O_PATH | O_DIRECTORY | O_CLOEXEC)));
    const mode_t original_umask = ::umask(kParentUmask);
    oslab::UniqueFd devnull(check_errno("open /dev/null", ::open("/dev/null", O_RDONLY | O_CLOEXEC)));
    auto probe_page = oslab::Mapping::anonymous(oslab::page_size(), MAP_SHARED);
    auto* probe = probe_page.as<Probe>();
    auto stack = oslab::Mapping::anonymous(256 * 1024, MAP_PRIVATE | MAP_STACK);

    std::vector<Seen> seen;
    for (const Variant& variant : kVariants) {
      reset_parent(probe, devnull.get());
      ChildArgs args{probe, true};
      run_child(variant, args, stack);
      if (probe->failed_call != nullptr)
        throw std::runtime_error(fmt::format("{} child: {}: {}", variant.label, probe->failed_call,
                                             oslab::describe_errno(probe->failed_errno)));
      seen.push_back(observe(probe));
      reset_parent(probe, devnull.get());
      ::close(probe->fd_to_close);
    }

    oslab::Table table{
        "Shared with the parent? (observed; '!' marks a difference from Linux semantics)", {"", ""}, {}, "", 2};
    for (const Variant& variant : kVariants) table.header.push_back(variant.label);
    int differences = 0;
    for (int resource = 0; resource < kResources; ++resource) {
      std::vector<std::string> row{kNotesRows[resource], kResourceLabels[resource]};
      for (size_t v = 0; v < kVariants.size(); ++v) {
        bool shared = seen[v].shared[resource];
        bool expected = kVariants[v].shared[resource];
        differences += shared != expected;
        row.push_back(std::string(shared ? "yes" : "no") + (shared != expected ? " !" : ""));
        report.verdict(fmt::format("{}: {} is {}shared with the parent", kVariants[v].label, kResourceNouns[resource],
                                   expected ? "" : "not "),
                       shared == expected, seen[v].evidence[resource]);
      }
      table.rows.push_back(row);
    }

    // The cost of each variant: a child that does nothing, created, ended and reaped.
    oslab::SamplingPlan plan;
    plan.warmup = 2;
    plan.min_samples = iterations;
    plan.max_samples = iterations;
    plan.budget = std::chrono::milliseconds(0);
    std::vector<std::string> cost_row{"cost", "create + end + reap (median)"};
    for (const Variant& variant : kVariants) {
      ChildArgs args{probe, false};
      oslab::Measurement m = oslab::measure(plan, [&](int64_t batch) {
        for (int64_t i = 0; i < batch; ++i) run_child(variant, args, stack);
      });
      oslab::Result& result = report.add(variant.label, {{"clone_flags", variant.flags}}, m,
                                         "create a child that does nothing, wait until it has ended");
      result.headline = variant.how == How::fork || variant.how == How::pthread;
      cost_row.push_back(oslab::format_duration(result.summary.p50));
    }
    table.rows.push_back(cost_row);
    table.footnote = differences == 0
                         ? "Every cell matches Linux semantics."
                         : fmt::format("{} cell(s) differ from Linux semantics: see the verdicts.", differences);
    report.table(table);
    report.show_results_table = false;
    report.show_holding_verdicts = false;  // the table shows them; --json lists every one

    check_errno("fchdir", ::fchdir(original_cwd.get()));
    ::umask(original_umask);
  });
}
