#include "oslab/machine.hpp"

#include <dirent.h>
#include <linux/io_uring.h>
#include <linux/perf_event.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "oslab/clock.hpp"
#include "oslab/cpu.hpp"
#include "oslab/error.hpp"
#include "oslab/handles.hpp"
#include "oslab/measure.hpp"
#include "oslab/stats.hpp"

namespace oslab {

std::string read_first_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

namespace {
std::string bracketed_word(const std::string& path) {
  std::string line = read_first_line(path);
  auto open = line.find('[');
  auto close = line.find(']');
  if (open == std::string::npos || close == std::string::npos || close < open) return "unavailable";
  return line.substr(open + 1, close - open - 1);
}
}  // namespace

std::string thp_mode() {
  return bracketed_word("/sys/kernel/mm/transparent_hugepage/enabled");
}
std::string shmem_thp_mode() {
  return bracketed_word("/sys/kernel/mm/transparent_hugepage/shmem_enabled");
}

double meminfo_mib(const std::string& field) {
  std::ifstream in("/proc/meminfo");
  std::string name;
  double kib = 0;
  std::string unit;
  while (in >> name >> kib) {
    std::getline(in, unit);
    if (name == field + ":") return kib / 1024.0;
  }
  return 0;
}

void require_memory_mib(double needed_mib, const std::string& what) {
  const double available = machine().memory_available_mib;
  if (needed_mib > 0.7 * available)
    throw UsageError(
        fmt::format("{}: needs {:.0f} MiB, more than this machine can hold (MemAvailable {:.0f} MiB; "
                    "the limit is 70% of it)",
                    what, needed_mib, available));
}

namespace {

double kernel_thread_seconds(double tick) {
  constexpr unsigned long kPfKthread = 0x00200000;
  double ticks = 0;
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return 0;
  while (const dirent* entry = ::readdir(proc)) {
    if (entry->d_name[0] < '0' || entry->d_name[0] > '9') continue;
    std::ifstream stat(std::string("/proc/") + entry->d_name + "/stat");
    std::string line;
    if (!std::getline(stat, line)) continue;
    auto close = line.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream fields(line.substr(close + 2));
    std::string state;
    long ppid, pgrp, session, tty, tpgid;
    unsigned long flags, minflt, cminflt, majflt, cmajflt, utime, stime;
    if (!(fields >> state >> ppid >> pgrp >> session >> tty >> tpgid >> flags >> minflt >> cminflt >> majflt >>
          cmajflt >> utime >> stime))
      continue;
    if (flags & kPfKthread) ticks += static_cast<double>(utime + stime);
  }
  ::closedir(proc);
  return ticks / tick;
}

}  // namespace

CpuUse CpuUse::now() {
  CpuUse use;
  std::ifstream stat("/proc/stat");
  std::string label;
  double user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0;
  stat >> label >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal;
  const double tick = static_cast<double>(::sysconf(_SC_CLK_TCK));
  use.busy_s = (user + nice + system + steal) / tick;
  use.kernel_threads_s = kernel_thread_seconds(tick);
  use.steal_s = steal / tick;
  auto seconds = [](const timeval& tv) {
    return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
  };
  for (int who : {RUSAGE_SELF, RUSAGE_CHILDREN}) {
    rusage usage{};
    ::getrusage(who, &usage);
    use.ours_s += seconds(usage.ru_utime) + seconds(usage.ru_stime);
  }
  use.wall_s = static_cast<double>(now_ns()) / 1e9;
  return use;
}

Contention contention_between(const CpuUse& before, const CpuUse& after) {
  Contention c;
  c.wall_s = after.wall_s - before.wall_s;
  if (c.wall_s <= 0) return c;
  const double others = (after.busy_s - before.busy_s) - (after.ours_s - before.ours_s) -
                        (after.kernel_threads_s - before.kernel_threads_s);
  c.other_cpus = std::max(0.0, others / c.wall_s);
  c.steal_cpus = std::max(0.0, (after.steal_s - before.steal_s) / c.wall_s);
  return c;
}

bool Machine::has(const std::string& feature) const {
  auto it = features.find(feature);
  return it != features.end() && it->second.present;
}

namespace {

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with("model name")) {
      auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(line.find_first_not_of(" \t", colon + 1));
    }
  }
  return "unknown";
}

std::string hypervisor() {
#if defined(__x86_64__) || defined(__i386__)
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx) || (ecx & (1u << 31)) == 0) return "none";
  __cpuid(0x40000000, eax, ebx, ecx, edx);
  char vendor[13] = {};
  std::memcpy(vendor + 0, &ebx, 4);
  std::memcpy(vendor + 4, &ecx, 4);
  std::memcpy(vendor + 8, &edx, 4);
  std::string id = vendor;
  while (!id.empty() && id.back() == ' ') id.pop_back();
  if (id == "KVMKVMKVM") return "KVM";
  if (id == "Microsoft Hv") return "Microsoft Hyper-V";
  if (id == "VMwareVMware") return "VMware";
  if (id == "XenVMMXenVMM") return "Xen";
  if (id == "TCGTCGTCGTCG") return "QEMU (TCG)";
  if (id.starts_with("ACRN")) return "ACRN";
  if (id.starts_with("bhyve")) return "bhyve";
  return id.empty() ? "unknown hypervisor" : id;
#else
  std::string type = read_first_line("/sys/hypervisor/type");
  return type.empty() ? "none" : type;
#endif
}

std::map<std::string, std::string> mitigations() {
  std::map<std::string, std::string> result;
  const std::string dir = "/sys/devices/system/cpu/vulnerabilities";
  if (DIR* listing = ::opendir(dir.c_str())) {
    while (const dirent* entry = ::readdir(listing)) {
      if (entry->d_name[0] == '.') continue;
      result[entry->d_name] = read_first_line(dir + "/" + entry->d_name);
    }
    ::closedir(listing);
  }
  return result;
}

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
  if (version == 2) {
    std::string controllers = read_first_line("/sys/fs/cgroup/cgroup.controllers");
    if (controllers.find("memory") != std::string::npos) return {true, "/sys/fs/cgroup/cgroup.controllers has memory"};
    return {false, controllers.empty() ? "no cgroup v2 hierarchy with controllers at /sys/fs/cgroup"
                                       : "cgroup v2 controllers: " + controllers};
  }
  std::ifstream mounts("/proc/self/mounts");
  std::string device, point, type, options, rest;
  while (mounts >> device >> point >> type >> options && std::getline(mounts, rest)) {
    if (type == "cgroup" && ("," + options + ",").find(",memory,") != std::string::npos)
      return {true, "cgroup v1 memory controller mounted at " + point};
  }
  return {false, "no cgroup v1 memory controller mounted"};
}

Feature probe_swap() {
  std::ifstream in("/proc/swaps");
  std::string line;
  int devices = -1;  // the first line is the header
  while (std::getline(in, line)) ++devices;
  if (devices > 0) return {true, fmt::format("{} swap device(s) in /proc/swaps", devices)};
  return {false, "no swap device in /proc/swaps"};
}

double measure_null_syscall_ns() {
  SamplingPlan plan;
  plan.warmup = 1;
  plan.min_samples = 15;
  plan.max_samples = 15;
  plan.budget = std::chrono::milliseconds(0);
  plan.batch = 1000;
  Measurement m = measure(plan, [](int64_t n) {
    for (int64_t i = 0; i < n; ++i) ::syscall(SYS_getppid);
  });
  return summarize(m.samples_ns).p50;
}

Machine describe() {
  Machine m;
  m.cpu_model = cpu_model();
  m.logical_cpus = static_cast<int>(::sysconf(_SC_NPROCESSORS_ONLN));
  m.allowed_cpus = format_cpu_list(get_affinity());
  utsname names{};
  if (::uname(&names) == 0) {
    m.kernel = names.release;
    m.kernel_version = names.version;
  }
  m.clocksource = read_first_line("/sys/devices/system/clocksource/clocksource0/current_clocksource");
  m.virtualization = hypervisor();
  m.thp_mode = thp_mode();
  m.memory_total_mib = meminfo_mib("MemTotal");
  m.memory_available_mib = meminfo_mib("MemAvailable");
  m.timer_overhead_ns = timer_info().overhead_ns;
  m.timer_resolution_ns = timer_info().resolution_ns;
  m.null_syscall_ns = measure_null_syscall_ns();
  m.mitigations = mitigations();
  m.features["io_uring"] = probe_io_uring();
  m.features["seccomp"] = probe_seccomp();
  m.features["perf_counters"] = probe_perf_counters();
  m.features["cgroup_v2_memory"] = probe_cgroup_memory(2);
  m.features["cgroup_v1_memory"] = probe_cgroup_memory(1);
  m.features["swap"] = probe_swap();
  m.features["root"] = ::geteuid() == 0 ? Feature{true, "euid 0"} : Feature{false, fmt::format("euid {}", ::geteuid())};
  m.features["thp"] = m.thp_mode == "never" || m.thp_mode == "unavailable"
                          ? Feature{false, "transparent_hugepage/enabled: " + m.thp_mode}
                          : Feature{true, "transparent_hugepage/enabled: " + m.thp_mode};
#ifdef OSLAB_HAVE_LIBURING
  m.features["liburing_built"] = {true, "built with liburing"};
#else
  m.features["liburing_built"] = {false, "built without liburing"};
#endif
#ifdef OSLAB_HAVE_LIBSECCOMP
  m.features["libseccomp_built"] = {true, "built with libseccomp"};
#else
  m.features["libseccomp_built"] = {false, "built without libseccomp"};
#endif
  return m;
}

}  // namespace

const Machine& machine() {
  static const Machine m = describe();
  return m;
}

nlohmann::json Machine::to_json() const {
  nlohmann::json features_json = nlohmann::json::object();
  for (const auto& [name, feature] : features)
    features_json[name] = {{"present", feature.present}, {"detail", feature.detail}};
  return {{"cpu_model", cpu_model},
          {"logical_cpus", logical_cpus},
          {"allowed_cpus", allowed_cpus},
          {"kernel", kernel},
          {"kernel_version", kernel_version},
          {"clocksource", clocksource},
          {"virtualization", virtualization},
          {"thp", thp_mode},
          {"memory_total_mib", memory_total_mib},
          {"memory_available_mib", memory_available_mib},
          {"null_syscall_ns", null_syscall_ns},
          {"timer_overhead_ns", timer_overhead_ns},
          {"timer_resolution_ns", timer_resolution_ns},
          {"mitigations", mitigations},
          {"features", features_json}};
}

}  // namespace oslab
