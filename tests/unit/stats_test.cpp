#include "oslab/stats.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <numeric>

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
  // For n = 100 the 95% interval of the median is the 40th to 61st order statistic.
  RankInterval r = median_ci_ranks(100);
  EXPECT_EQ(r.low, 39u);
  EXPECT_EQ(r.high, 60u);
  // Small n: the whole range.
  RankInterval tiny = median_ci_ranks(3);
  EXPECT_EQ(tiny.low, 0u);
  EXPECT_EQ(tiny.high, 2u);
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

TEST(Ratio, GuardsAgainstZero) {
  EXPECT_DOUBLE_EQ(ratio(6, 3), 2);
  EXPECT_DOUBLE_EQ(ratio(6, 0), 0);
}

}  // namespace
}  // namespace oslab
