#include "oslab/measure.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "oslab/clock.hpp"
#include "oslab/contention.hpp"
#include "oslab/handles.hpp"
#include "oslab/lab.hpp"
#include "oslab/machine.hpp"

namespace oslab {
namespace {

TEST(Clock, IsMonotonicAndMeasured) {
  int64_t a = now_ns(), b = now_ns();
  EXPECT_LE(a, b);
  const TimerInfo& info = timer_info();
  EXPECT_GT(info.overhead_ns, 0);
  EXPECT_GT(info.resolution_ns, 0);
  EXPECT_GE(info.smallest_step_ns, 0);
}

TEST(CalibrateBatch, GrowsUntilTheTargetIsReached) {
  int64_t calls = 0;
  auto op = [&](int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
      ++calls;
      asm volatile("" ::: "memory");
    }
  };
  int64_t batch = calibrate_batch(op, 50.0, 1000, 1 << 20);
  EXPECT_GE(batch, 1);
  EXPECT_LE(batch, 1 << 20);
  EXPECT_EQ(batch & (batch - 1), 0) << "a power of two";
  // Slow operations need no batching.
  EXPECT_EQ(calibrate_batch([](int64_t n) { ::usleep(static_cast<useconds_t>(n) * 1000); }, 50.0), 1);
  // The cap is honoured.
  EXPECT_EQ(calibrate_batch([](int64_t) {}, 1e9, 1000, 64), 64);
}

TEST(Measure, HonoursTheSampleLimits) {
  SamplingPlan plan;
  plan.warmup = 2;
  plan.min_samples = 7;
  plan.max_samples = 7;
  plan.budget = std::chrono::milliseconds(0);
  int calls = 0;
  Measurement m = measure(plan, [&](int64_t batch) { calls += static_cast<int>(batch); });
  EXPECT_EQ(m.samples_ns.size(), 7u);
  EXPECT_EQ(calls, 9);
  EXPECT_EQ(m.operations, 7);
}

TEST(Measure, StopsAtTheBudgetButKeepsTheMinimum) {
  SamplingPlan plan;
  plan.warmup = 0;
  plan.min_samples = 3;
  plan.max_samples = 1000;
  plan.budget = std::chrono::milliseconds(30);
  Measurement m = measure(plan, [](int64_t) { ::usleep(10'000); });
  EXPECT_GE(m.samples_ns.size(), 3u);
  EXPECT_LT(m.samples_ns.size(), 20u);
  for (double sample : m.samples_ns) EXPECT_GE(sample, 10e6);
}

TEST(Measure, DividesBatchesAndCountsFaultsPerOperation) {
  if (kThreadSanitizer) GTEST_SKIP() << "ThreadSanitizer's shadow memory adds faults";
  const size_t pages = 64;
  std::vector<Mapping> regions;
  SamplingPlan plan;
  plan.warmup = 0;
  plan.min_samples = plan.max_samples = 4;
  plan.batch = 2;
  plan.budget = std::chrono::milliseconds(0);
  // Each operation touches `pages` fresh pages: at least that many minor faults per operation.
  Measurement m = measure(plan, [&](int64_t batch) {
    for (int64_t i = 0; i < batch; ++i) {
      regions.push_back(Mapping::anonymous(pages * page_size()));
      ::madvise(regions.back().data(), regions.back().size(), MADV_NOHUGEPAGE);
      touch_pages(regions.back().bytes());
    }
  });
  EXPECT_EQ(m.operations, 8);
  EXPECT_GE(m.self_per_op.minor_faults, static_cast<double>(pages));
  EXPECT_LT(m.self_per_op.minor_faults, static_cast<double>(pages) * 2);
  EXPECT_EQ(m.children_per_op.minor_faults, 0);
}

TEST(Measure, TakesSamplesInBlocks) {
  SamplingPlan plan;
  plan.warmup = 0;
  plan.min_samples = plan.max_samples = 25;
  plan.block_samples = 10;
  plan.budget = std::chrono::milliseconds(0);
  Measurement m = measure(plan, [](int64_t) {});
  EXPECT_EQ(m.blocks, (std::vector<size_t>{10, 10, 5}));
  EXPECT_EQ(m.samples_ns.size(), 25u);
}

// Cases take their blocks in rotation, each round starting one case later, so that a slow
// spell of the machine falls on every case alike.
TEST(Interleaver, RotatesCasesBlockByBlock) {
  SamplingPlan plan;
  plan.warmup = 0;
  plan.min_samples = plan.max_samples = 6;
  plan.block_samples = 2;
  plan.budget = std::chrono::milliseconds(0);
  Interleaver interleaver(plan, 3);
  std::vector<size_t> order;
  interleaver.run([&](size_t c, int samples, Measurement& into) {
    order.push_back(c);
    into.add_block(std::vector<double>(static_cast<size_t>(samples), 1.0), {}, {});
  });
  EXPECT_EQ(order, (std::vector<size_t>{0, 1, 2, 1, 2, 0, 2, 0, 1}));
  for (auto& m : interleaver.measurements()) EXPECT_EQ(m.blocks, (std::vector<size_t>{2, 2, 2}));
}

TEST(Interleaver, ABudgetStopsEveryCaseAtItsMinimum) {
  SamplingPlan plan;
  plan.warmup = 1;
  plan.min_samples = 3;
  plan.max_samples = 1000;
  plan.block_samples = 2;
  plan.budget = std::chrono::milliseconds(5);
  std::function<void(int64_t)> ops[] = {[](int64_t) { ::usleep(2000); }, [](int64_t) {}};
  std::vector<Measurement> m = measure_interleaved(plan, ops);
  ASSERT_EQ(m.size(), 2u);
  EXPECT_GE(m[0].samples_ns.size(), 3u);
  EXPECT_LT(m[0].samples_ns.size(), 30u);
  EXPECT_GE(m[1].samples_ns.size(), 3u);
}

TEST(Measurement, AddBlockAccumulatesCountersPerOperation) {
  Measurement m;
  m.add_block(std::vector<double>{1, 2}, Counters{4, 0, 2, 0}, Counters{10, 0, 0, 0});
  m.add_block(std::vector<double>{3, 4}, Counters{0, 0, 2, 0}, Counters{6, 0, 0, 0});
  EXPECT_EQ(m.operations, 4);
  EXPECT_DOUBLE_EQ(m.self_per_op.minor_faults, 1);
  EXPECT_DOUBLE_EQ(m.self_per_op.voluntary_switches, 1);
  EXPECT_DOUBLE_EQ(m.children_per_op.minor_faults, 4);
  EXPECT_EQ(m.blocks, (std::vector<size_t>{2, 2}));
}

TEST(Counters, Arithmetic) {
  Counters a{10, 1, 4, 2}, b{4, 1, 2, 0};
  Counters d = (a - b).per(2);
  EXPECT_DOUBLE_EQ(d.minor_faults, 3);
  EXPECT_DOUBLE_EQ(d.major_faults, 0);
  EXPECT_DOUBLE_EQ(d.voluntary_switches, 1);
  EXPECT_DOUBLE_EQ(d.involuntary_switches, 1);
  EXPECT_EQ(a.to_map("child_").at("child_minor_faults"), 10);
  EXPECT_DOUBLE_EQ(a.per(0).minor_faults, 0);
}

}  // namespace
}  // namespace oslab

namespace oslab {
namespace {

TEST(Contention, SubtractsOwnAndKernelThreadTime) {
  CpuUse before{.busy_s = 100, .kernel_threads_s = 5, .steal_s = 1, .ours_s = 10, .wall_s = 1000};
  // Over 2 s: the CPUs were busy 3 s, of which 1.5 s ours and 0.5 s kernel threads: 1 s others.
  CpuUse after{.busy_s = 103, .kernel_threads_s = 5.5, .steal_s = 1.2, .ours_s = 11.5, .wall_s = 1002};
  Contention c = contention_between(before, after);
  EXPECT_DOUBLE_EQ(c.wall_s, 2);
  EXPECT_DOUBLE_EQ(c.other_cpus, 0.5);
  EXPECT_NEAR(c.steal_cpus, 0.1, 1e-12);
  EXPECT_TRUE(c.busy());
}

TEST(Contention, IdleAndShortRunsAreNotBusy) {
  CpuUse before{.busy_s = 100, .kernel_threads_s = 0, .steal_s = 0, .ours_s = 10, .wall_s = 1000};
  CpuUse idle{.busy_s = 102, .kernel_threads_s = 0, .steal_s = 0, .ours_s = 12, .wall_s = 1002};
  EXPECT_FALSE(contention_between(before, idle).busy());
  // Tick-sampled /proc/stat can read below our own precise time: never negative.
  CpuUse below{.busy_s = 101, .kernel_threads_s = 0, .steal_s = 0, .ours_s = 12, .wall_s = 1002};
  EXPECT_EQ(contention_between(before, below).other_cpus, 0);
  // A short run needs several ticks of other work, not one tick's rounding.
  CpuUse one_tick{.busy_s = 100.01, .kernel_threads_s = 0, .steal_s = 0, .ours_s = 10, .wall_s = 1000.02};
  EXPECT_FALSE(contention_between(before, one_tick).busy());
  CpuUse short_busy{.busy_s = 100.15, .kernel_threads_s = 0, .steal_s = 0, .ours_s = 10, .wall_s = 1000.2};
  EXPECT_TRUE(contention_between(before, short_busy).busy()) << "0.15 s of other work in 0.2 s";
}

}  // namespace
}  // namespace oslab
