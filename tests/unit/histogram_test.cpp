#include "oslab/histogram.hpp"

#include <algorithm>
#include <random>

#include <gtest/gtest.h>

namespace oslab {
namespace {

TEST(LogHistogram, PercentilesWithinItsPrecision) {
  std::mt19937_64 random(5);
  std::lognormal_distribution<double> latency(std::log(20'000.0), 0.8);
  std::vector<double> samples(200'000);
  LogHistogram histogram;
  for (double& x : samples) {
    x = latency(random);
    histogram.record(x);
  }
  Summary exact = summarize(samples);
  Summary bucketed = histogram.summary();
  EXPECT_EQ(bucketed.n, samples.size());
  EXPECT_DOUBLE_EQ(bucketed.min, exact.min);
  EXPECT_DOUBLE_EQ(bucketed.max, exact.max);
  EXPECT_NEAR(bucketed.mean, exact.mean, exact.mean * 1e-9);
  for (auto [b, e] : {std::pair{bucketed.p50, exact.p50},
                      {bucketed.p90, exact.p90},
                      {bucketed.p99, exact.p99},
                      {bucketed.p999, exact.p999}})
    EXPECT_NEAR(b, e, e * LogHistogram::kRelativeError) << e;
  EXPECT_NEAR(bucketed.stddev, exact.stddev, exact.stddev * 1e-6);
  EXPECT_LE(bucketed.p50_ci_low, bucketed.p50);
  EXPECT_GE(bucketed.p50_ci_high, bucketed.p50);
}

TEST(LogHistogram, SmallValuesAreExactAndBucketsAreOrdered) {
  LogHistogram histogram;
  for (int v : {0, 1, 2, 3, 127, 128, 129}) histogram.record(v);
  EXPECT_DOUBLE_EQ(histogram.percentile(0), 0);
  EXPECT_DOUBLE_EQ(histogram.percentile(1), 129);
  auto buckets = histogram.buckets();
  EXPECT_TRUE(std::is_sorted(buckets.begin(), buckets.end()));
  EXPECT_EQ(buckets.front(), (std::pair<double, uint64_t>{0, 1}));
  uint64_t total = 0;
  for (const auto& [lower, count] : buckets) total += count;
  EXPECT_EQ(total, 7u);
}

TEST(LogHistogram, MergesAndCoversHugeValues) {
  LogHistogram a, b;
  a.record(10);
  b.record(1e18);
  a.merge(b);
  EXPECT_EQ(a.count(), 2u);
  EXPECT_DOUBLE_EQ(a.max(), 1e18);
  EXPECT_NEAR(a.percentile(1), 1e18, 1e18 * LogHistogram::kRelativeError);
  LogHistogram empty;
  EXPECT_EQ(empty.summary().n, 0u);
  EXPECT_DOUBLE_EQ(empty.percentile(0.5), 0);
}

}  // namespace
}  // namespace oslab
