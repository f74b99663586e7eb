// Statistics of a sample set: every sample is kept; summaries never drop any.
//
// Consecutive samples are not independent (a run sticks to one placement, one cache state,
// one frequency for dozens of samples), so a confidence interval computed as if they were
// claims a precision the figure does not have. Where samples were taken in blocks, the
// interval of the median is computed over the blocks' medians instead, and a sample that
// falls into two persistent modes is detected and said so.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <vector>

namespace oslab {

// Two clusters of samples far enough apart to be two behaviours, not one spread.
struct Modes {
  bool multimodal = false;
  double low_p50 = 0, high_p50 = 0;  // median of each mode
  double low_fraction = 0;           // share of the samples in the lower mode
  double separation = 0;             // Ashman's D on log(sample): above 2.5 the modes are clearly apart
  // How much a mode persists: the probability that the next sample is in the same mode as
  // this one, against the 0.5-ish of independent draws. Near 1: whole stretches of the run
  // in one mode, and a run can land in either.
  double persistence = 0;
};

struct Summary {
  size_t n = 0;
  double min = 0, p50 = 0, p90 = 0, p99 = 0, p999 = 0, max = 0;
  double mean = 0, stddev = 0;  // stddev: sample standard deviation (n - 1)
  // Distribution-free interval of the median (binomial order statistics) and the coverage
  // it really has: 0.95 or a little more where n allows, less where n is too small (n = 3
  // gives [min, max] with 75%).
  double p50_ci_low = 0, p50_ci_high = 0;
  double ci_coverage = 0;
  std::string ci_basis = "samples";  // "samples", or "medians of N blocks"
  size_t blocks = 0;                 // blocks the samples were taken in (0: not in blocks)
  // (max - min) of the block medians / the median: how much the figure moved within the run.
  double block_spread = 0;
  Modes modes;
};

// Percentile q in [0, 1] of sorted samples, linear interpolation between closest ranks
// (the definition numpy and R's type 7 use).
double percentile_sorted(std::span<const double> sorted, double q);

// Ranks (0-based, inclusive) of the order statistics that bound a confidence interval of
// the median of n independent values, with the coverage that interval really has:
// the narrowest symmetric pair whose exact binomial coverage is at least `level`, or
// [min, max] with its (lower) coverage when n is too small for `level`.
struct RankInterval {
  size_t low = 0, high = 0;
  double coverage = 0;
};
RankInterval median_ci_ranks(size_t n, double level = 0.95);

// Summarises any samples (need not be sorted). Empty input gives n = 0 and zeros.
Summary summarize(std::span<const double> samples);

// The same, for samples taken in consecutive blocks of the given sizes (they must add up to
// samples.size()): percentiles over every sample, the interval of the median over the
// blocks' medians (when there are at least 3 blocks; otherwise over the samples).
Summary summarize_blocks(std::span<const double> samples, std::span<const size_t> block_sizes);

// Finds two modes in the samples (1-D two-means on their logarithms), if there are two.
Modes detect_modes(std::span<const double> samples);

// A derived figure with an interval: a ratio of two medians, a difference, a fraction.
struct Estimate {
  double value = 0, low = 0, high = 0;
};

// numerator / denominator of two medians, with the conservative interval
// [low_n / high_d, high_n / low_d] built from the two medians' intervals.
Estimate ratio_of(const Summary& numerator, const Summary& denominator);

// numerator - denominator of two medians, interval [low_n - high_d, high_n - low_d].
Estimate difference_of(const Summary& numerator, const Summary& denominator);

// The median with its interval.
Estimate median_of(const Summary& summary);

// Ratio a/b, or 0 when b is 0.
double ratio(double numerator, double denominator);

}  // namespace oslab
