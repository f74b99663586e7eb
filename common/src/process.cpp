#include "oslab/process.hpp"

#include <fcntl.h>
#include <mqueue.h>
#include <poll.h>
#include <semaphore.h>
#include <signal.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/msg.h>
#include <sys/prctl.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
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

std::string helper_path(std::string_view name) {
  char exe[4096];
  ssize_t length = check_errno("readlink /proc/self/exe", ::readlink("/proc/self/exe", exe, sizeof exe - 1));
  std::string path(exe, static_cast<size_t>(length));
  path.erase(path.rfind('/'));      // .../bin
  path.erase(path.rfind('/') + 1);  // .../
  path += "libexec/";
  path += name;
  if (::access(path.c_str(), X_OK) != 0)
    throw SkipError(
        fmt::format("helper {} is missing ({}); rebuild with scripts/oslab build", path, describe_errno(errno)));
  return path;
}

void flush_stdio() noexcept {
  std::fflush(stdout);
  std::fflush(stderr);
}

Child Child::fork(const std::function<int()>& body) {
  const pid_t parent = ::getpid();
  flush_stdio();
  pid_t pid = check_errno("fork", ::fork());
  if (pid == 0) {
    ::setpgid(0, 0);
    // Die with the parent, and close the race where it died before prctl ran.
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL) == -1) child_fail("prctl(PR_SET_PDEATHSIG)", errno);
    if (::getppid() != parent) _exit(1);
    // An exception must never climb into the copy of the parent's stack.
    try {
      _exit(body());
    } catch (const std::exception& e) {
      write_stderr(program_name());
      write_stderr(": child: ");
      write_stderr(e.what());
      write_stderr("\n");
    } catch (...) {
      write_stderr("child: unknown exception\n");
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

void Child::kill() noexcept {
  if (pid_ <= 0) return;
  try {
    kill_and_reap(pid_);
  } catch (...) {
  }
  pid_ = -1;
}

namespace cleanup {
namespace {

constexpr int kMaxChildren = 256;
constexpr int kMaxObjects = 64;
constexpr size_t kMaxName = 64;

std::atomic<pid_t> g_children[kMaxChildren];

struct Object {
  std::atomic<bool> used{false};
  Kind kind{};
  int id = -1;
  char name[kMaxName] = {};
};
Object g_objects[kMaxObjects];

bool same_object(const Object& object, Kind kind, const char* name, int id) {
  if (object.kind != kind) return false;
  if (name != nullptr) return std::strncmp(object.name, name, kMaxName) == 0;
  return object.id == id;
}

// Composed when the watchdog is set, so that the handler only has to write it.
char g_watchdog_message[192] = "";

void on_fatal_signal(int signo) {
  const int saved_errno = errno;
  run_now();
  if (signo == SIGALRM) {
    write_stderr(g_watchdog_message);
    _exit(1);
  }
  errno = saved_errno;
  ::signal(signo, SIG_DFL);
  ::raise(signo);
}

}  // namespace

void install(std::chrono::seconds watchdog) {
  struct sigaction action {};
  action.sa_handler = on_fatal_signal;
  sigemptyset(&action.sa_mask);
  sigaddset(&action.sa_mask, SIGINT);
  sigaddset(&action.sa_mask, SIGTERM);
  sigaddset(&action.sa_mask, SIGALRM);
  for (int signo : {SIGINT, SIGTERM, SIGALRM}) check_errno("sigaction", ::sigaction(signo, &action, nullptr));
  fmt::format_to_n(g_watchdog_message, sizeof g_watchdog_message - 1,
                   "{}: watchdog: the run took longer than {} s; children killed, objects removed\n", program_name(),
                   watchdog.count());
  ::alarm(static_cast<unsigned>(watchdog.count()));
}

void track_child(pid_t pid) noexcept {
  for (auto& slot : g_children) {
    pid_t empty = 0;
    if (slot.compare_exchange_strong(empty, pid)) return;
  }
}

void untrack_child(pid_t pid) noexcept {
  for (auto& slot : g_children) {
    pid_t expected = pid;
    if (slot.compare_exchange_strong(expected, 0)) return;
  }
}

void track_object(Kind kind, const char* name, int id) noexcept {
  for (auto& object : g_objects) {
    if (object.used.load()) continue;
    object.kind = kind;
    object.id = id;
    object.name[0] = '\0';
    if (name != nullptr) std::strncat(object.name, name, kMaxName - 1);
    object.used.store(true);
    return;
  }
}

void untrack_object(Kind kind, const char* name, int id) noexcept {
  for (auto& object : g_objects)
    if (object.used.load() && same_object(object, kind, name, id)) object.used.store(false);
}

void run_now() noexcept {
  for (auto& slot : g_children) {
    pid_t pid = slot.exchange(0);
    if (pid > 0) {
      ::kill(-pid, SIGKILL);
      ::kill(pid, SIGKILL);
    }
  }
  for (auto& object : g_objects) {
    if (!object.used.exchange(false)) continue;
    switch (object.kind) {
      case Kind::posix_shm: ::shm_unlink(object.name); break;
      case Kind::posix_mq: ::mq_unlink(object.name); break;
      case Kind::posix_sem: ::sem_unlink(object.name); break;
      case Kind::sysv_shm: ::shmctl(object.id, IPC_RMID, nullptr); break;
      case Kind::sysv_sem: ::semctl(object.id, 0, IPC_RMID); break;
      case Kind::sysv_msg: ::msgctl(object.id, IPC_RMID, nullptr); break;
    }
  }
}

}  // namespace cleanup
}  // namespace oslab
