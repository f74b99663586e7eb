// Where the parties of an experiment run. Placement changes results by several times: both
// ends of a ping-pong on one CPU measure a context switch; on two CPUs they measure a wake-up
// across cores; unpinned, the scheduler decides, and may decide differently from one run to
// the next. So placements are named, applied, and recorded in every result.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace oslab {

enum class Placement {
  same_cpu,  // every party pinned to one CPU
  two_cpus,  // parties alternately on two CPUs (not SMT siblings where the machine allows)
  unpinned,  // every party may run on any allowed CPU
};

const char* to_string(Placement placement);  // "same-cpu", "two-cpus", "unpinned"
// Parses "same-cpu,two-cpus"; throws UsageError naming `option` on an unknown name.
std::vector<Placement> parse_placements(std::string_view text, std::string_view option = "--placement");

// The CPUs each party runs on under a placement.
struct Assignment {
  Placement placement = Placement::unpinned;
  std::vector<std::vector<int>> party_cpus;  // one list per party
  bool smt_siblings = false;                 // the two CPUs share a core (two-cpus only)
  // "same-cpu (CPU 0)", "two-cpus (CPUs 0 and 1)", "unpinned (CPUs 0-1)"
  std::string describe() const;
  // {"placement": "two-cpus", "cpus": "0,1"}: goes into every result's params.
  nlohmann::json to_json() const;
};

// Chooses CPUs for `parties` parties from `allowed` (sorted). Throws SkipError when the
// placement needs more CPUs than allowed (two-cpus with one CPU).
Assignment assign_cpus(Placement placement, size_t parties, const std::vector<int>& allowed);

// The CPU sharing a core with `cpu` (its SMT sibling), from sysfs; empty when none.
std::vector<int> smt_siblings_of(int cpu);

}  // namespace oslab
