// oslab-race: what goes wrong without synchronisation. First, lost updates: N threads each
// run `x = x + 1` M times on a plain global, a volatile global, an atomic, under a mutex, under
// a spinlock, and on thread-local counters summed at the end; how many updates each loses, and
// what each fix costs per increment. Then the notes' interleaving example: every order of the
// loads and stores of `x = x + 1`, `y = y + x`, `z = x + 5y` run by three threads, the final
// values each order gives, and which of them real threads produce.
//
// Try:     oslab-race
//          oslab-race --workers 4 --increments 200000 --counters plain,atomic,mutex
//          oslab-race --init 1,2,3 --trials 50000
// Expect:  the plain and volatile counters lose updates (how many depends on the CPUs and the
//          luck of the run: with one CPU, few or none); the atomic, the mutex, the spinlock and
//          the thread-local counters never do; thread-local counters cost the least, a
//          contended lock the most. The three statements have 560 interleavings and, from
//          x = y = z = 0, six distinct outcomes; real runs show several of them.
// Compare: oslab-gil (one lock around everything), oslab-ctxswitch (what a contended lock's
//          sleep and wake-up cost).

#include <pthread.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <thread>

#include <fmt/format.h>

#include "oslab/clock.hpp"
#include "oslab/cpu.hpp"
#include "oslab/error.hpp"
#include "oslab/lab.hpp"
#include "oslab/parties.hpp"

namespace {

using oslab::check_errnum;

// ---- Part 1: lost updates ------------------------------------------------------------------

// Each counter on its own cache line, so that one variant's traffic does not slow another's.
alignas(64) long g_plain = 0;
alignas(64) volatile long g_volatile = 0;
alignas(64) std::atomic<long> g_atomic{0};
alignas(64) long g_mutex_counter = 0;
alignas(64) pthread_mutex_t g_mutex = PTHREAD_MUTEX_INITIALIZER;
alignas(64) long g_spin_counter = 0;
alignas(64) pthread_spinlock_t g_spin;
alignas(64) std::atomic<long> g_thread_local_total{0};
thread_local long t_count = 0;

// x = x + 1 as the machine runs it: a load, an add, a store, every time. The first empty asm
// (a compiler barrier) makes the compiler load x afresh, as another thread may have changed
// it; the second keeps the loaded value in a register until the store, so that the three steps
// are neither folded into one addition for the whole loop nor fused into one read-modify-write
// instruction. No instruction is added to the three.
inline void load_add_store(long& x) {
  asm volatile("" ::: "memory");
  long value = x;
  asm volatile("" : "+r"(value));
  x = value + 1;
}

// One function per variant; each thread runs it with its share of increments.
void plain(long increments) {
  for (long i = 0; i < increments; ++i) load_add_store(g_plain);  // a data race, on purpose
}
void volatile_global(long increments) {
  for (long i = 0; i < increments; ++i) g_volatile = g_volatile + 1;  // still a load, an add, a store
}
void atomic(long increments) {
  for (long i = 0; i < increments; ++i) g_atomic.fetch_add(1, std::memory_order_relaxed);  // lock xadd on x86
}
void mutex(long increments) {
  for (long i = 0; i < increments; ++i) {
    check_errnum("pthread_mutex_lock", ::pthread_mutex_lock(&g_mutex));
    load_add_store(g_mutex_counter);
    check_errnum("pthread_mutex_unlock", ::pthread_mutex_unlock(&g_mutex));
  }
}
void spinlock(long increments) {
  for (long i = 0; i < increments; ++i) {
    check_errnum("pthread_spin_lock", ::pthread_spin_lock(&g_spin));
    load_add_store(g_spin_counter);
    check_errnum("pthread_spin_unlock", ::pthread_spin_unlock(&g_spin));
  }
}
void thread_local_sum(long increments) {
  t_count = 0;
  for (long i = 0; i < increments; ++i) load_add_store(t_count);
  g_thread_local_total.fetch_add(t_count);  // once per thread, at the end
}

struct Variant {
  std::string key, label, what;
  void (*run)(long increments);
  void (*reset)();
  long (*value)();
  bool safe;  // loses no update, by construction
};

const std::vector<Variant> kVariants = {
    {"plain", "plain global", "long x; x = x + 1 (a load, an add, a store), no synchronisation", plain,
     [] { g_plain = 0; }, [] { return g_plain; }, false},
    {"volatile", "volatile global", "volatile long x; x = x + 1: every access goes to memory, still not atomic",
     volatile_global, [] { g_volatile = 0; }, [] { return static_cast<long>(g_volatile); }, false},
    {"atomic", "atomic", "std::atomic<long> x; x.fetch_add(1): one atomic read-modify-write (lock xadd on x86)", atomic,
     [] { g_atomic = 0; }, [] { return g_atomic.load(); }, true},
    {"mutex", "mutex", "pthread_mutex_lock; x = x + 1; pthread_mutex_unlock (a futex when contended)", mutex,
     [] { g_mutex_counter = 0; }, [] { return g_mutex_counter; }, true},
    {"spinlock", "spinlock", "pthread_spin_lock; x = x + 1; pthread_spin_unlock (busy-waits, never sleeps)", spinlock,
     [] { g_spin_counter = 0; }, [] { return g_spin_counter; }, true},
    {"thread-local", "thread-local counters",
     "each thread counts in its own thread_local variable and adds it to "
     "the total once, at the end",
     thread_local_sum, [] { g_thread_local_total = 0; }, [] { return g_thread_local_total.load(); }, true},
};

std::vector<std::string> variant_keys() {
  std::vector<std::string> keys;
  for (const auto& v : kVariants) keys.push_back(v.key);
  return keys;
}

const Variant& variant_of(const std::string& key) {
  return *std::find_if(kVariants.begin(), kVariants.end(), [&](const Variant& v) { return v.key == key; });
}

// One run: `workers` threads start together and each adds `increments`; returns the wall time
// from the start to the last thread's end, and the final value.
struct Run {
  double ns = 0;
  long value = 0;
};

Run run_variant(const Variant& v, int workers, long increments) {
  v.reset();
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < workers; ++t)
    threads.emplace_back([&] {
      ready.fetch_add(1);
      while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
      v.run(increments);
    });
  while (ready.load() < workers) std::this_thread::yield();
  const int64_t start = oslab::now_ns();
  go.store(true, std::memory_order_release);
  for (auto& thread : threads) thread.join();  // a hung thread is ended by the lab's watchdog
  return {static_cast<double>(oslab::now_ns() - start), v.value()};
}

// ---- Part 2: interleavings ----------------------------------------------------------------

// x = x + 1; y = y + x; z = x + 5y, each statement its loads in the order written, then its store.
enum Var { X, Y, Z };
struct Op {
  bool store;
  Var var;  // what is loaded, or stored
};
const std::array<std::vector<Op>, 3> kStatements = {{
    {{false, X}, {true, X}},              // x = x + 1
    {{false, Y}, {false, X}, {true, Y}},  // y = y + x
    {{false, X}, {false, Y}, {true, Z}},  // z = x + 5y
}};
const std::array<const char*, 3> kStatementText = {"x = x + 1", "y = y + x", "z = x + 5y"};

using Values = std::array<long, 3>;

long stored_value(int thread, const std::array<long, 2>& loaded) {
  switch (thread) {
    case 0: return loaded[0] + 1;
    case 1: return loaded[0] + loaded[1];
    default: return loaded[0] + 5 * loaded[1];
  }
}

struct Outcome {
  uint64_t interleavings = 0;
  std::string example;  // the first order found that gives it
  uint64_t observed = 0;
};

// Every interleaving of the three threads' operations (each thread's in program order).
std::map<Values, Outcome> enumerate(const Values& init, uint64_t& total) {
  std::map<Values, Outcome> outcomes;
  std::array<size_t, 3> next{};
  std::array<std::array<long, 2>, 3> loaded{};
  Values memory = init;
  std::vector<std::string> order;
  std::function<void()> step = [&] {
    bool done = true;
    for (int t = 0; t < 3; ++t) {
      if (next[t] == kStatements[t].size()) continue;
      done = false;
      const Op op = kStatements[t][next[t]];
      const Values saved = memory;
      const auto saved_loaded = loaded[t];
      if (op.store)
        memory[op.var] = stored_value(t, loaded[t]);
      else
        loaded[t][next[t]] = memory[op.var];
      order.push_back(fmt::format("T{}:{}{}", t + 1, op.store ? 'S' : 'L', "xyz"[op.var]));
      ++next[t];
      step();
      --next[t];
      order.pop_back();
      memory = saved;
      loaded[t] = saved_loaded;
    }
    if (!done) return;
    ++total;
    Outcome& o = outcomes[memory];
    if (o.interleavings++ == 0) {
      for (const auto& s : order) o.example += (o.example.empty() ? "" : " ") + s;
    }
  };
  step();
  return outcomes;
}

// The shared variables of the real runs, as relaxed atomics: each load and store is one
// machine instruction, as in the model. No thread loads after its store, so on x86 (TSO) every
// execution is one of the model's interleavings.
struct Shared3 {
  std::atomic<long> x{0}, y{0}, z{0};
};

void busy_wait_ns(int64_t ns) {
  const int64_t until = oslab::now_ns() + ns;
  while (oslab::now_ns() < until) {
  }
}

// ---- The experiment ---------------------------------------------------------------------

struct Experiment {
  const oslab::Lab& lab;
  std::vector<const Variant*> variants;
  int workers = 2;
  long increments = 0;
  int runs = 0;
  Values init{};
  long trials = 0;
  double max_delay_ns = 0;
  std::map<const Variant*, std::vector<long>> lost;

  void lost_updates(oslab::Report& report) {
    std::map<const Variant*, std::vector<double>> ns_per_increment;
    const double total = static_cast<double>(workers) * static_cast<double>(increments);
    for (int r = 0; r < runs; ++r)
      for (size_t i = 0; i < variants.size(); ++i) {
        const Variant* v = variants[(i + static_cast<size_t>(r)) % variants.size()];  // rotate who runs first
        const Run run = run_variant(*v, workers, increments);
        lost[v].push_back(workers * increments - run.value);
        ns_per_increment[v].push_back(run.ns / total);
      }
    for (const Variant* v : variants) {
      const std::vector<long>& l = lost[v];
      double lost_sum = 0;
      for (long value : l) lost_sum += static_cast<double>(value);
      report.add_samples(
          "increment", {{"counter", v->key}, {"workers", workers}, {"increments_per_worker", increments}},
          ns_per_increment[v],
          {.what = fmt::format("{}: wall time of one run ({} threads started together, each doing {} increments) / "
                               "all {} increments; one sample per run",
                               v->what, workers, increments, static_cast<long>(total)),
           .counters = {{"lost_updates_per_run", lost_sum / static_cast<double>(l.size())},
                        {"lost_fraction", lost_sum / static_cast<double>(l.size()) / total}},
           .headline = false});
    }
  }

  void lost_table_and_verdicts(oslab::Report& report) const {
    oslab::Table table{
        fmt::format("Lost updates and cost: {} threads x {} increments = {} expected, {} runs each", workers,
                    increments, static_cast<long>(workers) * increments, runs),
        {"counter", "lost per run (min / median / max)", "lost", "cost per increment", "vs thread-local"},
        {},
        "Cost per increment: a run's wall time over all its increments (median of the runs). A lost "
        "update is an increment whose store overwrote another thread's.",
        1};
    const oslab::Result* local = report.find("increment", {{"counter", "thread-local"}});
    for (const Variant* v : variants) {
      std::vector<long> l = lost.at(v);
      std::sort(l.begin(), l.end());
      const oslab::Result& r = report.get("increment", {{"counter", v->key}});
      table.rows.push_back({v->label, fmt::format("{} / {} / {}", l.front(), l[l.size() / 2], l.back()),
                            oslab::format_percent(r.counters.at("lost_fraction")),
                            oslab::format_duration(r.summary.p50),
                            local ? fmt::format("{:.1f}x", r.summary.p50 / local->summary.p50) : "-"});
    }
    report.table(table);

    for (const Variant* v : variants) {
      const std::vector<long>& l = lost.at(v);
      const long worst = *std::max_element(l.begin(), l.end());
      const int runs_losing = static_cast<int>(std::count_if(l.begin(), l.end(), [](long n) { return n > 0; }));
      const std::string evidence =
          fmt::format("{} runs of {} threads x {} increments: {} run(s) lost updates, at most {} ({})", l.size(),
                      workers, increments, runs_losing, worst,
                      oslab::format_percent(static_cast<double>(worst) / static_cast<double>(workers * increments)));
      if (v->safe) {
        report.fact(fmt::format("no-lost-updates/{}", v->key), fmt::format("{}: no update is lost", v->label),
                    worst == 0, evidence);
      } else {
        // A race may not strike in every run (one CPU, luck): seen, it is a fact; unseen, nothing is proven.
        const std::string id = fmt::format("loses-updates/{}", v->key);
        const std::string claim =
            v->key == "volatile" ? "volatile does not make x = x + 1 safe: a volatile global loses updates too"
                                 : "x = x + 1 on an unprotected global from several threads loses updates (the notes: "
                                   "globals are not thread-safe)";
        if (worst > 0)
          report.fact(id, claim, true, evidence);
        else
          report.verdict(id, claim, oslab::VerdictState::inconclusive,
                         evidence +
                             "; a race that did not strike in these runs proves nothing: try more --workers, "
                             "--increments or CPUs");
      }
    }
    const Variant* cheapest = nullptr;
    for (const Variant* v : variants)
      if (v->safe && v->key != "thread-local" &&
          (!cheapest || report.get("increment", {{"counter", v->key}}).summary.p50 <
                            report.get("increment", {{"counter", cheapest->key}}).summary.p50))
        cheapest = v;
    if (local && cheapest) {
      const oslab::Estimate ratio =
          oslab::ratio_of(report.get("increment", {{"counter", cheapest->key}}).summary, local->summary);
      report.verdict(
          "thread-local-is-cheapest",
          "counting in thread-local variables and summing at the end is the cheapest safe way: it shares "
          "nothing while counting",
          ratio, oslab::Compare::above, 1.0,
          fmt::format("the cheapest shared fix, the {}, costs {:.1f}x the thread-local counters per "
                      "increment ({} vs {})",
                      cheapest->label, ratio.value,
                      oslab::format_duration(report.get("increment", {{"counter", cheapest->key}}).summary.p50),
                      oslab::format_duration(local->summary.p50)));
    } else {
      report.skip("thread-local against the shared fixes", "needs the thread-local counter and one shared fix");
    }
  }

  void interleavings(oslab::Report& report) const {
    uint64_t total = 0;
    std::map<Values, Outcome> outcomes = enumerate(init, total);

    // Real runs: three threads, each one statement, started together for every trial.
    Shared3 shared;
    oslab::SharedBarrier start(4), end(4);
    const auto deadline = std::chrono::seconds(30);
    std::map<Values, uint64_t> observed;
    std::atomic<bool> failed{false};
    std::vector<std::thread> threads;
    for (int t = 0; t < 3; ++t)
      threads.emplace_back([&, t] {
        std::mt19937_64 random(lab.options().seed * 3 + static_cast<uint64_t>(t));
        std::uniform_int_distribution<int64_t> delay(0, static_cast<int64_t>(max_delay_ns));
        try {
          for (long trial = 0; trial < trials; ++trial) {
            start.arrive_and_wait(deadline);
            busy_wait_ns(delay(random));
            const long a = (t == 1 ? shared.y : shared.x).load(std::memory_order_relaxed);
            if (t == 0) {
              busy_wait_ns(delay(random));
              shared.x.store(a + 1, std::memory_order_relaxed);
            } else {
              busy_wait_ns(delay(random));
              const long b = (t == 1 ? shared.x : shared.y).load(std::memory_order_relaxed);
              busy_wait_ns(delay(random));
              (t == 1 ? shared.y : shared.z).store(t == 1 ? a + b : a + 5 * b, std::memory_order_relaxed);
            }
            end.arrive_and_wait(deadline);
          }
        } catch (const std::exception&) {
          failed = true;
          start.break_barrier();
          end.break_barrier();
        }
      });
    const int64_t began = oslab::now_ns();
    std::vector<double> trial_ns;
    try {
      for (long trial = 0; trial < trials; ++trial) {
        shared.x = init[X];
        shared.y = init[Y];
        shared.z = init[Z];
        const int64_t t0 = oslab::now_ns();
        start.arrive_and_wait(deadline);
        end.arrive_and_wait(deadline);
        trial_ns.push_back(static_cast<double>(oslab::now_ns() - t0));
        ++observed[{shared.x.load(), shared.y.load(), shared.z.load()}];
      }
    } catch (const std::exception&) {
      failed = true;
      start.break_barrier();
      end.break_barrier();
    }
    for (auto& thread : threads) thread.join();
    if (failed) throw std::runtime_error("the interleaving threads did not meet at their barriers within 30 s");
    const double seconds = static_cast<double>(oslab::now_ns() - began) / 1e9;

    report.add_samples("interleaving trial", {{"init", {init[X], init[Y], init[Z]}}, {"max_delay_ns", max_delay_ns}},
                       std::move(trial_ns),
                       {.what = "one trial: reset x, y, z; three threads released by a barrier each run their "
                                "statement with random delays before each load and store; all meet again"});

    uint64_t unexplained = 0;
    std::string strange;
    for (const auto& [values, count] : observed) {
      auto it = outcomes.find(values);
      if (it == outcomes.end()) {
        unexplained += count;
        strange += fmt::format(" ({}, {}, {}) x{}", values[X], values[Y], values[Z], count);
      } else {
        it->second.observed = count;
      }
    }
    oslab::Table table{fmt::format("Every interleaving of x = x + 1 | y = y + x | z = x + 5y from (x, y, z) = ({}, {}, "
                                   "{}): {} orders, {} outcomes; and {} real runs",
                                   init[X], init[Y], init[Z], total, outcomes.size(), trials),
                       {"x", "y", "z", "interleavings", "one of them", "real runs", "share"},
                       {},
                       "Each statement is its loads in the order written, then its store (T1:Lx = thread 1 loads x). "
                       "Real runs: three threads, random delays of up to " +
                           oslab::format_duration(max_delay_ns) + " before each load and store.",
                       3};
    for (const auto& [values, o] : outcomes)
      table.rows.push_back({std::to_string(values[X]), std::to_string(values[Y]), std::to_string(values[Z]),
                            std::to_string(o.interleavings), o.example, std::to_string(o.observed),
                            oslab::format_percent(static_cast<double>(o.observed) / static_cast<double>(trials))});
    report.table(table);

    const size_t seen = static_cast<size_t>(
        std::count_if(outcomes.begin(), outcomes.end(), [](const auto& entry) { return entry.second.observed > 0; }));
    report.fact("interleaving-decides-the-result",
                "the three statements' final values depend on the order their loads and stores interleave",
                outcomes.size() > 1,
                fmt::format("{} interleavings give {} distinct final (x, y, z)", total, outcomes.size()));
    report.fact("real-runs-match-the-model", "every outcome of the real runs is one the interleaving model predicts",
                unexplained == 0,
                unexplained == 0
                    ? fmt::format("all {} real runs ended in one of the model's {} outcomes", trials, outcomes.size())
                    : fmt::format("{} of {} real runs ended outside the model:{}", unexplained, trials, strange));
    const std::string interleave_claim =
        "real threads run these statements in more than one order: more than one outcome occurs";
    const std::string interleave_evidence = fmt::format("{} trials in {:.2f} s produced {} of the {} possible outcomes",
                                                        trials, seconds, seen, outcomes.size());
    if (seen > 1)
      report.fact("real-runs-interleave", interleave_claim, true, interleave_evidence);
    else
      report.verdict("real-runs-interleave", interleave_claim, oslab::VerdictState::inconclusive,
                     interleave_evidence + "; one order every time proves nothing: try a larger --max-delay");
  }
};

}  // namespace

int main(int argc, char** argv) {
  oslab::Lab lab({
      .name = "race",
      .purpose = "lost updates of x = x + 1 and what each fix costs; every interleaving of three statements",
      .claim = "The notes: 'if two threads share and execute the same code, then unprotected use of global,\n"
               "static and heap variables is not thread safe'; and the possible executions of\n"
               "'x = x + 1; y = y + x; z = x + 5y' run by three threads. Here: how many updates are lost,\n"
               "what each way of not losing them costs, and every order the three statements can take.",
      .explain = "x = x + 1 is three machine steps: load x into a register, add 1, store it back. Two threads\n"
                 "that load the same value both store value + 1, and one increment is lost. 'volatile' only\n"
                 "makes each load and store go to memory; it does not make the three steps one. An atomic\n"
                 "fetch_add is one indivisible read-modify-write (lock xadd on x86). A mutex or a spinlock\n"
                 "lets one thread at a time run the three steps: the mutex puts waiters to sleep (a futex),\n"
                 "the spinlock keeps them spinning on the CPU. Thread-local counters share nothing while\n"
                 "counting and are added together once, at the end. The plain counter's loop keeps its load,\n"
                 "add and store apart with an empty asm statement: without it the compiler would fold a\n"
                 "million increments into one addition, and there would be nothing to race.\n\n"
                 "Each variant runs with --workers threads started together, each doing --increments\n"
                 "increments; the lab counts the lost updates (expected - final) and the wall time per\n"
                 "increment, over --iterations runs in rotation. How many updates are lost depends on the\n"
                 "CPUs and on luck: with one CPU a thread must be preempted between its load and its store,\n"
                 "which is rare; with several, the cache line bounces and losses are common.\n\n"
                 "The second part models each of the notes' three statements as its loads (in the order\n"
                 "written) followed by its store, enumerates every interleaving of the three threads (560 of\n"
                 "them: 8! / (2! 3! 3!)), and lists the distinct final values. Then three real threads run\n"
                 "the statements --trials times, released together by a barrier, with random delays before\n"
                 "every load and store (so that more than one order happens), and the lab counts which\n"
                 "outcomes occur. The loads and stores are relaxed atomics: single instructions, as the\n"
                 "model assumes, and no thread loads after its own store, so every execution is one of the\n"
                 "model's interleavings.\n\n"
                 "Questions: why does volatile not help? Why can a spinlock be slower than a mutex when there\n"
                 "are more threads than CPUs? Why is x always x0 + 1 in the second part, whatever the order?\n"
                 "Which outcome needs the most precise timing, and is it rarest in the real runs?",
  });
  const auto& counters = lab.choice_option("--counters", "Counters to race", variant_keys(),
                                           {.full = variant_keys(), .quick = variant_keys()});
  const long& workers = lab.integer_option("-n,--workers",
                                           "Threads that increment (0: one per CPU the run may use, "
                                           "at least 2)",
                                           {.full = 0, .quick = 0}, 0, 256);
  const long& increments = lab.integer_option("--increments", "Increments per thread and run",
                                              {.full = 2'000'000, .quick = 1'000'000}, 1, 1'000'000'000);
  const auto& init = lab.list_option("--init", "Initial x,y,z for the interleavings",
                                     {.full = {0, 0, 0}, .quick = {0, 0, 0}}, -1'000'000, 1'000'000);
  const long& trials = lab.integer_option("--trials", "Real runs of the three statements",
                                          {.full = 20'000, .quick = 2'000}, 1, 10'000'000);
  const double& max_delay_us = lab.number_option("--max-delay", "Longest random delay before each load and store, us",
                                                 {.full = 20, .quick = 20}, 0, 10'000);

  std::optional<Experiment> experiment;
  auto prepare = [&](oslab::Report&) {
    if (init.size() != 3)
      throw oslab::UsageError(fmt::format("--init: needs three values, x,y,z (got {})", init.size()));
    experiment.emplace(Experiment{lab, {}, 2, 0, 0, {}, 0, 0, {}});
    for (const auto& key : counters) experiment->variants.push_back(&variant_of(key));
    experiment->workers =
        workers > 0 ? static_cast<int>(workers) : std::max<int>(2, static_cast<int>(lab.options().cpus.size()));
    experiment->increments = increments;
    experiment->runs = lab.iterations(10, 3);
    experiment->init = {init[0], init[1], init[2]};
    experiment->trials = trials;
    experiment->max_delay_ns = max_delay_us * 1000;
    check_errnum("pthread_spin_init", ::pthread_spin_init(&g_spin, PTHREAD_PROCESS_PRIVATE));
  };
  return lab.run(
      argc, argv,
      [&](oslab::Report& report) {
        report.params["effective_workers"] = experiment->workers;
        experiment->lost_updates(report);
        experiment->lost_table_and_verdicts(report);
        experiment->interleavings(report);
        report.show_results_table = false;
      },
      prepare);
}
