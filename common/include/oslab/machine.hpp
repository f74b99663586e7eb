// The machine a figure was measured on (DESIGN.md, "machine"), and feature probes.
#pragma once

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace oslab {

// A feature probe: present or not, and why (the errno or file that told).
struct Feature {
  bool present = false;
  std::string detail;
};

struct Machine {
  std::string cpu_model;
  int logical_cpus = 0;
  std::string allowed_cpus;    // this process's affinity when described, e.g. "0-1"
  std::string kernel;          // uname -r
  std::string kernel_version;  // uname -v
  std::string clocksource;
  std::string virtualization;  // "none", or the hypervisor ("KVM", "Microsoft Hyper-V", ...)
  std::string thp_mode;        // transparent huge pages: always, madvise or never
  double memory_total_mib = 0;
  double memory_available_mib = 0;
  // Median cost of getppid() through syscall(2), pinned to one CPU, over blocks; and how
  // far the blocks' figures spread (max - min over the median).
  double null_syscall_ns = 0;
  double null_syscall_spread = 0;
  int null_syscall_cpu = -1;
  double timer_overhead_ns = 0;
  double timer_resolution_ns = 0;
  std::map<std::string, std::string> mitigations;  // /sys/devices/system/cpu/vulnerabilities
  std::map<std::string, Feature> features;

  bool is_virtual() const { return virtualization != "none"; }
  bool has(const std::string& feature) const;
  // Mitigations active here that add work to every kernel entry or exit (page-table
  // isolation, buffer clearing, IBRS, return stuffing), as "meltdown: PTI", ...
  std::vector<std::string> entry_mitigations() const;
  // One sentence on what a null system call costs here and what is known to add to it,
  // derived from what was measured and read, never a fixed story.
  std::string syscall_note() const;
  nlohmann::json to_json() const;
};

// Reads and probes the machine once. The null system call is timed on the first CPU this
// thread may run on (pinned for the ~20 ms it takes), so describe the machine after --cpus
// has been applied.
const Machine& machine();

// Individual readers, also used by the labs.
std::string read_first_line(const std::string& path);  // "" when unreadable
std::string thp_mode();                                // the bracketed word of transparent_hugepage/enabled
std::string shmem_thp_mode();                          // the same for shmem_enabled (shared memory)
double meminfo_mib(const std::string& field);          // MemAvailable etc., 0 when missing

// Refuses (UsageError naming `what`) a run that needs more than 70% of MemAvailable: with no
// swap, more would end in the OOM killer rather than in a measurement.
void require_memory_mib(double needed_mib, const std::string& what);

// The feature probes of Machine::features (probes.cpp).
std::map<std::string, Feature> probe_features(const std::string& thp);

}  // namespace oslab
