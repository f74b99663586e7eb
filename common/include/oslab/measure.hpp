// Timed sampling of an operation, with the kernel's own counts beside the time.
#pragma once

#include <sys/resource.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace oslab {

// The getrusage counters a lab reports per operation.
struct Counters {
  double minor_faults = 0;
  double major_faults = 0;
  double voluntary_switches = 0;
  double involuntary_switches = 0;

  static Counters from(const rusage& usage) noexcept;
  Counters operator-(const Counters& other) const noexcept;
  Counters operator+(const Counters& other) const noexcept;
  Counters per(double operations) const noexcept;
  std::map<std::string, double> to_map(const std::string& prefix = "") const;
};

// getrusage(who): RUSAGE_SELF, RUSAGE_THREAD or RUSAGE_CHILDREN (reaped children only).
Counters read_counters(int who);

// Counters of this process and of its reaped children, taken together.
struct UsageSnapshot {
  Counters self;
  Counters children;
  static UsageSnapshot now();
};

struct SamplingPlan {
  int warmup = 3;                          // operations run and discarded first
  int min_samples = 5;                     // at least this many, whatever the budget
  int max_samples = 200;                   // at most this many
  std::chrono::milliseconds budget{1000};  // stop adding samples after this much time
  int64_t batch = 1;                       // operations per timed sample (see calibrate_batch)
};

struct Measurement {
  std::vector<double> samples_ns;  // one per sample: the time of one operation (batch / batch)
  Counters self_per_op;            // this process, per operation
  Counters children_per_op;        // reaped children, per operation
  int64_t operations = 0;          // operations timed (samples x batch)
};

// Runs `op(batch)` under the plan; each sample is its elapsed CLOCK_MONOTONIC time / batch.
Measurement measure(const SamplingPlan& plan, const std::function<void(int64_t batch)>& op);

}  // namespace oslab
