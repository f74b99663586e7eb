// /proc readers on tasks whose state we control: a running thread, a sleeping one, a zombie.
#include "oslab/procfs.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include <gtest/gtest.h>

#include "oslab/process.hpp"

namespace oslab {
namespace {

using namespace std::chrono_literals;

TEST(Procfs, ReadsThisThreadAsRunning) {
  auto stat = read_task_stat(::getpid(), ::gettid());
  ASSERT_TRUE(stat);
  EXPECT_EQ(stat->state, 'R');
  EXPECT_EQ(stat->ppid, ::getppid());
  EXPECT_EQ(describe_task_state('Z'), "Z (zombie)");
  EXPECT_EQ(task_syscall(::getpid(), ::gettid()), "read");  // reading its own syscall file
}

TEST(Procfs, SeesASleepingThreadAndItsCall) {
  std::atomic<pid_t> tid{0};
  std::thread sleeper([&] {
    tid = ::gettid();
    std::this_thread::sleep_for(300ms);
  });
  while (tid == 0) std::this_thread::yield();
  std::optional<TaskStat> stat;
  for (int i = 0; i < 100; ++i) {  // until it is inside its sleep
    stat = read_task_stat(::getpid(), tid);
    if (stat && stat->state == 'S') break;
    std::this_thread::sleep_for(1ms);
  }
  ASSERT_TRUE(stat);
  EXPECT_EQ(stat->state, 'S');
  EXPECT_EQ(task_syscall(::getpid(), tid), "clock_nanosleep");
  const auto tasks = list_tasks(::getpid());
  EXPECT_NE(std::find(tasks.begin(), tasks.end(), tid.load()), tasks.end());
  sleeper.join();
}

TEST(Procfs, AZombieHasNoMemory) {
  const pid_t pid = ::fork();
  ASSERT_NE(pid, -1);
  if (pid == 0) _exit(0);
  std::optional<TaskStat> stat;
  for (int i = 0; i < 1000; ++i) {
    stat = read_task_stat(pid);
    if (stat && stat->state == 'Z') break;
    std::this_thread::sleep_for(1ms);
  }
  ASSERT_TRUE(stat);
  EXPECT_EQ(stat->state, 'Z');
  EXPECT_EQ(status_field(pid, "VmRSS"), std::nullopt);
  EXPECT_EQ(status_field(pid, "PPid"), std::to_string(::getpid()));
  ASSERT_TRUE(wait_for(pid, 5s));
  EXPECT_EQ(read_task_stat(pid), std::nullopt);
}

TEST(Procfs, ReadsMemoryUse) {
  auto use = read_memory_use(::getpid());
  ASSERT_TRUE(use);
  EXPECT_GT(use->rss_kib, 0);
  EXPECT_GT(use->pss_kib, 0);
  EXPECT_LE(use->pss_kib, use->rss_kib + 1);
  EXPECT_GT(status_kib(::getpid(), "VmPTE").value_or(0), 0);
}

}  // namespace
}  // namespace oslab
