#include "oslab/timeline.hpp"

#include <algorithm>

namespace oslab {

namespace {

struct Tagged {
  CpuRun run;
  size_t worker;
};

}  // namespace

char worker_letter(size_t worker) {
  if (worker < 26) return static_cast<char>('A' + worker);
  if (worker < 52) return static_cast<char>('a' + (worker - 26));
  return '#';
}

std::vector<double> Timeline::complete_slice_lengths() const {
  std::vector<double> lengths;
  for (const Slice& slice : slices)
    if (slice.complete) lengths.push_back(static_cast<double>(slice.length_ns()));
  return lengths;
}

std::vector<double> Timeline::complete_slice_lengths(size_t worker) const {
  std::vector<double> lengths;
  for (const Slice& slice : slices)
    if (slice.complete && slice.worker == worker) lengths.push_back(static_cast<double>(slice.length_ns()));
  return lengths;
}

double Timeline::switches_per_second() const {
  return window_ns() > 0 ? static_cast<double>(switches) * 1e9 / static_cast<double>(window_ns()) : 0;
}

Timeline reconstruct(std::span<const std::span<const CpuRun>> runs_per_worker, int64_t window_start_ns,
                     int64_t window_end_ns) {
  Timeline timeline;
  timeline.window_start_ns = window_start_ns;
  timeline.window_end_ns = window_end_ns;
  const size_t workers = runs_per_worker.size();
  timeline.on_cpu_ns.assign(workers, 0);
  timeline.slices_of.assign(workers, 0);

  std::vector<Tagged> all;
  for (size_t worker = 0; worker < workers; ++worker)
    for (const CpuRun& run : runs_per_worker[worker]) {
      if (run.end_ns < window_start_ns || run.start_ns > window_end_ns) continue;
      const CpuRun clipped{std::max(run.start_ns, window_start_ns), std::min(run.end_ns, window_end_ns)};
      all.push_back({clipped, worker});
      timeline.on_cpu_ns[worker] += clipped.end_ns - clipped.start_ns;
    }
  std::sort(all.begin(), all.end(), [](const Tagged& a, const Tagged& b) {
    return a.run.start_ns != b.run.start_ns ? a.run.start_ns < b.run.start_ns : a.run.end_ns < b.run.end_ns;
  });

  auto close = [&](Slice& slice) {
    ++timeline.slices_of[slice.worker];
    timeline.breaks += slice.breaks;
    timeline.slices.push_back(slice);
  };
  Slice current;
  bool open = false;
  for (const Tagged& tagged : all) {
    CpuRun run = tagged.run;
    if (open && tagged.worker == current.worker) {
      if (run.start_ns > current.end_ns) {
        current.outside_ns += run.start_ns - current.end_ns;
        ++current.breaks;
      }
      if (run.end_ns > current.end_ns) {
        current.on_cpu_ns += run.end_ns - std::max(run.start_ns, current.end_ns);
        current.end_ns = run.end_ns;
      }
      continue;
    }
    if (open) {
      if (run.start_ns < current.end_ns) {
        // Two workers at once: they were not on one CPU. Count it, and cut the later run.
        ++timeline.overlaps;
        run.start_ns = current.end_ns;
        if (run.end_ns < run.start_ns) run.end_ns = run.start_ns;
      }
      timeline.idle_between_ns += run.start_ns - current.end_ns;
      ++timeline.switches;
      close(current);
    }
    current = Slice{tagged.worker, run.start_ns, run.end_ns, run.end_ns - run.start_ns, 0, 0, false};
    open = true;
  }
  if (open) close(current);
  // Consecutive slices always belong to different workers: every slice but the first and the
  // last is bounded by a switch on both sides.
  for (size_t i = 1; i + 1 < timeline.slices.size(); ++i) timeline.slices[i].complete = true;
  return timeline;
}

std::vector<std::string> render(const Timeline& timeline, int64_t from_ns, int64_t bucket_ns, size_t columns,
                                size_t lines) {
  std::vector<std::string> out;
  if (bucket_ns <= 0 || columns == 0) return out;
  const size_t workers = timeline.on_cpu_ns.size();
  std::vector<int64_t> share(workers);
  size_t first = 0;  // the first slice that may still overlap the bucket
  for (size_t line = 0; line < lines; ++line) {
    std::string text;
    for (size_t column = 0; column < columns; ++column) {
      const int64_t begin = from_ns + static_cast<int64_t>(line * columns + column) * bucket_ns;
      const int64_t end = begin + bucket_ns;
      if (begin >= timeline.window_end_ns) {
        text += ' ';
        continue;
      }
      std::fill(share.begin(), share.end(), 0);
      while (first < timeline.slices.size() && timeline.slices[first].end_ns <= begin) ++first;
      for (size_t i = first; i < timeline.slices.size() && timeline.slices[i].start_ns < end; ++i) {
        const Slice& slice = timeline.slices[i];
        share[slice.worker] += std::min(end, slice.end_ns) - std::max(begin, slice.start_ns);
      }
      const auto best = std::max_element(share.begin(), share.end());
      const int64_t covered = std::min(end, timeline.window_end_ns) - begin;
      int64_t ours = 0;
      for (int64_t s : share) ours += s;
      text +=
          (best == share.end() || ours * 2 < covered) ? '.' : worker_letter(static_cast<size_t>(best - share.begin()));
    }
    while (!text.empty() && text.back() == ' ') text.pop_back();
    if (text.empty()) break;
    out.push_back(std::move(text));
  }
  return out;
}

}  // namespace oslab
