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
  std::string allowed_cpus;    // this process's affinity, e.g. "0-1"
  std::string kernel;          // uname -r
  std::string kernel_version;  // uname -v
  std::string clocksource;
  std::string virtualization;  // "none", or the hypervisor ("KVM", "Microsoft Hyper-V", ...)
  std::string thp_mode;        // transparent huge pages: always, madvise or never
  double memory_total_mib = 0;
  double memory_available_mib = 0;
  double null_syscall_ns = 0;  // median cost of getppid() through syscall(2)
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
std::string thp_mode();                                // the bracketed word of transparent_hugepage/enabled
std::string shmem_thp_mode();                          // the same for shmem_enabled (shared memory)
double meminfo_mib(const std::string& field);          // MemAvailable etc., 0 when missing

// Refuses (UsageError naming `what`) a run that needs more than 70% of MemAvailable: with no
// swap, more would end in the OOM killer rather than in a measurement.
void require_memory_mib(double needed_mib, const std::string& what);

// What the CPUs did, from /proc/stat (all CPUs together, in seconds), and how much of it was
// this process and its reaped children (getrusage): the rest was other work.
// Kernel threads are left out: they do this lab's deferred work too (a kworker frees the
// page tables of exited children after an RCU grace period).
struct CpuUse {
  double busy_s = 0;            // user + nice + system + steal
  double kernel_threads_s = 0;  // user + system of kernel threads (PF_KTHREAD)
  double steal_s = 0;           // time the hypervisor ran something else while a CPU of ours wanted to run
  double ours_s = 0;            // user + system time of this process and its reaped children
  double wall_s = 0;            // CLOCK_MONOTONIC
  static CpuUse now();
};

// Over an interval: the CPUs' worth of other work, and of steal, on average.
struct Contention {
  double other_cpus = 0;
  double steal_cpus = 0;
  double wall_s = 0;
  bool busy() const { return wall_s >= 0.5 && (other_cpus > 0.25 || steal_cpus > 0.1); }
};
Contention contention_between(const CpuUse& before, const CpuUse& after);

}  // namespace oslab
