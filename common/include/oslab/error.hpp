// Error handling for system calls, one helper per error convention:
//   check_errno(call, rc)   calls that return -1 and set errno (open, fork, shmget, ...)
//   check_errnum(call, rc)  calls that return an error number (pthreads, posix_spawn)
//   check_neg(call, rc)     calls that return -errno (liburing)
// A failure throws SysError whose message reads "shmget: EACCES (Permission denied)";
// the lab's main prefixes the program name. After fork or vfork, the child must not
// throw: it uses child_fail(), which writes one line with write(2) and calls _exit.
#pragma once

#include <cerrno>
#include <stdexcept>
#include <string>
#include <string_view>

namespace oslab {

// The symbolic name of an errno value ("EACCES"), or "E<number>" when unknown.
// Async-signal-safe: returns a pointer to static storage or to `scratch`.
const char* errno_name(int errnum, char (&scratch)[16]) noexcept;
std::string errno_name(int errnum);

// "EACCES (Permission denied)"
std::string describe_errno(int errnum);

class SysError : public std::runtime_error {
 public:
  SysError(std::string_view call, int errnum);
  int errnum() const noexcept { return errnum_; }

 private:
  int errnum_;
};

// Bad command-line input: one line on stderr, exit code 2.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The machine lacks a feature the whole lab needs: one line on stderr, exit code 77.
class SkipError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

template <typename T>
T check_errno(std::string_view call, T rc) {
  if (rc == static_cast<T>(-1)) throw SysError(call, errno);
  return rc;
}

// For calls that return a pointer and MAP_FAILED/nullptr with errno.
void* check_errno_ptr(std::string_view call, void* ptr, void* failure_value);

inline int check_errnum(std::string_view call, int rc) {
  if (rc != 0) throw SysError(call, rc);
  return rc;
}

template <typename T>
T check_neg(std::string_view call, T rc) {
  if (rc < 0) throw SysError(call, static_cast<int>(-rc));
  return rc;
}

// Child side, after fork/vfork/clone: async-signal-safe, never returns.
// Writes "<program>: child: <call>: <ERRNAME>\n" to stderr and calls _exit(exit_code).
[[noreturn]] void child_fail(const char* call, int errnum, int exit_code = 127) noexcept;

// Child-side checks: same conventions as above, but end the child instead of throwing.
inline long child_check_errno(const char* call, long rc) noexcept {
  if (rc == -1) child_fail(call, errno);
  return rc;
}
inline int child_check_errnum(const char* call, int rc) noexcept {
  if (rc != 0) child_fail(call, rc);
  return rc;
}

// The program name used as the prefix of every message ("oslab-fork").
void set_program_name(std::string_view name);
const char* program_name() noexcept;

// Writes a string with write(2); async-signal-safe.
void write_stderr(const char* text) noexcept;

}  // namespace oslab
