// Child processes that are always reaped, waits that always have a deadline, and the
// clean-up that runs on SIGINT, SIGTERM and the lab's watchdog.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>

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

// A forked child that leads its own process group, dies with its parent
// (PR_SET_PDEATHSIG), and is killed and reaped if still running when this object dies.
class Child {
 public:
  // Flushes stdio, forks, and runs `body` in the child, which _exits with its result.
  // The body runs after fork: only async-signal-safe calls there when the parent has threads.
  static Child fork(const std::function<int()>& body);

  Child(Child&& other) noexcept;
  Child& operator=(Child&& other) noexcept;
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child();

  pid_t pid() const noexcept { return pid_; }
  // Waits at most `timeout`; on timeout kills the group and throws std::runtime_error.
  ExitStatus wait(std::chrono::milliseconds timeout);
  void kill() noexcept;

 private:
  explicit Child(pid_t pid) : pid_(pid) {}
  pid_t pid_ = -1;
};

// The path of a helper program installed beside the labs: the labs are in <root>/bin, the
// helpers in <root>/libexec, and <root> is found through /proc/self/exe, never through the
// working directory. Throws SkipError if the helper is not there.
std::string helper_path(std::string_view name);

// Flushes stdout and stderr so that a child does not print the parent's buffer again.
void flush_stdio() noexcept;

namespace cleanup {

// Installs handlers: SIGINT and SIGTERM clean up and end the process with that signal;
// after `watchdog` (0 = none) SIGALRM cleans up and exits 1 with a message.
void install(std::chrono::seconds watchdog);

// Children (their process groups) to SIGKILL on clean-up. Async-signal-safe, bounded table.
void track_child(pid_t pid) noexcept;
void untrack_child(pid_t pid) noexcept;

enum class Kind { posix_shm, posix_mq, posix_sem, sysv_shm, sysv_sem, sysv_msg };
// IPC objects to remove on clean-up; `name` for POSIX objects, `id` for System V ones.
void track_object(Kind kind, const char* name, int id = -1) noexcept;
void untrack_object(Kind kind, const char* name, int id = -1) noexcept;

// Kills tracked children and removes tracked objects. Async-signal-safe.
void run_now() noexcept;

}  // namespace cleanup
}  // namespace oslab
