#include "oslab/error.hpp"

#include <unistd.h>

#include <cstring>

#include <fmt/format.h>

namespace oslab {
namespace {

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
  // glibc's own table (a lookup in static storage: safe in a signal handler or after fork).
  if (const char* name = ::strerrorname_np(errnum)) return name;
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
