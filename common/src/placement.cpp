#include "oslab/placement.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "oslab/cpu.hpp"
#include "oslab/error.hpp"
#include "oslab/machine.hpp"

namespace oslab {

const char* to_string(Placement placement) {
  switch (placement) {
    case Placement::same_cpu: return "same-cpu";
    case Placement::two_cpus: return "two-cpus";
    case Placement::unpinned: return "unpinned";
  }
  return "unpinned";
}

std::vector<Placement> parse_placements(std::string_view text, std::string_view option) {
  std::vector<Placement> placements;
  if (text.empty()) throw UsageError(fmt::format("{}: empty list", option));
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = text.find(',', start);
    const std::string_view name = text.substr(start, comma == std::string_view::npos ? text.npos : comma - start);
    Placement found{};
    bool known = false;
    for (Placement p : {Placement::same_cpu, Placement::two_cpus, Placement::unpinned})
      if (name == to_string(p)) {
        found = p;
        known = true;
      }
    if (!known)
      throw UsageError(fmt::format("{}: unknown placement '{}' (known: same-cpu, two-cpus, unpinned)", option, name));
    if (std::find(placements.begin(), placements.end(), found) == placements.end()) placements.push_back(found);
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return placements;
}

std::vector<int> smt_siblings_of(int cpu) {
  const std::string list =
      read_first_line(fmt::format("/sys/devices/system/cpu/cpu{}/topology/thread_siblings_list", cpu));
  if (list.empty()) return {};
  std::vector<int> siblings;
  try {
    siblings = parse_cpu_list(list);
  } catch (const UsageError&) {
    return {};
  }
  siblings.erase(std::remove(siblings.begin(), siblings.end(), cpu), siblings.end());
  return siblings;
}

Assignment assign_cpus(Placement placement, size_t parties, const std::vector<int>& allowed) {
  Assignment a;
  a.placement = placement;
  if (allowed.empty()) throw SkipError("no CPU is allowed");
  switch (placement) {
    case Placement::same_cpu: a.party_cpus.assign(parties, {allowed.front()}); break;
    case Placement::unpinned: a.party_cpus.assign(parties, allowed); break;
    case Placement::two_cpus: {
      if (allowed.size() < 2)
        throw SkipError(fmt::format("two-cpus needs two CPUs; only {} is allowed", format_cpu_list(allowed)));
      const int first = allowed.front();
      const std::vector<int> siblings = smt_siblings_of(first);
      int second = allowed[1];
      for (int cpu : allowed)
        if (cpu != first && std::find(siblings.begin(), siblings.end(), cpu) == siblings.end()) {
          second = cpu;
          break;
        }
      a.smt_siblings = std::find(siblings.begin(), siblings.end(), second) != siblings.end();
      for (size_t i = 0; i < parties; ++i) a.party_cpus.push_back({i % 2 == 0 ? first : second});
      break;
    }
  }
  return a;
}

std::string Assignment::describe() const {
  switch (placement) {
    case Placement::same_cpu: return fmt::format("same-cpu (CPU {})", party_cpus.front().front());
    case Placement::two_cpus:
      return fmt::format("two-cpus (CPUs {} and {}{})", party_cpus[0].front(),
                         party_cpus[1 % party_cpus.size()].front(), smt_siblings ? ", SMT siblings" : "");
    case Placement::unpinned: return fmt::format("unpinned (CPUs {})", format_cpu_list(party_cpus.front()));
  }
  return "";
}

nlohmann::json Assignment::to_json() const {
  std::vector<int> cpus;
  for (const auto& list : party_cpus)
    for (int cpu : list)
      if (std::find(cpus.begin(), cpus.end(), cpu) == cpus.end()) cpus.push_back(cpu);
  std::sort(cpus.begin(), cpus.end());
  nlohmann::json json = {{"placement", to_string(placement)}, {"cpus", format_cpu_list(cpus)}};
  if (placement == Placement::two_cpus) json["smt_siblings"] = smt_siblings;
  return json;
}

}  // namespace oslab
