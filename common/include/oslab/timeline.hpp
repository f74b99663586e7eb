// Who ran when on one CPU, rebuilt from the workers' own clock stamps. Each CPU-bound worker
// reads CLOCK_MONOTONIC on every pass of its loop; while it holds the CPU consecutive stamps
// are a loop pass apart (tens of ns), and a larger gap means it was off the CPU. A RunLog keeps
// only those runs (start and end of each stretch without a gap), so a worker can stamp for
// seconds in a few kilobytes; reconstruct() merges the runs of every worker into slices (one
// worker holding the CPU until another of them runs), switches and shares.
//
//   RunLog log(runs);                 // in shared memory, before the workers start
//   while (now < end) log.stamp(now = now_ns());   // the worker's loop
//   log.finish();
//   Timeline t = reconstruct({log.runs(), ...}, window_start, window_end);
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace oslab {

// A stretch of time during which one worker's stamps were never further apart than the gap.
struct CpuRun {
  int64_t start_ns = 0;
  int64_t end_ns = 0;
};

// The runs of one worker, written by the worker into storage it does not own (an array in
// shared memory, so that a worker process can hand them back). Trivially copyable.
class RunLog {
 public:
  // Stamps further apart than `gap_ns` end a run. 2 us: well above a loop pass, below any
  // slice another thread could have had.
  static constexpr int64_t kDefaultGapNs = 2'000;

  RunLog() = default;
  RunLog(std::span<CpuRun> storage, int64_t gap_ns = kDefaultGapNs) noexcept
      : runs_(storage.data()), capacity_(storage.size()), gap_ns_(gap_ns) {}

  // One loop pass: `now` is CLOCK_MONOTONIC in ns, never earlier than the previous stamp.
  // Returns false once the storage is full (the worker should stop: later runs are lost).
  bool stamp(int64_t now) noexcept {
    if (count_ == 0 && !started_) {
      started_ = true;
      run_start_ = last_ = now;
      return true;
    }
    if (now - last_ > gap_ns_) {
      if (!close_run()) return false;
      run_start_ = now;
    }
    last_ = now;
    return true;
  }
  // Closes the run in progress (call once, after the last stamp).
  void finish() noexcept {
    if (started_) close_run();
    started_ = false;
  }

  std::span<const CpuRun> runs() const noexcept { return {runs_, count_}; }
  bool overflowed() const noexcept { return overflowed_; }
  int64_t gap_ns() const noexcept { return gap_ns_; }

 private:
  bool close_run() noexcept {
    if (count_ == capacity_) {
      overflowed_ = true;
      return false;
    }
    runs_[count_++] = {run_start_, last_};
    return true;
  }

  CpuRun* runs_ = nullptr;
  size_t capacity_ = 0;
  size_t count_ = 0;
  int64_t gap_ns_ = kDefaultGapNs;
  int64_t run_start_ = 0, last_ = 0;
  bool started_ = false;
  bool overflowed_ = false;
};

// One worker holding the CPU, from the first stamp after another worker ran to its last
// stamp before another worker ran. Gaps inside it where none of the workers ran (an
// interrupt, a thread of another program) are counted in `outside_ns`.
struct Slice {
  size_t worker = 0;
  int64_t start_ns = 0, end_ns = 0;
  int64_t on_cpu_ns = 0;   // the worker's runs inside the slice
  int64_t outside_ns = 0;  // gaps inside the slice where none of the workers ran
  size_t breaks = 0;       // how many such gaps (interrupts, mostly)
  // Bounded by another worker's slice on both sides, inside the window: a whole slice. The
  // first and last slices of the window are cut by it, so their lengths say nothing.
  bool complete = false;
  int64_t length_ns() const noexcept { return end_ns - start_ns; }
};

struct Timeline {
  int64_t window_start_ns = 0, window_end_ns = 0;
  std::vector<Slice> slices;       // in time order
  std::vector<int64_t> on_cpu_ns;  // per worker: time inside its runs
  std::vector<size_t> slices_of;   // per worker: how many slices it had
  size_t switches = 0;             // from one worker to another
  size_t breaks = 0;               // gaps inside slices (Slice::breaks), all slices together
  int64_t idle_between_ns = 0;     // gaps between two slices where none of the workers ran
  size_t overlaps = 0;             // runs of two workers at once: impossible on one CPU
  int64_t window_ns() const noexcept { return window_end_ns - window_start_ns; }
  // Lengths of the complete slices (ns), all workers together or one worker's.
  std::vector<double> complete_slice_lengths() const;
  std::vector<double> complete_slice_lengths(size_t worker) const;
  // Switches per second of the window.
  double switches_per_second() const;
};

// Merges the workers' runs, clipped to [window_start, window_end], into slices. Assumes the
// workers shared one CPU; runs that overlap (the workers were not on one CPU) are counted in
// `overlaps` and attributed to the worker whose run started first.
Timeline reconstruct(std::span<const std::span<const CpuRun>> runs_per_worker, int64_t window_start_ns,
                     int64_t window_end_ns);

// A text picture of the timeline from `from_ns`: `lines` lines of `columns` characters, each
// character `bucket_ns` long, showing the worker ('A' + index) that ran most of that bucket,
// '.' where none of them did, ' ' past the window.
std::vector<std::string> render(const Timeline& timeline, int64_t from_ns, int64_t bucket_ns, size_t columns,
                                size_t lines);

// 'A' + worker, then 'a'..'z', then '#'.
char worker_letter(size_t worker);

}  // namespace oslab
