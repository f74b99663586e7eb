// oslab-gil: one global lock around CPU work, as an interpreter's global lock (CPython's GIL)
// does. N threads share a fixed amount of CPU work, with the lock held around every chunk of
// it and without; the speedup over one thread, how many CPUs the process kept busy, and what
// the lock's hand-offs cost.
//
// Try:     oslab-gil
//          oslab-gil --workers 1,2,4,8 --chunk 1000
//          oslab-gil --json | jq '.results[] | select(.name == "hand-off")'
// Expect:  without the lock, two threads on two CPUs finish the work in about half the time;
//          with it, never faster than one thread (usually a little slower: each hand-off wakes
//          the next thread), and the process keeps about one CPU busy however many it has.
// Compare: oslab-race (locks that protect data), oslab-ctxswitch (what a wake-up costs).

#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include <fmt/format.h>

#include "oslab/clock.hpp"
#include "oslab/error.hpp"
#include "oslab/lab.hpp"
#include "oslab/measure.hpp"

namespace {

using namespace std::chrono_literals;
constexpr auto kDeadline = 10s;

// CPU work that the compiler cannot fold away: xorshift steps.
[[gnu::noinline]] uint64_t work(uint64_t steps, uint64_t state) {
  for (uint64_t i = 0; i < steps; ++i) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
  }
  return state;
}

// A global interpreter lock as CPython (3.2 and later) builds it: a flag under a mutex and a
// condition variable. A thread holds it while it runs, and drops it after every interval of
// work; if another thread is waiting, the dropping thread waits until that thread has taken
// it (forced switching), so that a thread cannot take the lock straight back.
class GlobalLock {
 public:
  void take(int thread) {
    std::unique_lock lock(mutex_);
    ++waiting_;
    if (!free_.wait_for(lock, kDeadline, [&] { return !held_; }))
      throw std::runtime_error("the global lock was not released within 10 s");
    --waiting_;
    held_ = true;
    if (holder_ != thread && holder_ != -1) {
      handoff_ns_.push_back(static_cast<double>(oslab::now_ns() - dropped_at_));
      ++switches_;
      switched_.notify_all();
    }
    holder_ = thread;
  }
  void drop() {
    std::unique_lock lock(mutex_);
    held_ = false;
    dropped_at_ = oslab::now_ns();
    free_.notify_one();
    if (waiting_ == 0) return;
    const uint64_t before = switches_;
    if (!switched_.wait_for(lock, kDeadline, [&] { return switches_ != before; }))
      throw std::runtime_error("no waiting thread took the global lock within 10 s");
  }
  // Times from a drop to another thread's take, since the last call.
  std::vector<double> take_handoffs() {
    std::lock_guard lock(mutex_);
    holder_ = -1;
    return std::exchange(handoff_ns_, {});
  }

 private:
  std::mutex mutex_;
  std::condition_variable free_, switched_;
  bool held_ = false;
  int holder_ = -1;
  int waiting_ = 0;
  uint64_t switches_ = 0;
  int64_t dropped_at_ = 0;
  std::vector<double> handoff_ns_;
};

struct Case {
  int workers;
  bool locked;
  double cpu_s = 0, wall_s = 0;  // summed over runs
  uint64_t handoffs = 0;
};

double cpu_seconds() {
  rusage usage{};
  oslab::check_errno("getrusage", ::getrusage(RUSAGE_SELF, &usage));
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

struct Experiment {
  explicit Experiment(const oslab::Lab& l) : lab(l) {}
  const oslab::Lab& lab;
  std::vector<long> workers;
  long chunks = 0;
  double chunk_us = 0;
  uint64_t steps_per_chunk = 0;
  std::vector<Case> cases;
  GlobalLock gil;
  std::vector<double> handoffs;
  std::atomic<uint64_t> sink{0};

  void calibrate() {
    const int64_t batch =
        oslab::calibrate_batch([&](int64_t n) { sink += work(static_cast<uint64_t>(n), 88172645463325252ULL); },
                               oslab::timer_info().overhead_ns, 10'000, int64_t{1} << 40);
    int64_t start = oslab::now_ns();
    sink += work(static_cast<uint64_t>(batch), 1);
    const double ns_per_step = static_cast<double>(oslab::now_ns() - start) / static_cast<double>(batch);
    steps_per_chunk = std::max<uint64_t>(1, static_cast<uint64_t>(chunk_us * 1000 / ns_per_step));
  }

  // One run: `c.workers` threads share `chunks` chunks of work, started together. `keep`: count
  // its CPU time and hand-offs (warm-up runs are not counted).
  double run(Case& c, bool keep) {
    std::atomic<int> ready{0};
    std::atomic<bool> go{false};
    std::atomic<bool> failed{false};
    std::vector<std::thread> threads;
    for (int t = 0; t < c.workers; ++t)
      threads.emplace_back([&, t] {
        const long mine = chunks / c.workers + (t < chunks % c.workers ? 1 : 0);
        uint64_t state = 88172645463325252ULL + static_cast<uint64_t>(t);
        ready.fetch_add(1);
        while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
        try {
          for (long i = 0; i < mine; ++i) {
            if (c.locked) gil.take(t);
            state = work(steps_per_chunk, state);
            if (c.locked) gil.drop();
          }
        } catch (const std::exception&) {
          failed = true;
        }
        sink += state;
      });
    while (ready.load() < c.workers) std::this_thread::yield();
    const double cpu_before = cpu_seconds();
    const int64_t start = oslab::now_ns();
    go.store(true, std::memory_order_release);
    for (auto& thread : threads) thread.join();
    const double wall_ns = static_cast<double>(oslab::now_ns() - start);
    if (failed) throw std::runtime_error("a thread waited more than 10 s for the global lock");
    const double cpu_s = cpu_seconds() - cpu_before;
    std::vector<double> mine = gil.take_handoffs();
    if (keep) {
      c.cpu_s += cpu_s;
      c.wall_s += wall_ns / 1e9;
      c.handoffs += mine.size();
      handoffs.insert(handoffs.end(), mine.begin(), mine.end());
    }
    return wall_ns;
  }

  void measure(oslab::Report& report) {
    for (long n : workers)
      for (bool locked : {false, true}) cases.push_back({static_cast<int>(n), locked});
    oslab::SamplingPlan plan = lab.plan();
    for (int i = 0; i < plan.warmup; ++i)
      for (Case& c : cases) run(c, false);
    plan.warmup = 0;
    oslab::Interleaver interleaver(plan, cases.size());
    interleaver.run([&](size_t index, int samples, oslab::Measurement& into) {
      std::vector<double> walls;
      for (int i = 0; i < samples; ++i) walls.push_back(run(cases[index], true));
      into.add_block(walls, {}, {});
    });
    for (size_t i = 0; i < cases.size(); ++i) {
      const Case& c = cases[i];
      const oslab::Measurement& m = interleaver.measurements()[i];
      report.add("run", {{"lock", c.locked ? "global" : "none"}, {"workers", c.workers}}, m,
                 {.what = fmt::format("wall time for {} thread(s) to do {} chunks of ~{} of CPU work between them{}",
                                      c.workers, chunks, oslab::format_duration(chunk_us * 1000),
                                      c.locked ? ", each chunk under the global lock" : ", no lock"),
                  .counters = {{"cpus_busy", c.cpu_s / c.wall_s},
                               {"handoffs_per_run",
                                static_cast<double>(c.handoffs) / static_cast<double>(m.samples_ns.size())}},
                  .headline = false});
    }
    if (!handoffs.empty())
      report.add_samples("hand-off", {{"lock", "global"}}, handoffs,
                         {.what = "from one thread's drop of the global lock to another thread's take (a condition "
                                  "variable's wake-up: a futex wake, and a switch or a wake-up on another CPU)"});
  }

  const oslab::Result& result(bool locked, long n, const oslab::Report& report) const {
    return report.get("run", {{"lock", locked ? "global" : "none"}, {"workers", n}});
  }

  void table_and_verdicts(oslab::Report& report) const {
    const long one = workers.front();
    oslab::Table table{
        fmt::format("{} chunks of ~{} CPU work shared by N threads ({} CPUs allowed)", chunks,
                    oslab::format_duration(chunk_us * 1000), lab.options().cpus.size()),
        {"threads", "lock", "wall (median)", fmt::format("speedup over {}", one), "CPUs busy", "hand-offs per run"},
        {},
        "CPUs busy: the process's user + system time over the wall time (getrusage).",
        2};
    for (long n : workers)
      for (bool locked : {false, true}) {
        const oslab::Result& r = result(locked, n, report);
        table.rows.push_back({std::to_string(n), locked ? "global" : "none", oslab::format_duration(r.summary.p50),
                              fmt::format("{:.2f}x", result(locked, one, report).summary.p50 / r.summary.p50),
                              fmt::format("{:.2f}", r.counters.at("cpus_busy")),
                              oslab::format_number(r.counters.at("handoffs_per_run"))});
      }
    report.table(table);

    const long cpus = static_cast<long>(lab.options().cpus.size());
    long parallel = 0;  // the largest thread count the CPUs can run at once
    for (long n : workers)
      if (n <= cpus && n > parallel) parallel = n;
    if (one != 1 || parallel < 2) {
      report.skip("the global lock against no lock",
                  "needs --workers to include 1 and a count from 2 up to the CPUs allowed, and 2 CPUs");
      return;
    }
    const oslab::Estimate with_lock =
        oslab::ratio_of(result(true, 1, report).summary, result(true, parallel, report).summary);
    const oslab::Estimate without =
        oslab::ratio_of(result(false, 1, report).summary, result(false, parallel, report).summary);
    const double busy = result(true, parallel, report).counters.at("cpus_busy");
    report.verdict("global-lock-runs-one-at-a-time",
                   "with one global lock around the work, more threads do not finish it sooner, however many CPUs "
                   "there are",
                   with_lock, oslab::Compare::below, 1.25,
                   fmt::format("{} threads on {} CPUs: speedup {:.2f}x over one thread with the lock, {:.2f}x without",
                               parallel, cpus, with_lock.value, without.value));
    report.fact("global-lock-keeps-one-cpu-busy",
                "with the global lock, the process keeps about one CPU busy (at most 1.25), whatever the threads",
                busy <= 1.25,
                fmt::format("{} threads under the lock used {:.2f} CPUs on average (user + system time / wall time); "
                            "without it, {:.2f}",
                            parallel, busy, result(false, parallel, report).counters.at("cpus_busy")));
    report.verdict("threads-scale-without-the-lock",
                   fmt::format("without the lock, {} threads on {} CPUs finish the work over {:.1f}x sooner", parallel,
                               cpus, 0.75 * static_cast<double>(parallel)),
                   without, oslab::Compare::above, 0.75 * static_cast<double>(parallel),
                   fmt::format("speedup {:.2f}x with {} threads (ideal {}x)", without.value, parallel, parallel));
    const oslab::Estimate slowdown =
        oslab::ratio_of(result(true, parallel, report).summary, result(true, 1, report).summary);
    const oslab::Result* handoff = report.find("hand-off");
    const double added = result(true, parallel, report).summary.p50 - result(true, 1, report).summary.p50;
    const double per_run = result(true, parallel, report).counters.at("handoffs_per_run");
    report.verdict(
        "hand-offs-cost-time", "the lock's hand-offs make several threads slower than one thread doing the same work",
        slowdown, oslab::Compare::above, 1.0,
        fmt::format(
            "with the lock, {} threads took {:.2f}x one thread's time ({} per run, with {} "
            "hand-offs per run{}); a hand-off itself, from one thread's drop to another's take, "
            "has median {}",
            parallel, slowdown.value, oslab::format_signed_duration(added), oslab::format_number(per_run),
            added > 0 && per_run >= 1 ? fmt::format(": {} per hand-off", oslab::format_duration(added / per_run)) : "",
            handoff ? oslab::format_duration(handoff->summary.p50) : "-"));
  }
};

}  // namespace

int main(int argc, char** argv) {
  oslab::Lab lab({
      .name = "gil",
      .purpose = "one global lock around CPU work (an interpreter's GIL): speedup vs threads, and hand-off cost",
      .claim = "Kernel threads 'can run in parallel on a multiprocessor' (the notes). An interpreter with a\n"
               "global lock (CPython's GIL, Ruby's GVL) has kernel threads, but lets only the one that holds\n"
               "the lock run its code. Here N threads share a fixed amount of CPU work, with such a lock\n"
               "around every chunk and without.",
      .explain = "CPython runs Python code only while holding its global interpreter lock. A thread holds it\n"
                 "for a switch interval (5 ms by default), then drops it if another thread asked; since 3.2\n"
                 "the dropping thread waits until another has taken the lock ('forced switching'), so that it\n"
                 "cannot grab it straight back. The lab builds the same lock (a flag, a mutex, two condition\n"
                 "variables) and gives it the same rule, with a chunk of pure CPU work (xorshift steps,\n"
                 "--chunk microseconds) as the interval.\n\n"
                 "The same total work (--chunks chunks) is split among N threads (--workers), run with the\n"
                 "lock around every chunk and without it. Without it, N threads on N CPUs finish in about 1/N\n"
                 "of the time. With it, only one thread runs at a time, so the work takes as long as with one\n"
                 "thread, plus the hand-offs: every drop wakes a waiting thread (a futex wake-up, and a switch\n"
                 "or a cross-CPU wake-up), and the dropping thread sleeps until the other has the lock. The\n"
                 "kernel's CPU accounting (getrusage) shows it too: about one CPU busy, however many threads.\n"
                 "Each hand-off is timed from the drop to the other thread's take.\n\n"
                 "Each sample is the wall time of one whole run; the cases run in rotation, a block of runs\n"
                 "at a time, after a discarded round of warm-up runs.\n\n"
                 "Questions: why do interpreters have such a lock at all? What happens to I/O-bound threads\n"
                 "under it (they drop the lock while they wait)? Why is forced switching needed, and what does\n"
                 "it cost? How do processes (multiprocessing) avoid the lock, and what do they pay instead?",
  });
  const auto& workers = lab.list_option("-n,--workers", "Thread counts to compare, comma-separated",
                                        {.full = {1, 2, 4}, .quick = {1, 2}}, 1, 64);
  const long& chunks = lab.integer_option("--chunks", "Chunks of work per run, shared by the threads",
                                          {.full = 200, .quick = 100}, 1, 1'000'000);
  const double& chunk_us = lab.number_option("--chunk", "CPU work per chunk, microseconds (the lock's interval)",
                                             {.full = 200, .quick = 200}, 1, 1'000'000);
  lab.sampling({.samples = {.full = 20, .quick = 5}, .budget_s = {.full = 1.5, .quick = 0.1}, .warmup = 1});

  std::unique_ptr<Experiment> experiment;
  auto prepare = [&](oslab::Report&) {
    experiment = std::make_unique<Experiment>(lab);
    experiment->workers = workers;
    std::sort(experiment->workers.begin(), experiment->workers.end());
    experiment->workers.erase(std::unique(experiment->workers.begin(), experiment->workers.end()),
                              experiment->workers.end());
    experiment->chunks = chunks;
    experiment->chunk_us = chunk_us;
  };
  return lab.run(
      argc, argv,
      [&](oslab::Report& report) {
        experiment->calibrate();
        report.params["steps_per_chunk"] = experiment->steps_per_chunk;
        experiment->measure(report);
        experiment->table_and_verdicts(report);
        report.show_results_table = false;
      },
      prepare);
}
