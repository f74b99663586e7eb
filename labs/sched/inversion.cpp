// oslab-inversion: priority inversion, made to happen. Three SCHED_FIFO threads share one
// CPU: L (low) takes a mutex and works in its critical section; H (high) wakes and waits for
// the mutex; M (medium) wakes and spins. With a plain mutex M keeps L off the CPU, so H -
// the most important thread - waits as long as M runs. With PTHREAD_PRIO_INHERIT the kernel
// lends H's priority to L while H waits, L finishes its critical section first, and H waits
// only for that.
//
// Try:     oslab-inversion
//          oslab-inversion --medium-ms 100 --cs-ms 1 -i 20
// Expect:  plain mutex: H waits about M's run plus the critical section, and gets the lock
//          only after M is done; PTHREAD_PRIO_INHERIT: H waits about the critical section and
//          gets the lock before M runs at all; L's effective priority (prio in
//          /proc/<pid>/task/<tid>/sched) is raised to H's while H waits. Needs root or
//          CAP_SYS_NICE (real-time priorities); without them the lab is skipped.
// Compare: oslab-priority (what a priority buys), oslab-timeslice (SCHED_FIFO has no slices).

#include <pthread.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <optional>

#include <fmt/format.h>

#include "oslab/clock.hpp"
#include "oslab/error.hpp"
#include "oslab/futex.hpp"
#include "oslab/lab.hpp"
#include "oslab/parties.hpp"
#include "oslab/sched.hpp"
#include "oslab/shared.hpp"
#include "oslab/stats.hpp"

namespace {

using oslab::Policy;

constexpr int64_t kMs = 1'000'000;
constexpr size_t kMaxRepetitions = 1000;
// SCHED_FIFO priorities of the three threads.
constexpr int kLow = 10, kMedium = 20, kHigh = 30;
enum Side : size_t { kL = 0, kM = 1, kH = 2 };
constexpr auto kWaitLimit = std::chrono::seconds(5);

int64_t thread_cpu_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// Works (spins) until this thread has had `cpu_ns` of CPU time: time it spends preempted
// does not count, as it would not for real work.
void work_for(int64_t cpu_ns) {
  const int64_t until = thread_cpu_ns() + cpu_ns;
  while (thread_cpu_ns() < until) {
  }
}

// The kernel's effective priority of the calling thread ("prio" in /proc/self/task/<tid>/sched:
// 99 - rtprio for a real-time thread, raised while it lends from a waiter), or -1.
int effective_prio() {
  FILE* file = std::fopen(fmt::format("/proc/self/task/{}/sched", ::gettid()).c_str(), "r");
  if (file == nullptr) return -1;
  char line[256];
  int prio = -1;
  while (std::fgets(line, sizeof line, file) != nullptr)
    if (std::sscanf(line, "prio : %d", &prio) == 1) break;
  (void)std::fclose(file);
  return prio;
}

// One repetition: when each thing happened.
struct Times {
  int64_t locked_ns = 0, unlocked_ns = 0;             // L took and released the mutex
  int64_t high_request_ns = 0, high_acquired_ns = 0;  // H asked for and got the mutex
  int64_t medium_start_ns = 0, medium_end_ns = 0;     // M's run
  int low_prio_while_high_waits = -1;                 // L's effective priority then
  int high_prio = -1;
};

struct Repetition : Times {
  std::atomic<uint32_t> go_high{0}, go_medium{0};
  std::atomic<int> high_waiting{0}, medium_waiting{0};
};

struct Scenario {
  pthread_mutex_t mutex;
  Repetition repetitions[kMaxRepetitions];
};

// Sleeps on `word` until it is set, with a deadline (a repetition that hangs is a bug).
void wait_for_go(std::atomic<uint32_t>& word) {
  const auto until = std::chrono::steady_clock::now() + kWaitLimit;
  while (word.load() == 0) {
    if (std::chrono::steady_clock::now() > until) throw std::runtime_error("waited 5 s for the go signal");
    oslab::futex_wait(&word, 0, std::chrono::milliseconds(100), oslab::FutexScope::process_private);
  }
}

void go(std::atomic<uint32_t>& word) {
  word.store(1);
  oslab::futex_wake(&word, 1, oslab::FutexScope::process_private);
}

struct Variant {
  bool inherit;
  std::string name() const { return inherit ? "PTHREAD_PRIO_INHERIT" : "plain mutex"; }
  std::string id() const { return inherit ? "inherit" : "plain"; }
};

struct Outcome {
  Variant variant;
  std::vector<Times> repetitions;
  std::vector<double> high_wait_ns, medium_run_ns, critical_section_ns;
};

struct Experiment {
  const oslab::Lab& lab;
  int repetitions;
  int64_t critical_section_ns;
  int64_t medium_ns;
  int cpu;
  oslab::RtWatchdog watchdog;
  std::vector<Outcome> outcomes;

  Experiment(const oslab::Lab& of_lab, int repeat, int64_t cs_ns, int64_t medium_work_ns, int on_cpu)
      : lab(of_lab), repetitions(repeat), critical_section_ns(cs_ns), medium_ns(medium_work_ns), cpu(on_cpu) {}

  void low(oslab::Party& party, Scenario& s) const {
    for (int r = 0; r < repetitions; ++r) {
      party.sync();
      Repetition& rep = s.repetitions[r];
      // On one CPU L, the lowest, runs only once H and M are asleep; make sure anyway.
      const auto until = std::chrono::steady_clock::now() + kWaitLimit;
      while (rep.high_waiting.load() == 0 || rep.medium_waiting.load() == 0) {
        if (std::chrono::steady_clock::now() > until) throw std::runtime_error("H and M did not get ready");
        ::sched_yield();
      }
      oslab::check_errnum("pthread_mutex_lock", ::pthread_mutex_lock(&s.mutex));
      rep.locked_ns = oslab::now_ns();
      go(rep.go_high);  // H preempts us, asks for the mutex and blocks
      rep.low_prio_while_high_waits = effective_prio();
      go(rep.go_medium);  // M is above us, unless we hold H's priority
      work_for(critical_section_ns);
      rep.unlocked_ns = oslab::now_ns();
      oslab::check_errnum("pthread_mutex_unlock", ::pthread_mutex_unlock(&s.mutex));
    }
  }

  void medium(oslab::Party& party, Scenario& s) const {
    for (int r = 0; r < repetitions; ++r) {
      party.sync();
      Repetition& rep = s.repetitions[r];
      rep.medium_waiting.store(1);
      wait_for_go(rep.go_medium);
      rep.medium_start_ns = oslab::now_ns();
      work_for(medium_ns);
      rep.medium_end_ns = oslab::now_ns();
    }
  }

  void high(oslab::Party& party, Scenario& s) const {
    for (int r = 0; r < repetitions; ++r) {
      party.sync();
      Repetition& rep = s.repetitions[r];
      rep.high_prio = effective_prio();
      rep.high_waiting.store(1);
      wait_for_go(rep.go_high);
      rep.high_request_ns = oslab::now_ns();
      oslab::check_errnum("pthread_mutex_lock", ::pthread_mutex_lock(&s.mutex));
      rep.high_acquired_ns = oslab::now_ns();
      oslab::check_errnum("pthread_mutex_unlock", ::pthread_mutex_unlock(&s.mutex));
    }
  }

  void run(oslab::Report& report, const Variant& variant) {
    oslab::Shared<Scenario> scenario;
    pthread_mutexattr_t attr;
    oslab::check_errnum("pthread_mutexattr_init", ::pthread_mutexattr_init(&attr));
    oslab::check_errnum(
        "pthread_mutexattr_setprotocol",
        ::pthread_mutexattr_setprotocol(&attr, variant.inherit ? PTHREAD_PRIO_INHERIT : PTHREAD_PRIO_NONE));
    oslab::check_errnum("pthread_mutex_init", ::pthread_mutex_init(&scenario->mutex, &attr));
    ::pthread_mutexattr_destroy(&attr);

    const auto limit =
        std::chrono::nanoseconds((medium_ns + critical_section_ns) * repetitions) + std::chrono::seconds(5);
    auto side = [&](Side who) {
      return [&, who](oslab::Party& party) {
        auto bound = watchdog.watch(std::chrono::steady_clock::now() + limit);
        oslab::set_policy(Policy::fifo, who == kL ? kLow : who == kM ? kMedium : kHigh);
        party.ready();
        switch (who) {
          case kL: low(party, *scenario); break;
          case kM: medium(party, *scenario); break;
          case kH: high(party, *scenario); break;
        }
      };
    };
    oslab::run_parties({.threads = true,
                        .assignment = oslab::assign_cpus(oslab::Placement::same_cpu, 3, {cpu}),
                        .deadline = std::chrono::duration_cast<std::chrono::milliseconds>(limit)},
                       {side(kL), side(kM), side(kH)});
    ::pthread_mutex_destroy(&scenario->mutex);
    if (watchdog.demoted() > 0) throw std::runtime_error("a real-time thread overran and was demoted");

    Outcome outcome{variant, {}, {}, {}, {}};
    for (int r = 0; r < repetitions; ++r) {
      const Repetition& rep = scenario->repetitions[r];
      outcome.high_wait_ns.push_back(static_cast<double>(rep.high_acquired_ns - rep.high_request_ns));
      outcome.medium_run_ns.push_back(static_cast<double>(rep.medium_end_ns - rep.medium_start_ns));
      outcome.critical_section_ns.push_back(static_cast<double>(rep.unlocked_ns - rep.locked_ns));
    }
    for (int r = 0; r < repetitions; ++r) outcome.repetitions.push_back(scenario->repetitions[r]);
    const nlohmann::json params = {{"mutex", variant.id()}, {"cpu", cpu}, {"placement", "same-cpu"}};
    report.add_samples("high-waits", params, outcome.high_wait_ns,
                       {.what = fmt::format("H (SCHED_FIFO {}) from asking for the {} held by L (SCHED_FIFO {}) to "
                                            "getting it, while M (SCHED_FIFO {}) works {}; all on CPU {}",
                                            kHigh, variant.name(), kLow, kMedium,
                                            oslab::format_duration(static_cast<double>(medium_ns)), cpu),
                        .headline = true});
    report.add_samples("critical-section", params, outcome.critical_section_ns,
                       {.what = fmt::format("L's critical section, lock to unlock, wall time ({} of CPU work in it)",
                                            oslab::format_duration(static_cast<double>(critical_section_ns)))});
    outcomes.push_back(std::move(outcome));
  }

  void table_and_verdicts(oslab::Report& report) const {
    oslab::Table table{
        fmt::format("H waits for the mutex L holds, while M works {} (all SCHED_FIFO, on CPU {})",
                    oslab::format_duration(static_cast<double>(medium_ns)), cpu),
        {"mutex", "H waits (p50)", "max", "L's critical section (p50)", "H got the lock", "L's prio while H waited"},
        {},
        fmt::format("Priorities: L {}, M {}, H {} (SCHED_FIFO). prio: the kernel's effective priority in "
                    "/proc/<pid>/task/<tid>/sched, 99 - rtprio: L is {}, H is {}.",
                    kLow, kMedium, kHigh, 99 - kLow, 99 - kHigh),
        1};
    for (const Outcome& o : outcomes) {
      const oslab::Summary wait = oslab::summarize(o.high_wait_ns), cs = oslab::summarize(o.critical_section_ns);
      size_t after_medium = 0;
      for (const Times& rep : o.repetitions) after_medium += rep.high_acquired_ns > rep.medium_end_ns;
      table.rows.push_back({o.variant.name(), oslab::format_duration(wait.p50), oslab::format_duration(wait.max),
                            oslab::format_duration(cs.p50),
                            after_medium == o.repetitions.size() ? "after M finished"
                            : after_medium == 0
                                ? "before M ran"
                                : fmt::format("after M in {} of {}", after_medium, o.repetitions.size()),
                            std::to_string(o.repetitions.front().low_prio_while_high_waits)});
    }
    report.table(table);

    const double medium = static_cast<double>(medium_ns), cs = static_cast<double>(critical_section_ns);
    for (const Outcome& o : outcomes) {
      const size_t n = o.repetitions.size();
      size_t h_after_m = 0, h_before_m = 0, boosted = 0;
      for (const Times& rep : o.repetitions) {
        h_after_m += rep.high_acquired_ns > rep.medium_end_ns;
        h_before_m += rep.high_acquired_ns < rep.medium_start_ns;
        boosted += rep.low_prio_while_high_waits == rep.high_prio;
      }
      const oslab::Summary wait = oslab::summarize(o.high_wait_ns);
      if (!o.variant.inherit) {
        report.fact("plain-high-waits-for-medium",
                    "plain mutex: H, the highest priority, gets the lock only after M, a lower one, has finished "
                    "(priority inversion)",
                    h_after_m == n,
                    fmt::format("in {} of {} repetitions H got the lock after M's run ended", h_after_m, n));
        report.fact("plain-no-boost", "plain mutex: L keeps its own priority while H waits", boosted == 0,
                    fmt::format("L's effective prio while H waited: {} (its own is {})",
                                o.repetitions.front().low_prio_while_high_waits, 99 - kLow));
        report.verdict("plain-wait-unbounded",
                       "plain mutex: H waits at least as long as M runs (the wait grows with M, not with the "
                       "critical section)",
                       oslab::median_of(wait), oslab::Compare::above, medium,
                       fmt::format("H waited {} (median of {}); M ran {}, the critical section is {} of work",
                                   oslab::format_duration(wait.p50), n, oslab::format_duration(medium),
                                   oslab::format_duration(cs)),
                       "ns");
      } else {
        report.fact("inherit-high-before-medium", "PTHREAD_PRIO_INHERIT: H gets the lock before M runs at all",
                    h_before_m == n,
                    fmt::format("in {} of {} repetitions H got the lock before M started", h_before_m, n));
        report.fact(
            "inherit-boosts-holder", "PTHREAD_PRIO_INHERIT: while H waits, L runs at H's priority", boosted == n,
            fmt::format("L's effective prio while H waited: {} in {} of {} repetitions (H's is {})",
                        o.repetitions.front().low_prio_while_high_waits, boosted, n, o.repetitions.front().high_prio));
        report.verdict("inherit-wait-bounded",
                       "PTHREAD_PRIO_INHERIT: H waits only for the critical section, not for M (less than half "
                       "of M's run plus the critical section)",
                       oslab::median_of(wait), oslab::Compare::below, (medium + cs) / 2,
                       fmt::format("H waited {} (median of {}); the critical section is {} of work, M ran {}",
                                   oslab::format_duration(wait.p50), n, oslab::format_duration(cs),
                                   oslab::format_duration(medium)),
                       "ns");
      }
    }
  }
};

}  // namespace

int main(int argc, char** argv) {
  oslab::Lab lab({
      .name = "inversion",
      .purpose = "priority inversion on one CPU: a plain mutex against PTHREAD_PRIO_INHERIT, with SCHED_FIFO "
                 "threads",
      .claim = "The notes: each thread has its own scheduling priority (\"Prioridad del scheduling\"), and\n"
               "threads share memory and must take turns with locks. A priority is only a promise while\n"
               "no lock is shared: a high-priority thread that waits for a lock held by a low-priority\n"
               "one can be held up by anything of medium priority.",
      .explain = "Three SCHED_FIFO threads are pinned to one CPU: L (priority 10), M (20) and H (30). In each\n"
                 "repetition H and M sleep; L takes the mutex and wakes H, which preempts L at once, asks\n"
                 "for the mutex and blocks. L then wakes M and works in its critical section (a fixed amount\n"
                 "of CPU time). With a plain mutex M is above L, so M runs to the end of its work before L\n"
                 "can finish and unlock: H, the most important thread, waits for M - an unbounded wait,\n"
                 "as long as any medium-priority work lasts. With PTHREAD_PRIO_INHERIT the mutex is a PI\n"
                 "futex: while H waits, the kernel runs L at H's priority (its rt_mutex lends it), so M\n"
                 "cannot preempt L; L unlocks, drops back to 10, H takes the lock, and M runs after. The lab\n"
                 "shows L's effective priority, read by L itself from /proc/self/task/<tid>/sched while H\n"
                 "waits, and the order of events (did H get the lock before M ran, or after M finished?).\n"
                 "The order is decided by the priorities, not by timing, so it holds on a busy machine too.\n\n"
                 "This is what happened to Mars Pathfinder in 1997: a low-priority meteorological task\n"
                 "held a mutex that the high-priority bus management task needed, medium-priority\n"
                 "communications work kept the low one off the CPU, a watchdog saw the bus task miss its\n"
                 "deadline and reset the computer, again and again. VxWorks' mutex had a priority\n"
                 "inheritance option; it was off. It was turned on from Earth.\n\n"
                 "The threads are bounded like every real-time thread of oslab: a deadline, a watchdog at\n"
                 "normal priority, RT throttling on, RLIMIT_RTTIME. Without root or CAP_SYS_NICE the lab\n"
                 "cannot make real-time threads and is skipped.\n\n"
                 "Questions: how long would H wait with a plain mutex if M never finished? What does priority\n"
                 "ceiling (PTHREAD_PRIO_PROTECT) do instead? Why does inheritance need the kernel's help -\n"
                 "why can a user-space lock not do it alone? Would nice values show the same inversion?",
  });
  const long& cs_ms =
      lab.integer_option("--cs-ms", "CPU work L does inside its critical section, in ms", {2, 2}, 1, 100);
  const long& medium_ms =
      lab.integer_option("--medium-ms", "CPU work M does (the medium-priority work), in ms", {50, 20}, 1, 500);
  std::optional<Experiment> experiment;
  return lab.run(
      argc, argv,
      [&](oslab::Report& report) {
        // The last line of defence: a real-time thread that spins this long without blocking ends the run.
        const oslab::ScopedRtTimeLimit rt_time_limit(std::chrono::milliseconds(medium_ms * 4 + 2000));
        for (const Variant variant : {Variant{false}, Variant{true}})
          report.run_case(variant.name(), [&] { experiment->run(report, variant); });
        experiment->table_and_verdicts(report);
        report.show_results_table = false;
      },
      [&](oslab::Report&) {
        if (medium_ms <= cs_ms)
          throw oslab::UsageError(
              fmt::format("--medium-ms ({}) must be longer than --cs-ms ({}) to tell the two "
                          "waits apart",
                          medium_ms, cs_ms));
        const int repetitions = lab.iterations(10, 3);
        if (repetitions > static_cast<int>(kMaxRepetitions))
          throw oslab::UsageError(fmt::format("--iterations: at most {} repetitions", kMaxRepetitions));
        oslab::require_bounded_rt(kHigh);
        experiment.emplace(lab, repetitions, cs_ms * kMs, medium_ms * kMs, lab.options().cpus.back());
      });
}
