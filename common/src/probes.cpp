// What the machine offers and lacks: each probe tries the real thing and says why not.
#include <linux/io_uring.h>
#include <linux/perf_event.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <fstream>

#include <fmt/format.h>

#include "oslab/error.hpp"
#include "oslab/machine.hpp"
#include "oslab/syscalls.hpp"

namespace oslab {
namespace {

Feature probe_io_uring() {
  std::string disabled = read_first_line("/proc/sys/kernel/io_uring_disabled");
  if (disabled == "2") return {false, "kernel.io_uring_disabled = 2"};
  io_uring_params params{};
  long fd = ::syscall(__NR_io_uring_setup, 1, &params);
  if (fd < 0) return {false, fmt::format("io_uring_setup: {}", describe_errno(errno))};
  ::close(static_cast<int>(fd));
  return {true,
          disabled.empty() ? "io_uring_setup works" : "io_uring_setup works (io_uring_disabled = " + disabled + ")"};
}

Feature probe_seccomp() {
  if (::prctl(PR_GET_SECCOMP) < 0) return {false, fmt::format("prctl(PR_GET_SECCOMP): {}", describe_errno(errno))};
  unsigned action = SECCOMP_RET_KILL_PROCESS;
  if (::syscall(__NR_seccomp, SECCOMP_GET_ACTION_AVAIL, 0, &action) != 0)
    return {false, fmt::format("seccomp(SECCOMP_GET_ACTION_AVAIL): {}", describe_errno(errno))};
  return {true, "seccomp filters available"};
}

Feature probe_perf_counters() {
  perf_event_attr attr{};
  attr.type = PERF_TYPE_HARDWARE;
  attr.size = sizeof attr;
  attr.config = PERF_COUNT_HW_CPU_CYCLES;
  attr.disabled = 1;
  attr.exclude_kernel = 1;
  attr.exclude_hv = 1;
  long fd = ::syscall(__NR_perf_event_open, &attr, 0, -1, -1, 0);
  if (fd < 0) return {false, fmt::format("perf_event_open(cycles): {}", describe_errno(errno))};
  ::close(static_cast<int>(fd));
  return {true, "hardware cycle counter opens"};
}

// The memory controller, v2 (unified) or v1, as this process's cgroup mounts show it.
Feature probe_cgroup_memory(int version) {
  std::ifstream mounts("/proc/self/mounts");
  std::string device, point, type, options, rest;
  while (mounts >> device >> point >> type >> options && std::getline(mounts, rest)) {
    if (version == 2 && type == "cgroup2") {
      std::string controllers = read_first_line(point + "/cgroup.controllers");
      if (controllers.find("memory") != std::string::npos) return {true, point + "/cgroup.controllers has memory"};
      return {false, fmt::format("cgroup v2 at {} has no memory controller (controllers: {})", point,
                                 controllers.empty() ? "none" : controllers)};
    }
    if (version == 1 && type == "cgroup" && ("," + options + ",").find(",memory,") != std::string::npos)
      return {true, "cgroup v1 memory controller mounted at " + point};
  }
  return {false, version == 2 ? "no cgroup v2 hierarchy mounted" : "no cgroup v1 memory controller mounted"};
}

Feature probe_swap() {
  std::ifstream in("/proc/swaps");
  std::string line;
  int devices = -1;  // the first line is the header
  while (std::getline(in, line)) ++devices;
  if (devices > 0) return {true, fmt::format("{} swap device(s) in /proc/swaps", devices)};
  return {false, "no swap device in /proc/swaps"};
}

Feature probe_mqueue() {
  std::ifstream mounts("/proc/self/mounts");
  std::string device, point, type, rest;
  while (mounts >> device >> point >> type && std::getline(mounts, rest))
    if (type == "mqueue") return {true, "mqueue mounted at " + point};
  return {false, "no mqueue file system mounted (POSIX queues work; /dev/mqueue cannot list them)"};
}

}  // namespace

std::map<std::string, Feature> probe_features(const std::string& thp) {
  std::map<std::string, Feature> features;
  features["io_uring"] = probe_io_uring();
  features["seccomp"] = probe_seccomp();
  features["perf_counters"] = probe_perf_counters();
  features["syscall_counting"] = syscall_counting_available();
  features["cgroup_v2_memory"] = probe_cgroup_memory(2);
  features["cgroup_v1_memory"] = probe_cgroup_memory(1);
  features["swap"] = probe_swap();
  features["mqueue_mounted"] = probe_mqueue();
  features["root"] = ::geteuid() == 0 ? Feature{true, "euid 0"} : Feature{false, fmt::format("euid {}", ::geteuid())};
  features["thp"] = thp == "never" || thp == "unavailable" ? Feature{false, "transparent_hugepage/enabled: " + thp}
                                                           : Feature{true, "transparent_hugepage/enabled: " + thp};
#ifdef OSLAB_HAVE_LIBURING
  features["liburing_built"] = {true, "built with liburing"};
#else
  features["liburing_built"] = {false, "built without liburing"};
#endif
#ifdef OSLAB_HAVE_LIBSECCOMP
  features["libseccomp_built"] = {true, "built with libseccomp"};
#else
  features["libseccomp_built"] = {false, "built without libseccomp"};
#endif
  return features;
}

}  // namespace oslab
