#include "oslab/stats.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include <fmt/format.h>

namespace oslab {

double percentile_sorted(std::span<const double> sorted, double q) {
  if (sorted.empty()) return 0;
  q = std::clamp(q, 0.0, 1.0);
  double position = q * static_cast<double>(sorted.size() - 1);
  size_t below = static_cast<size_t>(std::floor(position));
  size_t above = std::min(below + 1, sorted.size() - 1);
  double fraction = position - static_cast<double>(below);
  return sorted[below] + (sorted[above] - sorted[below]) * fraction;
}

namespace {

// P(B < k) for B ~ Binomial(n, 1/2), exactly (through log-gamma) for moderate n.
double binomial_half_below(size_t n, size_t k) {
  double total = 0;
  const double log_half_n = static_cast<double>(n) * std::log(0.5);
  const double log_n_factorial = std::lgamma(static_cast<double>(n) + 1);
  for (size_t i = 0; i < k; ++i)
    total += std::exp(log_n_factorial - std::lgamma(static_cast<double>(i) + 1) -
                      std::lgamma(static_cast<double>(n - i) + 1) + log_half_n);
  return total;
}

}  // namespace

RankInterval median_ci_ranks(size_t n, double level) {
  if (n == 0) return {0, 0, 0};
  if (n == 1) return {0, 0, 0};
  if (n > 2000) {
    // Normal approximation to Binomial(n, 1/2): 1-based ranks n/2 -+ z sqrt(n)/2, rounded outwards.
    const double z = level >= 0.95 ? 1.959964 : 1.644854;
    const double half_width = z * std::sqrt(static_cast<double>(n)) / 2.0;
    const double centre = static_cast<double>(n) / 2.0;
    auto low = static_cast<size_t>(std::max(1.0, std::floor(centre - half_width)));
    auto high = static_cast<size_t>(std::min(static_cast<double>(n), std::ceil(centre + half_width) + 1));
    return {low - 1, high - 1, level};
  }
  // The interval [X(k), X(n+1-k)] (1-based) covers the median unless fewer than k, or more
  // than n-k, values fall below it: coverage = 1 - 2 P(B < k).
  size_t best = 1;
  for (size_t k = 1; k <= n / 2; ++k) {
    if (1.0 - 2.0 * binomial_half_below(n, k) >= level)
      best = k;
    else
      break;
  }
  return {best - 1, n - best, std::max(0.0, 1.0 - 2.0 * binomial_half_below(n, best))};
}

namespace {

Summary summarize_sorted(std::vector<double> sorted) {
  Summary summary;
  summary.n = sorted.size();
  if (sorted.empty()) return summary;
  summary.min = sorted.front();
  summary.max = sorted.back();
  summary.p50 = percentile_sorted(sorted, 0.50);
  summary.p90 = percentile_sorted(sorted, 0.90);
  summary.p99 = percentile_sorted(sorted, 0.99);
  summary.p999 = percentile_sorted(sorted, 0.999);
  summary.mean = std::accumulate(sorted.begin(), sorted.end(), 0.0) / static_cast<double>(sorted.size());
  if (sorted.size() > 1) {
    double squares = 0;
    for (double value : sorted) squares += (value - summary.mean) * (value - summary.mean);
    summary.stddev = std::sqrt(squares / static_cast<double>(sorted.size() - 1));
  }
  RankInterval ranks = median_ci_ranks(sorted.size());
  summary.p50_ci_low = sorted[ranks.low];
  summary.p50_ci_high = sorted[ranks.high];
  summary.ci_coverage = ranks.coverage;
  return summary;
}

double median_of_unsorted(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return percentile_sorted(values, 0.5);
}

}  // namespace

Summary summarize(std::span<const double> samples) {
  Summary summary = summarize_sorted([&] {
    std::vector<double> sorted(samples.begin(), samples.end());
    std::sort(sorted.begin(), sorted.end());
    return sorted;
  }());
  summary.modes = detect_modes(samples);
  return summary;
}

Summary summarize_blocks(std::span<const double> samples, std::span<const size_t> block_sizes) {
  Summary summary = summarize(samples);
  const size_t counted = std::accumulate(block_sizes.begin(), block_sizes.end(), size_t{0});
  if (block_sizes.empty() || counted != samples.size()) return summary;
  std::vector<double> block_medians;
  size_t start = 0;
  for (size_t size : block_sizes) {
    if (size > 0)
      block_medians.push_back(median_of_unsorted({samples.begin() + start, samples.begin() + start + size}));
    start += size;
  }
  summary.blocks = block_medians.size();
  std::sort(block_medians.begin(), block_medians.end());
  if (summary.p50 > 0) summary.block_spread = (block_medians.back() - block_medians.front()) / summary.p50;
  if (block_medians.size() < 3) return summary;
  RankInterval ranks = median_ci_ranks(block_medians.size());
  // The point estimate stays the median of every sample; the interval comes from the blocks.
  summary.p50_ci_low = std::min(block_medians[ranks.low], summary.p50);
  summary.p50_ci_high = std::max(block_medians[ranks.high], summary.p50);
  summary.ci_coverage = ranks.coverage;
  summary.ci_basis = fmt::format("medians of {} blocks", block_medians.size());
  return summary;
}

Modes detect_modes(std::span<const double> samples) {
  Modes modes;
  // Too few samples to tell two modes from noise (below 50, one mode in ten looks like two),
  // or values that cannot be logged.
  if (samples.size() < 50) return modes;
  std::vector<double> logs;
  logs.reserve(samples.size());
  for (double value : samples) {
    if (!(value > 0)) return modes;
    logs.push_back(std::log(value));
  }
  std::vector<double> sorted = logs;
  std::sort(sorted.begin(), sorted.end());
  const double lo = sorted.front(), hi = sorted.back();
  if (hi - lo < 1e-9) return modes;

  // A smoothed histogram of log(sample): half Silverman's bandwidth, so that two modes 1.3x
  // apart are not smoothed into one; the valley test below keeps noise from passing as a mode.
  constexpr int kBins = 256;
  const double n = static_cast<double>(sorted.size());
  const double mean = std::accumulate(sorted.begin(), sorted.end(), 0.0) / n;
  double squares = 0;
  for (double v : sorted) squares += (v - mean) * (v - mean);
  const double sd = std::sqrt(squares / (n - 1));
  const double iqr = percentile_sorted(sorted, 0.75) - percentile_sorted(sorted, 0.25);
  double spread = std::min(sd, iqr / 1.34);
  if (!(spread > 0)) spread = sd;
  const double bandwidth = 0.5 * 0.9 * spread * std::pow(n, -0.2);
  const double bin_width = (hi - lo) / kBins;
  std::vector<double> counts(kBins, 0);
  for (double v : sorted) counts[std::min(kBins - 1, static_cast<int>((v - lo) / bin_width))] += 1;
  const double sigma_bins = std::max(bandwidth / bin_width, 0.5);
  const int reach = static_cast<int>(std::ceil(4 * sigma_bins));
  std::vector<double> density(kBins, 0);
  for (int i = 0; i < kBins; ++i) {
    if (counts[i] == 0) continue;
    for (int j = std::max(0, i - reach); j <= std::min(kBins - 1, i + reach); ++j) {
      const double d = (j - i) / sigma_bins;
      density[j] += counts[i] * std::exp(-0.5 * d * d);
    }
  }
  // The two highest local maxima, and the lowest point between them.
  std::vector<int> peaks;
  for (int i = 0; i < kBins; ++i) {
    const double left = i > 0 ? density[i - 1] : -1, right = i + 1 < kBins ? density[i + 1] : -1;
    if (density[i] > left && density[i] >= right) peaks.push_back(i);
  }
  if (peaks.size() < 2) return modes;
  std::sort(peaks.begin(), peaks.end(), [&](int a, int b) { return density[a] > density[b]; });
  int first = std::min(peaks[0], peaks[1]), second = std::max(peaks[0], peaks[1]);
  int valley = first;
  for (int i = first; i <= second; ++i)
    if (density[i] < density[valley]) valley = i;
  const double smaller_peak = std::min(density[first], density[second]);
  if (density[valley] > 0.5 * smaller_peak) return modes;

  const double cut = lo + (valley + 0.5) * bin_width;
  std::vector<double> low_mode, high_mode;
  for (double v : sorted) (v < cut ? low_mode : high_mode).push_back(v);
  const double low_fraction = static_cast<double>(low_mode.size()) / n;
  if (low_fraction < 0.05 || low_fraction > 0.95) return modes;

  auto mean_sd = [](const std::vector<double>& values) {
    const double m = std::accumulate(values.begin(), values.end(), 0.0) / static_cast<double>(values.size());
    double s = 0;
    for (double v : values) s += (v - m) * (v - m);
    return std::pair{m, values.size() > 1 ? s / static_cast<double>(values.size() - 1) : 0.0};
  };
  auto [low_mean, low_var] = mean_sd(low_mode);
  auto [high_mean, high_var] = mean_sd(high_mode);
  modes.multimodal = true;
  modes.low_p50 = std::exp(percentile_sorted(low_mode, 0.5));
  modes.high_p50 = std::exp(percentile_sorted(high_mode, 0.5));
  modes.low_fraction = low_fraction;
  modes.separation = std::sqrt(2.0) * (high_mean - low_mean) / std::sqrt(std::max(low_var + high_var, 1e-300));
  size_t same = 0;
  for (size_t i = 1; i < logs.size(); ++i) same += (logs[i] < cut) == (logs[i - 1] < cut);
  modes.persistence = static_cast<double>(same) / static_cast<double>(logs.size() - 1);
  return modes;
}

Estimate median_of(const Summary& summary) {
  return {summary.p50, summary.p50_ci_low, summary.p50_ci_high};
}

Estimate ratio_of(const Summary& numerator, const Summary& denominator) {
  Estimate e;
  e.value = ratio(numerator.p50, denominator.p50);
  e.low = ratio(numerator.p50_ci_low, denominator.p50_ci_high);
  e.high = denominator.p50_ci_low > 0 ? numerator.p50_ci_high / denominator.p50_ci_low : e.value;
  e.low = std::min(e.low, e.value);
  e.high = std::max(e.high, e.value);
  return e;
}

Estimate difference_of(const Summary& numerator, const Summary& denominator) {
  return {numerator.p50 - denominator.p50, numerator.p50_ci_low - denominator.p50_ci_high,
          numerator.p50_ci_high - denominator.p50_ci_low};
}

double ratio(double numerator, double denominator) {
  return denominator == 0 ? 0 : numerator / denominator;
}

}  // namespace oslab
