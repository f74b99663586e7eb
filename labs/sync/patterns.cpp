// oslab-patterns: the notes' three ways to use threads, as small real programs with their
// effect measured: producer/consumer (a pool of workers fed through a queue), a pipeline
// (stages connected by queues), and a background worker that takes non-critical work off the
// critical path.
//
// Try:     oslab-patterns
//          oslab-patterns --blocks 4000 --block-kib 128
//          oslab-patterns --cpus 0                  one CPU: the threads take turns, nothing overlaps
// Expect:  with N CPUs, N workers process a bag of tasks up to N times faster; a pipeline is as
//          fast as its slowest stage and no faster than its stage count allows; a background
//          worker shortens the critical path by the work it takes away, as long as it keeps up
//          and has a CPU of its own. Every block and every log record is checked.
// Compare: oslab-prodcons (the bounded buffer itself, right and wrong), oslab-locks.

#include <pthread.h>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include <fmt/format.h>

#include "oslab/clock.hpp"
#include "oslab/cpu.hpp"
#include "oslab/error.hpp"
#include "oslab/lab.hpp"
#include "oslab/stats.hpp"

namespace {

// ---- The one tool every pattern needs: a bounded blocking queue ----------------------------

// A mutex, two condition variables, each wait in a while loop (oslab-prodcons shows why);
// close() ends the stream: pop() then returns nothing once the queue is empty.
template <typename T>
class BoundedQueue {
 public:
  explicit BoundedQueue(size_t capacity) : capacity_(capacity) {}
  void push(T item) {
    std::unique_lock lock(mutex_);
    not_full_.wait(lock, [&] { return items_.size() < capacity_; });
    items_.push_back(std::move(item));
    not_empty_.notify_one();
  }
  std::optional<T> pop() {
    std::unique_lock lock(mutex_);
    not_empty_.wait(lock, [&] { return !items_.empty() || closed_; });
    if (items_.empty()) return std::nullopt;
    T item = std::move(items_.front());
    items_.pop_front();
    not_full_.notify_one();
    return item;
  }
  void close() {
    std::lock_guard lock(mutex_);
    closed_ = true;
    not_empty_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable not_full_, not_empty_;
  std::deque<T> items_;
  size_t capacity_;
  bool closed_ = false;
};

// ---- The work: generate ("read") a block, transform it, checksum it -------------------------

using Block = std::vector<uint8_t>;

struct Item {
  uint64_t index;
  Block data;
};

// The three stages work a 64-bit word at a time, each with a chain of dependent multiplies of
// about the same length, so that they cost about the same and a pipeline can overlap them.

// "read": the block a file would have given us, generated from its index (xorshift64*).
Block read_block(uint64_t index, size_t bytes) {
  Block block(bytes);
  uint64_t state = index * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i + 8 <= bytes; i += 8) {
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    const uint64_t word = state * 0x2545F4914F6CDD1Dull;
    std::memcpy(block.data() + i, &word, 8);
  }
  return block;
}

// "transform": each word mixed with the previous result (a rotate, a multiply, an add).
void transform_block(Block& block) {
  uint64_t carry = 0x5A5A5A5A5A5A5A5Aull;
  for (size_t i = 0; i + 8 <= block.size(); i += 8) {
    uint64_t word;
    std::memcpy(&word, block.data() + i, 8);
    word = ((word ^ carry) << 17 | (word ^ carry) >> 47) * 0xFF51AFD7ED558CCDull + 0x9E37u;
    carry = word;
    std::memcpy(block.data() + i, &word, 8);
  }
}

// "checksum": FNV-1a over 64-bit words; the dependency from word to word keeps it honest.
uint64_t checksum_block(const Block& block) {
  uint64_t hash = 0xCBF29CE484222325ull;
  for (size_t i = 0; i + 8 <= block.size(); i += 8) {
    uint64_t word;
    std::memcpy(&word, block.data() + i, 8);
    hash = (hash ^ word) * 0x100000001B3ull;
    hash ^= hash >> 29;
  }
  return hash;
}

// The result of a stream: the checksums of all blocks combined so that order does not matter.
uint64_t combine(uint64_t total, uint64_t index, uint64_t checksum) {
  return total + (checksum ^ (index * 0xD6E8FEB86659FD93ull));
}

double seconds_since(int64_t start) {
  return static_cast<double>(oslab::now_ns() - start) / 1e9;
}

// ---- Pattern 1: producer/consumer, a bag of tasks ---------------------------------------------

// One producer hands out block numbers; `workers` consumers each read, transform and checksum
// the blocks they get. Returns seconds; `result` the combined checksum.
double bag_of_tasks(int workers, uint64_t blocks, size_t bytes, size_t queue, uint64_t& result) {
  BoundedQueue<uint64_t> tasks(queue);
  std::mutex result_mutex;
  uint64_t total = 0;
  const int64_t start = oslab::now_ns();
  std::vector<std::jthread> consumers;
  for (int w = 0; w < workers; ++w)
    consumers.emplace_back([&] {
      uint64_t mine = 0;
      while (std::optional<uint64_t> index = tasks.pop()) {
        Block block = read_block(*index, bytes);
        transform_block(block);
        mine = combine(mine, *index, checksum_block(block));
      }
      std::lock_guard lock(result_mutex);
      total += mine;
    });
  for (uint64_t i = 0; i < blocks; ++i) tasks.push(i);
  tasks.close();
  consumers.clear();  // joins
  result = total;
  return seconds_since(start);
}

// ---- Pattern 2: a pipeline ------------------------------------------------------------------

// 1 stage: one thread does read, transform, checksum per block. 2 stages: read | transform +
// checksum. 3 stages: read | transform | checksum. Stages pass blocks through bounded queues.
double pipeline(int stages, uint64_t blocks, size_t bytes, size_t queue, uint64_t& result) {
  const int64_t start = oslab::now_ns();
  uint64_t total = 0;
  if (stages == 1) {
    for (uint64_t i = 0; i < blocks; ++i) {
      Block block = read_block(i, bytes);
      transform_block(block);
      total = combine(total, i, checksum_block(block));
    }
  } else {
    BoundedQueue<Item> read_to_transform(queue), transform_to_checksum(queue);
    std::jthread reader([&] {
      for (uint64_t i = 0; i < blocks; ++i) read_to_transform.push({i, read_block(i, bytes)});
      read_to_transform.close();
    });
    std::optional<std::jthread> transformer;
    if (stages == 3)
      transformer.emplace([&] {
        while (std::optional<Item> item = read_to_transform.pop()) {
          transform_block(item->data);
          transform_to_checksum.push(std::move(*item));
        }
        transform_to_checksum.close();
      });
    // The last stage runs in this thread.
    BoundedQueue<Item>& last = stages == 3 ? transform_to_checksum : read_to_transform;
    while (std::optional<Item> item = last.pop()) {
      if (stages == 2) transform_block(item->data);
      total = combine(total, item->index, checksum_block(item->data));
    }
  }
  result = total;
  return seconds_since(start);
}

// ---- Pattern 3: a background worker -----------------------------------------------------------

// The critical path handles a request (work of `handle_units`) and must also log it (work of
// `log_units`, not needed for the answer). Inline, the request waits for its log; with a
// background worker, it hands the record to a queue and answers at once. Requests arrive every
// `gap_us` microseconds. Returns each request's critical-path time (ns).
struct Background {
  std::vector<double> critical_ns;
  uint64_t logged = 0, log_checksum = 0, expected_checksum = 0;
};

uint64_t spin_work(uint64_t seed, int units) {
  for (int i = 0; i < units; ++i) seed = seed * 6364136223846793005ull + 1442695040888963407ull;
  return seed;
}

Background background_worker(bool offload, int requests, int handle_units, int log_units, int gap_us) {
  Background out;
  BoundedQueue<uint64_t> records(static_cast<size_t>(requests) + 1);
  std::optional<std::jthread> worker;
  std::atomic<uint64_t> logged{0}, log_checksum{0};
  auto write_log = [&](uint64_t record) {
    log_checksum.fetch_add(spin_work(record, log_units), std::memory_order_relaxed);
    logged.fetch_add(1, std::memory_order_relaxed);
  };
  if (offload)
    worker.emplace([&] {
      while (std::optional<uint64_t> record = records.pop()) write_log(*record);
    });
  int64_t next = oslab::now_ns();
  for (int r = 0; r < requests; ++r) {
    next += int64_t{gap_us} * 1000;
    while (oslab::now_ns() < next) std::this_thread::yield();  // the next request has not come yet
    const int64_t start = oslab::now_ns();
    const uint64_t answer = spin_work(static_cast<uint64_t>(r) + 1, handle_units);  // the request itself
    if (offload)
      records.push(answer);
    else
      write_log(answer);
    out.critical_ns.push_back(static_cast<double>(oslab::now_ns() - start));
    out.expected_checksum += spin_work(answer, log_units);
  }
  records.close();
  worker.reset();  // joins: every record written before we count them
  out.logged = logged.load();
  out.log_checksum = log_checksum.load();
  return out;
}

// ---- The experiment ---------------------------------------------------------------------------

struct Experiment {
  const oslab::Lab& lab;
  uint64_t blocks;
  size_t bytes, queue;
  int rounds, requests, handle_units, log_units, gap_us;
  int cpus;
  std::vector<int> worker_counts, stage_counts;
  std::map<int, std::vector<double>> bag_s, pipeline_s;
  std::vector<double> stage_ns[3];  // read, transform, checksum per block, measured alone
  uint64_t reference = 0, stage_sink = 0;
  std::vector<std::string> wrong;
  Background inline_log, offloaded;

  void measure_stages() {
    uint64_t sink = 0;
    for (uint64_t i = 0; i < std::min<uint64_t>(blocks, 50); ++i) {
      int64_t t0 = oslab::now_ns();
      Block block = read_block(i, bytes);
      int64_t t1 = oslab::now_ns();
      transform_block(block);
      int64_t t2 = oslab::now_ns();
      sink += checksum_block(block);  // used: the compiler must compute it
      int64_t t3 = oslab::now_ns();
      stage_ns[0].push_back(static_cast<double>(t1 - t0));
      stage_ns[1].push_back(static_cast<double>(t2 - t1));
      stage_ns[2].push_back(static_cast<double>(t3 - t2));
    }
    stage_sink = sink;
    pipeline(1, blocks, bytes, queue, reference);  // the right answer, from one thread
  }

  void measure(oslab::Report& report) {
    measure_stages();
    for (int r = 0; r < rounds; ++r) {
      for (int workers : worker_counts)
        report.run_case(fmt::format("producer/consumer with {} workers", workers), [&] {
          uint64_t result = 0;
          bag_s[workers].push_back(bag_of_tasks(workers, blocks, bytes, queue, result));
          if (result != reference) wrong.push_back(fmt::format("producer/consumer with {} workers", workers));
        });
      for (int stages : stage_counts)
        report.run_case(fmt::format("pipeline of {} stages", stages), [&] {
          uint64_t result = 0;
          pipeline_s[stages].push_back(pipeline(stages, blocks, bytes, queue, result));
          if (result != reference) wrong.push_back(fmt::format("pipeline of {} stages", stages));
        });
    }
    report.run_case("background worker", [&] {
      inline_log = background_worker(false, requests, handle_units, log_units, gap_us);
      offloaded = background_worker(true, requests, handle_units, log_units, gap_us);
    });
    const std::string work = fmt::format("{} blocks of {} KiB, queues of {}", blocks, bytes / 1024, queue);
    for (const auto& [workers, seconds] : bag_s)
      report.add_samples("producer/consumer", {{"workers", workers}}, ns_of(seconds),
                         {.what = fmt::format("one producer hands out block numbers, {} consumer thread(s) read, "
                                              "transform and checksum them; {}; a sample is one whole run",
                                              workers, work),
                          .headline = workers == worker_counts.back()});
    for (const auto& [stages, seconds] : pipeline_s)
      report.add_samples("pipeline", {{"stages", stages}}, ns_of(seconds),
                         {.what = fmt::format("{}; {}; a sample is one whole run", describe_stages(stages), work),
                          .headline = stages == stage_counts.back()});
    const char* names[3] = {"read", "transform", "checksum"};
    for (int s = 0; s < 3; ++s)
      report.add_samples("stage", {{"stage", names[s]}}, stage_ns[s],
                         {.what = fmt::format("one block through the {} stage alone, one thread", names[s])});
    for (const auto& [name, run] : {std::pair{"inline", &inline_log}, std::pair{"background", &offloaded}})
      report.add_samples(
          "critical path", {{"logging", name}}, run->critical_ns,
          {.what = fmt::format(
               "one request: {} work units to answer it, then its log record ({} "
               "units) {}; a request every {} us",
               handle_units, log_units,
               std::string(name) == "inline" ? "written before answering" : "handed to a background thread", gap_us),
           .headline = true});
  }

  static std::vector<double> ns_of(const std::vector<double>& seconds) {
    std::vector<double> ns;
    for (double s : seconds) ns.push_back(s * 1e9);
    return ns;
  }
  static std::string describe_stages(int stages) {
    switch (stages) {
      case 1: return "one thread: read, transform, checksum each block";
      case 2: return "two threads: read | transform + checksum";
      default: return "three threads: read | transform | checksum";
    }
  }

  void tables(oslab::Report& report) const {
    oslab::Table t{"Producer/consumer and pipeline: one run's time, and the speedup over one thread",
                   {"pattern", "threads", "median", "speedup", "bound"},
                   {},
                   fmt::format("median of {} run(s); speedup: one thread's time / this time. bound: for workers, "
                               "min(workers, CPUs); for a pipeline, (sum of the stages' times) / (its slowest "
                               "stage's), and no more than the CPUs ({} here)",
                               rounds, cpus),
                   2};
    const double single = oslab::summarize(pipeline_s.count(1) ? pipeline_s.at(1) : bag_s.begin()->second).p50;
    for (const auto& [workers, seconds] : bag_s) {
      const double m = oslab::summarize(seconds).p50;
      t.rows.push_back({"producer/consumer", fmt::format("1 + {}", workers), oslab::format_duration(m * 1e9),
                        fmt::format("{:.2f}x", single / m), fmt::format("{}x", std::min(workers, cpus))});
    }
    const double read = oslab::summarize(stage_ns[0]).p50, transform = oslab::summarize(stage_ns[1]).p50,
                 check = oslab::summarize(stage_ns[2]).p50;
    for (const auto& [stages, seconds] : pipeline_s) {
      const double m = oslab::summarize(seconds).p50;
      double slowest = read + transform + check;
      if (stages == 2) slowest = std::max(read, transform + check);
      if (stages == 3) slowest = std::max({read, transform, check});
      t.rows.push_back({"pipeline", std::to_string(stages), oslab::format_duration(m * 1e9),
                        fmt::format("{:.2f}x", single / m),
                        fmt::format("{:.2f}x", std::min<double>((read + transform + check) / slowest, cpus))});
    }
    report.table(t);
    oslab::Table stages_table{
        "One block, stage by stage (one thread)",
        {"read", "transform", "checksum"},
        {{oslab::format_duration(read), oslab::format_duration(transform), oslab::format_duration(check)}},
        "",
        0};
    report.table(stages_table);
    oslab::Table bg{fmt::format("Background worker: {} requests, one every {} us", requests, gap_us),
                    {"logging", "critical path p50", "p99", "max", "records written"},
                    {},
                    "critical path: from starting a request to having its answer (its log record written, or handed "
                    "over)."};
    for (const auto& [name, run] : {std::pair{"inline", &inline_log}, std::pair{"background", &offloaded}}) {
      const oslab::Summary s = oslab::summarize(run->critical_ns);
      bg.rows.push_back({name, oslab::format_duration(s.p50), oslab::format_duration(s.p99),
                         oslab::format_duration(s.max), fmt::format("{} of {}", run->logged, requests)});
    }
    report.table(bg);
  }

  void verdicts(oslab::Report& report) const {
    const bool logs_ok = inline_log.logged == static_cast<uint64_t>(requests) &&
                         offloaded.logged == static_cast<uint64_t>(requests) &&
                         inline_log.log_checksum == inline_log.expected_checksum &&
                         offloaded.log_checksum == offloaded.expected_checksum;
    std::string wrong_list;
    for (const std::string& w : wrong) wrong_list += (wrong_list.empty() ? "" : ", ") + w;
    report.fact("patterns-lose-nothing",
                "every pattern computed the same result as one thread: every block checksummed once, every log "
                "record written once",
                wrong.empty() && logs_ok,
                fmt::format("{} runs of producer/consumer and pipeline{}; log records: {} inline and {} in the "
                            "background of {}, checksums {}",
                            rounds * (worker_counts.size() + stage_counts.size()),
                            wrong.empty() ? " all matched" : ", wrong: " + wrong_list, inline_log.logged,
                            offloaded.logged, requests, logs_ok ? "match" : "DO NOT MATCH"));
    if (cpus >= 2 && bag_s.count(1) && bag_s.count(std::min(cpus, worker_counts.back()))) {
      const int n = std::min(cpus, worker_counts.back());
      if (n >= 2)
        report.verdict("workers-speed-up",
                       "with N CPUs, N consumer threads get through a bag of tasks faster than one (here: more than "
                       "1.3x)",
                       oslab::ratio_of(oslab::summarize(bag_s.at(1)), oslab::summarize(bag_s.at(n))),
                       oslab::Compare::above, 1.3, fmt::format("1 worker vs {} workers on {} CPUs", n, cpus));
    }
    if (cpus >= 2 && pipeline_s.count(1) && pipeline_s.count(stage_counts.back()) && stage_counts.back() > 1)
      report.verdict(
          "pipeline-speeds-up",
          "a pipeline of stages on their own threads beats one thread doing every stage in turn (here: "
          "more than 1.3x)",
          oslab::ratio_of(oslab::summarize(pipeline_s.at(1)), oslab::summarize(pipeline_s.at(stage_counts.back()))),
          oslab::Compare::above, 1.3, fmt::format("1 thread vs {} stages on {} CPUs", stage_counts.back(), cpus));
    if (cpus >= 2)
      report.verdict("background-shortens-critical-path",
                     "handing non-critical work to a background thread shortens the critical path (here: to less "
                     "than half)",
                     oslab::ratio_of(oslab::summarize(offloaded.critical_ns), oslab::summarize(inline_log.critical_ns)),
                     oslab::Compare::below, 0.5,
                     fmt::format("critical path median {} with a background worker, {} inline",
                                 oslab::format_duration(oslab::summarize(offloaded.critical_ns).p50),
                                 oslab::format_duration(oslab::summarize(inline_log.critical_ns).p50)));
    else
      report.skip("the speedups", "this run may use one CPU only: the threads take turns and nothing overlaps");
  }
};

}  // namespace

int main(int argc, char** argv) {
  oslab::Lab lab({
      .name = "patterns",
      .purpose = "producer/consumer, pipeline and background worker as small real programs, with their speedup",
      .claim = "The notes name three ways to program with threads: producer/consumer (some threads produce, some\n"
               "consume), a pipeline (the task is a series of subtasks, each handled by its own thread), and\n"
               "deferring non-critical work to a background thread while the CPU is otherwise idle.",
      .explain =
          "The work is a stream of blocks: 'read' (generated from the block's number, as a file would give it),\n"
          "'transform' (a byte substitution), 'checksum' (FNV-1a). One thread doing all three for every block is\n"
          "the reference: its combined checksum is the answer every pattern must reproduce.\n\n"
          "Producer/consumer: one producer puts block numbers into a bounded queue (a mutex and two condition\n"
          "variables); N consumer threads take them and do all the work of a block. With N CPUs and independent\n"
          "tasks the speedup approaches N; the queue hand-offs cost a little per task.\n\n"
          "Pipeline: one thread per stage, blocks passed along through bounded queues. Every stage works on a\n"
          "different block at the same time, so the stream goes as fast as its slowest stage: the bound is\n"
          "(sum of stage times) / (slowest stage time), and never more than the CPUs. The stage times are\n"
          "measured alone and printed so that the bound can be checked.\n\n"
          "Background worker: each request needs a little work for its answer and more work for its log\n"
          "record, which nobody waits for. Inline, the request's critical path includes the log; offloaded,\n"
          "the request hands the record to a queue and a worker thread writes it. It helps only while the\n"
          "worker keeps up (requests arrive every --gap-us, more than the log takes) and has a CPU to run on:\n"
          "with --cpus 0 the worker competes with the requests for the one CPU.\n\n"
          "Every run is checked: the combined checksum of the blocks, and the count and checksum of the log\n"
          "records. Times are whole runs (each pattern --rounds times, in rotation); critical paths per request.\n\n"
          "Questions: why does the pipeline's speedup stop at its slowest stage? What happens to the background\n"
          "worker's queue if requests come faster than it can write? Why is a bounded queue better than an\n"
          "unbounded one here?",
  });
  const size_t cpus = oslab::get_affinity().size();
  // The background worker's request: 1000 work units to answer it, 20000 for its log record.
  const long& blocks =
      lab.integer_option("--blocks", "Blocks in the stream", {.full = 4000, .quick = 600}, 1, 10'000'000);
  const long& block_kib = lab.integer_option("--block-kib", "Block size, KiB", {.full = 64, .quick = 64}, 1, 65536);
  const long& queue = lab.integer_option("--queue", "Capacity of every queue", {.full = 8, .quick = 8}, 1, 1 << 20);
  const auto& workers = lab.list_option("-n,--workers", "Consumer counts for producer/consumer",
                                        {.full = {1, static_cast<long>(std::max<size_t>(cpus, 2))},
                                         .quick = {1, static_cast<long>(std::max<size_t>(cpus, 2))}},
                                        1, 256);
  const long& rounds =
      lab.integer_option("--rounds", "Runs of every configuration (in rotation)", {.full = 5, .quick = 3}, 1, 1000);
  const long& requests = lab.integer_option("--requests", "Requests for the background worker",
                                            {.full = 5000, .quick = 1000}, 1, 10'000'000);
  const long& gap_us =
      lab.integer_option("--gap-us", "Microseconds between requests", {.full = 60, .quick = 60}, 1, 1'000'000);
  std::optional<Experiment> experiment;
  auto prepare = [&](oslab::Report& report) {
    std::vector<int> counts(workers.begin(), workers.end());
    std::sort(counts.begin(), counts.end());
    counts.erase(std::unique(counts.begin(), counts.end()), counts.end());
    const int allowed = static_cast<int>(lab.options().cpus.size());
    report.params["cpus_allowed"] = allowed;
    experiment.emplace(Experiment{lab,
                                  static_cast<uint64_t>(blocks),
                                  static_cast<size_t>(block_kib) * 1024,
                                  static_cast<size_t>(queue),
                                  static_cast<int>(rounds),
                                  static_cast<int>(requests),
                                  1000,
                                  20'000,
                                  static_cast<int>(gap_us),
                                  allowed,
                                  counts,
                                  {1, 2, 3},
                                  {},
                                  {},
                                  {},
                                  0,
                                  0,
                                  {},
                                  {},
                                  {}});
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
