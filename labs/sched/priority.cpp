// oslab-priority: what a priority buys. Two CPU-bound workers share one CPU: at nice 0 and
// nice 1, 5, 10, 19 (as processes and as threads), SCHED_OTHER against SCHED_IDLE and
// SCHED_BATCH, a SCHED_FIFO thread against a normal one, and two threads calling
// sched_yield() under each policy. The shares they get are set against the kernel's table of
// weights, and the starvation against the RT throttling limit.
//
// Try:     oslab-priority                          every case
//          oslab-priority --cases nice --nice 5 -i 20
//          oslab-priority --cases fifo --fifo-ms 3000
// Expect:  nice 0 gets about 1024/335 = 3x the CPU of nice 5 (each step is about 1.25x);
//          SCHED_IDLE gets almost nothing beside a normal thread; SCHED_BATCH the same as
//          SCHED_OTHER. A SCHED_FIFO spinner starves a normal thread on its CPU except for
//          the 5% RT throttling leaves it. sched_yield() hands the CPU to an equal SCHED_FIFO
//          thread every time. Real-time cases need root or CAP_SYS_NICE, or they are skipped.
// Compare: oslab-timeslice (how the CPU is split in time), oslab-inversion (priorities and
//          a shared lock).

#include <sched.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <optional>
#include <thread>

#include <fmt/format.h>

#include "oslab/clock.hpp"
#include "oslab/cpu.hpp"
#include "oslab/error.hpp"
#include "oslab/lab.hpp"
#include "oslab/parties.hpp"
#include "oslab/process.hpp"
#include "oslab/sched.hpp"
#include "oslab/shared.hpp"
#include "oslab/stats.hpp"
#include "oslab/timeline.hpp"

namespace {

using oslab::Policy;

constexpr int64_t kMs = 1'000'000;
constexpr size_t kMaxRounds = 256;
constexpr int kRtPriority = 1;

int64_t thread_cpu_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// How one worker of a pair is set up.
struct Setup {
  Policy policy = Policy::other;
  int nice = 0;
  std::string label() const {
    return policy == Policy::other || policy == Policy::batch
               ? fmt::format("{} nice {}", oslab::to_string(policy), nice)
               : oslab::to_string(policy);
  }
  double table_weight() const { return policy == Policy::idle ? oslab::kIdleWeight : oslab::nice_to_weight(nice); }
};

// What a worker of a pair reports, in shared memory.
struct PairRecord {
  int64_t cpu_ns[kMaxRounds];
  double kernel_weight;  // -1: not shown by the kernel
  pid_t tid;
  int nice_seen;
  int other_nice_seen;  // the other worker's nice, read by this one after both were set
};

struct Rounds {
  std::atomic<int64_t> start_ns[kMaxRounds];
  std::atomic<pid_t> tids[2];
};

// Spins from the round's start to its end; returns the CPU time used in between.
int64_t spin_round(std::atomic<int64_t>& round_start, int64_t round_ns) {
  int64_t expected = 0;
  // The first worker out of the barrier sets the start a little ahead, so both are running.
  round_start.compare_exchange_strong(expected, oslab::now_ns() + kMs);
  const int64_t start = round_start.load(), end = start + round_ns;
  int64_t cpu_at_start = -1;
  while (true) {
    const int64_t now = oslab::now_ns();
    if (cpu_at_start < 0 && now >= start) cpu_at_start = thread_cpu_ns();
    if (now >= end) break;
  }
  return thread_cpu_ns() - cpu_at_start;
}

struct PairOutcome {
  std::vector<double> weak_share_percent;  // per round: B's CPU time / (A's + B's), in %
  std::array<PairRecord, 2> records;
  int64_t round_ns;
};

// ---- the yield and starvation workers ----------------------------------------------------

struct YieldRecord {
  uint64_t yields;
  uint64_t handoffs;  // yields after which the other worker ran next
};
struct YieldShared {
  std::atomic<int64_t> start_ns{0};
  std::atomic<int> last{-1};
};

struct StarveRecord {
  int64_t cpu_ns;
  oslab::RunLog log;
};
struct StarveShared {
  std::atomic<int64_t> start_ns{0};
};

struct Experiment {
  const oslab::Lab& lab;
  std::vector<long> nice_steps;
  std::vector<std::string> kinds;
  std::vector<std::string> cases_wanted;
  long round_ms;
  long fifo_ms;
  int cpu;
  int base_nice = oslab::get_nice();
  oslab::RtThrottle throttle = oslab::read_rt_throttle();
  oslab::FairScheduler fair = oslab::detect_fair_scheduler();
  oslab::RtWatchdog watchdog;
  oslab::Table shares{"", {}, {}, "", 2};
  std::vector<std::vector<std::string>> weight_rows;

  Experiment(const oslab::Lab& of_lab, std::vector<long> steps, std::vector<std::string> as_kinds,
             std::vector<std::string> wanted, long round_length_ms, long fifo_length_ms, int on_cpu)
      : lab(of_lab),
        nice_steps(std::move(steps)),
        kinds(std::move(as_kinds)),
        cases_wanted(std::move(wanted)),
        round_ms(round_length_ms),
        fifo_ms(fifo_length_ms),
        cpu(on_cpu) {}

  bool wants(const std::string& name) const {
    return std::find(cases_wanted.begin(), cases_wanted.end(), name) != cases_wanted.end();
  }
  int rounds() const { return std::min<int>(lab.iterations(6, 4), static_cast<int>(kMaxRounds)); }
  oslab::Assignment one_cpu(size_t parties) const {
    return oslab::assign_cpus(oslab::Placement::same_cpu, parties, {cpu});
  }

  // Two spinners on one CPU for `rounds` rounds: A set up as `a`, B as `b`.
  PairOutcome run_pair(const Setup& a, const Setup& b, bool threads, int64_t round_ns) {
    const int n_rounds = rounds();
    oslab::SharedArray<PairRecord> records(2);
    oslab::Shared<Rounds> control;
    const std::array<Setup, 2> setups{a, b};
    auto body = [&](oslab::Party& party) {
      const size_t me = party.index();
      PairRecord& record = records[me];
      record.tid = ::gettid();
      control->tids[me].store(record.tid);
      oslab::set_policy(setups[me].policy);
      oslab::set_nice(setups[me].nice);
      record.kernel_weight = oslab::kernel_weight(record.tid).value_or(-1);
      party.ready();
      // Both are set: look at the other's nice value (per thread on Linux, not per process).
      record.nice_seen = oslab::get_nice();
      record.other_nice_seen = oslab::get_nice(control->tids[1 - me].load());
      for (int r = 0; r < n_rounds && !party.stop_requested(); ++r) {
        party.sync();
        record.cpu_ns[r] = spin_round(control->start_ns[r], round_ns);
      }
    };
    const auto deadline = std::chrono::milliseconds(n_rounds * (round_ns / kMs + 50) + 10'000);
    oslab::run_parties({.threads = threads, .assignment = one_cpu(2), .deadline = deadline}, {body, body});
    PairOutcome outcome{{}, {records[0], records[1]}, round_ns};
    for (int r = 0; r < n_rounds; ++r) {
      const auto total = static_cast<double>(records[0].cpu_ns[r] + records[1].cpu_ns[r]);
      outcome.weak_share_percent.push_back(total > 0 ? 100.0 * static_cast<double>(records[1].cpu_ns[r]) / total : 0);
    }
    return outcome;
  }

  // The share of the weaker worker B, its median with the interval, and the A:B ratio.
  struct Share {
    oslab::Summary summary;
    double expected_percent;
    oslab::Estimate ratio;  // A:B, from the median share and its interval
    double expected_ratio;
  };
  static Share share_of(const PairOutcome& outcome, const Setup& a, const Setup& b) {
    Share share;
    share.summary = oslab::summarize(outcome.weak_share_percent);
    share.expected_percent = 100.0 * b.table_weight() / (a.table_weight() + b.table_weight());
    auto ratio_of = [](double percent) { return percent > 0 ? (100.0 - percent) / percent : 1e9; };
    // A larger share of B is a smaller A:B ratio: the interval swaps ends.
    share.ratio = {ratio_of(share.summary.p50), ratio_of(share.summary.p50_ci_high),
                   ratio_of(share.summary.p50_ci_low)};
    share.expected_ratio = a.table_weight() / b.table_weight();
    return share;
  }

  void record_pair(oslab::Report& report, const std::string& kind, const Setup& a, const Setup& b,
                   const PairOutcome& outcome, const std::string& id, double tolerance) {
    const Share share = share_of(outcome, a, b);
    report.add_samples(
        "weaker-share", {{"a", a.label()}, {"b", b.label()}, {"as", kind}, {"cpu", cpu}, {"placement", "same-cpu"}},
        outcome.weak_share_percent,
        {.what = fmt::format("B's share of the CPU time A and B got together in one round of {} ({} vs {}, {} "
                             "spinning on CPU {})",
                             oslab::format_duration(static_cast<double>(outcome.round_ns)), a.label(), b.label(), kind,
                             cpu),
         .unit = "%",
         .headline = a.nice == base_nice && b.nice == base_nice + 5});
    shares.rows.push_back({kind, fmt::format("{} : {}", a.label(), b.label()),
                           fmt::format("{:.0f} : {:.0f}", a.table_weight(), b.table_weight()),
                           fmt::format("{:.2f}", share.expected_ratio), fmt::format("{:.2f}", share.ratio.value),
                           fmt::format("{:.2f} .. {:.2f}", share.ratio.low, share.ratio.high),
                           fmt::format("{:.2f}%", share.summary.p50), fmt::format("{:.2f}%", share.expected_percent)});
    // Weights as the kernel holds them, beside the table's.
    for (size_t w = 0; w < 2; ++w) {
      const Setup& setup = w == 0 ? a : b;
      const double kernel = outcome.records[w].kernel_weight;
      weight_rows.push_back({kind, setup.label(), fmt::format("{:.0f}", setup.table_weight()),
                             kernel < 0 ? std::string("not shown") : fmt::format("{:.0f}", kernel)});
      if (kernel >= 0)
        report.fact(fmt::format("weight-{}-{}", id, w == 0 ? "a" : "b"),
                    fmt::format("the kernel holds the table's weight, {:.0f}, for {} (worker {} of the {})",
                                setup.table_weight(), setup.label(), w == 0 ? "A" : "B", kind),
                    kernel == setup.table_weight(),
                    fmt::format("se.load.weight in /proc/<pid>/task/{}/sched: {:.0f} (unscaled)",
                                outcome.records[w].tid, kernel));
    }
    report.verdict(
        fmt::format("share-{}", id),
        fmt::format("{} vs {} as {}: the CPU is shared as the weights say, {:.0f}:{:.0f} = {:.2f}:1, "
                    "within {:.0f}%",
                    a.label(), b.label(), kind, a.table_weight(), b.table_weight(), share.expected_ratio,
                    100 * (tolerance - 1)),
        oslab::all_of({oslab::decide(share.ratio, oslab::Compare::above, share.expected_ratio / tolerance),
                       oslab::decide(share.ratio, oslab::Compare::below, share.expected_ratio * tolerance)}),
        fmt::format("measured {:.2f}:1 (median of {} rounds of {}; interval {:.2f} .. {:.2f}); B got "
                    "{:.2f}% where the weights give {:.2f}%",
                    share.ratio.value, share.summary.n, oslab::format_duration(static_cast<double>(outcome.round_ns)),
                    share.ratio.low, share.ratio.high, share.summary.p50, share.expected_percent));
  }

  // ---- the cases ----------------------------------------------------------------------

  void nice_pairs(oslab::Report& report) {
    for (const std::string& kind : kinds)
      for (long step : nice_steps) {
        const int b_nice = base_nice + static_cast<int>(step);
        const std::string what = fmt::format("nice {} vs nice {} as {}", base_nice, b_nice, kind);
        report.run_case(what, [&] {
          if (b_nice > 19)
            throw oslab::SkipError(fmt::format("the lab runs at nice {}; nice {} is beyond 19", base_nice, b_nice));
          const Setup a{Policy::other, base_nice}, b{Policy::other, b_nice};
          // A weaker B needs longer rounds to get a few slices in each.
          const double ratio = a.table_weight() / b.table_weight();
          const auto round_ns =
              static_cast<int64_t>(static_cast<double>(round_ms * kMs) * std::clamp(ratio / 4, 1.0, 4.0));
          const PairOutcome outcome = run_pair(a, b, kind == "threads", round_ns);
          record_pair(report, kind, a, b, outcome, fmt::format("nice-{}-vs-{}-{}", base_nice, b_nice, kind), 1.25);
          if (kind == "threads") {
            const PairRecord& ra = outcome.records[0];
            report.fact("nice-is-per-thread",
                        "on Linux a nice value belongs to one thread: setting B's leaves A's alone (POSIX says "
                        "per process)",
                        ra.nice_seen == base_nice && ra.other_nice_seen == b_nice,
                        fmt::format("thread A (tid {}) reads its own nice as {} and thread B's as {}", ra.tid,
                                    ra.nice_seen, ra.other_nice_seen));
          }
        });
      }
  }

  void batch(oslab::Report& report) {
    report.run_case("SCHED_OTHER vs SCHED_BATCH", [&] {
      const Setup a{Policy::other, base_nice}, b{Policy::batch, base_nice};
      const PairOutcome outcome = run_pair(a, b, true, round_ms * kMs);
      record_pair(report, "threads", a, b, outcome, "other-vs-batch", 1.25);
    });
  }

  // SCHED_IDLE runs only when no normal thread wants the CPU: on a busy machine it may not get
  // the CPU for seconds, so it must not be a party that has to reach a barrier. It is a child
  // process that spins until it is killed; a thread of the lab spins beside it and reads both
  // CPU clocks at the edges of each round.
  void idle(oslab::Report& report) {
    report.run_case("SCHED_OTHER vs SCHED_IDLE", [&] {
      const Setup a{Policy::other, base_nice}, b{Policy::idle, base_nice};
      const int n_rounds = rounds();
      const int64_t round_ns = round_ms * kMs;
      const auto give_up = std::chrono::milliseconds(n_rounds * (round_ns / kMs) + 10'000);
      oslab::Child spinner = oslab::Child::fork([give_up] {
        const auto end = std::chrono::steady_clock::now() + give_up;  // killed long before
        while (std::chrono::steady_clock::now() < end) {
        }
        return 0;
      });
      oslab::set_affinity({cpu}, spinner.pid());
      oslab::set_policy(Policy::idle, 0, spinner.pid());
      clockid_t spinner_clock{};
      oslab::check_errnum("clock_getcpuclockid", ::clock_getcpuclockid(spinner.pid(), &spinner_clock));
      auto spinner_cpu_ns = [&] {
        timespec ts{};
        oslab::check_errno("clock_gettime(the SCHED_IDLE child's CPU clock)", ::clock_gettime(spinner_clock, &ts));
        return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
      };
      PairOutcome outcome{{}, {}, round_ns};
      outcome.records[1].tid = spinner.pid();
      outcome.records[1].kernel_weight = oslab::kernel_weight(spinner.pid(), spinner.pid()).value_or(-1);
      std::exception_ptr failure;
      std::thread([&] {
        try {
          oslab::set_affinity({cpu});
          outcome.records[0].tid = ::gettid();
          outcome.records[0].kernel_weight = oslab::kernel_weight(::gettid()).value_or(-1);
          for (int r = 0; r < n_rounds; ++r) {
            const int64_t mine = thread_cpu_ns(), theirs = spinner_cpu_ns();
            const int64_t end = oslab::now_ns() + round_ns;
            while (oslab::now_ns() < end) {
            }
            const auto a_cpu = static_cast<double>(thread_cpu_ns() - mine);
            const auto b_cpu = static_cast<double>(spinner_cpu_ns() - theirs);
            outcome.weak_share_percent.push_back(a_cpu + b_cpu > 0 ? 100 * b_cpu / (a_cpu + b_cpu) : 0);
          }
        } catch (...) {
          failure = std::current_exception();
        }
      }).join();
      spinner.kill();
      if (failure) std::rethrow_exception(failure);
      const Share share = share_of(outcome, a, b);
      record_pair_row_only(report, "a thread and a process", a, b, outcome);
      report.verdict("idle-gets-almost-nothing",
                     fmt::format("SCHED_IDLE beside a normal thread gets almost nothing: less than 10% of the CPU "
                                 "(its weight {} against {} gives {:.2f}%)",
                                 oslab::kIdleWeight, a.table_weight(), share.expected_percent),
                     oslab::median_of(share.summary), oslab::Compare::below, 10.0,
                     fmt::format("the SCHED_IDLE process got {:.2f}% (median of {} rounds of {})", share.summary.p50,
                                 share.summary.n, oslab::format_duration(static_cast<double>(round_ns))),
                     "%");
    });
  }

  void record_pair_row_only(oslab::Report& report, const std::string& kind, const Setup& a, const Setup& b,
                            const PairOutcome& outcome) {
    const Share share = share_of(outcome, a, b);
    report.add_samples("weaker-share",
                       {{"a", a.label()}, {"b", b.label()}, {"as", kind}, {"cpu", cpu}, {"placement", "same-cpu"}},
                       outcome.weak_share_percent,
                       {.what = fmt::format("B's share of the CPU time A and B got together in one round of {} ({} "
                                            "vs {}, {} spinning on CPU {})",
                                            oslab::format_duration(static_cast<double>(outcome.round_ns)), a.label(),
                                            b.label(), kind, cpu),
                        .unit = "%"});
    shares.rows.push_back({kind, fmt::format("{} : {}", a.label(), b.label()),
                           fmt::format("{:.0f} : {:.0f}", a.table_weight(), b.table_weight()),
                           fmt::format("{:.0f}", share.expected_ratio), "-", "-",
                           fmt::format("{:.2f}%", share.summary.p50), fmt::format("{:.2f}%", share.expected_percent)});
    for (size_t w = 0; w < 2; ++w) {
      const Setup& setup = w == 0 ? a : b;
      const double kernel = outcome.records[w].kernel_weight;
      weight_rows.push_back({kind, setup.label(), fmt::format("{:.0f}", setup.table_weight()),
                             kernel < 0 ? std::string("not shown") : fmt::format("{:.0f}", kernel)});
      if (kernel >= 0)
        report.fact(fmt::format("weight-other-vs-idle-{}", w == 0 ? "a" : "b"),
                    fmt::format("the kernel holds the table's weight, {:.0f}, for {} (worker {})", setup.table_weight(),
                                setup.label(), w == 0 ? "A" : "B"),
                    kernel == setup.table_weight(),
                    fmt::format("se.load.weight in /proc/<pid>/task/{}/sched: {:.0f} (unscaled)",
                                outcome.records[w].tid, kernel));
    }
  }

  // A SCHED_FIFO spinner and a normal spinner on one CPU: the normal one gets only what RT
  // throttling (and, since 6.12, the fair server) leaves it.
  void fifo_starves(oslab::Report& report) {
    report.run_case("SCHED_FIFO vs SCHED_OTHER", [&] {
      oslab::require_bounded_rt(kRtPriority);
      const int64_t window_ns = fifo_ms * kMs;
      const size_t capacity = static_cast<size_t>(fifo_ms) * 20 + 4096;
      oslab::SharedArray<oslab::CpuRun> storage(capacity);
      oslab::SharedArray<StarveRecord> records(2);
      records[1].log = oslab::RunLog(storage.span());
      oslab::Shared<StarveShared> control;
      const auto deadline = std::chrono::nanoseconds(window_ns) + std::chrono::seconds(3);
      auto body = [&](oslab::Party& party) {
        const size_t me = party.index();
        oslab::RtWatchdog::Registration bound;
        if (me == 0) {
          bound = watchdog.watch(std::chrono::steady_clock::now() + deadline);
          oslab::set_policy(Policy::fifo, kRtPriority);
        }
        party.ready();
        int64_t expected = 0;
        control->start_ns.compare_exchange_strong(expected, oslab::now_ns() + kMs);
        const int64_t start = control->start_ns.load(), end = start + window_ns;
        int64_t cpu_at_start = -1;
        StarveRecord& record = records[me];
        for (uint64_t pass = 0;; ++pass) {
          const int64_t now = oslab::now_ns();
          if (me == 1) record.log.stamp(now);
          if (cpu_at_start < 0 && now >= start) cpu_at_start = thread_cpu_ns();
          if (now >= end) break;
          if ((pass & 0xFFFF) == 0 && party.stop_requested()) break;
        }
        record.log.finish();
        record.cpu_ns = thread_cpu_ns() - cpu_at_start;
      };
      const auto limit = std::chrono::duration_cast<std::chrono::milliseconds>(deadline);
      oslab::run_parties({.threads = true, .assignment = one_cpu(2), .deadline = limit}, {body, body});
      if (watchdog.demoted() > 0) throw std::runtime_error("the SCHED_FIFO worker overran and was demoted");

      const int64_t start = control->start_ns.load();
      const oslab::Timeline normal = oslab::reconstruct(
          std::vector<std::span<const oslab::CpuRun>>{records[1].log.runs()}, start, start + window_ns);
      int64_t longest_stall = 0, previous_end = start;
      for (const oslab::CpuRun& run : records[1].log.runs()) {
        if (run.end_ns < start) continue;
        longest_stall = std::max(longest_stall, std::max(run.start_ns, start) - previous_end);
        previous_end = run.end_ns;
      }
      longest_stall = std::max(longest_stall, start + window_ns - std::min(previous_end, start + window_ns));
      const double normal_share = static_cast<double>(records[1].cpu_ns) / static_cast<double>(window_ns);
      const double fifo_share = static_cast<double>(records[0].cpu_ns) / static_cast<double>(window_ns);
      const nlohmann::json params = {{"cpu", cpu}, {"placement", "same-cpu"}, {"window_ms", fifo_ms}};
      report.add_samples("normal-share-beside-fifo", params, {100 * normal_share},
                         {.what = fmt::format("the SCHED_OTHER thread's CPU time over the {} window in which a "
                                              "SCHED_FIFO thread spun on the same CPU (CPU {})",
                                              oslab::format_duration(static_cast<double>(window_ns)), cpu),
                          .unit = "%"});
      report.add_samples("fifo-share", params, {100 * fifo_share},
                         {.what = "the SCHED_FIFO thread's CPU time over the same window", .unit = "%"});
      const double limit_share = throttle.others_share();
      oslab::Table table{fmt::format("A SCHED_FIFO spinner and a SCHED_OTHER spinner on CPU {} for {}", cpu,
                                     oslab::format_duration(static_cast<double>(window_ns))),
                         {"thread", "CPU time", "share", "ran in", "longest wait"},
                         {},
                         fmt::format("RT throttling: {}.{}", throttle.describe(),
                                     fair.name == "EEVDF" ? " Since Linux 6.12 a deadline server for normal threads "
                                                            "(the fair server, 50 ms per 1 s by default) does the "
                                                            "same."
                                                          : ""),
                         1};
      table.rows.push_back({"SCHED_FIFO 1", oslab::format_duration(static_cast<double>(records[0].cpu_ns)),
                            oslab::format_percent(fifo_share), "-", "-"});
      table.rows.push_back({"SCHED_OTHER", oslab::format_duration(static_cast<double>(records[1].cpu_ns)),
                            oslab::format_percent(normal_share), fmt::format("{} slices", normal.slices.size()),
                            oslab::format_duration(static_cast<double>(longest_stall))});
      report.table(table);
      report.verdict(
          "fifo-starves-normal",
          fmt::format("a SCHED_FIFO spinner starves a normal thread on its CPU: it gets no more than the "
                      "{} RT throttling leaves (with 2 points to spare)",
                      oslab::format_percent(limit_share)),
          normal_share <= limit_share + 0.02 ? oslab::VerdictState::holds : oslab::VerdictState::does_not_hold,
          fmt::format("the normal thread got {} of the CPU in {}; its longest wait was {}",
                      oslab::format_percent(normal_share), oslab::format_duration(static_cast<double>(window_ns)),
                      oslab::format_duration(static_cast<double>(longest_stall))));
      report.verdict("throttle-lets-normal-run",
                     "RT throttling lets the starved thread run within each second (it gets at least 1%)",
                     window_ns < 1'000 * kMs ? oslab::VerdictState::inconclusive
                     : normal_share >= 0.01  ? oslab::VerdictState::holds
                                             : oslab::VerdictState::does_not_hold,
                     fmt::format("the normal thread got {} in a window of {}{}", oslab::format_percent(normal_share),
                                 oslab::format_duration(static_cast<double>(window_ns)),
                                 window_ns < 1'000 * kMs ? " (shorter than a throttling period: cannot tell)" : ""));
    });
  }

  // Two workers on one CPU call sched_yield() in a loop: how often does the other run next?
  void yields(oslab::Report& report) {
    oslab::Table table{fmt::format("sched_yield(): two threads on CPU {} yield in a loop", cpu),
                       {"policy", "yields", "handed over", "per yield"},
                       {},
                       "Handed over: the yield was followed by the other thread's turn. A SCHED_FIFO or SCHED_RR "
                       "thread that yields goes to the back of its priority's queue; a normal thread's yield only "
                       "tells the fair scheduler it may pick another (EEVDF pushes back its deadline).",
                       1};
    for (Policy policy : {Policy::other, Policy::rr, Policy::fifo}) {
      report.run_case(fmt::format("sched_yield under {}", to_string(policy)), [&] {
        if (oslab::is_realtime(policy)) oslab::require_bounded_rt(kRtPriority);
        const int64_t window_ns = (lab.quick() ? 50 : 200) * kMs;
        oslab::SharedArray<YieldRecord> records(2);
        oslab::Shared<YieldShared> control;
        const auto deadline = std::chrono::nanoseconds(window_ns) + std::chrono::seconds(3);
        auto body = [&](oslab::Party& party) {
          const int me = static_cast<int>(party.index());
          oslab::RtWatchdog::Registration bound;
          if (oslab::is_realtime(policy)) {
            bound = watchdog.watch(std::chrono::steady_clock::now() + deadline);
            oslab::set_policy(policy, kRtPriority);
          }
          party.ready();
          int64_t expected = 0;
          control->start_ns.compare_exchange_strong(expected, oslab::now_ns());
          const int64_t end = control->start_ns.load() + window_ns;
          YieldRecord& record = records[static_cast<size_t>(me)];
          while (oslab::now_ns() < end) {
            if (control->last.exchange(me) != me) ++record.handoffs;
            ++record.yields;
            ::sched_yield();
          }
        };
        oslab::run_parties({.threads = true,
                            .assignment = one_cpu(2),
                            .deadline = std::chrono::duration_cast<std::chrono::milliseconds>(deadline)},
                           {body, body});
        const double yields = static_cast<double>(records[0].yields + records[1].yields);
        // The first turn of each worker is not a hand-over from a yield.
        const double handoffs = std::max(0.0, static_cast<double>(records[0].handoffs + records[1].handoffs) - 1);
        const double fraction = yields > 0 ? handoffs / yields : 0;
        report.add_samples(
            "yield-handoff", {{"policy", to_string(policy)}, {"cpu", cpu}, {"placement", "same-cpu"}}, {100 * fraction},
            {.what = fmt::format("share of sched_yield() calls after which the other thread ran "
                                 "next, two {} threads on CPU {} for {}",
                                 to_string(policy), cpu, oslab::format_duration(static_cast<double>(window_ns))),
             .unit = "%"});
        table.rows.push_back({to_string(policy), oslab::format_number(yields), oslab::format_percent(fraction),
                              oslab::format_duration(yields > 0 ? static_cast<double>(window_ns) / yields : 0)});
        if (policy == Policy::fifo)
          report.fact("fifo-yield-hands-over",
                      "sched_yield() under SCHED_FIFO hands the CPU to the other thread of the same priority (99% "
                      "of yields or more)",
                      fraction >= 0.99,
                      fmt::format("{} of {} yields were followed by the other thread", handoffs, yields));
      });
    }
    if (!table.rows.empty()) report.table(table);
  }

  void tables(oslab::Report& report) {
    if (!shares.rows.empty()) {
      shares.title = fmt::format("CPU shares of two spinners on CPU {} (A : B)", cpu);
      shares.header = {"as",       "A : B",     "weights (kernel table)", "expected A:B", "measured A:B",
                       "interval", "B's share", "by the weights"};
      shares.footnote =
          "Weights: sched_prio_to_weight in kernel/sched/core.c (SCHED_IDLE: WEIGHT_IDLEPRIO = 3). Measured: "
          "from the median of B's share over the rounds. Each nice step is about 1.25x: nice 0 : nice 5 = 3.06:1.";
      report.table(shares);
    }
    if (!weight_rows.empty())
      report.table({"The weights as the kernel holds them",
                    {"as", "worker", "table", "kernel (se.load.weight)"},
                    weight_rows,
                    "Read from /proc/<pid>/task/<tid>/sched (64-bit kernels keep it x1024).",
                    2});
  }
};

}  // namespace

int main(int argc, char** argv) {
  oslab::Lab lab({
      .name = "priority",
      .purpose = "what a priority buys: CPU shares by nice value against the kernel's weights, SCHED_IDLE, "
                 "SCHED_BATCH, SCHED_FIFO starvation and sched_yield",
      .claim = "The notes: every thread has a scheduling policy and priority (\"politica y prioridad de\n"
               "ejecucion\", \"Prioridad del scheduling\", a process's \"priority class\"); the scheduler\n"
               "decides how much each one runs (\"saber cuanto se ejecuta cada thread\").",
      .explain = "Two CPU-bound workers are pinned to one CPU and spin for several rounds; each reads its own\n"
                 "CPU time (CLOCK_THREAD_CPUTIME_ID) at the start and end of every round, and the lab reports\n"
                 "the weaker one's share. Under SCHED_OTHER the fair scheduler (EEVDF since 6.6, CFS before)\n"
                 "shares the CPU in proportion to weights, which come from the nice value through a fixed\n"
                 "table (sched_prio_to_weight: 1024 at nice 0, each step about 1.25x, so nice 0 : nice 5 =\n"
                 "1024 : 335, about 3:1). The lab reads each worker's weight back from the kernel\n"
                 "(se.load.weight in /proc/self/task/<tid>/sched) and compares the measured shares with the\n"
                 "table. It does this for two processes and for two threads of one process: on Linux the\n"
                 "nice value belongs to one thread (setpriority with a thread id), though POSIX says it\n"
                 "belongs to the process. Nice values are only raised, which needs no privilege.\n\n"
                 "SCHED_IDLE is for work that should run only when nothing else wants the CPU: its weight\n"
                 "is 3, against 1024 for nice 0. SCHED_BATCH has the weight of its nice value; it only\n"
                 "gives up preempting others when it wakes, so two spinners share 1:1.\n\n"
                 "A SCHED_FIFO thread (priority 1, the lowest real-time one) runs before every normal\n"
                 "thread: a normal spinner on its CPU gets nothing, except what RT throttling keeps for the\n"
                 "others (sched_rt_runtime_us of every sched_rt_period_us: 950 ms of each second by\n"
                 "default, so 5% is left; since 6.12 the fair server does this job for normal threads).\n"
                 "Last, two threads call sched_yield() in a loop under each policy: a real-time thread that\n"
                 "yields goes to the back of its priority's queue, so the other runs next every time -\n"
                 "cooperative multitasking.\n\n"
                 "Real-time cases need root or CAP_SYS_NICE (or RLIMIT_RTPRIO); without them they are\n"
                 "skipped, saying why. Every real-time thread is bounded: it stops at its deadline, a\n"
                 "normal-priority watchdog demotes it if it does not, RT throttling must be on, and\n"
                 "RLIMIT_RTTIME ends the process if one spins for seconds without blocking.\n\n"
                 "Questions: why is a nice value a weight and not a priority in the strict sense? What share\n"
                 "does nice 19 get against nice 0, and how long must you measure to see it? Why does\n"
                 "SCHED_IDLE not get exactly 3/1027? What would happen to the machine without RT throttling?",
  });
  const auto& nice_steps =
      lab.list_option("--nice", "Nice values above the lab's own for worker B", {{1, 5, 10, 19}, {5}}, 1, 19);
  const auto& kinds = lab.choice_option("--as", "Run the nice pairs as", {"processes", "threads"},
                                        {{"processes", "threads"}, {"processes", "threads"}});
  const auto& cases =
      lab.choice_option("--cases", "Cases to run", {"nice", "idle", "batch", "fifo", "yield"},
                        {{"nice", "idle", "batch", "fifo", "yield"}, {"nice", "idle", "batch", "fifo", "yield"}});
  const long& round_ms = lab.integer_option("--round-ms",
                                            "Length of one round of a pair, in ms (longer for a "
                                            "much weaker B)",
                                            {200, 100}, 10, 10'000);
  const long& fifo_ms =
      lab.integer_option("--fifo-ms", "How long the SCHED_FIFO spinner runs, in ms", {2000, 1200}, 100, 5'000);
  std::optional<Experiment> experiment;
  return lab.run(
      argc, argv,
      [&](oslab::Report& report) {
        Experiment& e = *experiment;
        report.params["base_nice"] = e.base_nice;
        report.params["rounds"] = e.rounds();
        report.params["fair_scheduler"] = e.fair.describe();
        report.params["rt_throttle"] = e.throttle.describe();
        report.note("SCHED_OTHER here is " + e.fair.describe() + ".");
        // The last line of defence: a real-time thread that spins this long without blocking ends the run.
        const oslab::ScopedRtTimeLimit rt_time_limit(std::chrono::milliseconds(fifo_ms + 3000));
        if (e.wants("nice")) e.nice_pairs(report);
        if (e.wants("idle")) e.idle(report);
        if (e.wants("batch")) e.batch(report);
        if (e.wants("fifo")) e.fifo_starves(report);
        if (e.wants("yield")) e.yields(report);
        e.tables(report);
        report.show_results_table = false;
      },
      [&](oslab::Report&) {
        experiment.emplace(lab, nice_steps, kinds, cases, round_ms, fifo_ms, lab.options().cpus.back());
      });
}
