#include "oslab/measure.hpp"

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

UsageSnapshot UsageSnapshot::now() {
  return {read_counters(RUSAGE_SELF), read_counters(RUSAGE_CHILDREN)};
}

Measurement measure(const SamplingPlan& plan, const std::function<void(int64_t)>& op) {
  const int64_t batch = std::max<int64_t>(plan.batch, 1);
  for (int i = 0; i < plan.warmup; ++i) op(batch);

  Measurement result;
  result.samples_ns.reserve(static_cast<size_t>(std::max(plan.max_samples, 0)));
  const int64_t budget_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(plan.budget).count();
  const UsageSnapshot before = UsageSnapshot::now();
  const int64_t started = now_ns();
  while (static_cast<int>(result.samples_ns.size()) < plan.max_samples) {
    if (static_cast<int>(result.samples_ns.size()) >= plan.min_samples && now_ns() - started >= budget_ns) break;
    int64_t start = now_ns();
    op(batch);
    int64_t elapsed = now_ns() - start;
    result.samples_ns.push_back(static_cast<double>(elapsed) / static_cast<double>(batch));
  }
  const UsageSnapshot after = UsageSnapshot::now();
  result.operations = static_cast<int64_t>(result.samples_ns.size()) * batch;
  const auto operations = static_cast<double>(result.operations);
  result.self_per_op = (after.self - before.self).per(operations);
  result.children_per_op = (after.children - before.children).per(operations);
  return result;
}

}  // namespace oslab
