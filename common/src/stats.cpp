#include "oslab/stats.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

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

RankInterval median_ci_ranks(size_t n) {
  if (n == 0) return {0, 0};
  // Normal approximation to Binomial(n, 1/2): ranks n/2 -+ 1.96 sqrt(n)/2 (1-based),
  // widened to the whole range when n is too small for it.
  double half_width = 1.96 * std::sqrt(static_cast<double>(n)) / 2.0;
  double centre = static_cast<double>(n) / 2.0;
  long low = static_cast<long>(std::floor(centre - half_width));      // 1-based rank
  long high = static_cast<long>(std::ceil(centre + half_width)) + 1;  // 1-based rank
  low = std::max(low, 1L);
  high = std::min(high, static_cast<long>(n));
  return {static_cast<size_t>(low - 1), static_cast<size_t>(high - 1)};
}

Summary summarize(std::span<const double> samples) {
  Summary summary;
  summary.n = samples.size();
  if (samples.empty()) return summary;
  std::vector<double> sorted(samples.begin(), samples.end());
  std::sort(sorted.begin(), sorted.end());
  summary.min = sorted.front();
  summary.max = sorted.back();
  summary.p50 = percentile_sorted(sorted, 0.50);
  summary.p90 = percentile_sorted(sorted, 0.90);
  summary.p99 = percentile_sorted(sorted, 0.99);
  summary.mean = std::accumulate(sorted.begin(), sorted.end(), 0.0) / static_cast<double>(sorted.size());
  if (sorted.size() > 1) {
    double squares = 0;
    for (double value : sorted) squares += (value - summary.mean) * (value - summary.mean);
    summary.stddev = std::sqrt(squares / static_cast<double>(sorted.size() - 1));
  }
  RankInterval ranks = median_ci_ranks(sorted.size());
  summary.p50_ci_low = sorted[ranks.low];
  summary.p50_ci_high = sorted[ranks.high];
  return summary;
}

double ratio(double numerator, double denominator) {
  return denominator == 0 ? 0 : numerator / denominator;
}

}  // namespace oslab
