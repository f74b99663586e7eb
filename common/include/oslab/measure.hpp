// Timed sampling of an operation, with the kernel's own counts beside the time.
//
// Samples are taken in blocks. Several cases measured together (methods, sizes) take their
// blocks in rotation — case A's block, then B's, then A's again — so that a slow spell of
// the machine falls on every case alike instead of on whichever ran then, and the interval
// of each median is computed over its blocks (stats.hpp).
#pragma once

#include <sys/resource.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <span>
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
  Counters& operator+=(const Counters& other) noexcept { return *this = *this + other; }
  Counters per(double operations) const noexcept;
  std::map<std::string, double> to_map(const std::string& prefix = "") const;
};

// getrusage(who): RUSAGE_SELF, RUSAGE_THREAD or RUSAGE_CHILDREN (reaped children only).
Counters read_counters(int who);

// Whose counts a measurement reads: the whole process and its reaped children, or only the
// calling thread (a party of a two-thread experiment).
enum class Usage { process, thread };

// Counters of this process (or thread) and of its reaped children, taken together.
struct UsageSnapshot {
  Counters self;
  Counters children;
  static UsageSnapshot now(Usage usage = Usage::process);
};

struct SamplingPlan {
  int warmup = 3;                          // operations run and discarded first
  int min_samples = 5;                     // at least this many, whatever the budget
  int max_samples = 200;                   // at most this many
  std::chrono::milliseconds budget{1000};  // per case: stop adding samples after this much time
  int64_t batch = 1;                       // operations per timed sample (see calibrate_batch)
  int block_samples = 0;                   // samples per block (0: max_samples / 10, at least 1)
  Usage usage = Usage::process;

  int samples_per_block() const;
};

struct Measurement {
  std::vector<double> samples_ns;  // one per sample: the time of one operation (batch / batch)
  std::vector<size_t> blocks;      // sizes of the consecutive blocks the samples were taken in
  Counters self_per_op;            // this process (or thread), per operation
  Counters children_per_op;        // reaped children, per operation
  int64_t operations = 0;          // operations timed (samples x batch)
  int64_t batch = 1;

  // Appends a block measured elsewhere (another process, a helper): its samples and the
  // counters summed over its operations.
  void add_block(std::span<const double> samples, const Counters& self, const Counters& children, int64_t batch = 1);

 private:
  friend class Interleaver;
  Counters self_total_, children_total_;
};

// Times `samples` samples of op(batch) and appends them to `into` as one block, with the
// counters of `usage` read around the block.
void measure_block(const std::function<void(int64_t batch)>& op, int samples, int64_t batch, Usage usage,
                   Measurement& into);

// Runs `op(batch)` under the plan, in blocks; each sample is its elapsed CLOCK_MONOTONIC
// time / batch.
Measurement measure(const SamplingPlan& plan, const std::function<void(int64_t batch)>& op);

// Several cases measured in rotation, block by block, until each has max_samples or the
// whole set has spent budget x cases (every case gets at least min_samples).
std::vector<Measurement> measure_interleaved(const SamplingPlan& plan,
                                             std::span<const std::function<void(int64_t batch)>> ops);

// The same rotation for blocks measured by the caller (e.g. by a helper process):
// `take_block(case, samples)` measures `samples` operations of that case and returns them
// with their counters through Measurement::add_block.
class Interleaver {
 public:
  Interleaver(const SamplingPlan& plan, size_t cases);
  void run(const std::function<void(size_t case_index, int samples, Measurement& into)>& take_block);
  std::vector<Measurement>& measurements() { return measurements_; }

 private:
  SamplingPlan plan_;
  std::vector<Measurement> measurements_;
};

}  // namespace oslab
