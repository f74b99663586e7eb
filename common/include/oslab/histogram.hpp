// A log-bucketed histogram for runs that take millions of samples (an echo server's load
// generator, a wake-up latency run): 128 buckets per power of two, so every value is kept to
// within 1/128 (0.8%) of itself and percentiles are exact to that precision; count, min,
// max and mean are exact. Values are non-negative (nanoseconds).
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "oslab/stats.hpp"

namespace oslab {

class LogHistogram {
 public:
  static constexpr int kSubBucketBits = 7;
  static constexpr double kRelativeError = 1.0 / (1 << kSubBucketBits);

  LogHistogram();
  void record(double value) noexcept;
  void merge(const LogHistogram& other);

  uint64_t count() const noexcept { return count_; }
  double min() const noexcept { return count_ ? min_ : 0; }
  double max() const noexcept { return count_ ? max_ : 0; }
  double mean() const noexcept { return count_ ? sum_ / static_cast<double>(count_) : 0; }
  // The value at quantile q: the middle of the bucket that holds that rank (within
  // kRelativeError of the true sample), clamped to [min, max].
  double percentile(double q) const noexcept;
  // Summary with percentiles and the interval of the median from the buckets.
  Summary summary() const;
  // (lower bound, count) of every non-empty bucket, in order.
  std::vector<std::pair<double, uint64_t>> buckets() const;

 private:
  static size_t index_of(uint64_t value) noexcept;
  static double lower_bound_of(size_t index) noexcept;
  static double width_of(size_t index) noexcept;
  double value_at_rank(uint64_t rank) const noexcept;  // 0-based rank

  std::vector<uint64_t> counts_;
  uint64_t count_ = 0;
  double min_ = 0, max_ = 0, sum_ = 0, sum_squares_ = 0;
};

}  // namespace oslab
