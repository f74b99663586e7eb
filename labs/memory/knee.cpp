#include "knee.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

namespace oslab::memory {

std::optional<Knee> find_knee(std::span<const CurvePoint> points, double min_distance) {
  if (points.size() < 3) return std::nullopt;
  std::vector<size_t> order(points.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return points[a].x < points[b].x; });
  const auto [y_min, y_max] = std::minmax_element(points.begin(), points.end(),
                                                  [](const CurvePoint& a, const CurvePoint& b) { return a.y < b.y; });
  const double x_low = points[order.front()].x, x_span = points[order.back()].x - x_low;
  const double y_low = y_min->y, y_span = y_max->y - y_min->y;
  if (!(x_span > 0) || !(y_span > 0)) return std::nullopt;
  auto scaled = [&](size_t i) { return CurvePoint{(points[i].x - x_low) / x_span, (points[i].y - y_low) / y_span}; };
  const CurvePoint first = scaled(order.front()), last = scaled(order.back());
  const double dx = last.x - first.x, dy = last.y - first.y, length = std::hypot(dx, dy);
  std::optional<Knee> best;
  for (size_t k = 1; k + 1 < order.size(); ++k) {
    const CurvePoint p = scaled(order[k]);
    const double distance = std::abs(dx * (p.y - first.y) - dy * (p.x - first.x)) / length;
    if (!best || distance > best->distance) best = Knee{order[k], points[order[k]].x, points[order[k]].y, distance};
  }
  if (!best || best->distance < min_distance) return std::nullopt;
  return best;
}

}  // namespace oslab::memory
