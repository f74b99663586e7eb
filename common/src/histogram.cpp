#include "oslab/histogram.hpp"

#include <algorithm>
#include <bit>
#include <cmath>

namespace oslab {

namespace {
constexpr size_t kSub = size_t{1} << LogHistogram::kSubBucketBits;
// Values below kSub have a bucket each; above, each power of two has kSub buckets.
constexpr size_t kBuckets = (64 - LogHistogram::kSubBucketBits + 1) * kSub;
}  // namespace

LogHistogram::LogHistogram() : counts_(kBuckets, 0) {}

size_t LogHistogram::index_of(uint64_t value) noexcept {
  if (value < kSub) return static_cast<size_t>(value);
  const int exponent = 63 - std::countl_zero(value);  // >= kSubBucketBits
  const int shift = exponent - LogHistogram::kSubBucketBits;
  const uint64_t mantissa = value >> shift;  // in [kSub, 2 kSub)
  return static_cast<size_t>(shift + 1) * kSub + static_cast<size_t>(mantissa - kSub);
}

double LogHistogram::lower_bound_of(size_t index) noexcept {
  if (index < kSub) return static_cast<double>(index);
  const size_t group = index / kSub;  // >= 1
  const double mantissa = static_cast<double>(kSub + index % kSub);
  return std::ldexp(mantissa, static_cast<int>(group) - 1);
}

double LogHistogram::width_of(size_t index) noexcept {
  if (index < kSub) return 1;
  return std::ldexp(1.0, static_cast<int>(index / kSub) - 1);
}

void LogHistogram::record(double value) noexcept {
  if (!(value >= 0)) value = 0;
  const double clamped = std::min(value, 1.8e19);
  ++counts_[index_of(static_cast<uint64_t>(clamped))];
  if (count_ == 0 || value < min_) min_ = value;
  if (count_ == 0 || value > max_) max_ = value;
  ++count_;
  sum_ += value;
  sum_squares_ += value * value;
}

void LogHistogram::merge(const LogHistogram& other) {
  if (other.count_ == 0) return;
  for (size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
  min_ = count_ ? std::min(min_, other.min_) : other.min_;
  max_ = count_ ? std::max(max_, other.max_) : other.max_;
  count_ += other.count_;
  sum_ += other.sum_;
  sum_squares_ += other.sum_squares_;
}

double LogHistogram::value_at_rank(uint64_t rank) const noexcept {
  uint64_t seen = 0;
  for (size_t i = 0; i < counts_.size(); ++i) {
    seen += counts_[i];
    if (seen > rank) {
      const double middle = i < kSub ? lower_bound_of(i) : lower_bound_of(i) + width_of(i) / 2;
      return std::clamp(middle, min_, max_);
    }
  }
  return max_;
}

double LogHistogram::percentile(double q) const noexcept {
  if (count_ == 0) return 0;
  q = std::clamp(q, 0.0, 1.0);
  return value_at_rank(static_cast<uint64_t>(std::llround(q * static_cast<double>(count_ - 1))));
}

Summary LogHistogram::summary() const {
  Summary s;
  s.n = count_;
  if (count_ == 0) return s;
  s.min = min_;
  s.max = max_;
  s.p50 = percentile(0.5);
  s.p90 = percentile(0.9);
  s.p99 = percentile(0.99);
  s.p999 = percentile(0.999);
  s.mean = mean();
  if (count_ > 1) {
    const double n = static_cast<double>(count_);
    s.stddev = std::sqrt(std::max(0.0, (sum_squares_ - sum_ * sum_ / n) / (n - 1)));
  }
  RankInterval ranks = median_ci_ranks(count_);
  s.p50_ci_low = std::min(value_at_rank(ranks.low), s.p50);
  s.p50_ci_high = std::max(value_at_rank(ranks.high), s.p50);
  s.ci_coverage = ranks.coverage;
  s.ci_basis = "samples (log-bucketed histogram, values within 0.8%)";
  return s;
}

std::vector<std::pair<double, uint64_t>> LogHistogram::buckets() const {
  std::vector<std::pair<double, uint64_t>> result;
  for (size_t i = 0; i < counts_.size(); ++i)
    if (counts_[i] != 0) result.emplace_back(lower_bound_of(i), counts_[i]);
  return result;
}

}  // namespace oslab
