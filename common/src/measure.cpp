#include "oslab/measure.hpp"

#include <algorithm>

#include "oslab/clock.hpp"
#include "oslab/error.hpp"

namespace oslab {

Counters Counters::from(const rusage& usage) noexcept {
  return Counters{static_cast<double>(usage.ru_minflt), static_cast<double>(usage.ru_majflt),
                  static_cast<double>(usage.ru_nvcsw), static_cast<double>(usage.ru_nivcsw)};
}

Counters Counters::operator-(const Counters& other) const noexcept {
  return Counters{minor_faults - other.minor_faults, major_faults - other.major_faults,
                  voluntary_switches - other.voluntary_switches, involuntary_switches - other.involuntary_switches};
}

Counters Counters::operator+(const Counters& other) const noexcept {
  return Counters{minor_faults + other.minor_faults, major_faults + other.major_faults,
                  voluntary_switches + other.voluntary_switches, involuntary_switches + other.involuntary_switches};
}

Counters Counters::per(double operations) const noexcept {
  if (operations <= 0) return {};
  return Counters{minor_faults / operations, major_faults / operations, voluntary_switches / operations,
                  involuntary_switches / operations};
}

std::map<std::string, double> Counters::to_map(const std::string& prefix) const {
  return {{prefix + "minor_faults", minor_faults},
          {prefix + "major_faults", major_faults},
          {prefix + "voluntary_switches", voluntary_switches},
          {prefix + "involuntary_switches", involuntary_switches}};
}

Counters read_counters(int who) {
  rusage usage{};
  check_errno("getrusage", ::getrusage(who, &usage));
  return Counters::from(usage);
}

UsageSnapshot UsageSnapshot::now(Usage usage) {
  if (usage == Usage::thread) return {read_counters(RUSAGE_THREAD), {}};
  return {read_counters(RUSAGE_SELF), read_counters(RUSAGE_CHILDREN)};
}

int SamplingPlan::samples_per_block() const {
  if (block_samples > 0) return block_samples;
  return std::max(1, max_samples / 10);
}

void Measurement::add_block(std::span<const double> samples, const Counters& self, const Counters& children,
                            int64_t block_batch) {
  if (samples.empty()) return;
  batch = std::max<int64_t>(block_batch, 1);
  samples_ns.insert(samples_ns.end(), samples.begin(), samples.end());
  blocks.push_back(samples.size());
  operations += static_cast<int64_t>(samples.size()) * batch;
  self_total_ += self;
  children_total_ += children;
  self_per_op = self_total_.per(static_cast<double>(operations));
  children_per_op = children_total_.per(static_cast<double>(operations));
}

Interleaver::Interleaver(const SamplingPlan& plan, size_t cases) : plan_(plan), measurements_(cases) {}

void Interleaver::run(const std::function<void(size_t, int, Measurement&)>& take_block) {
  const size_t cases = measurements_.size();
  if (cases == 0) return;
  const int max_samples = std::max(plan_.max_samples, 1);
  const int min_samples = std::clamp(plan_.min_samples, 1, max_samples);
  const int block = plan_.samples_per_block();
  if (plan_.warmup > 0) {
    for (size_t c = 0; c < cases; ++c) {
      Measurement discarded;
      take_block(c, plan_.warmup, discarded);
    }
  }
  const int64_t budget_ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(plan_.budget).count() * static_cast<int64_t>(cases);
  const int64_t started = now_ns();
  // Time spent per sample so far, per case: a block of a slow case is cut so that the budget
  // still leaves room for about ten rounds, however slow one operation is.
  std::vector<int64_t> spent_ns(cases, 0);
  auto have = [&](size_t c) { return static_cast<int>(measurements_[c].samples_ns.size()); };
  auto block_for = [&](size_t c) {
    if (budget_ns <= 0) return block;
    if (have(c) == 0) return std::min(block, min_samples);
    const double per_sample = static_cast<double>(spent_ns[c]) / have(c);
    const double per_round = static_cast<double>(budget_ns) / static_cast<double>(cases) / 10.0;
    return std::clamp(static_cast<int>(per_round / std::max(per_sample, 1.0)), 1, block);
  };
  for (size_t round = 0;; ++round) {
    bool all_full = true, all_enough = true;
    for (size_t c = 0; c < cases; ++c) {
      all_full = all_full && have(c) >= max_samples;
      all_enough = all_enough && have(c) >= min_samples;
    }
    if (all_full) break;
    if (all_enough && now_ns() - started >= budget_ns) break;
    for (size_t i = 0; i < cases; ++i) {
      // Start each round one case later, so that no case always follows the same one.
      const size_t c = (i + round) % cases;
      const bool over_budget = now_ns() - started >= budget_ns;
      int want = std::min(block_for(c), max_samples - have(c));
      if (over_budget) want = std::min(want, min_samples - have(c));
      if (want <= 0) continue;
      const int64_t block_start = now_ns();
      take_block(c, want, measurements_[c]);
      spent_ns[c] += now_ns() - block_start;
    }
  }
}

void measure_block(const std::function<void(int64_t)>& op, int samples, int64_t batch, Usage usage, Measurement& into) {
  batch = std::max<int64_t>(batch, 1);
  std::vector<double> block;
  block.reserve(static_cast<size_t>(samples));
  const UsageSnapshot before = UsageSnapshot::now(usage);
  for (int i = 0; i < samples; ++i) {
    const int64_t start = now_ns();
    op(batch);
    const int64_t elapsed = now_ns() - start;
    block.push_back(static_cast<double>(elapsed) / static_cast<double>(batch));
  }
  const UsageSnapshot after = UsageSnapshot::now(usage);
  into.add_block(block, after.self - before.self, after.children - before.children, batch);
}

std::vector<Measurement> measure_interleaved(const SamplingPlan& plan,
                                             std::span<const std::function<void(int64_t)>> ops) {
  SamplingPlan timed = plan;
  timed.warmup = 0;  // warm-up below runs operations, not timed samples
  for (const auto& op : ops)
    for (int i = 0; i < plan.warmup; ++i) op(std::max<int64_t>(plan.batch, 1));
  Interleaver interleaver(timed, ops.size());
  interleaver.run(
      [&](size_t c, int samples, Measurement& into) { measure_block(ops[c], samples, plan.batch, plan.usage, into); });
  return std::move(interleaver.measurements());
}

Measurement measure(const SamplingPlan& plan, const std::function<void(int64_t)>& op) {
  std::function<void(int64_t)> ops[] = {op};
  return std::move(measure_interleaved(plan, ops).front());
}

}  // namespace oslab
