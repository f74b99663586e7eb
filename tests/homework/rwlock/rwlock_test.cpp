// Unit tests of the reader-writer lock: sharing, exclusion, writer preference, waking every
// reader, invariants under torture, and no writer starvation under a stream of readers.
// Threads that could stay blocked forever (on a broken lock) are detached, so that a test
// fails with its message instead of hanging.
#include <atomic>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "rwlock.hpp"

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

struct Lock {
  RwLock rw;
  Lock() { rw_init(&rw); }
  ~Lock() { rw_destroy(&rw); }
};

// What a background thread reports.
struct Flags {
  std::atomic<bool> acquired{false}, release{false}, done{false};
  std::atomic<int> order{0};
};

template <typename F>
std::shared_ptr<Flags> start(F body) {
  auto flags = std::make_shared<Flags>();
  std::thread([flags, body] {
    body(*flags);
    flags->done = true;
  }).detach();
  return flags;
}

bool wait_until(const std::atomic<bool>& flag, std::chrono::milliseconds timeout) {
  const auto until = Clock::now() + timeout;
  while (!flag.load()) {
    if (Clock::now() > until) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

// Whether every thread finished within `timeout`, all together.
bool all_done(const std::vector<std::shared_ptr<Flags>>& threads, std::chrono::milliseconds timeout) {
  const auto until = Clock::now() + timeout;
  for (const auto& thread : threads)
    while (!thread->done.load()) {
      if (Clock::now() > until) return false;
      std::this_thread::sleep_for(1ms);
    }
  return true;
}

void hold_until_released(Flags& flags) {
  while (!flags.release.load()) std::this_thread::sleep_for(1ms);
}

int read_locked(RwLock* rw, int(RwLock::*field)) {
  pthread_mutex_lock(&rw->mutex);
  const int value = rw->*field;
  pthread_mutex_unlock(&rw->mutex);
  return value;
}

TEST(RwLock, ReadersShareTheLock) {
  auto lock = std::make_shared<Lock>();
  rw_read_lock(&lock->rw);
  auto second = start([lock](Flags& f) {
    rw_read_lock(&lock->rw);
    f.acquired = true;
    hold_until_released(f);
    rw_read_unlock(&lock->rw);
  });
  ASSERT_TRUE(wait_until(second->acquired, 1s)) << "a second reader could not get in beside the first";
  EXPECT_EQ(read_locked(&lock->rw, &RwLock::active_readers), 2);
  second->release = true;
  ASSERT_TRUE(wait_until(second->done, 1s));
  rw_read_unlock(&lock->rw);
  EXPECT_EQ(read_locked(&lock->rw, &RwLock::active_readers), 0);
}

TEST(RwLock, AWriterIsAlone) {
  auto lock = std::make_shared<Lock>();
  rw_write_lock(&lock->rw);
  EXPECT_TRUE(lock->rw.writer_active);
  auto reader = start([lock](Flags& f) {
    rw_read_lock(&lock->rw);
    f.acquired = true;
    rw_read_unlock(&lock->rw);
  });
  auto writer = start([lock](Flags& f) {
    rw_write_lock(&lock->rw);
    f.acquired = true;
    rw_write_unlock(&lock->rw);
  });
  std::this_thread::sleep_for(200ms);
  EXPECT_FALSE(reader->acquired.load()) << "a reader got in while a writer held the lock";
  EXPECT_FALSE(writer->acquired.load()) << "a second writer got in while a writer held the lock";
  rw_write_unlock(&lock->rw);
  EXPECT_TRUE(wait_until(reader->done, 1s)) << "the reader never got in after the writer left";
  EXPECT_TRUE(wait_until(writer->done, 1s)) << "the second writer never got in after the first left";
}

TEST(RwLock, AReaderKeepsWritersOutAndTheLastReaderLetsOneIn) {
  auto lock = std::make_shared<Lock>();
  rw_read_lock(&lock->rw);
  auto writer = start([lock](Flags& f) {
    rw_write_lock(&lock->rw);
    f.acquired = true;
    rw_write_unlock(&lock->rw);
  });
  std::this_thread::sleep_for(200ms);
  EXPECT_FALSE(writer->acquired.load()) << "a writer got in while a reader held the lock";
  EXPECT_EQ(read_locked(&lock->rw, &RwLock::waiting_writers), 1);
  rw_read_unlock(&lock->rw);
  EXPECT_TRUE(wait_until(writer->acquired, 1s)) << "the last reader left, but the waiting writer was never let in";
}

TEST(RwLock, AWaitingWriterGoesBeforeNewReaders) {
  auto lock = std::make_shared<Lock>();
  auto sequence = std::make_shared<std::atomic<int>>(0);
  rw_read_lock(&lock->rw);  // reader A
  auto writer = start([lock, sequence](Flags& f) {
    rw_write_lock(&lock->rw);
    f.order = ++*sequence;
    f.acquired = true;
    std::this_thread::sleep_for(50ms);
    rw_write_unlock(&lock->rw);
  });
  std::this_thread::sleep_for(100ms);  // the writer now waits for A
  auto reader = start([lock, sequence](Flags& f) {
    rw_read_lock(&lock->rw);
    f.order = ++*sequence;
    f.acquired = true;
    rw_read_unlock(&lock->rw);
  });
  std::this_thread::sleep_for(200ms);
  EXPECT_FALSE(reader->acquired.load()) << "a new reader got in ahead of a waiting writer";
  rw_read_unlock(&lock->rw);
  ASSERT_TRUE(wait_until(writer->done, 2s)) << "the writer never got in";
  ASSERT_TRUE(wait_until(reader->done, 2s)) << "the new reader never got in";
  EXPECT_EQ(writer->order.load(), 1) << "the waiting writer must go first";
  EXPECT_EQ(reader->order.load(), 2);
}

TEST(RwLock, AWriterLeavingLetsEveryWaitingReaderIn) {
  auto lock = std::make_shared<Lock>();
  auto inside = std::make_shared<std::atomic<int>>(0);
  rw_write_lock(&lock->rw);
  std::vector<std::shared_ptr<Flags>> readers;
  for (int i = 0; i < 3; ++i)
    readers.push_back(start([lock, inside](Flags& f) {
      rw_read_lock(&lock->rw);
      ++*inside;
      f.acquired = true;
      const auto until = Clock::now() + 2s;  // stay until all three are in together
      while (inside->load() < 3 && Clock::now() < until) std::this_thread::sleep_for(1ms);
      rw_read_unlock(&lock->rw);
    }));
  std::this_thread::sleep_for(150ms);
  EXPECT_EQ(inside->load(), 0) << "readers got in while a writer held the lock";
  rw_write_unlock(&lock->rw);
  const auto until = Clock::now() + 1s;
  while (inside->load() < 3 && Clock::now() < until) std::this_thread::sleep_for(1ms);
  EXPECT_EQ(inside->load(), 3) << "the writer left, but not every waiting reader was let in (signal, not broadcast?)";
}

TEST(RwLock, TortureKeepsTheInvariants) {
  struct State {
    Lock lock;
    std::atomic<int> readers_inside{0}, writers_inside{0}, violations{0};
    std::atomic<long> reads{0}, writes{0};
    std::atomic<bool> stop{false};
    long a = 0, b = 0;  // written together under the write lock
  };
  auto state = std::make_shared<State>();
  std::vector<std::shared_ptr<Flags>> threads;
  for (int i = 0; i < 4; ++i)
    threads.push_back(start([state](Flags&) {
      while (!state->stop.load()) {
        rw_read_lock(&state->lock.rw);
        ++state->readers_inside;
        if (state->writers_inside.load() != 0 || state->a != state->b) ++state->violations;
        --state->readers_inside;
        rw_read_unlock(&state->lock.rw);
        ++state->reads;
      }
    }));
  for (int i = 0; i < 2; ++i)
    threads.push_back(start([state](Flags&) {
      while (!state->stop.load()) {
        rw_write_lock(&state->lock.rw);
        if (state->writers_inside.fetch_add(1) != 0 || state->readers_inside.load() != 0) ++state->violations;
        ++state->a;
        std::this_thread::yield();
        ++state->b;
        --state->writers_inside;
        rw_write_unlock(&state->lock.rw);
        ++state->writes;
        std::this_thread::sleep_for(200us);
      }
    }));
  std::this_thread::sleep_for(500ms);
  state->stop = true;
  ASSERT_TRUE(all_done(threads, 2s)) << "a thread is stuck in the lock";
  EXPECT_EQ(state->violations.load(), 0) << "a writer was not alone";
  EXPECT_GT(state->reads.load(), 0);
  EXPECT_GT(state->writes.load(), 0);
}

TEST(RwLock, WritersDoNotStarveUnderAStreamOfReaders) {
  struct State {
    Lock lock;
    std::atomic<bool> stop{false};
    std::atomic<int> readers_inside{0};
  };
  auto state = std::make_shared<State>();
  std::vector<std::shared_ptr<Flags>> readers;
  for (int i = 0; i < 4; ++i)
    readers.push_back(start([state, i](Flags&) {
      std::this_thread::sleep_for(std::chrono::microseconds(500 * i));  // overlapping, never all out
      while (!state->stop.load()) {
        rw_read_lock(&state->lock.rw);
        ++state->readers_inside;
        std::this_thread::sleep_for(2ms);
        --state->readers_inside;
        rw_read_unlock(&state->lock.rw);
      }
    }));
  std::this_thread::sleep_for(100ms);
  auto writer = start([state](Flags& f) {
    rw_write_lock(&state->lock.rw);
    f.order = state->readers_inside.load();
    f.acquired = true;
    rw_write_unlock(&state->lock.rw);
  });
  const bool got_in = wait_until(writer->acquired, 500ms);
  state->stop = true;
  EXPECT_TRUE(got_in) << "the writer waited more than 500 ms while readers came and went: starved";
  if (got_in) {
    EXPECT_EQ(writer->order.load(), 0) << "readers were inside while the writer held the lock";
  }
  EXPECT_TRUE(all_done(readers, 2s)) << "a reader is stuck in the lock";
}

}  // namespace
