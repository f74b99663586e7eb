// The one clock every figure comes from: CLOCK_MONOTONIC (through the vDSO where the
// clock source allows), with its measured overhead and resolution.
#pragma once

#include <time.h>

#include <cstdint>
#include <functional>

namespace oslab {

inline int64_t now_ns() noexcept {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

struct TimerInfo {
  double overhead_ns = 0;       // median cost of one now_ns() call (back to back)
  double resolution_ns = 0;     // clock_getres(CLOCK_MONOTONIC)
  double smallest_step_ns = 0;  // smallest non-zero difference seen between two reads
};

// Measures the timer (a few milliseconds). The result is cached after the first call.
const TimerInfo& timer_info();

// How many operations one timed sample must hold so that the timer's overhead is at most
// 1/`factor` of it: doubles the batch until a batch takes factor x the timer overhead.
// `op(n)` runs the operation n times. Returns at least 1 and at most `max_batch`.
int64_t calibrate_batch(const std::function<void(int64_t)>& op, double timer_overhead_ns, double factor = 1000,
                        int64_t max_batch = int64_t{1} << 24);

}  // namespace oslab
