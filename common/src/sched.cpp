#include "oslab/sched.hpp"

#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cmath>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <fmt/format.h>

#include "oslab/error.hpp"
#include "oslab/format.hpp"

namespace oslab {

namespace {

// kernel/sched/core.c, sched_prio_to_weight[40], nice -20 .. 19.
constexpr std::array<int, 40> kWeights = {88761, 71755, 56483, 46273, 36291, 29154, 23254, 18705, 14949, 11916,
                                          9548,  7620,  6100,  4904,  3906,  3121,  2501,  1991,  1586,  1277,
                                          1024,  820,   655,   526,   423,   335,   272,   215,   172,   137,
                                          110,   87,    70,    56,    45,    36,    29,    23,    18,    15};

int64_t steady_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// A "name : value" field of /proc/.../sched, or nullopt.
std::optional<double> sched_field(const std::string& path, const std::string& name) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string key = line.substr(0, colon);
    while (!key.empty() && key.back() == ' ') key.pop_back();
    if (key != name) continue;
    try {
      return std::stod(line.substr(colon + 1));
    } catch (const std::exception&) {
      return std::nullopt;
    }
  }
  return std::nullopt;
}

long read_long(const std::string& path, long fallback) {
  std::ifstream in(path);
  long value = 0;
  return in >> value ? value : fallback;
}

// The parent of process `pid` (field 4 of /proc/<pid>/stat), or -1.
pid_t parent_of(pid_t pid) {
  std::ifstream in(fmt::format("/proc/{}/stat", pid));
  std::string line;
  if (!std::getline(in, line)) return -1;
  const auto close = line.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream fields(line.substr(close + 1));
  std::string state;
  pid_t parent = -1;
  fields >> state >> parent;
  return parent;
}

bool has_cap_sys_nice() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (!line.starts_with("CapEff:")) continue;
    try {
      const unsigned long long caps = std::stoull(line.substr(7), nullptr, 16);
      return ((caps >> 23) & 1) != 0;  // CAP_SYS_NICE
    } catch (const std::exception&) {
      return false;
    }
  }
  return false;
}

// (major, minor) of the running kernel.
std::pair<int, int> kernel_version() {
  utsname name{};
  if (::uname(&name) != 0) return {0, 0};
  int major = 0, minor = 0;
  if (std::sscanf(name.release, "%d.%d", &major, &minor) != 2) return {0, 0};
  return {major, minor};
}

}  // namespace

const char* to_string(Policy policy) {
  switch (policy) {
    case Policy::other: return "SCHED_OTHER";
    case Policy::batch: return "SCHED_BATCH";
    case Policy::idle: return "SCHED_IDLE";
    case Policy::fifo: return "SCHED_FIFO";
    case Policy::rr: return "SCHED_RR";
  }
  return "?";
}

int native_policy(Policy policy) {
  switch (policy) {
    case Policy::other: return SCHED_OTHER;
    case Policy::batch: return SCHED_BATCH;
    case Policy::idle: return SCHED_IDLE;
    case Policy::fifo: return SCHED_FIFO;
    case Policy::rr: return SCHED_RR;
  }
  return SCHED_OTHER;
}

bool is_realtime(Policy policy) {
  return policy == Policy::fifo || policy == Policy::rr;
}

void set_policy(Policy policy, int priority, pid_t tid) {
  sched_param param{};
  param.sched_priority = is_realtime(policy) ? priority : 0;
  check_errno(fmt::format("sched_setscheduler({}, {})", to_string(policy), param.sched_priority),
              ::sched_setscheduler(tid, native_policy(policy), &param));
}

void set_nice(int nice, pid_t tid) {
  check_errno(fmt::format("setpriority(nice {})", nice), ::setpriority(PRIO_PROCESS, static_cast<id_t>(tid), nice));
}

int get_nice(pid_t tid) {
  errno = 0;
  const int nice = ::getpriority(PRIO_PROCESS, static_cast<id_t>(tid));
  if (nice == -1 && errno != 0) throw SysError("getpriority", errno);
  return nice;
}

int nice_to_weight(int nice) {
  if (nice < -20 || nice > 19) throw std::out_of_range(fmt::format("nice {} is outside [-20, 19]", nice));
  const int index = nice + 20;
  return kWeights[static_cast<size_t>(index)];
}

std::optional<double> kernel_weight(pid_t tid, pid_t tgid) {
  const std::string process = tgid == 0 ? std::string("self") : std::to_string(tgid);
  const auto weight = sched_field(fmt::format("/proc/{}/task/{}/sched", process, tid), "se.load.weight");
  if (!weight) return std::nullopt;
  // 64-bit kernels keep weights with 10 more bits of resolution (scale_load()).
  return *weight >= 1024.0 * 2 ? *weight / 1024.0 : *weight;
}

double RtThrottle::others_share() const {
  if (!on()) return 0;
  return 1.0 - static_cast<double>(runtime_us) / static_cast<double>(period_us);
}

std::string RtThrottle::describe() const {
  if (!on()) return "off (sched_rt_runtime_us = -1): a real-time thread may keep its CPU forever";
  return fmt::format("real-time threads may use {} us of every {} us on a CPU, so the others keep {}", runtime_us,
                     period_us, format_percent(others_share()));
}

RtThrottle read_rt_throttle() {
  return {read_long("/proc/sys/kernel/sched_rt_runtime_us", -1), read_long("/proc/sys/kernel/sched_rt_period_us", 0)};
}

RtAccess probe_rt(int priority) {
  int error = 0;
  std::thread([&] {
    sched_param param{};
    param.sched_priority = priority;
    if (::sched_setscheduler(0, SCHED_FIFO, &param) != 0) error = errno;
    // The thread ends here; put it back anyway, so that it never exits real-time.
    sched_param normal{};
    (void)::sched_setscheduler(0, SCHED_OTHER, &normal);
  }).join();
  if (error == 0) return {true, ""};
  rlimit rtprio{};
  ::getrlimit(RLIMIT_RTPRIO, &rtprio);
  if (error == EPERM && !has_cap_sys_nice())
    return {false,
            fmt::format("SCHED_FIFO and SCHED_RR need root or CAP_SYS_NICE, or RLIMIT_RTPRIO >= {} (it is {}): "
                        "sched_setscheduler says EPERM",
                        priority, rtprio.rlim_cur == RLIM_INFINITY ? "unlimited" : std::to_string(rtprio.rlim_cur))};
  if (error == EPERM)
    return {false,
            "sched_setscheduler(SCHED_FIFO) says EPERM although this process has CAP_SYS_NICE: its cgroup has no "
            "real-time runtime (CONFIG_RT_GROUP_SCHED with cpu.rt_runtime_us = 0) or a security policy forbids it"};
  return {false, "sched_setscheduler(SCHED_FIFO): " + describe_errno(error)};
}

void require_rt(int priority) {
  const RtAccess access = probe_rt(priority);
  if (!access.allowed) throw SkipError(access.why);
}

void require_bounded_rt(int priority) {
  require_rt(priority);
  const RtThrottle throttle = read_rt_throttle();
  if (!throttle.on())
    throw SkipError(
        "RT throttling is off (/proc/sys/kernel/sched_rt_runtime_us = -1): a spinning real-time thread could hold "
        "its CPU for good, so this lab does not start one");
}

std::string FairScheduler::describe() const {
  std::string text = name + " (" + how_detected + ")";
  if (slice_ns > 0) text += fmt::format(", slice {} ({})", format_duration(slice_ns), slice_source);
  return text;
}

FairScheduler detect_fair_scheduler() {
  FairScheduler fair;
  const auto [major, minor] = kernel_version();
  const bool eevdf_kernel = major > 6 || (major == 6 && minor >= 6);
  const std::string self = fmt::format("/proc/self/task/{}/sched", ::gettid());
  const auto slice = sched_field(self, "se.slice");
  const auto vruntime = sched_field(self, "se.vruntime");
  if (slice) {
    fair.name = "EEVDF";
    fair.how_detected = "/proc/self/task/<tid>/sched shows se.slice, a field only EEVDF has";
    fair.slice_ns = *slice;
    fair.slice_source = "se.slice of a nice-0 thread, in /proc/self/task/<tid>/sched";
  } else if (vruntime) {
    fair.name = eevdf_kernel ? "EEVDF" : "CFS";
    fair.how_detected = fmt::format("kernel {}.{}: EEVDF replaced CFS in 6.6", major, minor);
  } else {
    fair.name = eevdf_kernel ? "EEVDF" : "CFS";
    fair.how_detected =
        fmt::format("kernel {}.{} (no /proc/<pid>/sched to tell): EEVDF replaced CFS in 6.6", major, minor);
  }
  // The tunable itself, where it can be read (debugfs, usually root only).
  for (const char* path : {"/sys/kernel/debug/sched/base_slice_ns", "/sys/kernel/debug/sched/min_granularity_ns",
                           "/proc/sys/kernel/sched_min_granularity_ns"}) {
    const long value = read_long(path, -1);
    if (value <= 0) continue;
    if (fair.slice_ns <= 0) {
      fair.slice_ns = static_cast<double>(value);
      fair.slice_source = path;
    } else {
      fair.slice_source += fmt::format("; {} = {}", path, format_duration(static_cast<double>(value)));
    }
    break;
  }
  return fair;
}

double rr_interval_ns(pid_t tid) {
  timespec interval{};
  check_errno("sched_rr_get_interval", ::sched_rr_get_interval(tid, &interval));
  return static_cast<double>(interval.tv_sec) * 1e9 + static_cast<double>(interval.tv_nsec);
}

// ---- RtWatchdog -------------------------------------------------------------------------

RtWatchdog::RtWatchdog(std::chrono::milliseconds poll) : poll_(poll), owner_(::getpid()) {
  thread_ = std::thread([this] { loop(); });
}

RtWatchdog::~RtWatchdog() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
  check(INT64_MAX);  // whatever is still registered has outlived the experiment
}

void RtWatchdog::loop() {
  ::pthread_setname_np(::pthread_self(), "oslab-rt-guard");
  // Normal priority whatever its creator runs at: it must never compete with what it guards.
  sched_param normal{};
  (void)::sched_setscheduler(0, SCHED_OTHER, &normal);
  while (!stop_.load()) {
    check(steady_ns());
    timespec pause{0, static_cast<long>(std::chrono::nanoseconds(poll_).count())};
    ::nanosleep(&pause, nullptr);
  }
}

void RtWatchdog::check(int64_t now_ns) {
  for (Slot& slot : table_->slots) {
    const pid_t tid = slot.tid.load();
    if (tid <= 0 || slot.deadline_ns.load() > now_ns || slot.demoted.load()) continue;
    const pid_t tgid = slot.tgid.load();
    // Only a thread of this process or of a child it forked (not yet reaped, so its id is
    // still its own).
    if (tgid != owner_ && parent_of(tgid) != owner_) continue;
    if (slot.demoted.exchange(true)) continue;
    sched_param normal{};
    if (::sched_setscheduler(tid, SCHED_OTHER, &normal) == 0) table_->demoted.fetch_add(1);
  }
}

RtWatchdog::Registration RtWatchdog::watch(std::chrono::steady_clock::time_point deadline) {
  const int64_t deadline_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline.time_since_epoch()).count();
  for (size_t i = 0; i < kSlots; ++i) {
    Slot& slot = table_->slots[i];
    pid_t free = 0;
    // Claim with a placeholder so that check() skips the slot until it is filled.
    if (!slot.tid.compare_exchange_strong(free, -1)) continue;
    slot.deadline_ns.store(deadline_ns);
    slot.demoted.store(false);
    slot.tgid.store(::getpid());
    slot.tid.store(::gettid());
    return Registration(this, i);
  }
  throw std::runtime_error("RtWatchdog: more than 64 real-time threads at once");
}

size_t RtWatchdog::demoted() const {
  return static_cast<size_t>(table_->demoted.load());
}

RtWatchdog::Registration::Registration(Registration&& other) noexcept
    : watchdog_(std::exchange(other.watchdog_, nullptr)), slot_(other.slot_) {}

RtWatchdog::Registration& RtWatchdog::Registration::operator=(Registration&& other) noexcept {
  if (this != &other) {
    this->~Registration();
    watchdog_ = std::exchange(other.watchdog_, nullptr);
    slot_ = other.slot_;
  }
  return *this;
}

RtWatchdog::Registration::~Registration() {
  if (watchdog_ == nullptr) return;
  // Normal again before the watchdog lets go: the thread never outlives its guard as real-time.
  sched_param normal{};
  (void)::sched_setscheduler(0, SCHED_OTHER, &normal);
  watchdog_->table_->slots[slot_].tid.store(0);
  watchdog_ = nullptr;
}

// ---- ScopedRtTimeLimit ------------------------------------------------------------------

ScopedRtTimeLimit::ScopedRtTimeLimit(std::chrono::microseconds limit) {
  rlimit current{};
  check_errno("getrlimit(RLIMIT_RTTIME)", ::getrlimit(RLIMIT_RTTIME, &current));
  const auto wanted = static_cast<rlim_t>(limit.count());
  if (current.rlim_cur != RLIM_INFINITY && current.rlim_cur <= wanted) return;  // already tighter
  old_soft_ = current.rlim_cur;
  rlimit tighter = current;
  tighter.rlim_cur = current.rlim_max == RLIM_INFINITY ? wanted : std::min(wanted, current.rlim_max);
  check_errno("setrlimit(RLIMIT_RTTIME)", ::setrlimit(RLIMIT_RTTIME, &tighter));
  changed_ = true;
}

ScopedRtTimeLimit::~ScopedRtTimeLimit() {
  if (!changed_) return;
  rlimit current{};
  if (::getrlimit(RLIMIT_RTTIME, &current) != 0) return;
  current.rlim_cur = static_cast<rlim_t>(old_soft_);
  (void)::setrlimit(RLIMIT_RTTIME, &current);
}

}  // namespace oslab
