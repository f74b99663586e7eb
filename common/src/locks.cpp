#include "oslab/locks.hpp"

#include <time.h>

#include <cerrno>

#include "oslab/error.hpp"

namespace oslab {

const char* to_string(LockOutcome outcome) {
  switch (outcome) {
    case LockOutcome::acquired: return "acquired";
    case LockOutcome::owner_died: return "EOWNERDEAD";
    case LockOutcome::timed_out: return "ETIMEDOUT";
    case LockOutcome::not_recoverable: return "ENOTRECOVERABLE";
  }
  return "?";
}

SharedMutex::SharedMutex(Kind kind) : kind_(kind) {
  pthread_mutexattr_t attr;
  check_errnum("pthread_mutexattr_init", ::pthread_mutexattr_init(&attr));
  check_errnum("pthread_mutexattr_setpshared", ::pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED));
  if (kind == Kind::robust)
    check_errnum("pthread_mutexattr_setrobust", ::pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST));
  const int rc = ::pthread_mutex_init(&mutex_, &attr);
  ::pthread_mutexattr_destroy(&attr);
  check_errnum("pthread_mutex_init", rc);
}

SharedMutex::~SharedMutex() {
  ::pthread_mutex_destroy(&mutex_);  // EBUSY for a mutex left locked by a dead owner: nothing to free
}

LockOutcome SharedMutex::lock_for(std::chrono::nanoseconds timeout) {
  timespec deadline{};
  ::clock_gettime(CLOCK_MONOTONIC, &deadline);
  const long long total = static_cast<long long>(deadline.tv_nsec) + timeout.count() % 1'000'000'000;
  deadline.tv_sec += static_cast<time_t>(timeout.count() / 1'000'000'000 + total / 1'000'000'000);
  deadline.tv_nsec = static_cast<long>(total % 1'000'000'000);
  const int rc = ::pthread_mutex_clocklock(&mutex_, CLOCK_MONOTONIC, &deadline);
  switch (rc) {
    case 0: return LockOutcome::acquired;
    case EOWNERDEAD: return LockOutcome::owner_died;
    case ETIMEDOUT: return LockOutcome::timed_out;
    case ENOTRECOVERABLE: return LockOutcome::not_recoverable;
    default: throw SysError("pthread_mutex_clocklock", rc);
  }
}

void SharedMutex::unlock() {
  check_errnum("pthread_mutex_unlock", ::pthread_mutex_unlock(&mutex_));
}

void SharedMutex::make_consistent() {
  check_errnum("pthread_mutex_consistent", ::pthread_mutex_consistent(&mutex_));
}

}  // namespace oslab
