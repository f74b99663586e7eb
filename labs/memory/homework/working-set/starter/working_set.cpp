// Your working-set calculator: see ../README.md and ../working_set.hpp.
#include "working_set.hpp"

std::vector<int> working_set(const std::vector<int>& refs, size_t t, size_t window) {
  // TODO: the distinct pages of refs[t-window+1 .. t] (from 0 when t < window), sorted.
  (void)refs;
  (void)t;
  (void)window;
  return {};
}

double mean_working_set_size(const std::vector<int>& refs, size_t window) {
  // TODO: the mean of |W(window, t)| over every t.
  (void)refs;
  (void)window;
  return 0;
}

size_t ws_faults(const std::vector<int>& refs, size_t window) {
  // TODO: count the t where refs[t] is not in W(window, t-1); t = 0 always faults.
  (void)refs;
  (void)window;
  return 0;
}

std::vector<size_t> fault_curve(const std::vector<int>& refs, size_t max_window) {
  // TODO: ws_faults for every window from 1 to max_window.
  (void)refs;
  (void)max_window;
  return {};
}

size_t knee(const std::vector<size_t>& curve) {
  // TODO: the smallest D (from 1) with curve[D-1] <= 1.1 * curve.back().
  (void)curve;
  return 0;
}
