// oslab-wakeup: wake-up latency, the figure rt-tests' cyclictest measures. A thread pinned
// to one CPU sleeps until an absolute time (clock_nanosleep, TIMER_ABSTIME) every interval and
// records how late it woke; under SCHED_OTHER and SCHED_FIFO, with the CPU otherwise idle and
// with a CPU-bound SCHED_OTHER thread (a hog) beside it, with its memory locked (mlockall).
//
// Try:     oslab-wakeup                                     4 cases, 5 s each, 1 ms period
//          oslab-wakeup --interval-us 200 --duration-ms 60000 --policies fifo --load hog
//          cyclictest -m -a 1 -p 80 -i 1000 -l 5000 -q      the same figure, from rt-tests
// Expect:  SCHED_OTHER wakes tens of us late even on an idle CPU: its timer has 50 us of slack
//          (prctl PR_GET_TIMERSLACK); SCHED_FIFO ignores the slack and wakes a few us late. A
//          hog hurts SCHED_OTHER (it must be chosen over the hog) and hardly SCHED_FIFO (it
//          preempts it at once). The tail (p99.9, max) is where a virtual machine or a busy
//          host shows. SCHED_FIFO needs root or CAP_SYS_NICE, or it is skipped.
// Compare: oslab-timeslice (how long a CPU-bound thread keeps the CPU), oslab-priority.

#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <optional>
#include <thread>

#include <fmt/format.h>

#include "oslab/clock.hpp"
#include "oslab/cpu.hpp"
#include "oslab/error.hpp"
#include "oslab/histogram.hpp"
#include "oslab/lab.hpp"
#include "oslab/sched.hpp"
#include "oslab/stats.hpp"

namespace {

using oslab::Policy;

constexpr int64_t kUs = 1'000, kMs = 1'000'000;
// Up to this many samples per case the document keeps every one; beyond, a histogram.
constexpr size_t kMaxKeptSamples = 200'000;

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kAddressSanitizer = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kAddressSanitizer = true;
#else
constexpr bool kAddressSanitizer = false;
#endif
#else
constexpr bool kAddressSanitizer = false;
#endif

// mlockall for the run, as cyclictest -m: no page fault in the measured loop. Undone after.
class MemoryLock {
 public:
  MemoryLock() {
    if (kAddressSanitizer) {
      why_not_ = "built with AddressSanitizer, whose shadow memory cannot be locked";
      return;
    }
    if (::mlockall(MCL_CURRENT | MCL_FUTURE) == 0) {
      locked_ = true;
      return;
    }
    rlimit limit{};
    ::getrlimit(RLIMIT_MEMLOCK, &limit);
    why_not_ = fmt::format(
        "mlockall: {} (RLIMIT_MEMLOCK is {})", oslab::describe_errno(errno),
        limit.rlim_cur == RLIM_INFINITY ? std::string("unlimited") : fmt::format("{} KiB", limit.rlim_cur / 1024));
  }
  ~MemoryLock() {
    if (locked_) ::munlockall();
  }
  MemoryLock(const MemoryLock&) = delete;
  MemoryLock& operator=(const MemoryLock&) = delete;
  bool locked() const { return locked_; }
  const std::string& why_not() const { return why_not_; }

 private:
  bool locked_ = false;
  std::string why_not_;
};

struct Case {
  Policy policy;
  bool hog;
  std::string name() const {
    return fmt::format("{}, {}", policy == Policy::fifo ? "SCHED_FIFO" : "SCHED_OTHER", hog ? "hog" : "idle");
  }
};

struct CaseData {
  Case c;
  std::vector<double> latency_ns;
  std::vector<size_t> blocks;
  std::vector<double> overhead_ns;  // the loop's own work per sample
  oslab::LogHistogram histogram;
  uint64_t missed = 0;  // periods skipped because a wake-up came after the next one was due
  long timer_slack_ns = -1;
  bool ran = false;
};

struct Experiment {
  const oslab::Lab& lab;
  int64_t interval_ns;
  int64_t duration_ns;
  int64_t block_ns;
  int priority;
  int cpu;
  std::vector<CaseData> cases;
  oslab::RtWatchdog watchdog;

  Experiment(const oslab::Lab& of_lab, int64_t interval, int64_t duration, int64_t block, int fifo_priority, int on_cpu)
      : lab(of_lab),
        interval_ns(interval),
        duration_ns(duration),
        block_ns(block),
        priority(fifo_priority),
        cpu(on_cpu) {}

  // One block of one case: the sampler thread (and the hog beside it) for block_ns.
  void run_block(CaseData& data) {
    std::atomic<bool> stop_hog{false};
    std::exception_ptr failure;
    std::optional<std::thread> hog;
    if (data.c.hog)
      hog.emplace([&] {
        try {
          oslab::set_affinity({cpu});
          while (!stop_hog.load(std::memory_order_relaxed)) {
          }
        } catch (...) {
        }
      });
    std::thread sampler([&] {
      try {
        oslab::set_affinity({cpu});
        oslab::RtWatchdog::Registration bound;
        if (data.c.policy == Policy::fifo) {
          bound = watchdog.watch(std::chrono::steady_clock::now() + std::chrono::nanoseconds(block_ns) +
                                 std::chrono::seconds(2));
          oslab::set_policy(Policy::fifo, priority);
        }
        data.timer_slack_ns = ::prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);
        sample(data);
      } catch (...) {
        failure = std::current_exception();
      }
    });
    sampler.join();
    stop_hog.store(true);
    if (hog) hog->join();
    if (failure) std::rethrow_exception(failure);
  }

  // The measured loop: sleep until the planned time, read the clock, record how late.
  void sample(CaseData& data) const {
    const size_t before = data.latency_ns.size();
    int64_t planned = oslab::now_ns() + interval_ns;
    const int64_t end = planned + block_ns;
    while (planned < end) {
      const timespec at{static_cast<time_t>(planned / 1'000'000'000), static_cast<long>(planned % 1'000'000'000)};
      int rc;
      while ((rc = ::clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &at, nullptr)) == EINTR) {
      }
      const int64_t woke = oslab::now_ns();
      if (rc != 0) throw oslab::SysError("clock_nanosleep", rc);
      const auto late = static_cast<double>(woke - planned);
      data.latency_ns.push_back(late);
      data.histogram.record(late);
      planned += interval_ns;
      // Woke after the next period was due: skip the periods already past, as they were missed.
      while (planned <= woke) {
        planned += interval_ns;
        ++data.missed;
      }
      data.overhead_ns.push_back(static_cast<double>(oslab::now_ns() - woke));
    }
    data.blocks.push_back(data.latency_ns.size() - before);
  }

  void measure(oslab::Report& report) {
    const auto blocks = static_cast<size_t>(std::max<int64_t>(1, duration_ns / block_ns));
    for (size_t b = 0; b < blocks; ++b)
      for (size_t k = 0; k < cases.size(); ++k) {
        // Rotate the order from block to block, so that no case always follows the same one.
        CaseData& data = cases[(k + b) % cases.size()];
        if (b == 0) {
          data.ran = report.run_case(data.c.name(), [&] {
            if (data.c.policy == Policy::fifo) oslab::require_rt(priority);
            run_block(data);
          });
        } else if (data.ran) {
          run_block(data);
        }
      }
    if (watchdog.demoted() > 0) throw std::runtime_error("a real-time sampler overran and was demoted");
  }

  nlohmann::json params_of(const CaseData& data, bool locked) const {
    return {{"policy", oslab::to_string(data.c.policy)},
            {"priority", data.c.policy == Policy::fifo ? priority : 0},
            {"load", data.c.hog ? "hog" : "idle"},
            {"interval_us", interval_ns / kUs},
            {"cpu", cpu},
            {"placement", "same-cpu"},
            {"mlockall", locked}};
  }

  std::string cyclictest_line(const CaseData& data, bool locked) const {
    return fmt::format("cyclictest{} -a {}{} -i {} -l {} -q{}", locked ? " -m" : "", cpu,
                       data.c.policy == Policy::fifo ? fmt::format(" -p {}", priority) : "", interval_ns / kUs,
                       data.latency_ns.size(), data.c.hog ? " (beside a SCHED_OTHER spinner on the same CPU)" : "");
  }

  void results(oslab::Report& report, bool locked) const {
    for (const CaseData& data : cases) {
      if (!data.ran || data.latency_ns.empty()) continue;
      oslab::ResultInfo info{
          .what = fmt::format(
              "one wake-up: the CLOCK_MONOTONIC time read just after clock_nanosleep(CLOCK_MONOTONIC, "
              "TIMER_ABSTIME, t) returned, minus t; t = start + k x {} us ({}, CPU {}, {}{}) - the "
              "sample cyclictest takes",
              interval_ns / kUs,
              data.c.policy == Policy::fifo ? fmt::format("SCHED_FIFO {}", priority) : std::string("SCHED_OTHER"), cpu,
              data.c.hog ? "a SCHED_OTHER spinner on the same CPU" : "nothing else of ours on it",
              locked ? ", memory locked" : ""),
          .headline = true};
      if (data.latency_ns.size() <= kMaxKeptSamples)
        report.add_samples("wakeup-latency", params_of(data, locked), data.latency_ns, info, data.blocks);
      else
        report.add_histogram("wakeup-latency", params_of(data, locked), data.histogram, info);
      report.add_samples("loop-overhead", params_of(data, locked), data.overhead_ns,
                         {.what = "the sampling loop's own work per sample: from reading the clock on waking to "
                                  "calling clock_nanosleep again (recording the sample, the next time)"});
    }
  }

  void tables(oslab::Report& report, bool locked) const {
    oslab::Table main{
        fmt::format("Wake-up latency on CPU {}: how late the thread woke, period {} us", cpu, interval_ns / kUs),
        {"case", "samples", "min", "p50", "p99", "p99.9", "max", "missed", "timer slack", "loop overhead (p50)"},
        {},
        "A sample is one wake-up, as in cyclictest: the clock read on waking minus the time asked "
        "for. Missed: periods skipped because the thread woke after the next one was due. Timer "
        "slack: prctl(PR_GET_TIMERSLACK) of the sampler; the kernel ignores it for real-time threads. Idle: "
        "nothing of this lab's beside the sampler (other programs may still run); hog: a SCHED_OTHER "
        "thread spinning on the same CPU.",
        1};
    oslab::Table equivalent{"The same measurement with rt-tests' cyclictest (run it on an idle machine to compare)",
                            {"case", "command"},
                            {},
                            "",
                            2};
    for (const CaseData& data : cases) {
      if (!data.ran || data.latency_ns.empty()) continue;
      const oslab::Summary s = data.histogram.summary();
      const oslab::Summary overhead = oslab::summarize(data.overhead_ns);
      auto us = [](double ns) { return oslab::format_duration(ns); };
      main.rows.push_back({data.c.name(), std::to_string(s.n), us(s.min), us(s.p50), us(s.p99), us(s.p999), us(s.max),
                           std::to_string(data.missed),
                           data.c.policy == Policy::fifo ? fmt::format("{} ns (ignored)", data.timer_slack_ns)
                                                         : fmt::format("{} ns", data.timer_slack_ns),
                           us(overhead.p50)});
      equivalent.rows.push_back({data.c.name(), cyclictest_line(data, locked)});
    }
    if (main.rows.empty()) return;
    report.table(main);

    // The histogram in the buckets people read latency in.
    const std::array<double, 11> edges_us = {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 1e18};
    oslab::Table histogram{"How late (number of wake-ups)", {"case"}, {}, "", 1};
    double lower = 0;
    for (double edge : edges_us) {
      histogram.header.push_back(edge > 1e17 ? fmt::format(">= {} us", lower) : fmt::format("< {} us", edge));
      lower = edge;
    }
    for (const CaseData& data : cases) {
      if (!data.ran || data.latency_ns.empty()) continue;
      std::array<uint64_t, edges_us.size()> counts{};
      for (double late : data.latency_ns)
        ++counts[static_cast<size_t>(std::upper_bound(edges_us.begin(), edges_us.end(), late / 1e3) -
                                     edges_us.begin())];
      std::vector<std::string> row{data.c.name()};
      for (uint64_t count : counts) row.push_back(std::to_string(count));
      histogram.rows.push_back(row);
    }
    report.table(histogram);
    report.table(equivalent);
  }

  const CaseData* find(Policy policy, bool hog) const {
    for (const CaseData& data : cases)
      if (data.c.policy == policy && data.c.hog == hog && data.ran && !data.latency_ns.empty()) return &data;
    return nullptr;
  }

  void verdicts(oslab::Report& report, bool locked) const {
    for (const CaseData& data : cases) {
      if (!data.ran || data.latency_ns.empty()) continue;
      const double earliest = *std::min_element(data.latency_ns.begin(), data.latency_ns.end());
      report.fact(fmt::format("{}-{}-never-early", data.c.policy == Policy::fifo ? "fifo" : "other",
                              data.c.hog ? "hog" : "idle"),
                  data.c.name() + ": clock_nanosleep never returns before the time asked for", earliest >= 0,
                  fmt::format("the earliest of {} wake-ups was {} after the time", data.latency_ns.size(),
                              oslab::format_duration(earliest)));
    }
    const CaseData* other_hog = find(Policy::other, true);
    const CaseData* fifo_hog = find(Policy::fifo, true);
    if (other_hog != nullptr && fifo_hog != nullptr) {
      const oslab::Result& other = report.get("wakeup-latency", params_of(*other_hog, locked));
      const oslab::Result& fifo = report.get("wakeup-latency", params_of(*fifo_hog, locked));
      report.verdict(
          "fifo-wakes-sooner-beside-a-hog",
          "beside a CPU-bound thread, a SCHED_FIFO thread wakes sooner than a SCHED_OTHER one (median "
          "latency at least 2x lower)",
          oslab::ratio_of(other.summary, fifo.summary), oslab::Compare::above, 2.0,
          fmt::format("median {} (SCHED_OTHER) against {} (SCHED_FIFO {})", oslab::format_duration(other.summary.p50),
                      oslab::format_duration(fifo.summary.p50), priority));
    }
    const CaseData* other_idle = find(Policy::other, false);
    if (other_idle != nullptr && other_idle->timer_slack_ns > 0) {
      const oslab::Result& other = report.get("wakeup-latency", params_of(*other_idle, locked));
      report.verdict("other-late-by-the-slack",
                     fmt::format("on an otherwise idle CPU a SCHED_OTHER thread wakes about its timer slack late "
                                 "({} us): its median latency is at least half the slack",
                                 other_idle->timer_slack_ns / 1000),
                     oslab::median_of(other.summary), oslab::Compare::above,
                     static_cast<double>(other_idle->timer_slack_ns) / 2,
                     fmt::format("median {}; the slack lets the kernel fire the timer up to {} late, to batch "
                                 "wake-ups",
                                 oslab::format_duration(other.summary.p50),
                                 oslab::format_duration(static_cast<double>(other_idle->timer_slack_ns))),
                     "ns");
    }
  }
};

}  // namespace

int main(int argc, char** argv) {
  oslab::Lab lab({
      .name = "wakeup",
      .purpose = "wake-up latency of a periodic thread (what cyclictest measures): SCHED_OTHER vs SCHED_FIFO, "
                 "idle vs beside a CPU hog",
      .claim = "The notes: the scheduler decides when each thread runs; a thread with a real-time policy\n"
               "and priority is chosen first (\"politica y prioridad de ejecucion\"). How long after its\n"
               "timer fires does a sleeping thread really run again?",
      .explain = "A thread pinned to one CPU runs a loop: clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, t)\n"
                 "until t = start + k x interval, then reads CLOCK_MONOTONIC; the difference is one sample,\n"
                 "the wake-up latency. It is the same loop and the same sample as rt-tests' cyclictest\n"
                 "(its default clock and sleep), which prints it in us; the lab prints the command line that\n"
                 "measures each case with cyclictest. A wake-up that comes after the next period was due\n"
                 "skips the periods already past and counts them as missed. The lab also times its own work\n"
                 "per sample (recording it, computing the next time), which is outside the measured interval.\n\n"
                 "The latency is the sum of: the timer's slack (a normal thread's timer may fire up to\n"
                 "timer_slack_ns late, 50 us by default, so the kernel can batch wake-ups; real-time threads\n"
                 "get none), the interrupt and the wake-up path, and the wait for the CPU: a SCHED_FIFO\n"
                 "thread preempts a normal thread at once, a SCHED_OTHER one must be chosen over it by the\n"
                 "fair scheduler. The cases run in rotation, a block at a time, so a noisy spell of the\n"
                 "machine falls on all of them, and memory is locked with mlockall (as cyclictest -m) so\n"
                 "that no page fault lands in the loop.\n\n"
                 "The tail is the figure that matters for real-time work: p99.9 and the maximum. On a\n"
                 "virtual machine the host's own scheduling shows there; on a desktop, power saving\n"
                 "(deep C-states) and interrupts. SCHED_FIFO needs root or CAP_SYS_NICE, or those rows are\n"
                 "skipped; the sampler is bounded by a deadline and a normal-priority watchdog.\n\n"
                 "Questions: why does SCHED_OTHER wake later than SCHED_FIFO even with nothing else on the\n"
                 "CPU? What would PR_SET_TIMERSLACK(1) change? Why is the maximum, not the median, what a\n"
                 "real-time system is designed for? What does a hog do to each policy, and why?",
  });
  const long& interval_us =
      lab.integer_option("--interval-us", "Period of the sampler, in us", {1000, 1000}, 50, 1'000'000);
  const long& duration_ms =
      lab.integer_option("--duration-ms", "Time each case is measured, in ms", {5000, 300}, 10, 86'400'000);
  const long& block_ms = lab.integer_option("--block-ms", "Length of one block of the rotation between cases, in ms",
                                            {500, 100}, 10, 60'000);
  const long& priority = lab.integer_option("--priority", "SCHED_FIFO priority of the sampler", {80, 80}, 1, 99);
  const auto& policies =
      lab.choice_option("--policies", "Sampler policies", {"other", "fifo"}, {{"other", "fifo"}, {"other", "fifo"}});
  const auto& loads = lab.choice_option("--load", "What runs beside the sampler on its CPU", {"idle", "hog"},
                                        {{"idle", "hog"}, {"idle", "hog"}});
  const bool& no_mlock = lab.flag("--no-mlockall", "Do not lock memory (cyclictest without -m)");
  std::optional<Experiment> experiment;
  return lab.run(
      argc, argv,
      [&](oslab::Report& report) {
        Experiment& e = *experiment;
        std::optional<MemoryLock> memory;
        if (!no_mlock) memory.emplace();
        const bool locked = memory && memory->locked();
        if (memory && !locked) report.skip("mlockall (as cyclictest -m)", memory->why_not());
        report.params["mlockall"] = locked;
        e.measure(report);
        memory.reset();  // munlockall: everything measured
        e.results(report, locked);
        e.tables(report, locked);
        e.verdicts(report, locked);
        report.show_results_table = false;
      },
      [&](oslab::Report&) {
        if (block_ms > duration_ms)
          throw oslab::UsageError(
              fmt::format("--block-ms ({}) must not be longer than --duration-ms ({})", block_ms, duration_ms));
        experiment.emplace(lab, interval_us * kUs, duration_ms * kMs, block_ms * kMs, static_cast<int>(priority),
                           lab.options().cpus.back());
        for (const std::string& policy : policies)
          for (const std::string& load : loads)
            experiment->cases.push_back(
                {{policy == "fifo" ? Policy::fifo : Policy::other, load == "hog"}, {}, {}, {}, {}, 0, -1, false});
      });
}
