// oslab-c2c: how long a cache line takes to travel from one core to another, for every pair of
// CPUs: the physical floor under every shared-memory transport.
//
// Try:     oslab-c2c                       every pair of the CPUs this process may use
//          oslab-c2c --cpus 0,2,4 --tests two-lines
//          oslab-c2c --max-seconds 5       a large machine: fewer samples per pair
// Expect:  tens of nanoseconds one way between SMT siblings (one core's caches), about 50 to
//          200 ns between cores of one socket, more across sockets. The two ping-pongs need
//          different coherence traffic per hand-off, and which is faster depends on the machine.
//          A pipe round trip between the same two CPUs costs tens to hundreds of times more: the
//          kernel, not the hardware, sets the price of message passing.
// Compare: oslab-ipc (every transport; its busy-polling shared memory next to this figure).

#include <algorithm>
#include <map>
#include <optional>

#include <fmt/format.h>

#include "c2c.hpp"
#include "oslab/error.hpp"
#include "oslab/format.hpp"
#include "oslab/lab.hpp"
#include "oslab/pingpong.hpp"

namespace {

using oslab::ipc::C2cTest;

struct Pair {
  int a, b;
  bool smt;
};

struct Experiment {
  const oslab::Lab& lab;
  std::vector<C2cTest> tests;
  std::vector<Pair> pairs;
  oslab::SamplingPlan plan;

  void choose_pairs() {
    const std::vector<int>& cpus = lab.options().cpus;
    for (size_t i = 0; i < cpus.size(); ++i)
      for (size_t j = i + 1; j < cpus.size(); ++j) {
        const std::vector<int> siblings = oslab::smt_siblings_of(cpus[i]);
        pairs.push_back({cpus[i], cpus[j], std::find(siblings.begin(), siblings.end(), cpus[j]) != siblings.end()});
      }
  }

  nlohmann::json params_of(const Pair& pair) const {
    return {{"cpu_a", pair.a}, {"cpu_b", pair.b}, {"smt_siblings", pair.smt}};
  }

  void measure(oslab::Report& report) {
    for (const Pair& pair : pairs)
      for (C2cTest test : tests)
        report.run_case(fmt::format("{} between CPUs {} and {}", to_string(test), pair.a, pair.b), [&] {
          const oslab::Measurement round_trips = oslab::ipc::measure_c2c(test, pair.a, pair.b, plan);
          std::vector<double> one_way = round_trips.samples_ns;
          for (double& sample : one_way) sample /= 2;
          nlohmann::json params = params_of(pair);
          params["test"] = to_string(test);
          report.add_samples(
              "one-way", params, one_way,
              {.what = fmt::format("{}: round trip / 2 between threads pinned to CPUs {} and {}; a sample is the "
                                   "mean of {} round trips",
                                   test == C2cTest::cas ? "compare-and-swap ping-pong on one cache line"
                                                        : "write line A (release), read line B (acquire)",
                                   pair.a, pair.b, plan.batch),
               .headline = &pair == &pairs.front()},
              round_trips.blocks);
        });
  }

  // A pipe round trip between the first pair, for scale.
  void measure_pipe(oslab::Report& report) {
    const Pair& pair = pairs.front();
    report.run_case("pipe round trip", [&] {
      oslab::PipeExchange pipe;
      oslab::SamplingPlan pipe_plan = plan;
      pipe_plan.batch = 1;
      const oslab::PingPongResult r = oslab::run_ping_pong(
          pipe, {.threads = true, .assignment = {oslab::Placement::two_cpus, {{pair.a}, {pair.b}}, pair.smt}},
          pipe_plan);
      report.add("pipe round trip", params_of(pair), r.round_trips,
                 {.what = fmt::format("a 4-byte write() and read() each way between threads on CPUs {} and {}: one "
                                      "round trip",
                                      pair.a, pair.b)});
    });
  }

  void tables(oslab::Report& report) const {
    oslab::Table table{
        "One-way time of a cache line between two CPUs (round trip / 2; min, median, p99 of batch means)",
        {"CPU a", "CPU b", "SMT siblings"},
        {},
        "A sample is the mean of a batch of round trips, halved. cas: the line goes to the other core "
        "and back. two-lines: each hand-off invalidates the reader's copy of one line, and the reader "
        "fetches it again.",
        3};
    for (C2cTest test : tests)
      for (const char* stat : {"min", "p50", "p99"})
        table.header.push_back(fmt::format("{} {}", to_string(test), stat));
    for (const Pair& pair : pairs) {
      std::vector<std::string> row{std::to_string(pair.a), std::to_string(pair.b), pair.smt ? "yes" : "no"};
      for (C2cTest test : tests) {
        nlohmann::json params = params_of(pair);
        params["test"] = to_string(test);
        const oslab::Result* r = report.find("one-way", params);
        for (auto value : {&oslab::Summary::min, &oslab::Summary::p50, &oslab::Summary::p99})
          row.push_back(r ? oslab::format_duration(r->summary.*value) : "-");
      }
      table.rows.push_back(row);
    }
    report.table(table);
    if (pairs.size() < 3) return;
    // A matrix of medians for a larger machine (the last test).
    const std::vector<int>& cpus = lab.options().cpus;
    oslab::Table matrix{
        fmt::format("Median one-way time, {} (row CPU to column CPU)", to_string(tests.back())), {"CPU"}, {}, "", 1};
    for (int cpu : cpus) matrix.header.push_back(std::to_string(cpu));
    for (int row_cpu : cpus) {
      std::vector<std::string> row{std::to_string(row_cpu)};
      for (int column_cpu : cpus) {
        const int a = std::min(row_cpu, column_cpu), b = std::max(row_cpu, column_cpu);
        const oslab::Result* r =
            a == b ? nullptr : report.find("one-way", {{"cpu_a", a}, {"cpu_b", b}, {"test", to_string(tests.back())}});
        row.push_back(r ? oslab::format_duration(r->summary.p50) : "-");
      }
      matrix.rows.push_back(row);
    }
    report.table(matrix);
  }

  void verdicts(oslab::Report& report) const {
    const Pair& pair = pairs.front();
    const std::string claim =
        "moving a cache line between two cores costs at least 10x less than a pipe round trip between them: the "
        "kernel, not the hardware, sets the price of message passing";
    const C2cTest test = tests.back();
    nlohmann::json params = params_of(pair);
    params["test"] = to_string(test);
    const oslab::Result* line = report.find("one-way", params);
    const oslab::Result* pipe = report.find("pipe round trip");
    if (line == nullptr || pipe == nullptr) {
      report.skip(claim, "needs both the cache-line and the pipe measurement");
      return;
    }
    // A round trip of the line is two one-way times.
    oslab::Summary line_round_trip = line->summary;
    for (double* value : {&line_round_trip.p50, &line_round_trip.p50_ci_low, &line_round_trip.p50_ci_high}) *value *= 2;
    const oslab::Estimate factor = oslab::ratio_of(pipe->summary, line_round_trip);
    report.verdict("pipe-far-above-cache-line", claim, factor, oslab::Compare::above, 10.0,
                   fmt::format("CPUs {} and {}: pipe round trip {} vs {} round trip {} (2 x {} one way): {:.0f}x",
                               pair.a, pair.b, oslab::format_duration(pipe->summary.p50), to_string(test),
                               oslab::format_duration(line_round_trip.p50), oslab::format_duration(line->summary.p50),
                               factor.value));
  }
};

std::vector<std::string> test_names() {
  return {"cas", "two-lines"};
}

}  // namespace

int main(int argc, char** argv) {
  oslab::Lab lab({
      .name = "c2c",
      .purpose = "core-to-core latency of a cache line for every pair of CPUs: the floor of shared-memory IPC",
      .claim = "The notes: IPC through shared memory 'may be comparable to inter-thread communication':\n"
               "no system call, just reads and writes. What it cannot beat is the hardware: a line\n"
               "written on one core must travel to the other core's cache before it can be read there.",
      .explain = "Two threads, pinned to two CPUs, pass a cache line back and forth, spinning (no system\n"
                 "call, no sleep). 'cas': both compare-and-swap one line (side 0 turns an even value odd,\n"
                 "side 1 odd to even): each round trip moves the line twice. 'two-lines': side 0 writes\n"
                 "line A with release order and spins reading line B with acquire order; side 1 does the\n"
                 "reverse: a write seen by a read, the least any shared-memory ring can do per message.\n"
                 "Lines sit 128 bytes apart (adjacent-line prefetchers pair 64-byte lines).\n\n"
                 "A sample is the mean of 1000 round trips (one round trip is too short to time alone),\n"
                 "halved: the one-way time. The table gives min, median and p99 of those batch means per\n"
                 "pair; SMT siblings (two hardware threads of one core) are marked: they share the core's\n"
                 "caches and are much faster. Every pair of the allowed CPUs (--cpus) is measured; on a\n"
                 "large machine --max-seconds bounds the run by taking fewer samples per pair. A pipe round\n"
                 "trip between the first pair is measured too, for scale.\n\n"
                 "On a virtual machine two vCPUs may share a core or sit on different sockets, and may move.\n\n"
                 "Questions: which ping-pong needs more coherence messages per hand-off? Why must a lock\n"
                 "hand-off between cores cost at least this much? How many line transfers does a message\n"
                 "through a shared-memory ring need (data, index, flag)?",
  });
  const auto& tests = lab.choice_option("--tests", "Which ping-pongs to run", test_names(),
                                        {.full = test_names(), .quick = test_names()});
  const double& max_seconds = lab.number_option("--max-seconds", "Time for all pairs together, at most (seconds)",
                                                {.full = 20, .quick = 2}, 0.1, 3600);
  lab.sampling({.samples = {.full = 200, .quick = 30}, .budget_s = {.full = 0.3, .quick = 0.05}, .warmup = 3});

  std::optional<Experiment> experiment;
  auto prepare = [&](oslab::Report&) {
    if (lab.options().cpus.size() < 2)
      throw oslab::SkipError("needs two CPUs: this process may run on " + std::to_string(lab.options().cpus.size()) +
                             " (see --cpus)");
    experiment.emplace(Experiment{lab, {}, {}, lab.plan()});
    for (const auto& name : tests) experiment->tests.push_back(name == "cas" ? C2cTest::cas : C2cTest::two_lines);
    experiment->choose_pairs();
    experiment->plan.batch = oslab::ipc::kC2cBatch;
    // Every pair and test shares --max-seconds (and gets at least the minimum of samples).
    const double cells = static_cast<double>(experiment->pairs.size() * experiment->tests.size());
    const auto share = std::chrono::milliseconds(static_cast<long>(1000 * max_seconds / cells));
    experiment->plan.budget = std::min(experiment->plan.budget, share);
  };
  return lab.run(
      argc, argv,
      [&](oslab::Report& report) {
        report.params["pairs"] = experiment->pairs.size();
        report.params["round_trips_per_sample"] = experiment->plan.batch;
        experiment->measure(report);
        experiment->measure_pipe(report);
        experiment->tables(report);
        experiment->verdicts(report);
        report.show_results_table = false;
      },
      prepare);
}
