#include "oslab/futex.hpp"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>

#include "oslab/error.hpp"

namespace oslab {
namespace {

int op(int base, FutexScope scope) {
  return scope == FutexScope::process_private ? (base | FUTEX_PRIVATE_FLAG) : base;
}

static_assert(sizeof(std::atomic<uint32_t>) == sizeof(uint32_t), "a futex word is 32 bits");

}  // namespace

bool futex_wait(std::atomic<uint32_t>* word, uint32_t expected, std::chrono::nanoseconds timeout, FutexScope scope) {
  timespec relative{};
  timespec* limit = nullptr;
  if (timeout.count() >= 0) {
    relative.tv_sec = static_cast<time_t>(timeout.count() / 1'000'000'000);
    relative.tv_nsec = static_cast<long>(timeout.count() % 1'000'000'000);
    limit = &relative;
  }
  const long rc =
      ::syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), op(FUTEX_WAIT, scope), expected, limit, nullptr, 0);
  if (rc == 0) return true;
  if (errno == ETIMEDOUT) return false;
  if (errno == EAGAIN || errno == EINTR) return true;
  throw SysError("futex(FUTEX_WAIT)", errno);
}

int futex_wake(std::atomic<uint32_t>* word, int count, FutexScope scope) {
  const long rc =
      ::syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), op(FUTEX_WAKE, scope), count, nullptr, nullptr, 0);
  return static_cast<int>(check_errno("futex(FUTEX_WAKE)", rc));
}

}  // namespace oslab
