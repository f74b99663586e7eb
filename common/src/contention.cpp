#include "oslab/contention.hpp"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <string>

#include "oslab/clock.hpp"

namespace oslab {
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

double tick_seconds() {
  return 1.0 / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

}  // namespace

CpuUse CpuUse::now() {
  CpuUse use;
  std::ifstream stat("/proc/stat");
  std::string label;
  double user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0;
  stat >> label >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal;
  const double tick = 1.0 / tick_seconds();
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

bool Contention::busy() const {
  if (wall_s <= 0) return false;
  // At least 5 ticks of other work (or 3 of steal) whatever the length, so that the
  // rounding of /proc/stat's ticks alone never makes a run "busy".
  const double other_s = other_cpus * wall_s, steal_s = steal_cpus * wall_s;
  return (other_cpus > 0.25 && other_s >= 5 * tick_seconds()) || (steal_cpus > 0.1 && steal_s >= 3 * tick_seconds());
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

}  // namespace oslab
