#include "oslab/process.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <stdexcept>
#include <thread>

#include <fmt/format.h>

#include "oslab/error.hpp"
#include "oslab/handles.hpp"

namespace oslab {

ExitStatus ExitStatus::decode(int wait_status) noexcept {
  ExitStatus status;
  if (WIFEXITED(wait_status)) {
    status.exited = true;
    status.code = WEXITSTATUS(wait_status);
  } else if (WIFSIGNALED(wait_status)) {
    status.signal = WTERMSIG(wait_status);
    status.core_dumped = WCOREDUMP(wait_status);
  }
  return status;
}

std::string ExitStatus::describe() const {
  if (exited) return fmt::format("exited with {}", code);
  const char* name = sigabbrev_np(signal);
  return fmt::format("killed by SIG{}{}", name ? name : std::to_string(signal).c_str(),
                     core_dumped ? " (core dumped)" : "");
}

namespace {

std::optional<ExitStatus> try_reap(pid_t pid) {
  int wait_status = 0;
  pid_t rc;
  do rc = ::waitpid(pid, &wait_status, WNOHANG | __WALL);
  while (rc == -1 && errno == EINTR);
  check_errno("waitpid", rc);
  if (rc == 0) return std::nullopt;
  return ExitStatus::decode(wait_status);
}

}  // namespace

std::optional<ExitStatus> wait_for(pid_t pid, std::chrono::milliseconds timeout) {
  using clock = std::chrono::steady_clock;
  const auto deadline = clock::now() + timeout;
  if (auto status = try_reap(pid)) return status;

  // A pidfd becomes readable when the child exits: no polling loop where the kernel has it.
  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
    if (pidfd.valid()) {
      pollfd pfd{pidfd.get(), POLLIN, 0};
      int rc = ::poll(&pfd, 1, static_cast<int>(std::max<long>(left.count(), 0)));
      if (rc == -1 && errno != EINTR) throw SysError("poll(pidfd)", errno);
    } else {
      std::this_thread::sleep_for(std::min(left, std::chrono::milliseconds(1)));
    }
    if (auto status = try_reap(pid)) return status;
    if (clock::now() >= deadline) return std::nullopt;
  }
}

ExitStatus kill_and_reap(pid_t pid) {
  ::kill(-pid, SIGKILL);  // its group, when it leads one
  ::kill(pid, SIGKILL);
  int wait_status = 0;
  pid_t rc;
  do rc = ::waitpid(pid, &wait_status, __WALL);
  while (rc == -1 && errno == EINTR);
  check_errno("waitpid", rc);
  cleanup::untrack_child(pid);
  return ExitStatus::decode(wait_status);
}

ExitStatus wait_or_kill(pid_t pid, std::chrono::milliseconds timeout, std::string_view what) {
  if (auto status = wait_for(pid, timeout)) {
    cleanup::untrack_child(pid);
    return *status;
  }
  kill_and_reap(pid);
  throw std::runtime_error(
      fmt::format("{} (pid {}) did not finish within {} ms; killed it", what, pid, timeout.count()));
}

void wait_success(pid_t pid, std::chrono::milliseconds timeout, std::string_view what) {
  const ExitStatus status = wait_or_kill(pid, timeout, what);
  if (!status.success()) throw std::runtime_error(fmt::format("{} {}", what, status.describe()));
}

std::string helper_path(std::string_view name) {
  char exe[4096];
  ssize_t length = check_errno("readlink /proc/self/exe", ::readlink("/proc/self/exe", exe, sizeof exe - 1));
  std::string root(exe, static_cast<size_t>(length));
  root.erase(root.rfind('/'));      // .../bin
  root.erase(root.rfind('/') + 1);  // .../
  for (const char* dir : {"libexec/oslab/", "libexec/"}) {
    std::string path = root + dir + std::string(name);
    if (::access(path.c_str(), X_OK) == 0) return path;
  }
  throw std::runtime_error(
      fmt::format("helper {} is missing from {}libexec/oslab and {}libexec: the installation is "
                  "broken; rebuild with scripts/oslab build",
                  name, root, root));
}

void flush_stdio() noexcept {
  (void)std::fflush(stdout);
  (void)std::fflush(stderr);
}

namespace {

// The child's view of the process that forked it.
pid_t g_forking_process = 0;

// PR_SET_PDEATHSIG fires when the *thread* that forked exits, and the kernel then hands the
// child to another thread of the same process. Only a new parent outside that process means
// the process is gone.
void on_parent_death(int) {
  if (::getppid() == g_forking_process) return;
  ::kill(0, SIGKILL);  // our group: whatever this child started goes with it
  _exit(137);
}

}  // namespace

Child Child::fork(const std::function<int()>& body) {
  const pid_t parent = ::getpid();
  flush_stdio();
  pid_t pid = check_errno("fork", ::fork());
  if (pid == 0) {
    ::setpgid(0, 0);
    g_forking_process = parent;
    struct sigaction action {};
    action.sa_handler = on_parent_death;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    if (::sigaction(SIGRTMAX, &action, nullptr) == -1) child_fail("sigaction(SIGRTMAX)", errno);
    sigset_t unblock;
    sigemptyset(&unblock);
    sigaddset(&unblock, SIGRTMAX);
    ::sigprocmask(SIG_UNBLOCK, &unblock, nullptr);
    if (::prctl(PR_SET_PDEATHSIG, SIGRTMAX) == -1) child_fail("prctl(PR_SET_PDEATHSIG)", errno);
    if (::getppid() != parent) _exit(1);  // it died before prctl ran
    // An exception must never climb into the copy of the parent's stack.
    try {
      _exit(body());
    } catch (const std::exception& e) {
      write_stderr(program_name());
      write_stderr(": child: ");
      write_stderr(e.what());
      write_stderr("\n");
    } catch (...) {
      write_stderr(program_name());
      write_stderr(": child: unknown exception\n");
    }
    _exit(1);
  }
  ::setpgid(pid, pid);  // both sides set it: no window in which the group is not there
  cleanup::track_child(pid);
  return Child(pid);
}

Child::Child(Child&& other) noexcept : pid_(std::exchange(other.pid_, -1)) {}

Child& Child::operator=(Child&& other) noexcept {
  if (this != &other) {
    kill();
    pid_ = std::exchange(other.pid_, -1);
  }
  return *this;
}

Child::~Child() {
  kill();
}

ExitStatus Child::wait(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) throw std::logic_error("Child::wait: no child");
  pid_t pid = std::exchange(pid_, -1);
  return wait_or_kill(pid, timeout, "child");
}

void Child::wait_success(std::chrono::milliseconds timeout, std::string_view what) {
  if (pid_ <= 0) throw std::logic_error("Child::wait_success: no child");
  oslab::wait_success(std::exchange(pid_, -1), timeout, what);
}

void Child::kill() noexcept {
  if (pid_ <= 0) return;
  try {
    kill_and_reap(pid_);
  } catch (...) {
  }
  pid_ = -1;
}

}  // namespace oslab
