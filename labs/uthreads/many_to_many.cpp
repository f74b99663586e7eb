// oslab-many-to-many: the same CPU-bound work done by green threads on one kernel thread
// (M:1), by the same green threads on N kernel threads (M:N), and by one kernel thread per
// task (1:1).
//
// Try:     oslab-many-to-many                   64 tasks, on every CPU this run may use
//          oslab-many-to-many --tasks 1000 --workers 4 --iterations 5
// Expect:  M:1 uses one core, whatever the number of green threads: its CPU time equals its
//          wall time. M:N uses every core and finishes about N times sooner, as fast as kernel
//          threads. Every task's result is checked: nothing lost, nothing done twice.
// Compare: oslab-uthreads (switch costs), oslab-blocking (the other weakness of M:1).

#include <sys/resource.h>

#include <map>
#include <optional>
#include <thread>

#include <fmt/format.h>

#include "oslab/clock.hpp"
#include "oslab/cpu.hpp"
#include "oslab/error.hpp"
#include "oslab/lab.hpp"
#include "uthread.hpp"

namespace {

namespace ut = oslab::uthread;

// One chunk of CPU-bound work: a few thousand rounds of a 64-bit mixing function.
uint64_t chunk(uint64_t state, long rounds) {
  for (long i = 0; i < rounds; ++i) {
    state ^= state >> 33;
    state *= 0xff51afd7ed558ccdull;
    state ^= state >> 29;
  }
  return state;
}

double cpu_seconds() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

enum class Model { many_to_one, many_to_many, one_to_one };
const char* name_of(Model model) {
  return model == Model::many_to_one ? "M:1" : model == Model::many_to_many ? "M:N" : "1:1";
}

struct Run {
  double wall_s = 0;
  double cpu_s = 0;
  size_t wrong = 0;  // tasks whose result or chunk count was not what one thread computes
};

struct Experiment {
  long tasks, chunks, rounds, workers;
  int repetitions;
  std::vector<uint64_t> expected;  // each task's result, computed once on one thread
  std::map<Model, std::vector<Run>> runs;

  void compute_expected() {
    expected.resize(static_cast<size_t>(tasks));
    for (long task = 0; task < tasks; ++task) {
      uint64_t state = static_cast<uint64_t>(task) + 1;
      for (long c = 0; c < chunks; ++c) state = chunk(state, rounds);
      expected[static_cast<size_t>(task)] = state;
    }
  }

  Run run_once(Model model) const {
    std::vector<uint64_t> results(static_cast<size_t>(tasks), 0);
    std::vector<std::atomic<long>> chunks_done(static_cast<size_t>(tasks));
    auto task_body = [&](long task, bool green) {
      uint64_t state = static_cast<uint64_t>(task) + 1;
      for (long c = 0; c < chunks; ++c) {
        state = chunk(state, rounds);
        chunks_done[static_cast<size_t>(task)].fetch_add(1, std::memory_order_relaxed);
        if (green) ut::yield();  // cooperative: let the other green threads of this worker run
      }
      results[static_cast<size_t>(task)] = state;
    };
    const double cpu_before = cpu_seconds();
    const int64_t start = oslab::now_ns();
    if (model == Model::one_to_one) {
      std::vector<std::jthread> threads;
      threads.reserve(static_cast<size_t>(tasks));
      for (long task = 0; task < tasks; ++task) threads.emplace_back(task_body, task, false);
    } else {
      ut::Options options;
      options.workers = model == Model::many_to_many ? static_cast<int>(workers) : 1;
      ut::Scheduler scheduler(options);
      for (long task = 0; task < tasks; ++task) scheduler.spawn([&task_body, task] { task_body(task, true); });
      scheduler.run();
    }
    Run run;
    run.wall_s = static_cast<double>(oslab::now_ns() - start) / 1e9;
    run.cpu_s = cpu_seconds() - cpu_before;
    for (size_t task = 0; task < results.size(); ++task)
      run.wrong += results[task] != expected[task] || chunks_done[task].load() != chunks;
    return run;
  }

  void measure(oslab::Report& report) {
    compute_expected();
    const std::vector<Model> models = {Model::many_to_one, Model::many_to_many, Model::one_to_one};
    // In rotation, so that a busy spell of the machine falls on every model.
    for (int repetition = 0; repetition < repetitions; ++repetition)
      for (Model model : models) runs[model].push_back(run_once(model));
    for (Model model : models) {
      std::vector<double> wall_ns;
      double cpu = 0, wall = 0;
      size_t wrong = 0;
      for (const Run& run : runs[model]) {
        wall_ns.push_back(run.wall_s * 1e9);
        cpu += run.cpu_s;
        wall += run.wall_s;
        wrong += run.wrong;
      }
      report.add_samples(name_of(model), {{"tasks", tasks}, {"kernel_threads", kernel_threads(model)}}, wall_ns,
                         {.what = fmt::format("the wall time of {} tasks of {} chunks each ({} kernel threads)", tasks,
                                              chunks, kernel_threads(model)),
                          .counters = {{"cores_used", cpu / wall}, {"wrong_tasks", static_cast<double>(wrong)}},
                          .headline = model == Model::many_to_many});
    }
  }

  long kernel_threads(Model model) const {
    return model == Model::many_to_one ? 1 : model == Model::many_to_many ? workers : tasks;
  }

  void tables(oslab::Report& report) const {
    oslab::Table table{
        fmt::format("{} CPU-bound tasks ({} chunks each, a yield between chunks for green threads)", tasks, chunks),
        {"model", "kernel threads", "wall time (median)", "cores used", "vs M:1", "wrong tasks"},
        {},
        "cores used = the process's CPU time (getrusage) / wall time, over every repetition.",
        1};
    const oslab::Result* one = report.find("M:1");
    for (Model model : {Model::many_to_one, Model::many_to_many, Model::one_to_one}) {
      const oslab::Result* r = report.find(name_of(model));
      if (r == nullptr) continue;
      table.rows.push_back({name_of(model), fmt::format("{}", kernel_threads(model)),
                            oslab::format_duration(r->summary.p50), oslab::format_number(r->counters.at("cores_used")),
                            one ? fmt::format("{:.2f}x", oslab::ratio(one->summary.p50, r->summary.p50)) : "",
                            oslab::format_number(r->counters.at("wrong_tasks"))});
    }
    report.table(table);
  }

  void verdicts(oslab::Report& report) const {
    const oslab::Result& one = report.get("M:1");
    const oslab::Result& many = report.get("M:N");
    const oslab::Result& kernel = report.get("1:1");
    const double wrong =
        one.counters.at("wrong_tasks") + many.counters.at("wrong_tasks") + kernel.counters.at("wrong_tasks");
    report.fact("no-work-lost-or-repeated", "every task ran to its end exactly once, in every model", wrong == 0,
                fmt::format("{} tasks x {} repetitions per model; results compared with one thread's, chunks counted; "
                            "{} wrong",
                            tasks, repetitions, wrong));
    report.fact("many-to-one-uses-one-core", "green threads on one kernel thread use one core at most",
                one.counters.at("cores_used") <= 1.05,
                fmt::format("M:1 used {} cores ({} green threads, CPU time / wall time)",
                            oslab::format_number(one.counters.at("cores_used")), tasks));
    if (workers < 2) {
      report.skip("M:N is faster than M:1 on CPU-bound work", "this run may use one CPU only (--workers 1)");
      return;
    }
    report.verdict(
        "many-to-many-uses-the-cores", "M:N finishes CPU-bound work sooner than M:1, by using several cores",
        oslab::ratio_of(one.summary, many.summary), oslab::Compare::above, 1.3,
        fmt::format("M:1 {}, M:N on {} kernel threads {} ({} cores used)", oslab::format_duration(one.summary.p50),
                    workers, oslab::format_duration(many.summary.p50),
                    oslab::format_number(many.counters.at("cores_used"))));
    report.verdict("many-to-many-like-kernel-threads", "M:N does CPU-bound work about as fast as kernel threads",
                   oslab::ratio_of(many.summary, kernel.summary), oslab::Compare::below, 1.25,
                   fmt::format("M:N {}, 1:1 ({} kernel threads) {}", oslab::format_duration(many.summary.p50), tasks,
                               oslab::format_duration(kernel.summary.p50)));
  }
};

}  // namespace

int main(int argc, char** argv) {
  oslab::Lab lab({
      .name = "many-to-many",
      .purpose = "green threads on one kernel thread (M:1) vs on N (M:N) vs kernel threads (1:1), CPU-bound",
      .claim = "The notes: many-to-one user threads cannot run in parallel on a multiprocessor; one-to-one\n"
               "and many-to-many can. Here the same CPU-bound tasks run in all three models.",
      .explain = "The kernel schedules kernel threads onto cores; a green thread runs only when a kernel\n"
                 "thread runs it. With M green threads on one kernel thread (M:1), the process uses one\n"
                 "core however many green threads it has. With the same green threads run by N kernel\n"
                 "threads (M:N, what Go and Erlang do), N cores work at once.\n\n"
                 "This library's M:N uses one shared run queue under a mutex: a worker kernel thread takes\n"
                 "the next green thread, runs it until it yields, and the thread that runs next puts the\n"
                 "previous one back (after its registers are saved, or another worker could resume it\n"
                 "half-saved). Per-worker queues with work stealing scale better when switches are very\n"
                 "frequent; one queue is simpler to read and is enough when each green thread runs for\n"
                 "microseconds between yields, as here. A green thread may resume on another kernel thread\n"
                 "after any yield: its thread_local variables and errno change under it (the library reads\n"
                 "its own per-worker state through a function the compiler cannot cache).\n\n"
                 "The lab runs --tasks tasks of --chunks chunks each. Green threads yield between chunks.\n"
                 "Every task's result is compared with what one thread computes, and every chunk is\n"
                 "counted, so a lost or repeated task fails the run. Cores used = CPU time / wall time.\n\n"
                 "Questions: why can a green thread not keep a pointer to a thread_local across a yield\n"
                 "under M:N? What does a blocking system call do to one worker of an M:N scheduler, and\n"
                 "how does Go's runtime hand that worker's other green threads to a new kernel thread?",
  });
  const long& tasks = lab.integer_option("--tasks", "Tasks (green threads, or kernel threads for 1:1)",
                                         {.full = 64, .quick = 16}, 1, 100'000);
  const long& chunks =
      lab.integer_option("--chunks", "Chunks of work per task", {.full = 200, .quick = 40}, 1, 1'000'000);
  const long& rounds = lab.integer_option("--rounds", "Rounds of the mixing function per chunk",
                                          {.full = 20'000, .quick = 10'000}, 1, 100'000'000);
  const long& workers_option = lab.integer_option(
      "--workers", "Kernel threads for M:N (0: one per CPU this run may use)", {.full = 0, .quick = 0}, 0, 1024);
  std::optional<Experiment> experiment;
  auto prepare = [&](oslab::Report& report) {
    experiment.emplace();
    experiment->tasks = tasks;
    experiment->chunks = chunks;
    experiment->rounds = rounds;
    experiment->workers = workers_option > 0 ? workers_option : static_cast<long>(lab.options().cpus.size());
    experiment->repetitions = lab.iterations(5, 3);
    report.params["workers"] = experiment->workers;
    report.params["repetitions"] = experiment->repetitions;
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
