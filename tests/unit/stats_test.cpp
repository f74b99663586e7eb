#include "oslab/stats.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <numeric>
#include <random>

namespace oslab {
namespace {

TEST(Percentile, InterpolatesBetweenClosestRanks) {
  std::vector<double> sorted = {10, 20, 30, 40};
  EXPECT_DOUBLE_EQ(percentile_sorted(sorted, 0.0), 10);
  EXPECT_DOUBLE_EQ(percentile_sorted(sorted, 1.0), 40);
  EXPECT_DOUBLE_EQ(percentile_sorted(sorted, 0.5), 25);
  EXPECT_DOUBLE_EQ(percentile_sorted(sorted, 0.9), 37);  // numpy: 37.0
  EXPECT_DOUBLE_EQ(percentile_sorted(std::vector<double>{5}, 0.99), 5);
  EXPECT_DOUBLE_EQ(percentile_sorted(std::vector<double>{}, 0.5), 0);
}

TEST(Summarize, KnownValues) {
  std::vector<double> samples = {9, 1, 5, 3, 7};  // unsorted on purpose
  Summary s = summarize(samples);
  EXPECT_EQ(s.n, 5u);
  EXPECT_DOUBLE_EQ(s.min, 1);
  EXPECT_DOUBLE_EQ(s.max, 9);
  EXPECT_DOUBLE_EQ(s.p50, 5);
  EXPECT_DOUBLE_EQ(s.mean, 5);
  EXPECT_DOUBLE_EQ(s.stddev, std::sqrt(10.0));  // sample stddev of 1,3,5,7,9
  EXPECT_DOUBLE_EQ(s.p90, 8.2);
  EXPECT_LE(s.p50_ci_low, s.p50);
  EXPECT_GE(s.p50_ci_high, s.p50);
}

TEST(Summarize, KeepsOutliers) {
  std::vector<double> samples(99, 100.0);
  samples.push_back(1e9);
  Summary s = summarize(samples);
  EXPECT_DOUBLE_EQ(s.max, 1e9);
  EXPECT_DOUBLE_EQ(s.p50, 100);
  EXPECT_GT(s.mean, 1e6);
}

TEST(Summarize, EmptyAndSingle) {
  EXPECT_EQ(summarize(std::vector<double>{}).n, 0u);
  Summary one = summarize(std::vector<double>{42});
  EXPECT_DOUBLE_EQ(one.p50, 42);
  EXPECT_DOUBLE_EQ(one.stddev, 0);
  EXPECT_DOUBLE_EQ(one.p50_ci_low, 42);
  EXPECT_DOUBLE_EQ(one.p50_ci_high, 42);
}

TEST(MedianCi, MatchesTheBinomialTable) {
  // For n = 100 the 95% interval of the median is the 40th to 61st order statistic (96.5%).
  RankInterval r = median_ci_ranks(100);
  EXPECT_EQ(r.low, 39u);
  EXPECT_EQ(r.high, 60u);
  EXPECT_NEAR(r.coverage, 0.9648, 0.0005);
  // Small n: the whole range, with the coverage it really has.
  RankInterval tiny = median_ci_ranks(3);
  EXPECT_EQ(tiny.low, 0u);
  EXPECT_EQ(tiny.high, 2u);
  EXPECT_DOUBLE_EQ(tiny.coverage, 0.75);
  EXPECT_DOUBLE_EQ(median_ci_ranks(5).coverage, 1 - 2.0 / 32);
  // From n = 6 on, [min, max] reaches 95%: 1 - 2/64.
  EXPECT_GE(median_ci_ranks(6).coverage, 0.95);
  // The normal approximation takes over for large n and agrees with the exact ranks near the switch.
  RankInterval exact = median_ci_ranks(2000), approximate = median_ci_ranks(2001);
  EXPECT_NEAR(static_cast<double>(exact.low), static_cast<double>(approximate.low), 2);
}

TEST(MedianCi, SummaryReportsItsCoverage) {
  Summary s = summarize(std::vector<double>{3, 1, 2});
  EXPECT_DOUBLE_EQ(s.ci_coverage, 0.75);
  EXPECT_EQ(s.ci_basis, "samples");
}

TEST(MedianCi, CoversTheMedianForEveryN) {
  for (size_t n = 1; n < 500; ++n) {
    RankInterval r = median_ci_ranks(n);
    EXPECT_LE(r.low, (n - 1) / 2) << n;
    EXPECT_GE(r.high, n / 2) << n;
    EXPECT_LT(r.high, n) << n;
  }
}

TEST(MedianCi, NarrowsAsSamplesGrow) {
  std::vector<double> samples(1000);
  std::iota(samples.begin(), samples.end(), 0.0);
  Summary s1000 = summarize(samples);
  Summary s100 = summarize(std::span<const double>(samples).subspan(0, 100));
  EXPECT_LT((s1000.p50_ci_high - s1000.p50_ci_low) / 1000, (s100.p50_ci_high - s100.p50_ci_low) / 100);
}

// Independent samples in blocks: the interval over block medians covers the true median about
// 95% of the time (it is conservative: at least 95% for 20 blocks, whose exact coverage is 95.9%).
TEST(BlockCi, CoversTheMedianOfIndependentSamples) {
  std::mt19937_64 random(1);
  std::normal_distribution<double> normal(100, 10);
  int covered = 0;
  const int trials = 1000;
  for (int t = 0; t < trials; ++t) {
    std::vector<double> samples(200);
    for (double& x : samples) x = normal(random);
    std::vector<size_t> blocks(20, 10);
    Summary s = summarize_blocks(samples, blocks);
    covered += s.p50_ci_low <= 100 && 100 <= s.p50_ci_high;
  }
  EXPECT_GE(covered, trials * 93 / 100);
  EXPECT_LE(covered, trials * 99 / 100);
}

// Two persistent modes, as an unpinned run on two CPUs shows: 60% of the run in the fast
// mode, then 40% in the slow one. The sample-based interval is narrow and wrong; over blocks
// it widens to take in both modes, and the modes are detected and found persistent.
std::vector<double> persistent_two_modes(std::mt19937_64& random, size_t n, double fast_share) {
  std::normal_distribution<double> fast(145, 3), slow(190, 4);
  std::vector<double> samples(n);
  for (size_t i = 0; i < n; ++i)
    samples[i] = i < static_cast<size_t>(fast_share * static_cast<double>(n)) ? fast(random) : slow(random);
  return samples;
}

TEST(BlockCi, WidensOverPersistentModes) {
  std::mt19937_64 random(2);
  std::vector<double> samples = persistent_two_modes(random, 200, 0.6);
  Summary flat = summarize(samples);
  Summary blocked = summarize_blocks(samples, std::vector<size_t>(10, 20));
  EXPECT_LT(flat.p50_ci_high - flat.p50_ci_low, 10);
  EXPECT_GT(blocked.p50_ci_high - blocked.p50_ci_low, 30) << blocked.p50_ci_low << " .. " << blocked.p50_ci_high;
  EXPECT_EQ(blocked.blocks, 10u);
  EXPECT_EQ(blocked.ci_basis, "medians of 10 blocks");
  EXPECT_GT(blocked.block_spread, 0.2);
  EXPECT_TRUE(blocked.modes.multimodal);
  EXPECT_NEAR(blocked.modes.low_p50, 145, 3);
  EXPECT_NEAR(blocked.modes.high_p50, 190, 3);
  EXPECT_NEAR(blocked.modes.low_fraction, 0.6, 0.02);
  EXPECT_GT(blocked.modes.persistence, 0.95);
}

TEST(BlockCi, FallsBackToSamplesWithFewBlocksOrAMismatch) {
  std::vector<double> samples = {1, 2, 3, 4, 5, 6};
  EXPECT_EQ(summarize_blocks(samples, std::vector<size_t>{3, 3}).ci_basis, "samples");
  EXPECT_EQ(summarize_blocks(samples, std::vector<size_t>{2, 2}).ci_basis, "samples");  // does not add up
  EXPECT_EQ(summarize_blocks(samples, std::vector<size_t>{2, 2, 2}).ci_basis, "medians of 3 blocks");
}

TEST(Modes, FindsTwoInterleavedModes) {
  std::mt19937_64 random(3);
  std::normal_distribution<double> fast(145, 4), slow(190, 5);
  std::bernoulli_distribution coin(0.5);
  std::vector<double> samples(300);
  for (double& x : samples) x = coin(random) ? fast(random) : slow(random);
  Modes m = detect_modes(samples);
  EXPECT_TRUE(m.multimodal);
  EXPECT_NEAR(m.persistence, 0.5, 0.1);  // independent draws switch mode half the time
}

// One mode, however skewed or small the sample, is one mode: false alarms stay rare.
TEST(Modes, RarelyFindsTwoInOne) {
  std::mt19937_64 random(4);
  for (size_t n : {30, 60, 200, 2000}) {
    int false_alarms = 0;
    for (int trial = 0; trial < 200; ++trial) {
      std::lognormal_distribution<double> skewed(std::log(100.0), 0.15);
      std::vector<double> samples(n);
      for (double& x : samples) x = skewed(random);
      false_alarms += detect_modes(samples).multimodal;
    }
    EXPECT_LE(false_alarms, 10) << "n = " << n;
  }
}

TEST(Modes, TooFewSamplesOrOneValueAreNotTwoModes) {
  EXPECT_FALSE(detect_modes(std::vector<double>{1, 1, 1, 9, 9, 9}).multimodal);
  EXPECT_FALSE(detect_modes(std::vector<double>(100, 5.0)).multimodal);
}

TEST(Estimate, RatioAndDifferenceCarryTheIntervals) {
  Summary a, b;
  a.p50 = 200, a.p50_ci_low = 180, a.p50_ci_high = 220;
  b.p50 = 100, b.p50_ci_low = 90, b.p50_ci_high = 110;
  Estimate r = ratio_of(a, b);
  EXPECT_DOUBLE_EQ(r.value, 2);
  EXPECT_DOUBLE_EQ(r.low, 180.0 / 110);
  EXPECT_DOUBLE_EQ(r.high, 220.0 / 90);
  Estimate d = difference_of(a, b);
  EXPECT_DOUBLE_EQ(d.value, 100);
  EXPECT_DOUBLE_EQ(d.low, 70);
  EXPECT_DOUBLE_EQ(d.high, 130);
}

TEST(Ratio, GuardsAgainstZero) {
  EXPECT_DOUBLE_EQ(ratio(6, 3), 2);
  EXPECT_DOUBLE_EQ(ratio(6, 0), 0);
}

}  // namespace
}  // namespace oslab
