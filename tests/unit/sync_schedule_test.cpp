// The machinery the synchronisation labs catch broken code with (labs/sync/schedule.hpp): the
// ledger's exactly-once count, the forced order of a schedule, and the watchdog that names a
// deadlock and ends it.

#include "schedule.hpp"

#include <semaphore.h>

#include <mutex>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace oslab::sync {
namespace {

TEST(SyncLedger, CountsLostDuplicatedAndEmpty) {
  Ledger ledger(16);
  for (uint64_t id = 0; id < 10; ++id) ledger.produced(id);
  for (uint64_t id = 0; id < 9; ++id) ledger.consumed(id);  // 9 never comes out
  ledger.consumed(3);                                       // 3 comes out twice
  ledger.consumed(Ledger::kEmpty);                          // an empty slot
  const Ledger::Tally tally = ledger.tally();
  EXPECT_EQ(tally.produced, 10u);
  EXPECT_EQ(tally.consumed, 11u);
  EXPECT_EQ(tally.lost, 1u);
  EXPECT_EQ(tally.duplicated, 1u);
  EXPECT_EQ(tally.empty_slots, 1u);
  EXPECT_FALSE(tally.exactly_once());
}

TEST(SyncSchedule, ThreadsPassTheirPointsInTheScriptedOrder) {
  Schedule schedule({{2, "go"}, {2, "recorded"}, {0, "go"}, {0, "recorded"}, {1, "go"}, {1, "recorded"}}, 1);
  std::mutex mutex;
  std::vector<int> order;
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t)
    threads.emplace_back([&, t] {
      schedule.enroll(t);
      schedule.point(t, "go");
      {
        std::lock_guard lock(mutex);
        order.push_back(t);
      }
      schedule.point(t, "recorded");
      schedule.point(t, "unscripted");  // named nowhere in the script: passes at once
    });
  for (auto& thread : threads) thread.join();
  EXPECT_TRUE(schedule.finished());
  EXPECT_EQ(order, (std::vector<int>{2, 0, 1}));
}

// Two threads, each waiting on a semaphore only the other would post: the watchdog says who
// waits on what, sets aborted, and its unblock lets them finish.
TEST(SyncWaitBoard, NamesAndBreaksADeadlock) {
  sem_t first, second;
  ASSERT_EQ(::sem_init(&first, 0, 0), 0);
  ASSERT_EQ(::sem_init(&second, 0, 0), 0);
  WaitBoard board({"left", "right"});
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t)
    threads.emplace_back([&, t] {
      board.enroll(t);
      board.waiting(t, t == 0 ? "semaphore 'first'" : "semaphore 'second'", "for the other side");
      while (::sem_wait(t == 0 ? &first : &second) == -1) {
      }
      board.running(t);
      board.done(t);
    });
  board.watch(
      nullptr, [] { return std::string("nobody posts"); },
      [&] {
        ::sem_post(&first);
        ::sem_post(&second);
      },
      std::chrono::milliseconds(50));
  for (auto& thread : threads) thread.join();
  board.stop();
  EXPECT_TRUE(board.aborted());
  ASSERT_TRUE(board.deadlocked());
  EXPECT_NE(board.deadlock().find("left waits on semaphore 'first'"), std::string::npos) << board.deadlock();
  EXPECT_NE(board.deadlock().find("right waits on semaphore 'second'"), std::string::npos) << board.deadlock();
  EXPECT_NE(board.deadlock().find("nobody posts"), std::string::npos) << board.deadlock();
  ::sem_destroy(&first);
  ::sem_destroy(&second);
}

// Threads that keep making progress are never taken for a deadlock.
TEST(SyncWaitBoard, ProgressIsNotADeadlock) {
  WaitBoard board({"worker"});
  std::atomic<bool> stop{false};
  std::thread worker([&] {
    board.enroll(0);
    while (!stop) {
      board.waiting(0, "a short sleep", "pretending to wait");
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
      board.running(0);
      board.progress();
    }
    board.done(0);
  });
  board.watch(
      nullptr, [] { return std::string(); }, [] {}, std::chrono::milliseconds(30));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  stop = true;
  worker.join();
  board.stop();
  EXPECT_FALSE(board.deadlocked()) << board.deadlock();
}

}  // namespace
}  // namespace oslab::sync
