#include "oslab/clock.hpp"

#include <algorithm>
#include <vector>

namespace oslab {

const TimerInfo& timer_info() {
  static const TimerInfo info = [] {
    TimerInfo result;
    timespec res{};
    ::clock_getres(CLOCK_MONOTONIC, &res);
    result.resolution_ns = static_cast<double>(res.tv_sec) * 1e9 + static_cast<double>(res.tv_nsec);

    constexpr int kReads = 20001;
    std::vector<int64_t> stamps(kReads);
    for (auto& stamp : stamps) stamp = now_ns();
    std::vector<int64_t> steps;
    steps.reserve(kReads - 1);
    int64_t smallest = 0;
    for (size_t i = 1; i < stamps.size(); ++i) {
      int64_t step = stamps[i] - stamps[i - 1];
      steps.push_back(step);
      if (step > 0 && (smallest == 0 || step < smallest)) smallest = step;
    }
    std::nth_element(steps.begin(), steps.begin() + steps.size() / 2, steps.end());
    result.overhead_ns = static_cast<double>(steps[steps.size() / 2]);
    // Reads closer together than the resolution show 0: then the median under-reads
    // the cost, so take the total instead.
    if (result.overhead_ns == 0)
      result.overhead_ns = static_cast<double>(stamps.back() - stamps.front()) / (kReads - 1);
    result.smallest_step_ns = static_cast<double>(smallest);
    return result;
  }();
  return info;
}

int64_t calibrate_batch(const std::function<void(int64_t)>& op, double timer_overhead_ns, double factor,
                        int64_t max_batch) {
  const double target_ns = std::max(timer_overhead_ns, 1.0) * factor;
  int64_t batch = 1;
  op(1);  // warm-up: first-touch faults and cold caches are not the operation
  for (;;) {
    int64_t start = now_ns();
    op(batch);
    double elapsed = static_cast<double>(now_ns() - start);
    if (elapsed >= target_ns || batch >= max_batch) return std::min(batch, max_batch);
    batch *= 2;
  }
}

}  // namespace oslab
