// Statistics of a sample set: every sample is kept; summaries never drop any.
#pragma once

#include <cstddef>
#include <span>
#include <vector>

namespace oslab {

struct Summary {
  size_t n = 0;
  double min = 0, p50 = 0, p90 = 0, p99 = 0, max = 0;
  double mean = 0, stddev = 0;  // stddev: sample standard deviation (n - 1)
  // Distribution-free 95% confidence interval of the median (binomial order statistics);
  // for very small n it is the whole range.
  double p50_ci_low = 0, p50_ci_high = 0;
};

// Percentile q in [0, 1] of sorted samples, linear interpolation between closest ranks
// (the definition numpy and R's type 7 use).
double percentile_sorted(std::span<const double> sorted, double q);

// Summarises any samples (need not be sorted). Empty input gives n = 0 and zeros.
Summary summarize(std::span<const double> samples);

// Ranks (0-based, inclusive) of the order statistics bounding a 95% CI of the median.
struct RankInterval {
  size_t low, high;
};
RankInterval median_ci_ranks(size_t n);

// Ratio a/b of two medians, or 0 when b is 0.
double ratio(double numerator, double denominator);

}  // namespace oslab
