// The physical limit of every shared-memory transport: how long a cache line takes to go
// from one core to another. Shared by oslab-c2c (every pair of CPUs) and oslab-ipc (the pair
// its busy-polling transport ran on, measured in the same run).
#pragma once

#include "oslab/measure.hpp"

namespace oslab::ipc {

enum class C2cTest {
  cas,        // both threads compare-and-swap one line: odd values are side 1's, even side 0's
  two_lines,  // side 0 writes line A (release) and reads line B (acquire); side 1 the reverse
};
const char* to_string(C2cTest test);  // "cas", "two-lines"

// Round trips between two threads pinned to `cpu_a` and `cpu_b` (different CPUs), timed by the
// thread on cpu_a: each sample is the mean of plan.batch round trips (a batch: one round trip
// is far too short to time on its own). The one-way time is a sample / 2.
Measurement measure_c2c(C2cTest test, int cpu_a, int cpu_b, const SamplingPlan& plan);

// Round trips per sample: enough for a sample to last about 1000x the timer's overhead.
inline constexpr int64_t kC2cBatch = 1000;

}  // namespace oslab::ipc
