// A mutex that processes share (PTHREAD_PROCESS_SHARED, in shared memory), robust or not, and
// a lock with a deadline: what happens when a process dies holding a lock is something a lab
// observes with a timeout, never with a hang.
//
//   oslab::Shared<oslab::SharedMutex> mutex(oslab::SharedMutex::Kind::robust);
//   switch (mutex->lock_for(200ms)) { case LockOutcome::owner_died: mutex->make_consistent(); ... }
#pragma once

#include <pthread.h>

#include <chrono>

namespace oslab {

enum class LockOutcome {
  acquired,         // 0
  owner_died,       // EOWNERDEAD: acquired, but the owner died holding it (robust only)
  timed_out,        // ETIMEDOUT: still held by someone at the deadline
  not_recoverable,  // ENOTRECOVERABLE: a robust mutex whose dead owner's state was never made consistent
};
const char* to_string(LockOutcome outcome);  // "acquired", "EOWNERDEAD", "ETIMEDOUT", "ENOTRECOVERABLE"

// Construct it in MAP_SHARED memory (Shared<SharedMutex>) before fork.
class SharedMutex {
 public:
  enum class Kind { plain, robust };
  explicit SharedMutex(Kind kind = Kind::plain);
  ~SharedMutex();
  SharedMutex(const SharedMutex&) = delete;
  SharedMutex& operator=(const SharedMutex&) = delete;

  // pthread_mutex_clocklock on CLOCK_MONOTONIC: waits at most `timeout`. Other errors throw SysError.
  LockOutcome lock_for(std::chrono::nanoseconds timeout);
  void unlock();
  // pthread_mutex_consistent: after owner_died, marks the protected state repaired.
  void make_consistent();
  Kind kind() const noexcept { return kind_; }
  pthread_mutex_t* native() noexcept { return &mutex_; }

 private:
  pthread_mutex_t mutex_;
  Kind kind_;
};

}  // namespace oslab
