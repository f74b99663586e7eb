// A process-shared mutex left locked by a dead process: a plain one times out, a robust one
// reports EOWNERDEAD and recovers, or becomes unusable if nobody repairs it.
#include "oslab/locks.hpp"

#include <unistd.h>

#include <gtest/gtest.h>

#include "oslab/process.hpp"
#include "oslab/shared.hpp"

namespace oslab {
namespace {

using namespace std::chrono_literals;

// A child locks the mutex and exits without unlocking it.
void die_holding(SharedMutex& mutex) {
  Child child = Child::fork([&] { return mutex.lock_for(1s) == LockOutcome::acquired ? 0 : 1; });
  child.wait_success(10s, "the locking child");
}

TEST(SharedMutex, LocksAndUnlocks) {
  Shared<SharedMutex> mutex(SharedMutex::Kind::plain);
  EXPECT_EQ(mutex->lock_for(1s), LockOutcome::acquired);
  mutex->unlock();
  EXPECT_EQ(mutex->lock_for(0ns), LockOutcome::acquired);
  mutex->unlock();
}

TEST(SharedMutex, APlainMutexStaysLockedWhenItsOwnerDies) {
  Shared<SharedMutex> mutex(SharedMutex::Kind::plain);
  die_holding(*mutex);
  EXPECT_EQ(mutex->lock_for(50ms), LockOutcome::timed_out);
}

TEST(SharedMutex, ARobustMutexTellsTheNextOwner) {
  Shared<SharedMutex> mutex(SharedMutex::Kind::robust);
  die_holding(*mutex);
  EXPECT_EQ(mutex->lock_for(1s), LockOutcome::owner_died);
  mutex->make_consistent();
  mutex->unlock();
  EXPECT_EQ(mutex->lock_for(1s), LockOutcome::acquired);
  mutex->unlock();
}

TEST(SharedMutex, ARobustMutexNobodyRepairedIsUnusable) {
  Shared<SharedMutex> mutex(SharedMutex::Kind::robust);
  die_holding(*mutex);
  EXPECT_EQ(mutex->lock_for(1s), LockOutcome::owner_died);
  mutex->unlock();  // without make_consistent()
  EXPECT_EQ(mutex->lock_for(1s), LockOutcome::not_recoverable);
  EXPECT_STREQ(to_string(LockOutcome::not_recoverable), "ENOTRECOVERABLE");
}

}  // namespace
}  // namespace oslab
