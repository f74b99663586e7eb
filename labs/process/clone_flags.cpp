// oslab-clone-flags: the notes' table of what a thread shares and a process does not,
// found by experiment. For fork, vfork, clone with one flag at a time, the flag set of a
// thread, and pthread_create, the child changes things and the parent looks for the change.
//
// Try:     oslab-clone-flags
//          oslab-clone-flags --json | jq '.verdicts[] | select(.holds | not)'
// Expect:  fork copies everything; vfork and CLONE_VM share memory; CLONE_FILES the fd
//          table; CLONE_FS the working directory and umask; CLONE_SIGHAND the signal
//          handlers; a thread (and pthread_create) all four. Every variant, fork included,
//          shares the open files themselves: a copied fd still points at the parent's open
//          file description, so an lseek() in the child moves the parent's offset too.
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
#include <functional>
#include <optional>

#include <fmt/format.h>

#include "oslab/error.hpp"
#include "oslab/handles.hpp"
#include "oslab/lab.hpp"
#include "oslab/measure.hpp"
#include "oslab/process.hpp"
#include "oslab/shared.hpp"

namespace {

using oslab::check_errno;
using oslab::check_errnum;

// What the child changes, and what the parent then checks (one row of the table each).
enum Resource { kMemory, kFdOpened, kFdClosed, kOffset, kCwd, kUmask, kHandler, kResources };
constexpr std::array<const char*, kResources> kResourceLabels = {
    "memory: child writes a variable",           "fds: child opens a file", "fds: child closes a file",
    "open file: child lseek()s an inherited fd", "fs: child chdir()s",      "fs: child sets umask()",
    "signals: child installs a handler"};
constexpr std::array<const char*, kResources> kResourceNouns = {
    "memory",    "an fd the child opens", "an fd the child closes", "the offset of an inherited open file", "the cwd",
    "the umask", "a signal handler"};
constexpr std::array<const char*, kResources> kResourceIds = {"memory", "fd-opened", "fd-closed",     "file-offset",
                                                              "cwd",    "umask",     "signal-handler"};
constexpr std::array<const char*, kResources> kNotesRows = {
    "Memoria",          "File descriptors",       "File descriptors",
    "File descriptors", "Contexto de filesystem", "Contexto de filesystem",
    "Manejo de senales"};

enum class How { fork, vfork, clone, clone_thread, pthread };

struct Variant {
  std::string label;
  std::string id;  // for verdict ids: "clone-files"
  How how;
  int flags;                            // clone flags, for How::clone and How::clone_thread
  std::array<bool, kResources> shared;  // Linux semantics
  std::string call;                     // the call that creates the child, as the results name it
  std::string flag_names;               // its flags, by name
};

constexpr int kThreadFlags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD;
// Columns: memory, fd opened, fd closed, file offset, cwd, umask, handler.
const std::vector<Variant> kVariants = {
    {"fork",
     "fork",
     How::fork,
     0,
     {false, false, false, true, false, false, false},
     "fork()",
     "(glibc: clone with SIGCHLD)"},
    {"vfork",
     "vfork",
     How::vfork,
     0,
     {true, false, false, true, false, false, false},
     "vfork()",
     "CLONE_VM|CLONE_VFORK|SIGCHLD"},
    {"CLONE_VM",
     "clone-vm",
     How::clone,
     CLONE_VM,
     {true, false, false, true, false, false, false},
     "clone()",
     "CLONE_VM|SIGCHLD"},
    {"CLONE_FILES",
     "clone-files",
     How::clone,
     CLONE_FILES,
     {false, true, true, true, false, false, false},
     "clone()",
     "CLONE_FILES|SIGCHLD"},
    {"CLONE_FS",
     "clone-fs",
     How::clone,
     CLONE_FS,
     {false, false, false, true, true, true, false},
     "clone()",
     "CLONE_FS|SIGCHLD"},
    {"CLONE_SIGHAND|VM",
     "clone-sighand-vm",
     How::clone,
     CLONE_SIGHAND | CLONE_VM,
     {true, false, false, true, false, false, true},
     "clone()",
     "CLONE_SIGHAND|CLONE_VM|SIGCHLD"},
    {"thread flags",
     "thread-flags",
     How::clone_thread,
     kThreadFlags,
     {true, true, true, true, true, true, true},
     "clone()",
     "CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|CLONE_PARENT_SETTID|CLONE_CHILD_CLEARTID"},
    {"pthread_create",
     "pthread-create",
     How::pthread,
     0,
     {true, true, true, true, true, true, true},
     "pthread_create()",
     "(glibc: clone with the thread flags, CLONE_SETTLS and more)"},
};

// The variable the child writes: a global, so every variant sees the same address.
volatile int g_variable = 0;
constexpr int kChildValue = 42;
constexpr mode_t kParentUmask = 022, kChildUmask = 077;
constexpr const char* kParentDir = "/";
constexpr const char* kChildDir = "/dev";
constexpr off_t kChildOffset = 1234;

void child_handler(int) {}

// Lives in a MAP_SHARED page, so that a child with its own memory can still report.
struct Probe {
  int fd_to_close;   // the parent opened it; the child closes it
  int fd_to_seek;    // the parent opened it; the child moves its offset
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
  if (::lseek(probe->fd_to_seek, kChildOffset, SEEK_SET) == -1) fail("lseek");
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
  oslab::wait_success(pid, kDeadline, label + " child");
}

// Creates one child of `variant`, lets it act (or not), and waits until it has ended.
void run_child(const Variant& variant, ChildArgs& args, const oslab::Stack& stack) {
  char* stack_top = reinterpret_cast<char*>(stack.top());
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
  *probe = Probe{check_errno("dup", ::dup(devnull)),
                 check_errno("memfd_create", ::memfd_create("oslab-clone-flags", MFD_CLOEXEC)), -1, 0, nullptr};
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
  const off_t offset = check_errno("lseek", ::lseek(probe->fd_to_seek, 0, SEEK_CUR));
  seen.shared[kOffset] = offset == kChildOffset;
  seen.evidence[kOffset] =
      fmt::format("the child lseek()ed an inherited fd to {}; the parent's offset is {}", kChildOffset, offset);
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
  ::close(probe->fd_to_seek);
  return seen;
}

struct Experiment {
  const oslab::Lab& lab;
  std::vector<Seen> seen;

  // Each variant once: the child changes things, the parent looks.
  void observe_variants() {
    // Restored at the end: the lab changes its own cwd and umask on purpose.
    oslab::UniqueFd original_cwd(check_errno("open .", ::open(".", O_PATH | O_DIRECTORY | O_CLOEXEC)));
    const mode_t original_umask = ::umask(kParentUmask);
    oslab::UniqueFd devnull(check_errno("open /dev/null", ::open("/dev/null", O_RDONLY | O_CLOEXEC)));
    oslab::Shared<Probe> probe;
    const oslab::Stack stack = oslab::Stack::create(256 * 1024);
    for (const Variant& variant : kVariants) {
      reset_parent(probe.get(), devnull.get());
      ChildArgs args{probe.get(), true};
      run_child(variant, args, stack);
      if (probe->failed_call != nullptr)
        throw std::runtime_error(fmt::format("{} child: {}: {}", variant.label, probe->failed_call,
                                             oslab::describe_errno(probe->failed_errno)));
      seen.push_back(observe(probe.get()));
    }
    check_errno("fchdir", ::fchdir(original_cwd.get()));
    ::umask(original_umask);
  }

  // The cost of each variant: a child that does nothing, created, ended and reaped.
  void measure(oslab::Report& report) const {
    oslab::Shared<Probe> probe;
    const oslab::Stack stack = oslab::Stack::create(256 * 1024);
    std::vector<ChildArgs> args(kVariants.size(), ChildArgs{probe.get(), false});
    std::vector<std::function<void(int64_t)>> ops;
    for (size_t v = 0; v < kVariants.size(); ++v)
      ops.emplace_back([&, v](int64_t batch) {
        for (int64_t i = 0; i < batch; ++i) run_child(kVariants[v], args[v], stack);
      });
    const std::vector<oslab::Measurement> measured = oslab::measure_interleaved(lab.plan(), ops);
    for (size_t v = 0; v < kVariants.size(); ++v) {
      const Variant& variant = kVariants[v];
      const std::string wait = variant.how == How::pthread        ? "pthread_clockjoin_np()"
                               : variant.how == How::clone_thread ? "a futex wait on CLONE_CHILD_CLEARTID"
                                                                  : "waitpid()";
      report.add(variant.label, {{"call", variant.call}, {"flags", variant.flag_names}}, measured[v],
                 {.what = fmt::format("{} with {}: a child that does nothing and ends; the parent waits with {}",
                                      variant.call, variant.flag_names, wait),
                  .headline = variant.how == How::fork || variant.how == How::pthread});
    }
  }

  void table_and_facts(oslab::Report& report) const {
    oslab::Table table{
        "Shared with the parent? (observed; '!' marks a difference from Linux semantics)", {"", ""}, {}, "", 2};
    for (const Variant& variant : kVariants) table.header.push_back(variant.label);
    int differences = 0;
    for (int resource = 0; resource < kResources; ++resource) {
      std::vector<std::string> row{kNotesRows[resource], kResourceLabels[resource]};
      for (size_t v = 0; v < kVariants.size(); ++v) {
        const bool shared = seen[v].shared[resource];
        const bool expected = kVariants[v].shared[resource];
        differences += shared != expected;
        row.push_back(std::string(shared ? "yes" : "no") + (shared != expected ? " !" : ""));
        report.fact(fmt::format("{}/{}", kVariants[v].id, kResourceIds[resource]),
                    fmt::format("{}: {} is {}shared with the parent", kVariants[v].label, kResourceNouns[resource],
                                expected ? "" : "not "),
                    shared == expected, seen[v].evidence[resource]);
      }
      table.rows.push_back(row);
    }
    std::vector<std::string> cost_row{"cost", "create + end + reap (median)"};
    for (const Variant& variant : kVariants)
      cost_row.push_back(oslab::format_duration(report.get(variant.label).summary.p50));
    table.rows.push_back(cost_row);
    table.footnote =
        (differences == 0 ? std::string("Every cell matches Linux semantics.")
                          : fmt::format("{} cell(s) differ from Linux semantics: see the verdicts.", differences)) +
        " Even fork shares the open files: the child's fd table is a copy, but each copied fd refers to the "
        "parent's open file description, with its offset and status flags.";
    report.table(table);
  }
};

}  // namespace

int main(int argc, char** argv) {
  oslab::Lab lab({
      .name = "clone-flags",
      .purpose = "what fork, vfork, each clone flag, a thread and pthread_create share, by experiment",
      .claim = "The notes' table: a thread shares memory, file descriptors, the filesystem context and\n"
               "signal handling with its process; a forked process shares none of them. On Linux both\n"
               "are clone(): each CLONE_* flag shares one of these, and a thread is the set of all.",
      .explain = "For each variant the parent sets a known state (a variable = 0, two open fds, cwd /,\n"
                 "umask 022, SIGUSR1 at SIG_DFL), creates the child, and waits until it has ended. The\n"
                 "child sets the variable to 42, opens /dev/null, closes one of the parent's fds, lseek()s\n"
                 "the other to offset 1234, chdir()s to /dev, sets umask 077 and installs a SIGUSR1\n"
                 "handler. The parent then looks: whatever changed for it too is shared.\n\n"
                 "CLONE_VM shares the address space, CLONE_FILES the fd table, CLONE_FS the cwd, root and\n"
                 "umask, CLONE_SIGHAND the handler table (only with CLONE_VM: a handler is an address).\n"
                 "vfork() is CLONE_VM|CLONE_VFORK. Without CLONE_FILES the child gets a copy of the fd\n"
                 "table, so a file it opens or closes is its own business; but a copied fd still refers to\n"
                 "the same open file description (the kernel's struct file) as the parent's, so the file\n"
                 "offset and status flags are shared by every variant, fork included: the notes' 'a\n"
                 "process shares none of them' is not quite right. A CLONE_THREAD child is waited for\n"
                 "through CLONE_CHILD_CLEARTID and a futex, as pthread_join does, since waitpid cannot see\n"
                 "it.\n\n"
                 "The cost row is create + end + reap of a child that does nothing, median over samples\n"
                 "taken in rotation, a block at a time, from this lab's own process.\n\n"
                 "Questions: why must CLONE_SIGHAND come with CLONE_VM? What does a thread share that is\n"
                 "not in this table (pid, credentials, timers)? Why is vfork's memory row 'yes'? Why does\n"
                 "an lseek() in a forked child move the parent's offset, though its close() does not\n"
                 "close the parent's fd?",
  });
  lab.sampling({.samples = {.full = 100, .quick = 20}, .budget_s = {.full = 0.3, .quick = 0.05}, .warmup = 2});
  std::optional<Experiment> experiment;
  auto prepare = [&](oslab::Report&) {
    if (oslab::kThreadSanitizer)
      throw oslab::SkipError(
          "built with ThreadSanitizer, whose interceptors crash in a raw clone(CLONE_VM) child; use the release "
          "build");
    experiment.emplace(Experiment{lab, {}});
  };
  return lab.run(
      argc, argv,
      [&](oslab::Report& report) {
        experiment->observe_variants();
        experiment->measure(report);
        experiment->table_and_facts(report);
        report.show_results_table = false;
        report.show_holding_verdicts = false;  // the table shows them; --json lists every one
      },
      prepare);
}
