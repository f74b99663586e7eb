#include "oslab/machine.hpp"

#include <dirent.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include <algorithm>
#include <cstring>
#include <fstream>

#include <fmt/format.h>

#include "oslab/clock.hpp"
#include "oslab/cpu.hpp"
#include "oslab/error.hpp"
#include "oslab/format.hpp"
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
  const double available = meminfo_mib("MemAvailable");
  if (needed_mib > 0.7 * available)
    throw UsageError(
        fmt::format("{}: needs {:.0f} MiB, more than this machine can hold (MemAvailable {:.0f} MiB; "
                    "the limit is 70% of it)",
                    what, needed_mib, available));
}

bool Machine::has(const std::string& feature) const {
  auto it = features.find(feature);
  return it != features.end() && it->second.present;
}

std::vector<std::string> Machine::entry_mitigations() const {
  // The vulnerability files' wording for mitigations that run code on every kernel entry or exit.
  static constexpr const char* kEntryCosts[] = {
      "PTI", "Clear CPU buffers", "IBRS", "Stuffing", "Untrained return thunk", "Clear Register File", "Clear BHB"};
  std::vector<std::string> found;
  for (const auto& [name, text] : mitigations) {
    if (!text.starts_with("Mitigation")) continue;
    for (const char* cost : kEntryCosts) {
      const bool enhanced = std::string_view(cost) == "IBRS" && text.find("Enhanced") != std::string::npos;
      if (text.find(cost) != std::string::npos && !enhanced) {
        found.push_back(fmt::format("{}: {}", name, cost));
        break;
      }
    }
  }
  return found;
}

std::string Machine::syscall_note() const {
  const std::vector<std::string> costs = entry_mitigations();
  std::string list;
  for (const auto& cost : costs) list += (list.empty() ? "" : ", ") + cost;
  std::string text = fmt::format("a null system call (getppid) costs {} here, pinned to CPU {}",
                                 format_duration(null_syscall_ns), null_syscall_cpu);
  if (!costs.empty())
    text += fmt::format("; mitigations that add work to every kernel entry or exit are active ({})", list);
  else
    text += "; no mitigation that adds work to every kernel entry or exit is listed as active";
  if (is_virtual()) text += fmt::format(", in a {} guest", virtualization);
  return text;
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

struct NullSyscall {
  double median_ns = 0, spread = 0;
  int cpu = -1;
};

// Pinned to one CPU (a migration in the middle would be timed too), as the median of the
// means of blocks of 200 calls, for about 20 ms: long enough that one slow spell is one block
// among many, short enough for a lab's start-up.
NullSyscall measure_null_syscall() {
  NullSyscall result;
  const std::vector<int> allowed = get_affinity();
  result.cpu = allowed.empty() ? -1 : allowed.front();
  ScopedAffinity pinned(allowed.empty() ? allowed : std::vector<int>{result.cpu});
  constexpr int kCalls = 200;
  for (int i = 0; i < kCalls; ++i) ::syscall(SYS_getppid);  // warm-up
  std::vector<double> block_means;
  const int64_t started = now_ns();
  while (block_means.size() < 15 || (now_ns() - started < 20'000'000 && block_means.size() < 2000)) {
    const int64_t start = now_ns();
    for (int i = 0; i < kCalls; ++i) ::syscall(SYS_getppid);
    block_means.push_back(static_cast<double>(now_ns() - start) / kCalls);
  }
  std::sort(block_means.begin(), block_means.end());
  result.median_ns = percentile_sorted(block_means, 0.5);
  // The middle 80% of the blocks: a tick or an interrupt inflates a block or two.
  result.spread = (percentile_sorted(block_means, 0.9) - percentile_sorted(block_means, 0.1)) / result.median_ns;
  return result;
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
  const NullSyscall null_syscall = measure_null_syscall();
  m.null_syscall_ns = null_syscall.median_ns;
  m.null_syscall_spread = null_syscall.spread;
  m.null_syscall_cpu = null_syscall.cpu;
  m.mitigations = mitigations();
  m.features = probe_features(m.thp_mode);
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
          {"null_syscall_spread", null_syscall_spread},
          {"null_syscall_cpu", null_syscall_cpu},
          {"timer_overhead_ns", timer_overhead_ns},
          {"timer_resolution_ns", timer_resolution_ns},
          {"mitigations", mitigations},
          {"entry_mitigations", entry_mitigations()},
          {"features", features_json}};
}

}  // namespace oslab
