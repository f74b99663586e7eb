// The reconstruction of who ran when, on synthetic stamps whose answer is known.
#include "oslab/timeline.hpp"

#include <gtest/gtest.h>

namespace oslab {
namespace {

// Stamps every `step` ns from `from` to `to` (inclusive) into the log.
void spin(RunLog& log, int64_t from, int64_t to, int64_t step = 10) {
  for (int64_t t = from; t <= to; t += step) ASSERT_TRUE(log.stamp(t));
}

TEST(RunLog, AGapLongerThanTheThresholdEndsARun) {
  std::vector<CpuRun> storage(8);
  RunLog log(storage, 2'000);
  spin(log, 0, 1'000);
  spin(log, 3'000, 4'000);  // 2000 after the last stamp: not longer than the gap, same run
  spin(log, 6'010, 7'000);  // 2010 after: a new run
  log.finish();
  ASSERT_EQ(log.runs().size(), 2u);
  EXPECT_EQ(log.runs()[0].start_ns, 0);
  EXPECT_EQ(log.runs()[0].end_ns, 4'000);
  EXPECT_EQ(log.runs()[1].start_ns, 6'010);
  EXPECT_EQ(log.runs()[1].end_ns, 7'000);
  EXPECT_FALSE(log.overflowed());
}

TEST(RunLog, SaysWhenItIsFull) {
  std::vector<CpuRun> storage(1);
  RunLog log(storage, 100);
  EXPECT_TRUE(log.stamp(0));
  EXPECT_TRUE(log.stamp(50));
  EXPECT_TRUE(log.stamp(500));   // closes [0, 50], the one run it can hold
  EXPECT_FALSE(log.stamp(900));  // would close [500, 500]: no room
  EXPECT_TRUE(log.overflowed());
  ASSERT_EQ(log.runs().size(), 1u);
  EXPECT_EQ(log.runs()[0].end_ns, 50);
}

TEST(RunLog, LivesInPlainMemory) {
  static_assert(std::is_trivially_copyable_v<RunLog>, "a worker process hands its log back through shared memory");
}

// A: [0,100] [150,300] (an interrupt between), B: [400,700], A: [800,1000], B: [1100,1200].
std::vector<std::vector<CpuRun>> two_workers() {
  return {{{0, 100}, {150, 300}, {800, 1000}}, {{400, 700}, {1100, 1200}}};
}

Timeline rebuild(const std::vector<std::vector<CpuRun>>& runs, int64_t from, int64_t to) {
  std::vector<std::span<const CpuRun>> spans(runs.begin(), runs.end());
  return reconstruct(spans, from, to);
}

TEST(Reconstruct, SlicesSwitchesAndGaps) {
  const Timeline t = rebuild(two_workers(), 0, 1'200);
  ASSERT_EQ(t.slices.size(), 4u);
  EXPECT_EQ(t.slices[0].worker, 0u);
  EXPECT_EQ(t.slices[0].start_ns, 0);
  EXPECT_EQ(t.slices[0].end_ns, 300);  // the interrupt does not end A's slice
  EXPECT_EQ(t.slices[0].on_cpu_ns, 250);
  EXPECT_EQ(t.slices[0].outside_ns, 50);
  EXPECT_EQ(t.slices[0].breaks, 1u);
  EXPECT_EQ(t.breaks, 1u);
  EXPECT_EQ(t.slices[1].worker, 1u);
  EXPECT_EQ(t.slices[2].worker, 0u);
  EXPECT_EQ(t.slices[3].worker, 1u);
  EXPECT_EQ(t.switches, 3u);
  EXPECT_EQ(t.idle_between_ns, 300);
  EXPECT_EQ(t.on_cpu_ns, (std::vector<int64_t>{450, 400}));
  EXPECT_EQ(t.slices_of, (std::vector<size_t>{2, 2}));
  EXPECT_EQ(t.overlaps, 0u);
}

TEST(Reconstruct, OnlySlicesBoundedBySwitchesAreComplete) {
  const Timeline t = rebuild(two_workers(), 0, 1'200);
  EXPECT_FALSE(t.slices.front().complete);
  EXPECT_TRUE(t.slices[1].complete);
  EXPECT_TRUE(t.slices[2].complete);
  EXPECT_FALSE(t.slices.back().complete);
  EXPECT_EQ(t.complete_slice_lengths(), (std::vector<double>{300, 200}));
  EXPECT_EQ(t.complete_slice_lengths(1), (std::vector<double>{300}));
}

TEST(Reconstruct, ClipsToTheWindow) {
  const Timeline t = rebuild(two_workers(), 50, 1'150);
  ASSERT_EQ(t.slices.size(), 4u);
  EXPECT_EQ(t.slices.front().start_ns, 50);
  EXPECT_EQ(t.slices.back().end_ns, 1'150);
  EXPECT_EQ(t.on_cpu_ns, (std::vector<int64_t>{400, 350}));
  // A window that holds only A's second slice.
  const Timeline inner = rebuild(two_workers(), 750, 1'050);
  ASSERT_EQ(inner.slices.size(), 1u);
  EXPECT_EQ(inner.switches, 0u);
  EXPECT_TRUE(inner.complete_slice_lengths().empty());
}

TEST(Reconstruct, RoundRobinOfThree) {
  // A, B, C take 100 ns turns from 0 to 900, 10 ns apart.
  std::vector<std::vector<CpuRun>> runs(3);
  for (int turn = 0; turn < 9; ++turn) runs[turn % 3].push_back({turn * 100 + 10, turn * 100 + 100});
  const Timeline t = rebuild(runs, 0, 900);
  EXPECT_EQ(t.switches, 8u);
  EXPECT_DOUBLE_EQ(t.switches_per_second(), 8 / 900e-9);
  EXPECT_EQ(t.complete_slice_lengths(), std::vector<double>(7, 90));
  EXPECT_EQ(t.slices_of, (std::vector<size_t>{3, 3, 3}));
}

TEST(Reconstruct, ALoneWorkerNeverSwitches) {
  const std::vector<std::vector<CpuRun>> runs = {{{0, 500}, {510, 1'000}}, {}, {{2'000, 2'100}}};
  const Timeline t = rebuild(runs, 0, 1'000);
  ASSERT_EQ(t.slices.size(), 1u);
  EXPECT_EQ(t.switches, 0u);
  EXPECT_EQ(t.on_cpu_ns, (std::vector<int64_t>{990, 0, 0}));
}

TEST(Reconstruct, CountsRunsThatOverlap) {
  // Two workers at once: they were on two CPUs, not one.
  const std::vector<std::vector<CpuRun>> runs = {{{0, 500}}, {{100, 600}}};
  const Timeline t = rebuild(runs, 0, 1'000);
  EXPECT_EQ(t.overlaps, 1u);
  ASSERT_EQ(t.slices.size(), 2u);
  EXPECT_EQ(t.slices[1].start_ns, 500);
}

TEST(Reconstruct, NothingToReconstruct) {
  const Timeline t = rebuild({{}, {}}, 0, 1'000);
  EXPECT_TRUE(t.slices.empty());
  EXPECT_EQ(t.switches, 0u);
  EXPECT_DOUBLE_EQ(t.switches_per_second(), 0);
}

TEST(Render, OneLetterPerBucket) {
  const Timeline t = rebuild(two_workers(), 0, 1'200);
  EXPECT_EQ(render(t, 0, 100, 12, 1), (std::vector<std::string>{"AAA.BBB.AA.B"}));
  EXPECT_EQ(render(t, 0, 100, 5, 3), (std::vector<std::string>{"AAA.B", "BB.AA", ".B"}));
  EXPECT_EQ(render(t, 0, 400, 3, 1), (std::vector<std::string>{"ABA"}));
}

TEST(Render, LettersForManyWorkers) {
  EXPECT_EQ(worker_letter(0), 'A');
  EXPECT_EQ(worker_letter(25), 'Z');
  EXPECT_EQ(worker_letter(26), 'a');
  EXPECT_EQ(worker_letter(99), '#');
}

}  // namespace
}  // namespace oslab
