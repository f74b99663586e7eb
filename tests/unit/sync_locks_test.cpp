// The hand-written locks of labs/sync/locks.hpp: mutual exclusion under stress, between
// threads and between processes, and the futex mutex's three states. The counter each test
// increments is a plain variable: under ThreadSanitizer (the tsan preset) a lock whose
// acquire/release pairing were wrong would show up as a data race on it, not only as a lost
// update.

#include "locks.hpp"

#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "oslab/error.hpp"
#include "oslab/shared.hpp"
#include "oslab/syscalls.hpp"

namespace oslab::sync {
namespace {

// Each thread stops at kIterations or at the time limit, whichever comes first: a FIFO
// spinlock (ticket, MCS) with more threads than free CPUs hands the lock to a waiter that is
// not running and everyone waits for it to be scheduled again, so on a loaded machine a fixed
// count could take minutes. What is checked is that every acquisition that happened excluded.
constexpr int kIterations = 200'000;
constexpr auto kTimeLimit = std::chrono::milliseconds(500);
constexpr int kThreads = 4;  // more than this machine's CPUs, often: holders get preempted

// What the critical section touches: a plain counter and an "inside" flag that catches two
// holders at once even when the counter happens to come out right.
struct Guarded {
  long counter = 0;
  std::atomic<int> inside{0};
  std::atomic<int> overlaps{0};
  void critical_section() {
    if (inside.fetch_add(1, std::memory_order_relaxed) != 0) overlaps.fetch_add(1);
    counter = counter + 1;
    inside.fetch_sub(1, std::memory_order_relaxed);
  }
};

// Runs `threads` threads, each through acquire(i); critical section; release(i) until
// kIterations or kTimeLimit. Returns the acquisitions made, all threads together.
long stress(Guarded& guarded, int threads, const std::function<void(int)>& acquire,
            const std::function<void(int)>& release) {
  std::vector<std::thread> workers;
  std::atomic<int> ready{0};
  std::atomic<long> acquisitions{0};
  const auto deadline = std::chrono::steady_clock::now() + kTimeLimit;
  for (int t = 0; t < threads; ++t)
    workers.emplace_back([&, t] {
      ready.fetch_add(1);
      while (ready.load() < threads) std::this_thread::yield();  // start together
      long mine = 0;
      for (int i = 0; i < kIterations && std::chrono::steady_clock::now() < deadline; ++i) {
        acquire(t);
        guarded.critical_section();
        release(t);
        ++mine;
      }
      acquisitions.fetch_add(mine);
    });
  for (auto& worker : workers) worker.join();
  return acquisitions.load();
}

template <typename Lock>
void expect_mutual_exclusion_between_threads() {
  Lock lock;
  Guarded guarded;
  const long acquisitions = stress(
      guarded, kThreads, [&](int) { lock.lock(); }, [&](int) { lock.unlock(); });
  EXPECT_GT(acquisitions, 0);
  EXPECT_EQ(guarded.counter, acquisitions);
  EXPECT_EQ(guarded.overlaps.load(), 0);
}

TEST(SyncLocks, TestAndSetExcludes) {
  expect_mutual_exclusion_between_threads<TasLock>();
}
TEST(SyncLocks, TestAndTestAndSetExcludes) {
  expect_mutual_exclusion_between_threads<TtasLock>();
}
TEST(SyncLocks, TicketLockExcludes) {
  expect_mutual_exclusion_between_threads<TicketLock>();
}
TEST(SyncLocks, FutexMutexExcludes) {
  expect_mutual_exclusion_between_threads<FutexMutex>();
}

TEST(SyncLocks, McsLockExcludes) {
  McsLock lock;
  std::vector<McsLock::Node> nodes(kThreads);
  Guarded guarded;
  const long acquisitions = stress(
      guarded, kThreads, [&](int t) { lock.lock(nodes[t]); }, [&](int t) { lock.unlock(nodes[t]); });
  EXPECT_GT(acquisitions, 0);
  EXPECT_EQ(guarded.counter, acquisitions);
  EXPECT_EQ(guarded.overlaps.load(), 0);
}

TEST(SyncLocks, TryLockFailsWhileHeld) {
  TasLock tas;
  TtasLock ttas;
  FutexMutex futex;
  ASSERT_TRUE(tas.try_lock());
  EXPECT_FALSE(tas.try_lock());
  tas.unlock();
  EXPECT_TRUE(tas.try_lock());
  ASSERT_TRUE(ttas.try_lock());
  EXPECT_FALSE(ttas.try_lock());
  ASSERT_TRUE(futex.try_lock());
  EXPECT_FALSE(futex.try_lock());
  futex.unlock();
  EXPECT_EQ(futex.state(), 0u);
}

// Drepper's three states: 1 when taken uncontended, 2 once a waiter has announced itself,
// 0 after the last unlock, and the waiter gets the lock when the holder lets go.
TEST(SyncLocks, FutexMutexGoesThroughItsThreeStates) {
  FutexMutex mutex;
  mutex.lock();
  EXPECT_EQ(mutex.state(), 1u);
  std::atomic<bool> waiter_has_it{false};
  std::thread waiter([&] {
    mutex.lock();
    waiter_has_it = true;
    mutex.unlock();
  });
  while (mutex.state() != 2) std::this_thread::yield();  // the waiter announced itself
  EXPECT_FALSE(waiter_has_it.load());
  mutex.unlock();
  waiter.join();
  EXPECT_TRUE(waiter_has_it.load());
  EXPECT_EQ(mutex.state(), 0u);
}

// The point of the design: uncontended, no system call at all (counted by the kernel).
TEST(SyncLocks, UncontendedFutexMutexMakesNoSystemCall) {
  FutexMutex mutex;
  SyscallCounts counts;
  try {
    counts = count_syscalls([&] {
      for (int i = 0; i < 1000; ++i) {
        mutex.lock();
        mutex.unlock();
      }
    });
  } catch (const SkipError& e) {
    GTEST_SKIP() << e.what();
  }
  EXPECT_EQ(counts.of("futex"), 0u) << counts.describe();
}

// Between processes: the lock, the MCS nodes and the counter in memory shared before fork.
template <typename Lock>
struct InShared {
  Lock lock;
  Guarded guarded;
  McsLock::Node nodes[kThreads];
  std::atomic<long> acquisitions{0};
};

template <typename Lock>
void expect_mutual_exclusion_between_processes(const std::function<void(InShared<Lock>&, int)>& acquire,
                                               const std::function<void(InShared<Lock>&, int)>& release) {
  Shared<InShared<Lock>> shared;
  const auto deadline = std::chrono::steady_clock::now() + kTimeLimit / 2;
  std::vector<pid_t> children;
  for (int p = 0; p < kThreads; ++p) {
    pid_t pid = ::fork();
    ASSERT_NE(pid, -1);
    if (pid == 0) {
      long mine = 0;
      for (int i = 0; i < kIterations / 4 && std::chrono::steady_clock::now() < deadline; ++i) {
        acquire(*shared, p);
        shared->guarded.critical_section();
        release(*shared, p);
        ++mine;
      }
      shared->acquisitions.fetch_add(mine);
      _exit(0);
    }
    children.push_back(pid);
  }
  for (pid_t pid : children) {
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  EXPECT_GT(shared->acquisitions.load(), 0);
  EXPECT_EQ(shared->guarded.counter, shared->acquisitions.load());
  EXPECT_EQ(shared->guarded.overlaps.load(), 0);
}

struct SharedFutexMutex : FutexMutex {
  SharedFutexMutex() : FutexMutex(FutexScope::shared) {}
};

TEST(SyncLocks, SpinlocksExcludeBetweenProcesses) {
  expect_mutual_exclusion_between_processes<TicketLock>([](auto& s, int) { s.lock.lock(); },
                                                        [](auto& s, int) { s.lock.unlock(); });
  expect_mutual_exclusion_between_processes<TtasLock>([](auto& s, int) { s.lock.lock(); },
                                                      [](auto& s, int) { s.lock.unlock(); });
  expect_mutual_exclusion_between_processes<McsLock>([](auto& s, int p) { s.lock.lock(s.nodes[p]); },
                                                     [](auto& s, int p) { s.lock.unlock(s.nodes[p]); });
}

TEST(SyncLocks, SharedFutexMutexExcludesBetweenProcesses) {
  expect_mutual_exclusion_between_processes<SharedFutexMutex>([](auto& s, int) { s.lock.lock(); },
                                                              [](auto& s, int) { s.lock.unlock(); });
}

}  // namespace
}  // namespace oslab::sync
