// Buggy solution (window-one-too-long): W(D, t) takes refs[t-D .. t]: D+1 references.
// Not for students: `scripts/oslab handout` leaves it out.
#include "working_set.hpp"

#include <algorithm>

std::vector<int> working_set(const std::vector<int>& refs, size_t t, size_t window) {
  if (refs.empty() || window == 0) return {};
  const size_t first = t >= window ? t - window : 0;
  std::vector<int> set(refs.begin() + static_cast<long>(first), refs.begin() + static_cast<long>(t) + 1);
  std::sort(set.begin(), set.end());
  set.erase(std::unique(set.begin(), set.end()), set.end());
  return set;
}

double mean_working_set_size(const std::vector<int>& refs, size_t window) {
  if (refs.empty()) return 0;
  double total = 0;
  for (size_t t = 0; t < refs.size(); ++t) total += static_cast<double>(working_set(refs, t, window).size());
  return total / static_cast<double>(refs.size());
}

size_t ws_faults(const std::vector<int>& refs, size_t window) {
  size_t faults = 0;
  for (size_t t = 0; t < refs.size(); ++t) {
    if (t == 0) {
      ++faults;
      continue;
    }
    const std::vector<int> before = working_set(refs, t - 1, window);
    if (!std::binary_search(before.begin(), before.end(), refs[t])) ++faults;
  }
  return faults;
}

std::vector<size_t> fault_curve(const std::vector<int>& refs, size_t max_window) {
  std::vector<size_t> curve;
  for (size_t window = 1; window <= max_window; ++window) curve.push_back(ws_faults(refs, window));
  return curve;
}

size_t knee(const std::vector<size_t>& curve) {
  if (curve.empty()) return 0;
  for (size_t i = 0; i < curve.size(); ++i)
    if (curve[i] * 10 <= curve.back() * 11) return i + 1;  // within 10% of the floor, in integers
  return curve.size();
}
