// Child processes that are always reaped and waits that always have a deadline.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "oslab/cleanup.hpp"

namespace oslab {

// How a child ended, decoded from a wait status.
struct ExitStatus {
  bool exited = false;  // true: exit code in `code`; false: killed by `signal`
  int code = 0;
  int signal = 0;
  bool core_dumped = false;

  static ExitStatus decode(int wait_status) noexcept;
  bool success() const noexcept { return exited && code == 0; }
  std::string describe() const;  // "exited with 0", "killed by SIGKILL"
};

// Waits for child `pid` (any kind, __WALL) for at most `timeout`.
// Returns the status once reaped, or nullopt if it is still running at the deadline.
std::optional<ExitStatus> wait_for(pid_t pid, std::chrono::milliseconds timeout);

// SIGKILLs the child's process group (and the child itself) and reaps it.
ExitStatus kill_and_reap(pid_t pid);

// Waits with a deadline; on timeout kills the child's group, reaps it, and throws.
ExitStatus wait_or_kill(pid_t pid, std::chrono::milliseconds timeout, std::string_view what);

// The one wait for a child that must succeed: waits with a deadline (killing it at the
// deadline) and throws, naming `what`, unless it exited with 0.
void wait_success(pid_t pid, std::chrono::milliseconds timeout, std::string_view what);

// A forked child that leads its own process group, dies when this process dies (not merely
// the thread that forked it), and is killed and reaped if still running when this object dies.
class Child {
 public:
  // Flushes stdio, forks, and runs `body` in the child, which _exits with its result (an
  // exception ends it with 1 and a message). The body runs after fork: only
  // async-signal-safe calls there when the parent has threads. In the child, SIGRTMAX is the
  // parent-death signal until the body changes it.
  static Child fork(const std::function<int()>& body);
  Child() = default;  // no child yet

  Child(Child&& other) noexcept;
  Child& operator=(Child&& other) noexcept;
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child();

  pid_t pid() const noexcept { return pid_; }
  // Waits at most `timeout`; on timeout kills the group and throws std::runtime_error.
  ExitStatus wait(std::chrono::milliseconds timeout);
  // The same, and throws unless the child exited with 0.
  void wait_success(std::chrono::milliseconds timeout, std::string_view what);
  void kill() noexcept;
  // Forgets the child without killing it (it has been reaped elsewhere); returns its pid.
  pid_t release() noexcept { return std::exchange(pid_, -1); }

 private:
  explicit Child(pid_t pid) : pid_(pid) {}
  pid_t pid_ = -1;
};

// The path of a helper program installed beside the labs: the labs are in <root>/bin, the
// helpers in <root>/libexec/oslab (or <root>/libexec in a build tree), and <root> is found
// through /proc/self/exe, never through the working directory. A missing helper is a broken
// installation: throws std::runtime_error (exit 1), not a skip.
std::string helper_path(std::string_view name);

// Flushes stdout and stderr so that a child does not print the parent's buffer again.
void flush_stdio() noexcept;

}  // namespace oslab
