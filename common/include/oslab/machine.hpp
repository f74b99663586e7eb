// The machine a figure was measured on (DESIGN.md, "machine"), and feature probes.
#pragma once

#include <map>
#include <string>

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
  std::string allowed_cpus;       // this process's affinity, e.g. "0-1"
  std::string kernel;             // uname -r
  std::string kernel_version;     // uname -v
  std::string clocksource;
  std::string virtualization;     // "none", or the hypervisor ("KVM", "Microsoft Hyper-V", ...)
  std::string thp_mode;           // transparent huge pages: always, madvise or never
  double memory_total_mib = 0;
  double memory_available_mib = 0;
  double null_syscall_ns = 0;     // median cost of getppid() through syscall(2)
  double timer_overhead_ns = 0;
  double timer_resolution_ns = 0;
  std::map<std::string, std::string> mitigations;  // /sys/devices/system/cpu/vulnerabilities
  std::map<std::string, Feature> features;

  bool is_virtual() const { return virtualization != "none"; }
  bool has(const std::string& feature) const;
  nlohmann::json to_json() const;
};

// Reads and probes the machine once (about 20 ms: it times a null system call).
const Machine& machine();

// Individual readers, also used by the labs.
std::string read_first_line(const std::string& path);  // "" when unreadable
std::string thp_mode();                                  // the bracketed word of .../enabled
double meminfo_mib(const std::string& field);           // MemAvailable etc., 0 when missing

// /proc/loadavg: the 1-minute load average, and the tasks runnable at this instant
// (the reader itself included).
struct Load {
  double one_minute = 0;
  int runnable_now = 0;
};
Load read_load();

}  // namespace oslab
