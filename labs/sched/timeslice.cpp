// oslab-timeslice: the time partition made visible. N CPU-bound workers share one CPU and
// read the clock on every pass of their loop; from the gaps in each worker's stamps the lab
// rebuilds who ran when: the slices, their lengths, the switches per second, and each
// worker's CPU time against the wall time, under SCHED_OTHER, SCHED_RR and SCHED_FIFO.
//
// Try:     oslab-timeslice                    3 processes on one CPU, each policy in turn
//          oslab-timeslice -T -n 4            4 threads of one process instead
//          oslab-timeslice --policies other --window-ms 3000
//          oslab-timeslice --json | jq '.params.timeline_ms.SCHED_RR'   (plot-ready slices)
// Expect:  SCHED_OTHER: slices of a few ms (the fair scheduler's slice, rounded up to the
//          timer tick), hundreds of switches per second, each worker a virtual processor
//          running at about 1/N of the CPU's speed. SCHED_RR: slices of exactly the RR
//          quantum (sched_rr_get_interval, 100 ms by default). SCHED_FIFO: no slices at all:
//          the first worker keeps the CPU until it is done. Real-time rows need root or
//          CAP_SYS_NICE; without them they are skipped, saying so.
// Compare: oslab-priority (what a nice value or a policy buys), oslab-wakeup (how late a
//          sleeping thread gets the CPU back).

#include <sched.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <map>
#include <optional>

#include <fmt/format.h>

#include "oslab/clock.hpp"
#include "oslab/error.hpp"
#include "oslab/lab.hpp"
#include "oslab/parties.hpp"
#include "oslab/sched.hpp"
#include "oslab/shared.hpp"
#include "oslab/stats.hpp"
#include "oslab/timeline.hpp"

namespace {

using oslab::Policy;

constexpr int kRtPriority = 1;  // the lowest real-time priority: above every normal thread
constexpr int64_t kMs = 1'000'000;

// What one worker leaves behind, in shared memory so that a worker process can too.
struct WorkerRecord {
  oslab::RunLog log;
  int64_t cpu_at_start_ns = -1, cpu_at_end_ns = -1;  // CLOCK_THREAD_CPUTIME_ID at the window's edges
  long involuntary_at_start = 0, involuntary_at_end = 0;
  long voluntary_at_start = 0, voluntary_at_end = 0;
  pid_t tid = 0;
  int policy_seen = -1;
  double rr_interval_ns = 0;
};

struct Start {
  std::atomic<int64_t> window_start_ns{0};
};

int64_t thread_cpu_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

void read_switches(long& voluntary, long& involuntary) {
  rusage usage{};
  ::getrusage(RUSAGE_THREAD, &usage);
  voluntary = usage.ru_nvcsw;
  involuntary = usage.ru_nivcsw;
}

// The worker: stamps the clock on every pass until the window has ended. The first worker
// out of the start barrier fixes the window for all.
void spin_and_stamp(WorkerRecord& record, Start& start, int64_t window_ns, const oslab::Party& party) {
  int64_t expected = 0;
  start.window_start_ns.compare_exchange_strong(expected, oslab::now_ns() + kMs);
  const int64_t window_start = start.window_start_ns.load();
  const int64_t window_end = window_start + window_ns;
  bool started = false;
  for (uint64_t pass = 0;; ++pass) {
    const int64_t now = oslab::now_ns();
    if (!record.log.stamp(now)) break;
    if (!started && now >= window_start) {
      started = true;
      record.cpu_at_start_ns = thread_cpu_ns();
      read_switches(record.voluntary_at_start, record.involuntary_at_start);
    }
    if (now >= window_end) break;
    if ((pass & 0xFFFF) == 0 && party.stop_requested()) break;
  }
  record.log.finish();
  record.cpu_at_end_ns = thread_cpu_ns();
  if (!started) record.cpu_at_start_ns = record.cpu_at_end_ns;
  read_switches(record.voluntary_at_end, record.involuntary_at_end);
}

// The RR quantum the kernel is configured with, before any RR thread can ask for its own.
double rr_timeslice_sysctl_ns() {
  std::ifstream in("/proc/sys/kernel/sched_rr_timeslice_ms");
  long ms = 0;
  return in >> ms && ms > 0 ? static_cast<double>(ms) * 1e6 : 100e6;
}

struct CaseResult {
  Policy policy;
  int64_t window_ns;
  oslab::Timeline timeline;
  std::vector<WorkerRecord> records;
  bool overflowed = false;
};

struct Experiment {
  const oslab::Lab& lab;
  long workers;
  long window_ms;
  long timeline_ms;
  int cpu;
  oslab::FairScheduler fair = oslab::detect_fair_scheduler();
  oslab::RtThrottle throttle = oslab::read_rt_throttle();
  double rr_quantum_ns = 0;
  std::vector<CaseResult> cases;
  oslab::RtWatchdog watchdog;

  Experiment(const oslab::Lab& of_lab, long worker_count, long window_length_ms, long drawn_ms, int on_cpu)
      : lab(of_lab), workers(worker_count), window_ms(window_length_ms), timeline_ms(drawn_ms), cpu(on_cpu) {}

  // How long each policy's window is: SCHED_RR's long enough for whole quanta, SCHED_FIFO's
  // just long enough to see that nobody else runs; both well under the RT throttle's budget.
  int64_t window_of(Policy policy) const {
    if (policy == Policy::fifo) return (lab.quick() ? 150 : 300) * kMs;
    if (policy == Policy::rr) {
      const double turns = lab.quick() ? static_cast<double>(workers) + 0.5 : 2.0 * static_cast<double>(workers) + 0.5;
      return std::clamp(static_cast<int64_t>(turns * rr_quantum_ns), 100 * kMs, 900 * kMs);
    }
    return window_ms * kMs;
  }

  void run_policy(oslab::Report& report, Policy policy) {
    if (oslab::is_realtime(policy)) oslab::require_bounded_rt(kRtPriority);
    const int64_t window_ns = window_of(policy);
    const auto n = static_cast<size_t>(workers);
    const size_t capacity = std::max<size_t>(4096, static_cast<size_t>(window_ns / kMs) * 20);
    oslab::SharedArray<oslab::CpuRun> storage(n * capacity);
    oslab::SharedArray<WorkerRecord> records(n);
    for (size_t i = 0; i < n; ++i)
      records[i].log = oslab::RunLog(std::span<oslab::CpuRun>(storage.data() + i * capacity, capacity));
    oslab::Shared<Start> start;
    const auto deadline = std::chrono::nanoseconds(window_ns) + std::chrono::seconds(5);

    std::vector<std::function<void(oslab::Party&)>> bodies;
    for (size_t i = 0; i < n; ++i)
      bodies.emplace_back([&, i](oslab::Party& party) {
        WorkerRecord& record = records[i];
        record.tid = ::gettid();
        oslab::RtWatchdog::Registration bound;
        if (oslab::is_realtime(policy)) {
          bound = watchdog.watch(std::chrono::steady_clock::now() + deadline);
          oslab::set_policy(policy, kRtPriority);
        }
        record.policy_seen = ::sched_getscheduler(0);
        record.rr_interval_ns = oslab::rr_interval_ns();
        party.ready();
        spin_and_stamp(record, *start, window_ns, party);
      });
    oslab::run_parties({.threads = lab.options().threads,
                        .assignment = oslab::assign_cpus(oslab::Placement::same_cpu, n, {cpu}),
                        .deadline = std::chrono::duration_cast<std::chrono::milliseconds>(deadline)},
                       bodies);
    if (watchdog.demoted() > 0)
      throw std::runtime_error("a real-time worker outlived its deadline and was demoted by the watchdog");

    CaseResult result{policy, window_ns, {}, std::vector<WorkerRecord>(records.data(), records.data() + n)};
    std::vector<std::span<const oslab::CpuRun>> runs;
    int64_t window_end = start->window_start_ns + window_ns;
    for (const WorkerRecord& record : result.records) {
      if (record.policy_seen != oslab::native_policy(policy))
        throw std::runtime_error(fmt::format("a worker runs policy {}, not {}", record.policy_seen, to_string(policy)));
      runs.push_back(record.log.runs());
      if (record.log.overflowed() && !record.log.runs().empty()) {
        result.overflowed = true;
        window_end = std::min(window_end, record.log.runs().back().end_ns);
      }
    }
    if (result.overflowed)
      report.note(fmt::format("{}: a worker's log of runs filled up; the timeline ends early", to_string(policy)));
    result.timeline = oslab::reconstruct(runs, start->window_start_ns, window_end);
    if (policy == Policy::rr) rr_quantum_ns = result.records.front().rr_interval_ns;
    add_results(report, result);
    cases.push_back(std::move(result));
  }

  nlohmann::json params_of(Policy policy) const {
    return {{"policy", to_string(policy)},
            {"workers", workers},
            {"threads", lab.options().threads},
            {"cpu", cpu},
            {"placement", "same-cpu"}};
  }

  void add_results(oslab::Report& report, const CaseResult& c) const {
    const std::vector<double> slices = c.timeline.complete_slice_lengths();
    if (slices.empty()) return;
    report.add_samples(
        "slice", params_of(c.policy), slices,
        {.what = fmt::format("one whole time slice under {}: from a worker's first clock stamp after another worker "
                             "ran to its last stamp before another ran (wall time, interrupts included); {} {} on "
                             "CPU {}",
                             to_string(c.policy), workers, lab.options().threads ? "threads" : "processes", cpu),
         .headline = c.policy == Policy::other});
  }

  // ---- tables -------------------------------------------------------------------------

  std::string kernel_says(const CaseResult& c) const {
    switch (c.policy) {
      case Policy::rr:
        return fmt::format("quantum {} (sched_rr_get_interval)",
                           oslab::format_duration(c.records.front().rr_interval_ns));
      case Policy::fifo: return "no slice: runs until it blocks or yields";
      default:
        return fair.slice_ns > 0 ? fmt::format("{} slice {}", fair.name, oslab::format_duration(fair.slice_ns))
                                 : fair.name;
    }
  }

  void tables(oslab::Report& report) const {
    oslab::Table slices{
        fmt::format("Time slices on CPU {} ({} CPU-bound {})", cpu, workers,
                    lab.options().threads ? "threads" : "processes"),
        {"policy", "window", "whole slices", "p50", "p90", "max", "switches/s", "breaks/s", "the kernel says"},
        {},
        "A whole slice is bounded by another worker's slice on both sides; the first and last "
        "slices of the window are cut by it and left out. Breaks: gaps inside a slice where none "
        "of the workers ran (the timer tick, other interrupts, another program's thread, the hypervisor).",
        1};
    for (const CaseResult& c : cases) {
      const oslab::Summary s = oslab::summarize(c.timeline.complete_slice_lengths());
      auto show = [&](double v) { return s.n ? oslab::format_duration(v) : std::string("-"); };
      slices.rows.push_back({to_string(c.policy), oslab::format_duration(static_cast<double>(c.timeline.window_ns())),
                             std::to_string(s.n), show(s.p50), show(s.p90), show(s.max),
                             oslab::format_number(c.timeline.switches_per_second()),
                             oslab::format_number(static_cast<double>(c.timeline.breaks) * 1e9 /
                                                  static_cast<double>(std::max<int64_t>(c.timeline.window_ns(), 1))),
                             kernel_says(c)});
    }
    report.table(slices);

    oslab::Table speed{"Each worker's virtual processor: its CPU time against the wall time of the window",
                       {"policy", "worker", "CPU time (kernel)", "on CPU (stamps)", "speed", "slices",
                        "involuntary switches (kernel)"},
                       {},
                       "CPU time: CLOCK_THREAD_CPUTIME_ID at the window's edges. On CPU: the worker's runs of "
                       "stamps. Speed: CPU time / wall time, the speed of the worker's 'virtual processor'.",
                       2};
    for (const CaseResult& c : cases)
      for (size_t i = 0; i < c.records.size(); ++i) {
        const WorkerRecord& r = c.records[i];
        const auto cpu_ns = static_cast<double>(r.cpu_at_end_ns - r.cpu_at_start_ns);
        speed.rows.push_back(
            {i == 0 ? to_string(c.policy) : "", fmt::format("{} (tid {})", oslab::worker_letter(i), r.tid),
             oslab::format_duration(cpu_ns), oslab::format_duration(static_cast<double>(c.timeline.on_cpu_ns[i])),
             oslab::format_percent(cpu_ns / static_cast<double>(c.timeline.window_ns())),
             std::to_string(c.timeline.slices_of[i]), std::to_string(r.involuntary_at_end - r.involuntary_at_start)});
      }
    report.table(speed);

    oslab::Table picture{fmt::format("Who ran on CPU {} (A, B, C ... = workers; '.' = none of them)", cpu),
                         {"policy", "from", "timeline"},
                         {},
                         "",
                         3};
    for (const CaseResult& c : cases) {
      const int64_t shown =
          c.policy == Policy::other ? std::min(timeline_ms * kMs, c.timeline.window_ns()) : c.timeline.window_ns();
      const int64_t bucket = std::max<int64_t>(1, (shown + 200 * kMs - 1) / (200 * kMs)) * kMs;
      const auto lines = oslab::render(c.timeline, c.timeline.window_start_ns, bucket, 100,
                                       static_cast<size_t>((shown + bucket * 100 - 1) / (bucket * 100)));
      for (size_t l = 0; l < lines.size(); ++l)
        picture.rows.push_back({l == 0 ? fmt::format("{} ({} per char)", to_string(c.policy),
                                                     oslab::format_duration(static_cast<double>(bucket)))
                                       : "",
                                fmt::format("{} ms", static_cast<int64_t>(l) * 100 * bucket / kMs), lines[l]});
    }
    report.table(picture);
  }

  // Plot-ready: every slice of the first --timeline-ms of each policy.
  void series(oslab::Report& report) const {
    nlohmann::json all = nlohmann::json::object();
    for (const CaseResult& c : cases) {
      nlohmann::json rows = nlohmann::json::array();
      const int64_t from = c.timeline.window_start_ns;
      for (const oslab::Slice& slice : c.timeline.slices) {
        if (slice.start_ns - from > timeline_ms * kMs) break;
        rows.push_back({std::string(1, oslab::worker_letter(slice.worker)),
                        static_cast<double>(slice.start_ns - from) / 1e6,
                        static_cast<double>(slice.end_ns - from) / 1e6});
      }
      all[to_string(c.policy)] = rows;
    }
    report.params["timeline_ms"] = all;
    report.params["timeline_ms_columns"] = {"worker", "start_ms", "end_ms"};
  }

  // ---- verdicts -----------------------------------------------------------------------

  void verdicts(oslab::Report& report) const {
    for (const CaseResult& c : cases) {
      const std::string policy = to_string(c.policy);
      const std::string id = c.policy == Policy::other ? "other" : c.policy == Policy::rr ? "rr" : "fifo";
      report.fact(
          id + "-one-at-a-time", policy + ": one CPU runs one worker at a time", c.timeline.overlaps == 0,
          fmt::format("{} of {} slices overlapped another worker's", c.timeline.overlaps, c.timeline.slices.size()));
      cpu_time_agrees(report, c, id);
      kernel_counts_the_switches(report, c, id);
      switch (c.policy) {
        case Policy::other: other_verdicts(report, c); break;
        case Policy::rr: rr_verdict(report, c); break;
        case Policy::fifo: fifo_fact(report, c); break;
        default: break;
      }
    }
  }

  // The stamps and the kernel's accounting are two views of one thing: they must agree.
  void cpu_time_agrees(oslab::Report& report, const CaseResult& c, const std::string& id) const {
    double worst = 1;
    std::string evidence;
    for (size_t i = 0; i < c.records.size(); ++i) {
      const auto kernel_cpu = static_cast<double>(c.records[i].cpu_at_end_ns - c.records[i].cpu_at_start_ns);
      const auto stamps = static_cast<double>(c.timeline.on_cpu_ns[i]);
      if (kernel_cpu < 10.0 * kMs) continue;  // a worker that hardly ran: nothing to compare
      const double ratio = stamps / kernel_cpu;
      if (std::abs(ratio - 1) > std::abs(worst - 1)) worst = ratio;
      evidence +=
          fmt::format("{}{}: {} by stamps, {} by the kernel", evidence.empty() ? "" : "; ", oslab::worker_letter(i),
                      oslab::format_duration(stamps), oslab::format_duration(kernel_cpu));
    }
    const double off = std::abs(worst - 1);
    report.verdict(id + "-stamps-match-cpu-time",
                   fmt::format("{}: the time on CPU rebuilt from the stamps matches the kernel's CPU time (within 10%)",
                               to_string(c.policy)),
                   off <= 0.10  ? oslab::VerdictState::holds
                   : off > 0.30 ? oslab::VerdictState::does_not_hold
                                : oslab::VerdictState::inconclusive,
                   evidence + fmt::format(" (worst ratio {:.3f}; more than 30% off would not hold)", worst));
  }

  // Every time a worker lost the CPU to another while it still wanted it, the kernel counted an
  // involuntary switch (one more at most is lost at each edge of the window).
  void kernel_counts_the_switches(oslab::Report& report, const CaseResult& c, const std::string& id) const {
    bool holds = true;
    std::string evidence;
    for (size_t i = 0; i < c.records.size(); ++i) {
      const size_t owns_last = !c.timeline.slices.empty() && c.timeline.slices.back().worker == i;
      const size_t lost = c.timeline.slices_of[i] - owns_last;
      const long counted = c.records[i].involuntary_at_end - c.records[i].involuntary_at_start;
      holds = holds && counted + 1 >= static_cast<long>(lost);
      evidence += fmt::format("{}{}: lost the CPU {} times in the timeline, {} involuntary switches counted",
                              evidence.empty() ? "" : "; ", oslab::worker_letter(i), lost, counted);
    }
    report.fact(id + "-kernel-counts-switches",
                fmt::format("{}: the kernel counted an involuntary switch each time the timeline shows a worker "
                            "losing the CPU",
                            to_string(c.policy)),
                holds, evidence);
  }

  void other_verdicts(oslab::Report& report, const CaseResult& c) const {
    // Fair shares: a fair scheduler keeps equal workers within about one slice of each other
    // (the window cuts a slice at each end), whatever the window's length.
    std::vector<double> cpu_times;
    for (const WorkerRecord& r : c.records)
      cpu_times.push_back(static_cast<double>(r.cpu_at_end_ns - r.cpu_at_start_ns));
    const double least = *std::min_element(cpu_times.begin(), cpu_times.end());
    const double most = *std::max_element(cpu_times.begin(), cpu_times.end());
    const std::vector<double> slices = c.timeline.complete_slice_lengths();
    const double slice = slices.empty() ? 0 : oslab::summarize(slices).p90;
    const double mean = (least + most) / 2;
    const double allowed = slice + 0.1 * mean;
    const double imbalance = most - least;
    report.verdict(
        "other-fair-shares",
        fmt::format("SCHED_OTHER: {} equal workers each run on a virtual processor of 1/{} of what they "
                    "get together: their CPU times differ by no more than a slice and 10%",
                    workers, workers),
        imbalance <= allowed      ? oslab::VerdictState::holds
        : imbalance > 2 * allowed ? oslab::VerdictState::does_not_hold
                                  : oslab::VerdictState::inconclusive,
        fmt::format("CPU time from {} to {} per worker over {}: they differ by {}; allowed {} (a slice, "
                    "p90 {}, and 10% of the mean); twice that would not hold",
                    oslab::format_duration(least), oslab::format_duration(most),
                    oslab::format_duration(static_cast<double>(c.timeline.window_ns())),
                    oslab::format_duration(imbalance), oslab::format_duration(allowed), oslab::format_duration(slice)));
    report.fact("other-time-shared", "SCHED_OTHER: the workers take turns (the CPU is partitioned in time)",
                c.timeline.switches >= 2 * c.records.size(),
                fmt::format("{} switches between workers in {} ({:.0f} per second)", c.timeline.switches,
                            oslab::format_duration(static_cast<double>(c.timeline.window_ns())),
                            c.timeline.switches_per_second()));
  }

  void rr_verdict(oslab::Report& report, const CaseResult& c) const {
    const double quantum = c.records.front().rr_interval_ns;
    const std::vector<double> slices = c.timeline.complete_slice_lengths();
    if (slices.empty()) {
      report.verdict("rr-slice-is-the-quantum", "SCHED_RR: a slice lasts the RR quantum",
                     oslab::VerdictState::inconclusive,
                     "no whole slice in the window (the quantum is too long for it)");
      return;
    }
    const oslab::Summary s = oslab::summarize(slices);
    const oslab::Estimate ratio{s.p50 / quantum, s.p50_ci_low / quantum, s.p50_ci_high / quantum};
    report.verdict("rr-slice-is-the-quantum",
                   fmt::format("SCHED_RR: a slice lasts the RR quantum, {} (sched_rr_get_interval), within 10%",
                               oslab::format_duration(quantum)),
                   oslab::all_of({oslab::decide(ratio, oslab::Compare::above, 0.9),
                                  oslab::decide(ratio, oslab::Compare::below, 1.1)}),
                   fmt::format("median slice {} over {} whole slices = {:.3f}x the quantum, interval {:.3f}x .. "
                               "{:.3f}x",
                               oslab::format_duration(s.p50), s.n, ratio.value, ratio.low, ratio.high));
  }

  void fifo_fact(oslab::Report& report, const CaseResult& c) const {
    size_t ran = 0;
    for (int64_t on : c.timeline.on_cpu_ns) ran += on > 0;
    report.fact("fifo-no-slices",
                "SCHED_FIFO: no time slices among equals: the first worker keeps the CPU for the whole window and "
                "the others never run in it",
                c.timeline.switches == 0 && ran == 1,
                fmt::format("{} switches; {} of {} workers ran in the {} window", c.timeline.switches, ran,
                            c.records.size(), oslab::format_duration(static_cast<double>(c.timeline.window_ns()))));
  }
};

}  // namespace

int main(int argc, char** argv) {
  oslab::Lab lab({
      .name = "timeslice",
      .purpose = "the CPU partitioned in time: who ran when, slice lengths and switches under SCHED_OTHER, RR and FIFO",
      .claim = "The notes: the scheduler partitions the CPU in time; each thread has a policy and a priority, and\n"
               "runs on a virtual processor of its own whose speed varies (\"CPU: Scheduler -> particion\n"
               "temporal\"; \"cada thread corre en un procesador virtual dedicado y exclusivo con una velocidad\n"
               "variable\"; \"saber cuanto se ejecuta cada thread dentro del proceso\").",
      .explain = "N CPU-bound workers are pinned to one CPU and spin, reading CLOCK_MONOTONIC on every pass\n"
                 "(a few tens of ns apart). A worker that loses the CPU stops stamping; when it gets the CPU\n"
                 "back its next stamp is far from the last. Each worker keeps only its runs (stretches\n"
                 "without a gap over 2 us), and the lab merges every worker's runs into a timeline: a slice\n"
                 "is one worker holding the CPU until another of them runs; gaps in which none of them ran\n"
                 "(an interrupt, another program) stay inside the slice. The first and last slices of the\n"
                 "window are cut by it and not counted.\n\n"
                 "SCHED_OTHER is the fair scheduler: EEVDF since Linux 6.6, CFS before (the lab says which,\n"
                 "and the slice it found in /proc/self/task/<tid>/sched or debugfs). It gives each runnable\n"
                 "thread a share of the CPU in proportion to its weight and a slice of a few ms; the slice\n"
                 "ends at a timer tick, so what you measure is the requested slice rounded up to the tick.\n"
                 "SCHED_RR runs real-time threads of one priority in turns of a fixed quantum\n"
                 "(sched_rr_get_interval; /proc/sys/kernel/sched_rr_timeslice_ms). SCHED_FIFO has no quantum:\n"
                 "a thread runs until it blocks, yields or a higher priority arrives, so among equals the\n"
                 "first one to run keeps the CPU - cooperative multitasking on a preemptive kernel.\n\n"
                 "Each worker's CPU time (CLOCK_THREAD_CPUTIME_ID) over the wall time is the speed of its\n"
                 "'virtual processor': 1/N under SCHED_OTHER, all or nothing under SCHED_FIFO. The same\n"
                 "figure rebuilt from the stamps must agree with the kernel's, and the kernel's count of\n"
                 "involuntary switches must be at least the timeline's.\n\n"
                 "Real-time workers use priority 1 and are bounded: the lab refuses to start them when RT\n"
                 "throttling is off, each stops at its deadline, a normal-priority watchdog demotes any that\n"
                 "overruns, and RLIMIT_RTTIME ends the process if one spins for seconds without blocking.\n"
                 "Without root or CAP_SYS_NICE the real-time rows are skipped with the reason.\n\n"
                 "Questions: why is the measured SCHED_OTHER slice longer than the slice the kernel reports?\n"
                 "What would a fourth worker do to the slice and to each worker's speed? Why does SCHED_FIFO\n"
                 "need RT throttling on a shared machine? Which worker runs first under SCHED_FIFO, and why?",
      .threads_switch = true,
  });
  const long& workers = lab.integer_option("-n,--workers", "CPU-bound workers sharing the CPU", {3, 3}, 2, 16);
  const long& window_ms =
      lab.integer_option("--window-ms", "Length of the SCHED_OTHER window in ms", {1000, 250}, 50, 10'000);
  const long& timeline_ms = lab.integer_option("--timeline-ms", "How much of the SCHED_OTHER timeline to draw, in ms",
                                               {200, 100}, 10, 10'000);
  const auto& policies = lab.choice_option("--policies", "Policies to run", {"other", "rr", "fifo"},
                                           {{"other", "rr", "fifo"}, {"other", "rr", "fifo"}});
  std::optional<Experiment> experiment;
  return lab.run(
      argc, argv,
      [&](oslab::Report& report) {
        report.params["fair_scheduler"] = experiment->fair.describe();
        report.params["rt_throttle"] = experiment->throttle.describe();
        report.note("SCHED_OTHER here is " + experiment->fair.describe() + ".");
        report.note("RT throttling: " + experiment->throttle.describe() + ".");
        // The last line of defence: a real-time worker that spins for 2 s without blocking ends the run.
        const oslab::ScopedRtTimeLimit rt_time_limit(std::chrono::seconds(2));
        experiment->rr_quantum_ns = rr_timeslice_sysctl_ns();  // until an RR worker reports its own
        for (const std::string& name : policies) {
          const Policy policy = name == "other" ? Policy::other : name == "rr" ? Policy::rr : Policy::fifo;
          report.run_case(to_string(policy), [&] { experiment->run_policy(report, policy); });
        }
        experiment->tables(report);
        experiment->series(report);
        experiment->verdicts(report);
        report.show_results_table = false;
      },
      [&](oslab::Report&) {
        const std::vector<int>& cpus = lab.options().cpus;
        experiment.emplace(lab, workers, window_ms, timeline_ms, cpus.back());
      });
}
