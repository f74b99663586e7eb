#include "oslab/cpu.hpp"

#include <algorithm>
#include <charconv>

#include <fmt/format.h>

#include "oslab/error.hpp"

namespace oslab {
namespace {

int parse_cpu(std::string_view text, std::string_view whole) {
  int cpu = -1;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), cpu);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || cpu < 0)
    throw UsageError(fmt::format("bad CPU list '{}': '{}' is not a CPU number", whole, text));
  if (cpu >= CPU_SETSIZE)
    throw UsageError(fmt::format("bad CPU list '{}': CPU {} is beyond the limit of {}", whole, cpu, CPU_SETSIZE));
  return cpu;
}

}  // namespace

std::vector<int> parse_cpu_list(std::string_view text) {
  if (text.empty()) throw UsageError("empty CPU list");
  std::vector<int> cpus;
  std::string_view rest = text;
  while (true) {
    size_t comma = rest.find(',');
    std::string_view item = rest.substr(0, comma);
    size_t dash = item.find('-');
    if (dash == std::string_view::npos) {
      cpus.push_back(parse_cpu(item, text));
    } else {
      int first = parse_cpu(item.substr(0, dash), text);
      int last = parse_cpu(item.substr(dash + 1), text);
      if (last < first) throw UsageError(fmt::format("bad CPU list '{}': range {} is reversed", text, item));
      for (int cpu = first; cpu <= last; ++cpu) cpus.push_back(cpu);
    }
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  std::sort(cpus.begin(), cpus.end());
  cpus.erase(std::unique(cpus.begin(), cpus.end()), cpus.end());
  return cpus;
}

std::string format_cpu_list(const std::vector<int>& cpus) {
  std::string text;
  for (size_t i = 0; i < cpus.size();) {
    size_t j = i;
    while (j + 1 < cpus.size() && cpus[j + 1] == cpus[j] + 1) ++j;
    if (!text.empty()) text += ',';
    text += j == i ? fmt::format("{}", cpus[i]) : fmt::format("{}-{}", cpus[i], cpus[j]);
    i = j + 1;
  }
  return text;
}

std::vector<int> get_affinity(pid_t pid) {
  cpu_set_t set;
  CPU_ZERO(&set);
  check_errno("sched_getaffinity", ::sched_getaffinity(pid, sizeof set, &set));
  std::vector<int> cpus;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu)
    if (CPU_ISSET(cpu, &set)) cpus.push_back(cpu);
  return cpus;
}

void set_affinity(const std::vector<int>& cpus, pid_t pid) {
  cpu_set_t set;
  CPU_ZERO(&set);
  for (int cpu : cpus) CPU_SET(cpu, &set);
  check_errno("sched_setaffinity", ::sched_setaffinity(pid, sizeof set, &set));
}

ScopedAffinity::ScopedAffinity(const std::vector<int>& cpus) : inherited_(get_affinity()) {
  set_affinity(cpus);
}

ScopedAffinity::~ScopedAffinity() {
  try {
    set_affinity(inherited_);
  } catch (...) {
  }
}

void require_allowed(const std::vector<int>& cpus) {
  std::vector<int> allowed = get_affinity();
  for (int cpu : cpus)
    if (!std::binary_search(allowed.begin(), allowed.end(), cpu))
      throw UsageError(
          fmt::format("CPU {} is not available to this process (allowed: {})", cpu, format_cpu_list(allowed)));
}

}  // namespace oslab
