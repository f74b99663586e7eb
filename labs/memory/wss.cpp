// oslab-wss: the working set W(D, t) of a running process, measured the way Brendan Gregg's
// wss does: every interval D, clear the pages' referenced (Accessed) bits through
// /proc/PID/clear_refs, wait D, and count the pages whose bit the process set again
// (/proc/PID/smaps "Referenced").
//
// Try:     oslab-wss                        a built-in workload whose locality changes by phases
//          oslab-wss --window 50,200,800    W grows with D: the workload also drifts slowly
//          oslab-wss --pid 1234 --window 1000 --duration 30     any process you may write to
//          oslab-wss --referenced-only      clear_refs 1 alone, as wss does (no TLB flush)
// Expect:  W follows the phases of the built-in workload within a few per cent: its hot set plus
//          the pages its slow scan reached within D. clear_refs 1 alone misses pages whose
//          translations stay in the TLB (it does not flush it); 1 then 4 does not. The lab also
//          measures what the probe costs: clearing walks every page-table entry of the target
//          (longer the more it has resident) under its mmap lock, and the target then sets each
//          Accessed bit again.
// Compare: oslab-thrash (the working set as the knee of the fault-rate curve), oslab-cow (what
//          setting an Accessed bit costs a read).

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <optional>
#include <thread>

#include <fmt/format.h>

#include "memprobe.hpp"
#include "oslab/clock.hpp"
#include "oslab/error.hpp"
#include "oslab/format.hpp"
#include "oslab/handles.hpp"
#include "oslab/lab.hpp"
#include "oslab/machine.hpp"
#include "oslab/process.hpp"
#include "oslab/shared.hpp"

namespace {

using oslab::check_errno;

constexpr double kMiB = 1 << 20;

// ---- The built-in workload -------------------------------------------------------------

// Phase k reads its hot set (pages [start_k, start_k + hot_k) of the hot area, wrapping) over
// and over, one word per page, and a scan drifts through the cold area at a steady rate.
struct Control {
  std::atomic<int> phase{0};
  std::atomic<int> stop{0};
  std::atomic<int> ready{0};
  std::atomic<uint64_t> pages_read{0};  // hot-set pages read so far: the workload's progress
};

constexpr int kMaxPhases = 16;
struct WorkloadPlan {
  size_t hot_area_pages = 0, cold_area_pages = 0;
  size_t hot_pages[kMaxPhases] = {}, hot_start[kMaxPhases] = {};
  int phases = 0;
  double drift_pages_per_s = 0;
};

int64_t monotonic_ns() noexcept {  // clock_gettime is async-signal-safe
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1'000'000'000LL + ts.tv_nsec;
}

// The child's side: async-signal-safe only.
int run_workload(const WorkloadPlan& plan, unsigned char* region, Control* control) {
  const size_t page = oslab::page_size();
  unsigned char* cold = region + plan.hot_area_pages * page;
  const int64_t started = monotonic_ns();
  uint64_t drifted = 0, read = 0;
  unsigned sink = 0;
  control->ready.store(1);
  while (control->stop.load(std::memory_order_relaxed) == 0) {
    const int phase = control->phase.load(std::memory_order_relaxed);
    const size_t first = plan.hot_start[phase], count = plan.hot_pages[phase];
    for (size_t i = 0; i < count; ++i) {
      sink += *static_cast<volatile unsigned char*>(region + ((first + i) % plan.hot_area_pages) * page);
      if ((i & 255) == 255 && control->phase.load(std::memory_order_relaxed) != phase) break;
    }
    read += count;
    control->pages_read.store(read, std::memory_order_relaxed);
    const auto due =
        static_cast<uint64_t>(static_cast<double>(monotonic_ns() - started) * 1e-9 * plan.drift_pages_per_s);
    for (; drifted < due && plan.cold_area_pages > 0; ++drifted)
      sink += *static_cast<volatile unsigned char*>(cold + (drifted % plan.cold_area_pages) * page);
  }
  (void)sink;  // the reads are volatile: they happen
  return 0;
}

// ---- Reading and clearing the bits ------------------------------------------------------

class Target {
 public:
  explicit Target(pid_t pid)
      : pid_(pid), clear_refs_(::open(fmt::format("/proc/{}/clear_refs", pid).c_str(), O_WRONLY | O_CLOEXEC)) {
    if (!clear_refs_.valid()) throw oslab::SysError(fmt::format("open /proc/{}/clear_refs", pid), errno);
  }
  pid_t pid() const { return pid_; }
  // Writes "1": the kernel walks the page tables and marks every page not referenced, but does
  // not flush the TLB, so a page whose translation stays cached there is not marked again when
  // used. With `flush`, then writes "4" (clear the soft-dirty bits), which does flush it. Returns
  // the time the writes took.
  double clear(bool flush) {
    const int64_t t0 = oslab::now_ns();
    check_errno("write 1 to /proc/PID/clear_refs", ::pwrite(clear_refs_.get(), "1", 1, 0));
    if (flush) check_errno("write 4 to /proc/PID/clear_refs", ::pwrite(clear_refs_.get(), "4", 1, 0));
    return static_cast<double>(oslab::now_ns() - t0);
  }
  // Referenced and resident KiB of the whole process (smaps_rollup), and the time the read took.
  struct Reading {
    long referenced_kib = 0, rss_kib = 0;
    double ns = 0;
  };
  Reading read() const {
    const int64_t t0 = oslab::now_ns();
    const auto entries = oslab::memory::parse_smaps(read_rollup());
    Reading reading;
    reading.ns = static_cast<double>(oslab::now_ns() - t0);
    if (entries.empty()) throw std::runtime_error(fmt::format("process {} is gone", pid_));
    reading.referenced_kib = entries.front().field("Referenced");
    reading.rss_kib = entries.front().field("Rss");
    return reading;
  }

 private:
  std::string read_rollup() const {
    oslab::UniqueFd fd(::open(fmt::format("/proc/{}/smaps_rollup", pid_).c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) throw oslab::SysError(fmt::format("open /proc/{}/smaps_rollup", pid_), errno);
    std::string text(4096, '\0');
    const ssize_t got = check_errno("read smaps_rollup", ::read(fd.get(), text.data(), text.size()));
    text.resize(static_cast<size_t>(got));
    return text;
  }
  pid_t pid_;
  oslab::UniqueFd clear_refs_;
};

// ---- The experiment ----------------------------------------------------------------------

struct Interval {
  int phase = -1;  // -1: --pid
  long window_ms = 0;
  double t_s = 0;  // since the start, at the end of the interval
  double w_mib = 0, region_mib = 0, expected_mib = 0, rss_mib = 0;
  double pages_per_s = 0;  // the workload's progress during the interval
};

struct Experiment {
  const oslab::Lab& lab;
  long pid;
  std::vector<long> windows_ms;
  std::vector<long> phases_mib;
  double drift_mib_s;
  long intervals;
  long duration_s;
  bool flush;  // clear_refs 1 then 4 (TLB flushed), or 1 alone

  static constexpr size_t kTlbHotPages = 256;  // 1 MiB: a hot set whose translations the TLB can hold
  std::vector<double> tlb_w[2] = {};           // [flushed]: W of that hot set, MiB
  WorkloadPlan plan = {};
  std::vector<Interval> series = {};
  std::vector<double> clear_ns = {}, read_ns = {}, small_clear_ns = {};
  std::vector<double> progress_clearing = {}, progress_undisturbed = {};
  double small_rss_mib = 0, target_rss_mib = 0;
  int64_t started_ns = 0;

  size_t pages_of(double mib) const { return static_cast<size_t>(mib * kMiB) / oslab::page_size(); }
  double mib_of(size_t pages) const { return static_cast<double>(pages * oslab::page_size()) / kMiB; }

  double expected_mib(int phase, long window_ms) const {
    const double drifted = std::min(plan.drift_pages_per_s * static_cast<double>(window_ms) / 1000.0,
                                    static_cast<double>(plan.cold_area_pages));
    return mib_of(plan.hot_pages[phase]) + mib_of(static_cast<size_t>(drifted));
  }

  void make_plan() {
    const long hot_area = *std::max_element(phases_mib.begin(), phases_mib.end());
    plan.hot_area_pages = pages_of(static_cast<double>(hot_area));
    plan.drift_pages_per_s = drift_mib_s * kMiB / static_cast<double>(oslab::page_size());
    const long widest = *std::max_element(windows_ms.begin(), windows_ms.end());
    // Room for the scan to go twice its widest window without coming back to a page.
    plan.cold_area_pages =
        drift_mib_s > 0 ? static_cast<size_t>(plan.drift_pages_per_s * static_cast<double>(widest) / 1000.0 * 2) + 1
                        : 0;
    plan.phases = static_cast<int>(phases_mib.size());
    for (int k = 0; k < plan.phases; ++k) {
      plan.hot_pages[k] = pages_of(static_cast<double>(phases_mib[static_cast<size_t>(k)]));
      plan.hot_start[k] = plan.hot_area_pages * static_cast<size_t>(k) / 3 % plan.hot_area_pages;  // sets differ
    }
    plan.hot_pages[plan.phases] = std::min(kTlbHotPages, plan.hot_area_pages);  // the TLB experiment's phase
  }

  Interval measure_interval(Target& target, long window_ms, const Control* control, bool flush_tlb) {
    Interval interval;
    interval.window_ms = window_ms;
    clear_ns.push_back(target.clear(flush_tlb));
    const uint64_t before = control ? control->pages_read.load() : 0;
    const int64_t t0 = oslab::now_ns();
    std::this_thread::sleep_for(std::chrono::milliseconds(window_ms));
    const uint64_t after = control ? control->pages_read.load() : 0;
    const int64_t t1 = oslab::now_ns();
    const Target::Reading reading = target.read();
    read_ns.push_back(reading.ns);
    interval.t_s = static_cast<double>(t1 - started_ns) * 1e-9;
    interval.w_mib = static_cast<double>(reading.referenced_kib) / 1024;
    interval.rss_mib = static_cast<double>(reading.rss_kib) / 1024;
    interval.pages_per_s = static_cast<double>(after - before) / (static_cast<double>(t1 - t0) * 1e-9);
    return interval;
  }

  // The built-in workload through its phases: at each, intervals of every window D, and as many
  // of the first D with nobody clearing its bits (what the workload does undisturbed).
  void built_in(oslab::Report& report) {
    small_target_cost();  // before the workload's memory exists, so that the idle child does not map it
    make_plan();
    const size_t region_pages = plan.hot_area_pages + plan.cold_area_pages;
    const size_t bytes = region_pages * oslab::page_size();
    auto region = oslab::Mapping::anonymous(bytes);
    // 4 KiB pages: Referenced of a huge page would count all 512 of its pages.
    check_errno("madvise(MADV_NOHUGEPAGE)", ::madvise(region.data(), bytes, MADV_NOHUGEPAGE));
    oslab::touch_pages(region.bytes());  // resident before it starts: W counts references, not faults
    oslab::Shared<Control> control;
    auto* base = reinterpret_cast<unsigned char*>(region.data());
    const WorkloadPlan& p = plan;
    oslab::Child child = oslab::Child::fork([&p, base, &control] { return run_workload(p, base, control.get()); });
    while (control->ready.load() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    Target target(child.pid());
    report.params["workload_region_mib"] = mib_of(region_pages);
    started_ns = oslab::now_ns();
    for (int phase = 0; phase < plan.phases; ++phase) {
      control->phase.store(phase);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));  // it leaves the old set within 256 pages
      for (long i = 0; i < intervals; ++i) {
        const uint64_t before = control->pages_read.load();
        const int64_t t0 = oslab::now_ns();
        std::this_thread::sleep_for(std::chrono::milliseconds(windows_ms.front()));
        progress_undisturbed.push_back(static_cast<double>(control->pages_read.load() - before) /
                                       (static_cast<double>(oslab::now_ns() - t0) * 1e-9));
      }
      for (long window_ms : windows_ms) {
        for (long i = 0; i < intervals; ++i) {
          Interval interval = measure_interval(target, window_ms, control.get(), flush);
          interval.phase = phase;
          interval.expected_mib = expected_mib(phase, window_ms);
          interval.region_mib =
              static_cast<double>(oslab::memory::smaps_of(child.pid(), region.data()).field("Referenced")) / 1024;
          if (window_ms == windows_ms.front()) progress_clearing.push_back(interval.pages_per_s);
          series.push_back(interval);
        }
      }
    }
    target_rss_mib = series.back().rss_mib;
    // The same hot set small enough for the TLB, measured both ways.
    control->phase.store(plan.phases);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    for (long i = 0; i < intervals; ++i)
      for (bool flushed : {false, true}) {
        (void)measure_interval(target, windows_ms.front(), control.get(), flushed);
        tlb_w[flushed ? 1 : 0].push_back(
            static_cast<double>(oslab::memory::smaps_of(child.pid(), region.data()).field("Referenced")) / 1024);
        clear_ns.pop_back();  // not part of the figures of the chosen method
      }
    control->stop.store(1);
    child.wait_success(std::chrono::seconds(10), "the workload");
    add_results(report);
  }

  // What clearing costs on a process with little resident: an idle child of the lab, forked
  // before the workload's memory exists.
  void small_target_cost() {
    oslab::Child idle = oslab::Child::fork([] {
      for (;;) ::pause();
      return 0;
    });
    Target target(idle.pid());
    small_rss_mib = static_cast<double>(target.read().rss_kib) / 1024;
    const auto samples =
        static_cast<size_t>(std::max<long>(10, intervals * static_cast<long>(phases_mib.size() * windows_ms.size())));
    for (size_t i = 0; i < samples; ++i) small_clear_ns.push_back(target.clear(flush));
    idle.kill();
  }

  void any_process(oslab::Report& report) {
    Target target(static_cast<pid_t>(pid));
    started_ns = oslab::now_ns();
    const int64_t until = started_ns + duration_s * 1'000'000'000LL;
    while (oslab::now_ns() < until) series.push_back(measure_interval(target, windows_ms.front(), nullptr, flush));
    target_rss_mib = series.back().rss_mib;
    add_results(report);
  }

  void add_results(oslab::Report& report) {
    for (long window_ms : windows_ms)
      for (int phase = pid ? -1 : 0; phase < (pid ? 0 : plan.phases); ++phase) {
        std::vector<double> w;
        double expected = 0;
        for (const Interval& i : series)
          if (i.phase == phase && i.window_ms == window_ms) {
            w.push_back(i.w_mib);
            expected = i.expected_mib;
          }
        nlohmann::json params = {{"window_ms", window_ms}};
        if (pid)
          params["pid"] = pid;
        else
          params.update({{"phase", phase + 1}, {"hot_mib", phases_mib[static_cast<size_t>(phase)]}});
        report.add_samples("W(D,t)", params, w,
                           {.what = "pages referenced in one interval D (clear_refs, wait D, smaps_rollup "
                                    "Referenced), whole process, MiB",
                            .unit = "MiB",
                            .counters = pid ? std::map<std::string, double>{}
                                            : std::map<std::string, double>{{"expected_mib", expected}},
                            .headline = window_ms == windows_ms.front()});
      }
    report.add_samples("clear_refs write", {{"target", pid ? "--pid" : "workload"}, {"target_rss_mib", target_rss_mib}},
                       clear_ns,
                       {.what = flush ? "write \"1\" then \"4\" to /proc/PID/clear_refs: the kernel walks the "
                                        "target's page tables twice, clears every Accessed and soft-dirty bit, "
                                        "flushes its TLB"
                                      : "write \"1\" to /proc/PID/clear_refs: the kernel walks the target's page "
                                        "tables and clears every Accessed bit",
                        .headline = true});
    report.add_samples("smaps_rollup read", {{"target", pid ? "--pid" : "workload"}}, read_ns,
                       {.what = "open, read and parse /proc/PID/smaps_rollup (another walk of the page tables)"});
    if (!small_clear_ns.empty())
      report.add_samples("clear_refs write", {{"target", "idle child"}, {"target_rss_mib", small_rss_mib}},
                         small_clear_ns, {.what = "the same write, to an idle child of the lab"});
    for (bool flushed : {false, true})
      if (!tlb_w[flushed ? 1 : 0].empty())
        report.add_samples("W of a hot set the TLB can hold",
                           {{"method", flushed ? "clear_refs 1 then 4" : "clear_refs 1"},
                            {"hot_pages", kTlbHotPages},
                            {"window_ms", windows_ms.front()}},
                           tlb_w[flushed ? 1 : 0],
                           {.what = "Referenced of the workload's mapping after D, reading a 1 MiB hot set (and the "
                                    "drifting scan), MiB",
                            .unit = "MiB",
                            .counters = {{"expected_mib", expected_mib(plan.phases, windows_ms.front())}}});
    if (!progress_clearing.empty()) {
      report.add_samples("workload progress", {{"clearing", true}, {"window_ms", windows_ms.front()}},
                         progress_clearing,
                         {.what = "hot-set pages the workload read per second, in an interval after its bits were "
                                  "cleared",
                          .unit = "pages/s"});
      report.add_samples("workload progress", {{"clearing", false}, {"window_ms", windows_ms.front()}},
                         progress_undisturbed,
                         {.what = "the same, over as long, with nobody clearing its bits", .unit = "pages/s"});
    }
  }

  void tables(oslab::Report& report) const {
    oslab::Table table{
        "W(D, t) over time", {"t", "phase", "D", "W", "expected", "workload's region", "RSS", ""}, {}, "", 3};
    double widest = 0;
    for (const Interval& i : series) widest = std::max(widest, std::max(i.w_mib, i.expected_mib));
    for (const Interval& i : series) {
      const int bar = widest > 0 ? static_cast<int>(std::lround(i.w_mib / widest * 30)) : 0;
      table.rows.push_back({fmt::format("{:.2f} s", i.t_s), i.phase < 0 ? "-" : std::to_string(i.phase + 1),
                            fmt::format("{} ms", i.window_ms), fmt::format("{:.2f} MiB", i.w_mib),
                            i.phase < 0 ? "-" : fmt::format("{:.2f} MiB", i.expected_mib),
                            i.phase < 0 ? "-" : fmt::format("{:.2f} MiB", i.region_mib),
                            fmt::format("{:.1f} MiB", i.rss_mib), std::string(static_cast<size_t>(bar), '#')});
    }
    table.footnote =
        pid ? "W = pages of the process referenced during the interval D that ends at t (smaps_rollup Referenced)"
            : fmt::format(
                  "W = pages of the workload referenced during the interval D that ends at t (smaps_rollup "
                  "Referenced, whole process); expected = the phase's hot set + what the scan drifting at {} "
                  "MiB/s reaches in D; workload's region = Referenced of its mapping alone (smaps)",
                  drift_mib_s);
    report.table(table);
  }

  // clear_refs 1 clears the Accessed bits without flushing the TLB (only 4 flushes it): a page
  // whose translation is still cached is used without the CPU walking the page table, so its
  // bit is not set again, and it looks unused.
  void tlb_verdict(oslab::Report& report) const {
    const double expected = expected_mib(plan.phases, windows_ms.front());
    const double seen_alone = oslab::summarize(tlb_w[0]).p50, seen_flushed = oslab::summarize(tlb_w[1]).p50;
    const double alone = seen_alone / expected, flushed = seen_flushed / expected;
    // It can only be seen when the workload's translations survive the interval in the TLB; a
    // context switch to another process or a move to another CPU may flush them anyway.
    const oslab::VerdictState state =
        flushed >= 0.95 && alone < 0.9 * flushed ? oslab::VerdictState::holds : oslab::VerdictState::inconclusive;
    report.verdict(
        "clear-refs-1-leaves-the-tlb",
        "clear_refs 1 does not flush the TLB: pages whose translations stay cached there are used without "
        "setting their Accessed bit again, and W under-counts them; adding clear_refs 4 (which flushes) "
        "counts them",
        state,
        fmt::format("a 1 MiB hot set ({} pages) and the scan, D = {} ms: Referenced {:.2f} MiB with "
                    "clear_refs 1 ({:.0f}% of {:.2f} MiB), {:.2f} MiB with 1 then 4 ({:.0f}%) (holds when "
                    "1 alone sees less than 90% of what 1 then 4 sees, and that is 95% or more; no "
                    "difference means the workload's TLB entries did not survive the interval: a context "
                    "switch or a move to another CPU flushed them)",
                    kTlbHotPages, windows_ms.front(), seen_alone, alone * 100, expected, seen_flushed, flushed * 100));
  }

  void verdicts(oslab::Report& report) const {
    bool within_rss = true;
    for (const Interval& i : series) within_rss = within_rss && i.w_mib <= i.rss_mib;
    report.fact(
        "working-set-within-resident-set",
        "the working set is part of the resident set: W(D, t) never exceeds the pages the process has in memory",
        within_rss,
        fmt::format(
            "{} intervals, W at most {:.2f} MiB, RSS at least {:.2f} MiB", series.size(),
            std::max_element(series.begin(), series.end(), [](auto& a, auto& b) { return a.w_mib < b.w_mib; })->w_mib,
            std::min_element(series.begin(), series.end(), [](auto& a, auto& b) {
              return a.rss_mib < b.rss_mib;
            })->rss_mib));
    if (pid) return;
    std::string evidence;
    bool all_within = true;
    for (int phase = 0; phase < plan.phases; ++phase)
      for (long window_ms : windows_ms) {
        std::vector<double> region, process;
        for (const Interval& i : series)
          if (i.phase == phase && i.window_ms == window_ms) {
            region.push_back(i.region_mib);
            process.push_back(i.w_mib);
          }
        const double measured = oslab::summarize(region).p50, expected = expected_mib(phase, window_ms);
        const double off = (measured - expected) / expected;
        all_within = all_within && std::abs(off) <= 0.10;
        evidence += fmt::format("{}phase {} D {} ms: {:.2f} MiB for {:.2f} ({:+.1f}%; whole process {:.2f})",
                                evidence.empty() ? "" : "; ", phase + 1, window_ms, measured, expected, off * 100,
                                oslab::summarize(process).p50);
      }
    report.fact("wss-finds-each-phase",
                "clearing and reading the referenced bits every D finds the working set of each phase of a workload "
                "whose working set is known",
                all_within,
                evidence +
                    " (median Referenced of the workload's mapping; holds within 10%. The whole process also "
                    "counts its code and libraries, whose pages are shared: their page-cache flag may have "
                    "been set by another process)");
    if (windows_ms.size() >= 2 && drift_mib_s > 0) {
      auto median_w = [&](long window_ms) {
        std::vector<double> w;
        for (const Interval& i : series)
          if (i.window_ms == window_ms && i.phase == 0) w.push_back(i.region_mib);
        return oslab::summarize(w).p50;
      };
      const long narrow = windows_ms.front(), wide = windows_ms.back();
      const double grew = median_w(wide) - median_w(narrow), should = expected_mib(0, wide) - expected_mib(0, narrow);
      report.fact("working-set-grows-with-window",
                  "W(D, t) depends on D: a longer window also counts pages touched less often",
                  grew >= 0.5 * should && grew <= 1.5 * should,
                  fmt::format("phase 1: W grew by {:.2f} MiB from D = {} ms to {} ms; the drifting scan reaches "
                              "{:.2f} MiB more (holds within 50%)",
                              grew, narrow, wide, should));
    }
    tlb_verdict(report);
    const oslab::Result& big = report.get("clear_refs write", {{"target", "workload"}});
    const oslab::Result& small = report.get("clear_refs write", {{"target", "idle child"}});
    report.verdict("clear-refs-walks-the-page-tables",
                   "clearing the referenced bits costs the kernel a walk of every page the target has mapped: it "
                   "takes longer the larger the target's resident set",
                   oslab::ratio_of(big.summary, small.summary), oslab::Compare::above, 2,
                   fmt::format("clear_refs on the workload ({:.1f} MiB resident) {}, on an idle child ({:.1f} MiB) {}",
                               target_rss_mib, oslab::format_duration(big.summary.p50), small_rss_mib,
                               oslab::format_duration(small.summary.p50)));
    const oslab::Result& clearing = report.get("workload progress", {{"clearing", true}});
    const oslab::Result& undisturbed = report.get("workload progress", {{"clearing", false}});
    report.verdict("clearing-costs-the-target-little",
                   "measuring every D costs the target little: it keeps at least 90% of its progress",
                   oslab::ratio_of(clearing.summary, undisturbed.summary), oslab::Compare::above, 0.9,
                   fmt::format("hot-set pages read per second with its bits cleared every {} ms: {:.3g}; undisturbed: "
                               "{:.3g}; the cost is the first touch of each page after a clear (the CPU sets the "
                               "Accessed bit again, after a TLB flush) and the kernel's walk, which holds the "
                               "target's mmap lock for {}",
                               windows_ms.front(), clearing.summary.p50, undisturbed.summary.p50,
                               oslab::format_duration(big.summary.p50)),
                   "x");
  }
};

}  // namespace

int main(int argc, char** argv) {
  oslab::Lab lab({
      .name = "wss",
      .purpose = "the working set W(D,t) of a process, from its referenced bits every interval D, and what "
                 "measuring it costs",
      .claim = "The notes: \"We define the working set for a process at time t as W(D,t), where D is a window\n"
               "of time and W ends up being an approximation of the program's locality.\" Here W is measured\n"
               "on a running process: a built-in workload whose locality changes by phases, or any --pid.",
      .explain = "Every page-table entry has an Accessed (referenced) bit that the CPU sets when it walks the\n"
                 "page table to use the page. Writing 1 to /proc/PID/clear_refs makes the kernel walk the\n"
                 "process's page tables and clear every Accessed bit; after an interval D, /proc/PID/smaps (or\n"
                 "smaps_rollup, the whole process in one entry) counts in \"Referenced\" the pages whose bit was\n"
                 "set again: the pages used during D, which is W(D, t). This is how Brendan Gregg's wss tool\n"
                 "estimates a live process's working set. (/proc/PID/pagemap has no Accessed bit, and\n"
                 "/sys/kernel/mm/page_idle, the other way, is often absent, as it is here.)\n\n"
                 "One catch, shown by experiment: writing 1 does not flush the TLB (Linux flushes it only for\n"
                 "4, the soft-dirty reset). A page whose translation stays cached in the TLB is used without a\n"
                 "page walk, its bit stays clear, and the page looks unused. So by default the lab writes 4\n"
                 "as well, which flushes the TLB; it also resets the soft-dirty bits, write-protecting every\n"
                 "page, so the target's next write to each page takes a minor fault. --referenced-only uses 1\n"
                 "alone, as wss does; the lab measures both on a 1 MiB hot set, which the TLB can hold.\n\n"
                 "The built-in workload has a known working set: phase by phase it reads a hot set of\n"
                 "--phases MiB over and over, and a slow scan drifts through a cold area at --drift MiB/s, so\n"
                 "W(D) should be the hot set plus what the scan reached in D. Each phase is measured with every\n"
                 "--window D, and W is compared with that. The lab also measures what the probe costs the\n"
                 "target: the clear_refs write is a walk of all its page tables under its mmap lock (so it\n"
                 "cannot map or unmap memory meanwhile), timed on the workload and on an idle process; and the\n"
                 "workload's progress with and without its bits cleared, since after each clear its first\n"
                 "touch of every page makes the CPU walk the page table and set the bit again.\n\n"
                 "With --pid, any process you may write to (yours, or any as root) is measured for\n"
                 "--duration seconds with the first --window.\n\n"
                 "Questions: what happens to W when D is shorter than the time the program takes to go once\n"
                 "through its hot set? Why can W(D, t) never exceed the resident set? What would a kernel need\n"
                 "to give each process the memory W(D, t) says it needs?",
  });
  const long& pid = lab.integer_option("--pid", "Measure this process instead of the built-in workload (0: built-in)",
                                       {.full = 0, .quick = 0}, 0, 1L << 22);
  const auto& windows =
      lab.list_option("--window", "Intervals D, ms", {.full = {100, 400}, .quick = {100}}, 10, 60'000);
  const auto& phases = lab.list_option("--phases", "Hot set of each phase of the built-in workload, MiB",
                                       {.full = {24, 64, 8, 40}, .quick = {16, 48, 8}}, 1, 1024);
  const double& drift = lab.number_option("--drift", "The built-in workload's slow scan, MiB/s (0: none)",
                                          {.full = 8, .quick = 8}, 0, 256);
  const long& intervals =
      lab.integer_option("--intervals", "Intervals per phase and window", {.full = 5, .quick = 3}, 1, 1000);
  const bool& referenced_only = lab.flag(
      "--referenced-only", "Clear with clear_refs 1 alone (as Gregg's wss): no TLB flush, no soft-dirty reset");
  const long& duration =
      lab.integer_option("--duration", "With --pid: seconds to measure", {.full = 10, .quick = 2}, 1, 3600);

  std::optional<Experiment> experiment;
  auto prepare = [&](oslab::Report&) {
    if (pid != 0) {
      if (pid == ::getpid()) throw oslab::UsageError("--pid: that is this lab");
      if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH)
        throw oslab::UsageError(fmt::format("--pid {}: no such process", pid));
      if (::access(fmt::format("/proc/{}/clear_refs", pid).c_str(), W_OK) != 0)
        throw oslab::UsageError(
            fmt::format("--pid {}: /proc/{}/clear_refs: {} (only the process's owner or root may clear its bits)", pid,
                        pid, oslab::describe_errno(errno)));
    } else {
      if (phases.size() >= static_cast<size_t>(kMaxPhases))
        throw oslab::UsageError(fmt::format("--phases: at most {} phases", kMaxPhases - 1));
      const double hot = static_cast<double>(*std::max_element(phases.begin(), phases.end()));
      const double cold = drift * static_cast<double>(*std::max_element(windows.begin(), windows.end())) / 1000 * 2;
      oslab::require_memory_mib(hot + cold, "--phases and --drift");
    }
    if (::access("/proc/self/clear_refs", W_OK) != 0)
      throw oslab::SkipError(fmt::format("/proc/self/clear_refs is not writable: {}", oslab::describe_errno(errno)));
    if (oslab::kThreadSanitizer)
      throw oslab::SkipError("built with ThreadSanitizer, whose shadow memory adds to every Referenced count");
    experiment.emplace(Experiment{lab, pid, windows, phases, drift, intervals, duration, !referenced_only});
  };
  return lab.run(
      argc, argv,
      [&](oslab::Report& report) {
        Experiment& e = *experiment;
        if (pid)
          e.any_process(report);
        else
          e.built_in(report);
        e.tables(report);
        e.verdicts(report);
        report.show_results_table = false;
      },
      prepare);
}
