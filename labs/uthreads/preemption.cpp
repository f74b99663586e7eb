// oslab-preemption: cooperative vs preemptive green threads. One green thread spins without
// ever yielding while others count; a timer signal per kernel thread can force a switch.
//
// Try:     oslab-preemption                    cooperative, then a 1 ms time slice
//          oslab-preemption --slice 200 --spin 500
// Expect:  cooperative: the counters do not move while the spinner spins (its monopoly ends
//          only when it gives up). Preemptive: the timer signal switches away from the spinner
//          about once per slice and the counters keep running. A spinner that spends its time
//          inside the C library (memset) is preempted far less often: the library defers a
//          preemption that lands outside the program's own code, where a lock may be held.
// Compare: oslab-blocking (the other way one green thread can stop the rest).

#include <cstring>
#include <map>
#include <optional>
#include <thread>

#include <fmt/format.h>

#include "counters.hpp"
#include "oslab/clock.hpp"
#include "oslab/error.hpp"
#include "oslab/lab.hpp"
#include "uthread.hpp"

namespace {

namespace ut = oslab::uthread;

struct Case {
  std::string name;
  long slice_us;  // 0: cooperative
  bool in_libc;   // the spinner spins in memset instead of its own loop
};

struct Observation {
  uint64_t counted_during_spin = 0;
  double spin_ms = 0;
  double longest_pause_ms = 0;
  uint64_t preemptions = 0, deferred = 0;
};

// Keeps the compiler from removing the memset.
void consume(const char* buffer) {
  asm volatile("" : : "r"(buffer) : "memory");
}

struct Experiment {
  long counters, spin_ms;
  std::vector<Case> cases;
  std::map<std::string, Observation> observed;

  Observation observe(const Case& c) const {
    ut::Options options;
    options.preempt_every = std::chrono::microseconds(c.slice_us);
    ut::Scheduler scheduler(options);
    ut::ProgressCounters progress(static_cast<size_t>(counters));
    Observation obs;
    for (size_t i = 0; i < progress.size(); ++i)
      scheduler.spawn([&progress, i] {
        while (progress.step(i)) ut::yield();
      });
    scheduler.spawn([&] {
      for (int i = 0; i < 100; ++i) ut::yield();  // let every counter count first
      const uint64_t before = progress.total();
      const int64_t start = oslab::now_ns();
      const int64_t deadline = start + spin_ms * 1'000'000;
      std::vector<char> buffer(c.in_libc ? 1 << 20 : 1);
      // Never yields: only a timer signal can take the CPU from it.
      while (oslab::now_ns() < deadline) {
        if (c.in_libc) {
          std::memset(buffer.data(), static_cast<int>(buffer.size() & 0xff), buffer.size());
          consume(buffer.data());
        }
      }
      obs.counted_during_spin = progress.total() - before;
      obs.spin_ms = static_cast<double>(oslab::now_ns() - start) / 1e6;
      progress.stop();
    });
    scheduler.run();
    obs.longest_pause_ms = static_cast<double>(progress.longest_pause_ns()) / 1e6;
    const ut::Statistics stats = scheduler.statistics();
    obs.preemptions = stats.preemptions;
    obs.deferred = stats.preempt_deferred;
    return obs;
  }

  void measure(oslab::Report& report) {
    for (const Case& c : cases)
      report.run_case(c.name, [&] {
        if (c.slice_us > 0 && ut::built_with_tsan())
          throw oslab::SkipError("ThreadSanitizer delivers signals only at its own safe points: no preemption");
        const Observation obs = observe(c);
        observed[c.name] = obs;
        report.add_samples("longest pause of a counter", {{"case", c.name}, {"slice_us", c.slice_us}},
                           {obs.longest_pause_ms * 1e6},
                           {.what = "the longest time between two increments of any one counter while one green "
                                    "thread spins without yielding",
                            .counters = {{"increments_during_spin", static_cast<double>(obs.counted_during_spin)},
                                         {"spin_ms", obs.spin_ms},
                                         {"preemptions", static_cast<double>(obs.preemptions)},
                                         {"preemptions_deferred", static_cast<double>(obs.deferred)}}});
      });
  }

  void tables(oslab::Report& report) const {
    oslab::Table table{
        fmt::format("{} counting green threads and one that spins for {} ms without yielding, on one kernel thread",
                    counters, spin_ms),
        {"case", "counted during the spin", "longest pause", "preemptions", "deferred"},
        {},
        "deferred: timer signals that found the spinner outside the program's own code (in libc here), where a switch "
        "could leave a lock held; the switch then waits for a later signal or the next call into the library.",
        1};
    for (const Case& c : cases) {
      auto it = observed.find(c.name);
      if (it == observed.end()) continue;
      const Observation& obs = it->second;
      table.rows.push_back({c.name, fmt::format("{}", obs.counted_during_spin),
                            fmt::format("{:.1f} ms", obs.longest_pause_ms), fmt::format("{}", obs.preemptions),
                            fmt::format("{}", obs.deferred)});
    }
    report.table(table);
  }

  void verdicts(oslab::Report& report) const {
    auto find = [&](const std::string& name) -> const Observation* {
      auto it = observed.find(name);
      return it == observed.end() ? nullptr : &it->second;
    };
    if (const Observation* cooperative = find("cooperative"))
      report.fact("cooperative-spinner-starves-the-rest",
                  "under cooperative scheduling, a green thread that never yields keeps every other one from running",
                  cooperative->counted_during_spin == 0,
                  fmt::format("{} increments by the counters during {:.0f} ms of spinning; they paused {:.0f} ms",
                              cooperative->counted_during_spin, cooperative->spin_ms, cooperative->longest_pause_ms));
    const std::string preemptive = cases.size() > 1 ? cases[1].name : "";
    if (const Observation* timer = find(preemptive))
      report.fact("preemption-ends-the-monopoly", "a timer signal that forces a switch lets the others run",
                  timer->counted_during_spin > 0 && timer->preemptions > 0,
                  fmt::format("{}: {} increments during {:.0f} ms of spinning, {} preemptions, longest pause {:.1f} ms",
                              preemptive, timer->counted_during_spin, timer->spin_ms, timer->preemptions,
                              timer->longest_pause_ms));
  }
};

}  // namespace

int main(int argc, char** argv) {
  oslab::Lab lab({
      .name = "preemption",
      .purpose =
          "cooperative vs preemptive green threads: a spinning thread starves the rest unless a timer preempts it",
      .claim = "The notes: user-level threads are usually cooperative: a thread runs until it gives up the\n"
               "CPU, so one that never does starves the others. A timer interrupt makes scheduling\n"
               "preemptive; in user space the timer is a signal.",
      .explain = "The library's scheduler is cooperative: a green thread runs until it yields, blocks in\n"
                 "the library or ends. With Options::preempt_every, each worker kernel thread gets a POSIX\n"
                 "timer on its own CPU-time clock (timer_create with CLOCK_THREAD_CPUTIME_ID and\n"
                 "SIGEV_THREAD_ID, so the signal goes to that kernel thread), and the SIGURG handler\n"
                 "switches to the next green thread from inside the handler. The preempted thread resumes\n"
                 "later by returning from the handler, which restores all its registers.\n\n"
                 "A handler may interrupt anything, so the library handles the classic pitfalls\n"
                 "(labs/uthreads/uthread.cpp, \"Preemption\"): it switches only when the interrupted\n"
                 "instruction is in the program's own code or the vDSO, never inside libc or libstdc++\n"
                 "where malloc's or stdio's lock may be held, and never inside the library itself (a flag);\n"
                 "otherwise it defers. It unblocks SIGURG before switching, because a switch out of a\n"
                 "handler keeps the handler's signal mask. It saves and restores errno, which belongs to\n"
                 "the kernel thread. The signal frame lands on the green thread's own stack (no\n"
                 "sigaltstack), which needs room for it. SA_RESTART restarts most interrupted system calls\n"
                 "(read, write, futex waits); epoll_wait, poll and nanosleep still fail with EINTR whatever\n"
                 "the flag, and the library retries them.\n\n"
                 "The lab runs counters that yield and one green thread that spins for --spin ms without\n"
                 "yielding: cooperative, preemptive with a --slice time slice, and preemptive with the\n"
                 "spinner inside memset most of the time, where most preemptions are deferred.\n\n"
                 "Questions: why is switching inside malloc dangerous even with one kernel thread? Go\n"
                 "preempts goroutines with a signal too (since 1.14): how does it decide whether the\n"
                 "interrupted instruction is a safe point?",
  });
  const long& counters = lab.integer_option("--counters", "Counting green threads", {.full = 3, .quick = 3}, 1, 1000);
  const long& spin_ms =
      lab.integer_option("--spin", "How long the spinner spins, ms", {.full = 300, .quick = 60}, 1, 60'000);
  const long& slice_us = lab.integer_option("--slice", "Time slice of the preemptive cases, microseconds of CPU time",
                                            {.full = 1000, .quick = 1000}, 100, 1'000'000);
  std::optional<Experiment> experiment;
  auto prepare = [&](oslab::Report& report) {
    experiment.emplace();
    experiment->counters = counters;
    experiment->spin_ms = spin_ms;
    experiment->cases = {{"cooperative", 0, false},
                         {fmt::format("preemptive, {} us slice", slice_us), slice_us, false},
                         {fmt::format("preemptive, {} us slice, spinning in memset", slice_us), slice_us, true}};
    report.params["signal"] = "SIGURG";
  };
  return lab.run(
      argc, argv,
      [&](oslab::Report& report) {
        experiment->measure(report);
        experiment->tables(report);
        experiment->verdicts(report);
        report.show_results_table = false;
      },
      prepare);
}
