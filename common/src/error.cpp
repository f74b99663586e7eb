#include "oslab/error.hpp"

#include <unistd.h>

#include <array>
#include <cstring>

#include <fmt/format.h>

namespace oslab {
namespace {

struct ErrnoEntry {
  int value;
  const char* name;
};

#define OSLAB_E(x) \
  ErrnoEntry {     \
    x, #x          \
  }
constexpr std::array kErrnoNames{
    OSLAB_E(EPERM),         OSLAB_E(ENOENT),          OSLAB_E(ESRCH),        OSLAB_E(EINTR),
    OSLAB_E(EIO),           OSLAB_E(ENXIO),           OSLAB_E(E2BIG),        OSLAB_E(ENOEXEC),
    OSLAB_E(EBADF),         OSLAB_E(ECHILD),          OSLAB_E(EAGAIN),       OSLAB_E(ENOMEM),
    OSLAB_E(EACCES),        OSLAB_E(EFAULT),          OSLAB_E(EBUSY),        OSLAB_E(EEXIST),
    OSLAB_E(EXDEV),         OSLAB_E(ENODEV),          OSLAB_E(ENOTDIR),      OSLAB_E(EISDIR),
    OSLAB_E(EINVAL),        OSLAB_E(ENFILE),          OSLAB_E(EMFILE),       OSLAB_E(ENOTTY),
    OSLAB_E(EFBIG),         OSLAB_E(ENOSPC),          OSLAB_E(ESPIPE),       OSLAB_E(EROFS),
    OSLAB_E(EMLINK),        OSLAB_E(EPIPE),           OSLAB_E(EDOM),         OSLAB_E(ERANGE),
    OSLAB_E(EDEADLK),       OSLAB_E(ENAMETOOLONG),    OSLAB_E(ENOLCK),       OSLAB_E(ENOSYS),
    OSLAB_E(ENOTEMPTY),     OSLAB_E(ELOOP),           OSLAB_E(ENOMSG),       OSLAB_E(EIDRM),
    OSLAB_E(ENOSTR),        OSLAB_E(ENODATA),         OSLAB_E(ETIME),        OSLAB_E(EOVERFLOW),
    OSLAB_E(EILSEQ),        OSLAB_E(ENOTSOCK),        OSLAB_E(EMSGSIZE),     OSLAB_E(EPROTOTYPE),
    OSLAB_E(ENOPROTOOPT),   OSLAB_E(EPROTONOSUPPORT), OSLAB_E(EOPNOTSUPP),   OSLAB_E(EADDRINUSE),
    OSLAB_E(EADDRNOTAVAIL), OSLAB_E(ENETUNREACH),     OSLAB_E(ECONNABORTED), OSLAB_E(ECONNRESET),
    OSLAB_E(ENOBUFS),       OSLAB_E(EISCONN),         OSLAB_E(ENOTCONN),     OSLAB_E(ETIMEDOUT),
    OSLAB_E(ECONNREFUSED),  OSLAB_E(EALREADY),        OSLAB_E(EINPROGRESS),  OSLAB_E(ECANCELED),
    OSLAB_E(EOWNERDEAD),    OSLAB_E(ENOTRECOVERABLE),
};
#undef OSLAB_E

char g_program_name[64] = "oslab";

size_t cstr_len(const char* s) noexcept {
  size_t n = 0;
  while (s[n] != '\0') ++n;
  return n;
}

// Appends src to dst (capacity cap, always NUL-terminated); async-signal-safe.
void append(char* dst, size_t cap, const char* src) noexcept {
  size_t used = cstr_len(dst);
  for (size_t i = 0; src[i] != '\0' && used + 1 < cap; ++i) dst[used++] = src[i];
  dst[used] = '\0';
}

}  // namespace

const char* errno_name(int errnum, char (&scratch)[16]) noexcept {
  for (const auto& entry : kErrnoNames)
    if (entry.value == errnum) return entry.name;
  // "E" followed by the decimal number, without snprintf (not async-signal-safe).
  char digits[12];
  int n = 0;
  unsigned value = errnum < 0 ? static_cast<unsigned>(-errnum) : static_cast<unsigned>(errnum);
  do {
    digits[n++] = static_cast<char>('0' + value % 10);
    value /= 10;
  } while (value != 0 && n < 11);
  int pos = 0;
  scratch[pos++] = 'E';
  if (errnum < 0) scratch[pos++] = '-';
  while (n > 0 && pos < 15) scratch[pos++] = digits[--n];
  scratch[pos] = '\0';
  return scratch;
}

std::string errno_name(int errnum) {
  char scratch[16];
  return errno_name(errnum, scratch);
}

std::string describe_errno(int errnum) {
  return fmt::format("{} ({})", errno_name(errnum), std::strerror(errnum));
}

SysError::SysError(std::string_view call, int errnum)
    : std::runtime_error(fmt::format("{}: {}", call, describe_errno(errnum))), errnum_(errnum) {}

void* check_errno_ptr(std::string_view call, void* ptr, void* failure_value) {
  if (ptr == failure_value) throw SysError(call, errno);
  return ptr;
}

void set_program_name(std::string_view name) {
  size_t n = std::min(name.size(), sizeof(g_program_name) - 1);
  std::memcpy(g_program_name, name.data(), n);
  g_program_name[n] = '\0';
}

const char* program_name() noexcept {
  return g_program_name;
}

void write_stderr(const char* text) noexcept {
  size_t left = cstr_len(text);
  while (left > 0) {
    ssize_t n = ::write(STDERR_FILENO, text, left);
    if (n <= 0) {
      if (n < 0 && errno == EINTR) continue;
      return;
    }
    text += n;
    left -= static_cast<size_t>(n);
  }
}

void child_fail(const char* call, int errnum, int exit_code) noexcept {
  char line[256] = "";
  char scratch[16];
  append(line, sizeof line, g_program_name);
  append(line, sizeof line, ": child: ");
  append(line, sizeof line, call);
  append(line, sizeof line, ": ");
  append(line, sizeof line, errno_name(errnum, scratch));
  append(line, sizeof line, "\n");
  write_stderr(line);
  _exit(exit_code);
}

}  // namespace oslab
