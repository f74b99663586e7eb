// The green-thread library (labs/uthreads): order, join, exit, sleep, the FPU control words,
// guard pages, both switch backends, arena stacks, M:N, preemption and parked IO. Behaviour
// only; no test depends on how fast anything is.

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cfenv>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "oslab/clock.hpp"
#include "oslab/handles.hpp"
#include "uthread.hpp"

namespace oslab::uthread {
namespace {

std::vector<Backend> backends() {
  std::vector<Backend> all{Backend::ucontext};
  if (available(Backend::assembly)) all.insert(all.begin(), Backend::assembly);
  return all;
}

class EveryBackend : public ::testing::TestWithParam<Backend> {
 protected:
  Options options() const {
    Options o;
    o.backend = GetParam();
    return o;
  }
};

TEST_P(EveryBackend, CooperativeOrderIsFirstInFirstOut) {
  Scheduler scheduler(options());
  std::string order;
  for (char name : {'a', 'b', 'c'})
    scheduler.spawn([&order, name] {
      for (int round = 0; round < 3; ++round) {
        order += name;
        yield();
      }
    });
  scheduler.run();
  EXPECT_EQ(order, "abcabcabc");
  EXPECT_EQ(scheduler.statistics().spawned, 3u);
}

TEST_P(EveryBackend, JoinWaitsForTheEndAndExitEndsEarly) {
  Scheduler scheduler(options());
  std::string events;
  const ThreadId worker = scheduler.spawn([&] {
    events += "w1 ";
    yield();
    events += "w2 ";
    exit();
    events += "never ";  // NOLINT: unreachable on purpose
  });
  scheduler.spawn([&, worker] {
    events += "j1 ";
    join(worker);
    events += "joined ";
    join(worker);  // already finished: returns at once
    events += "again ";
  });
  scheduler.run();
  EXPECT_EQ(events, "w1 j1 w2 joined again ");
}

TEST_P(EveryBackend, SpawnFromAGreenThreadAndNestedJoins) {
  Scheduler scheduler(options());
  std::atomic<int> finished{0};
  scheduler.spawn([&] {
    std::vector<ThreadId> children;
    for (int i = 0; i < 10; ++i)
      children.push_back(current_scheduler().spawn([&] {
        yield();
        ++finished;
      }));
    for (ThreadId child : children) join(child);
    EXPECT_EQ(finished.load(), 10);
  });
  scheduler.run();
  EXPECT_EQ(finished.load(), 10);
}

TEST_P(EveryBackend, SleepParksOnlyTheSleeper) {
  Scheduler scheduler(options());
  int64_t slept_ns = 0;
  long yields_meanwhile = 0;
  bool awake = false;
  scheduler.spawn([&] {
    const int64_t start = now_ns();
    sleep_for(std::chrono::milliseconds(20));
    slept_ns = now_ns() - start;
    awake = true;
  });
  scheduler.spawn([&] {
    while (!awake) {
      ++yields_meanwhile;
      yield();
    }
  });
  scheduler.run();
  EXPECT_GE(slept_ns, 20'000'000);  // at least the time asked for: what sleep means
  EXPECT_GT(yields_meanwhile, 0);
}

TEST_P(EveryBackend, AJoinThatCanNeverReturnIsReported) {
  Scheduler scheduler(options());
  ThreadId second = 0;
  const ThreadId first = scheduler.spawn([&] { join(second); });
  second = scheduler.spawn([&] { join(first); });
  EXPECT_THROW(scheduler.run(), std::logic_error);
}

INSTANTIATE_TEST_SUITE_P(Backends, EveryBackend, ::testing::ValuesIn(backends()), [](const auto& param_info) {
  std::string name = to_string(param_info.param);
  for (char& c : name)
    if (c == '-') c = '_';
  return name;
});

#if defined(__x86_64__)
uint32_t mxcsr_control() {
  uint32_t mxcsr = 0;
  asm volatile("stmxcsr %0" : "=m"(mxcsr));
  return mxcsr & 0xffc0u;  // the control bits; the low six are sticky status flags
}
uint16_t x87_control() {
  uint16_t word = 0;
  asm volatile("fnstcw %0" : "=m"(word));
  return word;
}

struct FpuSeen {
  uint32_t creator_mxcsr = 0, a_mxcsr_after = 0, b_mxcsr_at_start = 0;
  uint16_t creator_x87 = 0, a_x87_after = 0, b_x87_at_start = 0;
};

// Thread a sets round-upward and yields to b, which inherited its creator's round-to-nearest;
// then a checks that it still rounds upward.
FpuSeen rounding_across_a_switch(Backend backend) {
  Options options;
  options.backend = backend;
  Scheduler scheduler(options);
  FpuSeen seen;
  seen.creator_mxcsr = mxcsr_control();
  seen.creator_x87 = x87_control();
  scheduler.spawn([&] {
    std::fesetround(FE_UPWARD);
    yield();
    seen.a_mxcsr_after = mxcsr_control();
    seen.a_x87_after = x87_control();
    std::fesetround(FE_TONEAREST);
  });
  scheduler.spawn([&] {
    seen.b_mxcsr_at_start = mxcsr_control();
    seen.b_x87_at_start = x87_control();
    std::fesetround(FE_TOWARDZERO);
    yield();
    std::fesetround(FE_TONEAREST);
  });
  scheduler.run();
  return seen;
}

TEST(FpuControlWords, AreSavedAndRestoredBySwitch) {
  const FpuSeen seen = rounding_across_a_switch(Backend::assembly);
  ASSERT_EQ(seen.creator_mxcsr, 0x1f80u) << "the test expects the ABI's initial MXCSR in its creator";
  ASSERT_EQ(seen.creator_x87, 0x037fu) << "the test expects the ABI's initial x87 control word in its creator";
  EXPECT_EQ(seen.b_mxcsr_at_start, seen.creator_mxcsr) << "a new thread inherits its creator's MXCSR";
  EXPECT_EQ(seen.b_x87_at_start, seen.creator_x87) << "a new thread inherits its creator's x87 control word";
  EXPECT_EQ(seen.a_mxcsr_after, 0x1f80u | 0x4000u) << "round upward (MXCSR RC=10) must survive the switch";
  EXPECT_EQ(seen.a_x87_after, 0x037fu | 0x0800u) << "round upward (x87 RC=10) must survive the switch";
}

// The bug the control words prevent, shown: without them, b inherits a's rounding mode and
// a gets b's back.
TEST(FpuControlWords, AreLostByASwitchThatOmitsThem) {
  const FpuSeen seen = rounding_across_a_switch(Backend::assembly_no_fpu);
  EXPECT_EQ(seen.b_mxcsr_at_start, 0x1f80u | 0x4000u) << "b should have inherited a's round-upward";
  EXPECT_EQ(seen.a_mxcsr_after, 0x1f80u | 0x6000u) << "a should have come back with b's round-toward-zero";
}
#endif

[[gnu::noinline]] int recurse(int depth) {
  volatile char frame[512];
  frame[0] = static_cast<char>(depth);
  if (depth > 1'000'000) return frame[0];  // never reached: the guard page comes first
  return recurse(depth + 1) + frame[0];
}

TEST(GuardPage, AnOverflowIsACleanSigsegv) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  ::setenv("ASAN_OPTIONS", "handle_segv=0:detect_stack_use_after_return=0",
           1);  // the child re-executes: ours, not ASan's
  EXPECT_EXIT(
      {
        Options options;
        options.stack_bytes = 16 * 1024;
        Scheduler scheduler(options);
        scheduler.spawn([] { std::_Exit(recurse(0)); });
        scheduler.run();
      },
      ::testing::KilledBySignal(SIGSEGV), "overflowed its stack");
}

TEST(ArenaStacks, TenThousandThreadsRunToTheEnd) {
  Options options;
  options.guard_pages = false;
  options.stack_bytes = 16 * 1024;
  options.arena_stacks = 10'000;
  Scheduler scheduler(options);
  std::vector<int> ran(10'000, 0);
  for (int& slot : ran)
    scheduler.spawn([&slot] {
      ++slot;
      yield();
      ++slot;
    });
  scheduler.run();
  for (size_t i = 0; i < ran.size(); ++i) ASSERT_EQ(ran[i], 2) << i;
}

TEST(ArenaStacks, AFullArenaIsAnError) {
  Options options;
  options.guard_pages = false;
  options.stack_bytes = 4096;
  options.arena_stacks = 2;
  Scheduler scheduler(options);
  scheduler.spawn([] {});
  scheduler.spawn([] {});
  EXPECT_THROW(scheduler.spawn([] {}), std::runtime_error);
  scheduler.run();
}

TEST(ManyToMany, EveryThreadRunsOnceNothingLostNothingTwice) {
  Options options;
  options.workers = 2;
  Scheduler scheduler(options);
  constexpr int kThreads = 2000, kRounds = 20;
  std::vector<std::atomic<int>> work(kThreads);
  std::atomic<int> sleepers_woken{0};
  for (int i = 0; i < kThreads; ++i)
    scheduler.spawn([&work, &sleepers_woken, i] {
      for (int round = 0; round < kRounds; ++round) {
        work[static_cast<size_t>(i)].fetch_add(1);
        yield();
      }
      if (i % 100 == 0) {
        sleep_for(std::chrono::milliseconds(1));
        ++sleepers_woken;
      }
    });
  scheduler.run();
  for (int i = 0; i < kThreads; ++i) ASSERT_EQ(work[static_cast<size_t>(i)].load(), kRounds) << "thread " << i;
  EXPECT_EQ(sleepers_woken.load(), kThreads / 100);
  EXPECT_EQ(scheduler.statistics().spawned, static_cast<uint64_t>(kThreads));
}

// A green thread that never yields keeps the others from running under cooperative
// scheduling; a timer signal ends its monopoly.
struct Monopoly {
  bool others_ran_during_spin = false;
  uint64_t preemptions = 0;
};
Monopoly spin_against_a_counter(std::chrono::microseconds preempt_every) {
  Options options;
  options.preempt_every = preempt_every;
  Scheduler scheduler(options);
  std::atomic<bool> stop{false};
  std::atomic<long> counted{0};
  Monopoly result;
  scheduler.spawn([&] {
    const int64_t deadline = now_ns() + 300'000'000;  // at most 0.3 s, then give up
    while (!stop.load(std::memory_order_relaxed) && now_ns() < deadline) {
    }
    result.others_ran_during_spin = counted.load() > 0;
    stop = true;
  });
  scheduler.spawn([&] {
    while (!stop.load()) {
      ++counted;
      if (counted.load() > 3) stop = true;
      yield();
    }
  });
  scheduler.run();
  result.preemptions = scheduler.statistics().preemptions;
  return result;
}

TEST(Preemption, WithoutItASpinningThreadStarvesTheOthers) {
  const Monopoly run = spin_against_a_counter(std::chrono::microseconds(0));
  EXPECT_FALSE(run.others_ran_during_spin);
  EXPECT_EQ(run.preemptions, 0u);
}

TEST(Preemption, ATimerSignalEndsTheMonopoly) {
  if (built_with_tsan()) GTEST_SKIP() << "ThreadSanitizer delays signals to its own safe points: no preemption";
  const Monopoly run = spin_against_a_counter(std::chrono::microseconds(1000));
  EXPECT_TRUE(run.others_ran_during_spin);
  EXPECT_GT(run.preemptions, 0u);
}

class EveryIo : public ::testing::TestWithParam<Io> {};

// The reader parks on an empty pipe; the other green thread keeps running, counts, and only
// then writes: if the read blocked the kernel thread, nothing would ever write.
TEST_P(EveryIo, AParkedReadLetsTheOthersRun) {
  Options options;
  options.io = GetParam();
  std::unique_ptr<Scheduler> scheduler;
  try {
    scheduler = std::make_unique<Scheduler>(options);
  } catch (const std::exception& error) {
    GTEST_SKIP() << "io_uring unavailable: " << error.what();
  }
  Pipe pipe = Pipe::create();
  long counted = 0;
  long counted_when_read_returned = -1;
  char got[8] = {};
  ssize_t bytes = 0;
  scheduler->spawn([&] {
    bytes = uthread::read(pipe.read_end.get(), got, sizeof got);
    counted_when_read_returned = counted;
  });
  scheduler->spawn([&] {
    for (; counted < 1000; ++counted) yield();
    ASSERT_EQ(uthread::write(pipe.write_end.get(), "ping", 4), 4);
  });
  scheduler->spawn([] { sleep_for(std::chrono::milliseconds(2)); });  // a sleeper beside the IO
  scheduler->run();
  EXPECT_EQ(bytes, 4);
  EXPECT_EQ(std::string(got, 4), "ping");
  EXPECT_EQ(counted_when_read_returned, 1000);
  EXPECT_GE(scheduler->statistics().io_waits, 1u);
}

TEST_P(EveryIo, ReadOfAClosedPipeIsEndOfFile) {
  Options options;
  options.io = GetParam();
  std::unique_ptr<Scheduler> scheduler;
  try {
    scheduler = std::make_unique<Scheduler>(options);
  } catch (const std::exception& error) {
    GTEST_SKIP() << "io_uring unavailable: " << error.what();
  }
  Pipe pipe = Pipe::create();
  ssize_t bytes = -2;
  scheduler->spawn([&] {
    char buffer[4];
    bytes = uthread::read(pipe.read_end.get(), buffer, sizeof buffer);
  });
  scheduler->spawn([&] { pipe.write_end.reset(); });
  scheduler->run();
  EXPECT_EQ(bytes, 0);
}

INSTANTIATE_TEST_SUITE_P(Io, EveryIo, ::testing::Values(Io::epoll, Io::io_uring),
                         [](const auto& param_info) { return std::string(to_string(param_info.param)); });

TEST(Misuse, CallsOutsideAGreenThreadAreLogicErrors) {
  EXPECT_FALSE(in_green_thread());
  EXPECT_THROW(yield(), std::logic_error);
  EXPECT_THROW(self(), std::logic_error);
  EXPECT_THROW(Scheduler({.workers = 0}), std::invalid_argument);
  EXPECT_THROW(Scheduler({.workers = 2, .io = Io::epoll}), std::invalid_argument);
  EXPECT_THROW(parse_backend("fast"), std::exception);
}

}  // namespace
}  // namespace oslab::uthread
