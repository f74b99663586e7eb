// Scheduling policies and priorities, what the kernel says about its own scheduler, and the
// fences around every real-time thread a lab starts. A SCHED_FIFO thread that spins never
// gives its CPU to a normal thread except through RT throttling, so a lab that runs one on a
// shared machine bounds it four ways: it refuses to when throttling is off; the thread checks
// its own deadline on every pass; RtWatchdog, a normal-priority thread, demotes it to
// SCHED_OTHER when the deadline has passed; and RLIMIT_RTTIME (ScopedRtTimeLimit) has the
// kernel kill the process if a real-time thread runs on without blocking for seconds.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "oslab/shared.hpp"

namespace oslab {

enum class Policy { other, batch, idle, fifo, rr };

const char* to_string(Policy policy);  // "SCHED_OTHER", ...
int native_policy(Policy policy);      // SCHED_OTHER, ...
bool is_realtime(Policy policy);

// Sets the policy (and, for SCHED_FIFO and SCHED_RR, the priority 1..99) of a thread: 0 is the
// calling thread (on Linux sched_setscheduler acts on one thread). Throws SysError.
void set_policy(Policy policy, int priority = 0, pid_t tid = 0);
// setpriority(PRIO_PROCESS, tid): on Linux the nice value belongs to one thread. Throws SysError.
void set_nice(int nice, pid_t tid = 0);
int get_nice(pid_t tid = 0);

// The kernel's weight for each nice value (sched_prio_to_weight in kernel/sched/core.c: 1024
// at nice 0, about 1.25x per step), and SCHED_IDLE's (WEIGHT_IDLEPRIO).
int nice_to_weight(int nice);
inline constexpr int kIdleWeight = 3;

// The weight the kernel holds for thread `tid` of process `tgid` (0: this process):
// se.load.weight in /proc/<tgid>/task/<tid>/sched, unscaled; nullopt when not shown.
std::optional<double> kernel_weight(pid_t tid, pid_t tgid = 0);

// The real-time bandwidth limit: real-time threads may use runtime_us of every period_us on a
// CPU; the rest is left to the others. runtime_us == -1: no limit.
struct RtThrottle {
  long runtime_us = -1;
  long period_us = 0;
  bool on() const { return runtime_us >= 0 && period_us > 0; }
  double others_share() const;   // 1 - runtime/period (0 when off)
  std::string describe() const;  // "950000 us of every 1000000 us (others keep 5%)"
};
RtThrottle read_rt_throttle();

// May this process run SCHED_FIFO/SCHED_RR threads at `priority`? Tried in a short-lived
// thread, so the answer is the kernel's (capabilities, RLIMIT_RTPRIO, a cgroup without
// real-time runtime); `why` says what is missing when not.
struct RtAccess {
  bool allowed = false;
  std::string why;
};
RtAccess probe_rt(int priority);

// Throws SkipError, saying why, unless real-time threads at `priority` may run here and are
// bounded by RT throttling: for a case of a lab that spins at a real-time priority.
void require_bounded_rt(int priority);
// The same for a real-time thread that sleeps most of the time (a wake-up latency sampler):
// throttling need not be on.
void require_rt(int priority);

// The kernel's scheduler for normal threads and the slice it gives them.
struct FairScheduler {
  std::string name;          // "EEVDF" or "CFS"
  std::string how_detected;  // what told
  double slice_ns = 0;       // 0 when not found
  std::string slice_source;  // where slice_ns was read
  std::string describe() const;
};
FairScheduler detect_fair_scheduler();

// sched_rr_get_interval of a thread (0: the calling one), in ns.
double rr_interval_ns(pid_t tid = 0);

// A thread at normal priority that demotes real-time threads to SCHED_OTHER once their
// deadline has passed. The table lives in shared memory: a forked child registers itself too.
class RtWatchdog {
 public:
  static constexpr size_t kSlots = 64;
  explicit RtWatchdog(std::chrono::milliseconds poll = std::chrono::milliseconds(10));
  ~RtWatchdog();
  RtWatchdog(const RtWatchdog&) = delete;
  RtWatchdog& operator=(const RtWatchdog&) = delete;

  // Watches thread `tid` (gettid()) of process `tgid` until the registration ends.
  class Registration {
   public:
    Registration() = default;
    Registration(Registration&& other) noexcept;
    Registration& operator=(Registration&& other) noexcept;
    Registration(const Registration&) = delete;
    Registration& operator=(const Registration&) = delete;
    ~Registration();

   private:
    friend class RtWatchdog;
    Registration(RtWatchdog* watchdog, size_t slot) : watchdog_(watchdog), slot_(slot) {}
    RtWatchdog* watchdog_ = nullptr;
    size_t slot_ = 0;
  };
  // Called by the thread itself before it turns real-time. Throws when the table is full.
  Registration watch(std::chrono::steady_clock::time_point deadline);
  // Threads it had to demote so far (each one is a bug in the lab: it overran its deadline).
  size_t demoted() const;

 private:
  struct Slot {
    std::atomic<pid_t> tid{0};
    std::atomic<pid_t> tgid{0};
    std::atomic<int64_t> deadline_ns{0};  // steady_clock
    std::atomic<bool> demoted{false};
  };
  struct Table {
    Slot slots[kSlots];
    std::atomic<uint64_t> demoted{0};
  };
  void loop();
  void check(int64_t now_ns);

  Shared<Table> table_;
  std::chrono::milliseconds poll_;
  std::atomic<bool> stop_{false};
  pid_t owner_;
  std::thread thread_;
};

// Lowers the soft RLIMIT_RTTIME of this process (and the children it forks) for its lifetime:
// a real-time thread that runs `limit` of CPU time without blocking gets SIGXCPU, which ends
// the process. The hard limit is left alone, so the old soft limit can be put back.
class ScopedRtTimeLimit {
 public:
  explicit ScopedRtTimeLimit(std::chrono::microseconds limit);
  ~ScopedRtTimeLimit();
  ScopedRtTimeLimit(const ScopedRtTimeLimit&) = delete;
  ScopedRtTimeLimit& operator=(const ScopedRtTimeLimit&) = delete;

 private:
  uint64_t old_soft_ = 0;
  bool changed_ = false;
};

}  // namespace oslab
