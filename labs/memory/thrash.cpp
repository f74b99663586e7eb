// oslab-thrash: the page-fault rate against the memory a process may keep, the knee of that
// curve, and the collapse below it (thrashing), on the real kernel under a cgroup memory limit.
//
// Try:     oslab-thrash                      64 MiB working set, limits from 150% down to 50% of it
//          oslab-thrash --size 128 --limits 120,100,90,80 --measure-ms 2000
//          oslab-thrash --pattern loop       a loop over the pages: the cliff LRU is known for
//          oslab-thrash --cgroup none        only the replacement simulation (what a machine
//                                            without a memory controller gets)
//          oslab-thrash --make-swap          root: a swap file for the run, and an anonymous
//                                            working set swapped out and in
// Expect:  above the working set, no faults: the workload reads memory at tens of millions of
//          pages a second. One step below it, every miss is a read from the disk: the rate of
//          progress falls by orders of magnitude, and the fault rate rises as 1 - limit / WS.
//          The knee of the curve sits at the working set. LRU, FIFO and Clock replayed on the
//          recorded reference string draw the same curve; OPT, which knows the future, less.
// Compare: oslab-wss (the working set measured without any limit), oslab-faults (what one
//          major fault costs), oslab-oom (a limit that cannot be met by evicting).
//
// The working set is a file read through mmap: with no swap, the kernel can evict only pages
// it can read back, so a limit below the working set means re-reading from the file. The
// file's pages are written inside the lab's cgroup, because page cache is charged to the
// cgroup that first touches it.

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "cgroup.hpp"
#include "knee.hpp"
#include "memprobe.hpp"
#include "oslab/clock.hpp"
#include "oslab/error.hpp"
#include "oslab/format.hpp"
#include "oslab/handles.hpp"
#include "oslab/lab.hpp"
#include "oslab/machine.hpp"
#include "oslab/process.hpp"
#include "oslab/shared.hpp"
#include "replacement.hpp"
#include "swapfile.hpp"

namespace {

using oslab::check_errno;
using oslab::check_errnum;
using oslab::memory::CurvePoint;
using oslab::memory::MemoryCgroup;
using oslab::memory::Policy;

constexpr uint64_t kMiB = 1 << 20;
constexpr Policy kPolicies[] = {Policy::lru, Policy::fifo, Policy::clock, Policy::opt};

// ---- The workload: a child that reads pages of its working set, one word each -------------

// What the child and the lab share (in memory the lab touched first, so charged to the lab).
struct Control {
  std::atomic<int> ready{0};  // 1: filled, mapped, its reference string recorded
  std::atomic<int> stop{0};
  std::atomic<uint64_t> accesses{0};
  std::atomic<uint64_t> wrong{0};  // pages that did not hold their own number: a broken read
};

// The page sequence: uniform over the working set, or a loop through it.
struct PageSequence {
  uint64_t state;
  uint64_t pages;
  bool loop;
  uint64_t next() noexcept {
    if (loop) return state = (state + 1) % pages;
    state ^= state << 13;  // xorshift64
    state ^= state >> 7;
    state ^= state << 17;
    return (state >> 11) % pages;
  }
};

struct WorkloadArgs {
  int fd;  // the file, or -1: anonymous memory (no cgroup, nothing evicted)
  size_t bytes;
  const char* procs_file;  // the cgroup to join, or nullptr
  uint64_t seed;
  bool loop;
  Control* control;
  uint32_t* recording;
  size_t recording_size;
};

// The child's side: async-signal-safe only (the lab has threads when it forks).
int run_workload(const WorkloadArgs& a) {
  if (a.procs_file != nullptr) oslab::memory::join_cgroup(a.procs_file);
  const size_t page = oslab::page_size(), pages = a.bytes / page;
  void* mapped =
      ::mmap(nullptr, a.bytes, PROT_READ | PROT_WRITE, a.fd >= 0 ? MAP_SHARED : MAP_PRIVATE | MAP_ANONYMOUS, a.fd, 0);
  if (mapped == MAP_FAILED) oslab::child_fail("mmap", errno);
  auto* base = static_cast<unsigned char*>(mapped);
  // Every page holds its own number: written here, so charged to this cgroup, then made clean.
  for (size_t p = 0; p < pages; ++p) *reinterpret_cast<uint64_t*>(base + p * page) = p;
  if (a.fd >= 0 && ::fdatasync(a.fd) != 0) oslab::child_fail("fdatasync", errno);
  // No read-around (nor swap read-ahead): a major fault reads the one page asked for (see
  // --explain); and 4 KiB pages, so that a page, not 2 MiB, is what is evicted.
  if (::madvise(base, a.bytes, MADV_RANDOM) != 0) oslab::child_fail("madvise(MADV_RANDOM)", errno);
  if (a.fd < 0) ::madvise(base, a.bytes, MADV_NOHUGEPAGE);
  PageSequence sequence{a.seed | 1, pages, a.loop};
  uint64_t wrong = 0;
  auto read_page = [&](uint64_t p) { wrong += *reinterpret_cast<const volatile uint64_t*>(base + p * page) != p; };
  for (size_t i = 0; i < a.recording_size; ++i) {
    const uint64_t p = sequence.next();
    a.recording[i] = static_cast<uint32_t>(p);
    read_page(p);
  }
  a.control->ready.store(1);
  uint64_t done = 0;
  while (a.control->stop.load(std::memory_order_relaxed) == 0) {
    for (int i = 0; i < 64; ++i) read_page(sequence.next());
    done += 64;
    a.control->accesses.store(done, std::memory_order_relaxed);
    a.control->wrong.store(wrong, std::memory_order_relaxed);
  }
  return 0;
}

// The running workload, seen from the lab.
class Workload {
 public:
  Workload(const WorkloadArgs& args, std::chrono::seconds ready_within) : control_(args.control) {
    child_ = oslab::Child::fork([args] { return run_workload(args); });
    const int64_t deadline = oslab::now_ns() + std::chrono::nanoseconds(ready_within).count();
    while (control_->ready.load() == 0) {
      alive_or_throw("while filling its working set");
      if (oslab::now_ns() > deadline) throw std::runtime_error("the workload did not get ready in time");
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }
  Workload(const Workload&) = delete;
  Workload& operator=(const Workload&) = delete;
  ~Workload() {
    try {
      finish();
    } catch (...) {
    }
  }

  pid_t pid() const { return child_.pid(); }
  uint64_t accesses() const { return control_->accesses.load(); }
  uint64_t wrong() const { return control_->wrong.load(); }
  void alive_or_throw(const char* when) {
    if (auto status = oslab::wait_for(child_.pid(), std::chrono::milliseconds(0))) {
      child_.release();
      throw std::runtime_error(fmt::format("the workload {} {}", status->describe(), when));
    }
  }
  void finish() {
    if (child_.pid() < 0) return;
    control_->stop.store(1);
    child_.wait_success(std::chrono::seconds(30), "the workload");
  }

 private:
  Control* control_;
  oslab::Child child_;
};

// ---- One point of the curve -------------------------------------------------------------

struct Point {
  long percent = 0;
  uint64_t limit_bytes = 0;
  std::vector<double> ns_per_access;  // one per window
  uint64_t accesses = 0, major_faults = 0, minor_faults = 0, group_major_faults = 0;
  uint64_t swap_ins = 0, swap_outs = 0;  // /proc/vmstat pswpin, pswpout during the windows
  long swapped_kib = 0;                  // the workload's VmSwap at the end
  double seconds = 0;
  double major_per_access() const {
    return accesses ? static_cast<double>(major_faults) / static_cast<double>(accesses) : 0;
  }
  double accesses_per_s() const { return seconds > 0 ? static_cast<double>(accesses) / seconds : 0; }
};

struct Simulated {
  long percent;
  size_t frames;
  double rate[std::size(kPolicies)];
};

struct WindowPoint {
  double window_ws;  // D / working-set pages
  size_t window;
  oslab::memory::WorkingSetReplay replay;
};

struct Experiment {
  const oslab::Lab& lab;
  long size_mib;
  std::vector<long> percents;  // descending
  long measure_ms;
  size_t references;
  bool loop;
  bool use_cgroup;
  std::string dir;
  bool anon;              // the working set is anonymous memory (swapped) instead of a file
  bool make_swap;         // create a swap file for the run
  int windows_per_limit;  // samples at each limit (--iterations)

  uint64_t file_bytes = 0, other_bytes = 0;  // the working set: the file, and the rest the group was charged
  std::vector<Point> points = {};
  std::vector<uint32_t> recorded = {};
  std::vector<Simulated> simulated = {};
  std::vector<WindowPoint> windows = {};
  std::string cgroup_described = {};
  bool kernel_ran = false;
  uint64_t charge_file_bytes = 0, charge_cached = 0, charge_dropped = 0;
  bool charge_ran = false;

  size_t pages() const { return static_cast<size_t>(size_mib) * kMiB / oslab::page_size(); }
  uint64_t working_set() const { return file_bytes + other_bytes; }
  uint64_t seed() const { return lab.options().seed; }

  WorkloadArgs args(int fd, const char* procs, Control* control, uint32_t* recording) const {
    return {fd, static_cast<size_t>(size_mib) * kMiB, procs, seed(), loop, control, recording, references};
  }

  // The kernel: the workload in a cgroup whose limit steps down through the working set.
  void kernel_curve(oslab::Report& report) {
    if (!use_cgroup) throw oslab::SkipError("--cgroup none: only the replay runs");
    std::optional<oslab::memory::SwapFile> swap;  // declared first: it goes after the group
    if (make_swap) {
      swap.emplace(oslab::memory::SwapFile::create(dir, "thrash", static_cast<uint64_t>(size_mib) * 2 * kMiB));
      report.params["swap_file"] = swap->path();
    }
    MemoryCgroup group = MemoryCgroup::create("thrash");
    cgroup_described = group.describe();
    report.params["cgroup"] = cgroup_described;
    oslab::UniqueFd file;
    if (!anon) {
      file = oslab::memory::temporary_file(dir, static_cast<size_t>(size_mib) * kMiB);
      if (const std::string fs = oslab::memory::memory_file_system(file.get()); !fs.empty())
        throw oslab::SkipError(
            fmt::format("{} is {}: its pages live only in memory, so with no swap nothing could "
                        "be evicted (--dir a directory on a disk)",
                        dir, fs));
    } else if (!oslab::machine().has("swap") && !swap) {
      throw oslab::SkipError("anonymous memory can only be evicted to swap, and there is none");
    }
    oslab::Shared<Control> control;
    oslab::SharedArray<uint32_t> recording(references);
    std::fill(recording.data(), recording.data() + references, 0);  // charged to the lab, not the group
    Workload workload(args(anon ? -1 : file.get(), group.procs_file().c_str(), control.get(), recording.data()),
                      std::chrono::seconds(120));
    recorded.assign(recording.data(), recording.data() + references);
    const oslab::memory::CgroupStats idle = group.stats();
    file_bytes = static_cast<uint64_t>(size_mib) * kMiB;
    const uint64_t held = anon ? std::min(idle.usage_bytes, file_bytes) : idle.file_bytes;
    other_bytes = idle.usage_bytes > held ? idle.usage_bytes - held : 0;
    report.params["group_file_mib_at_start"] = static_cast<double>(idle.file_bytes) / kMiB;
    report.params["group_other_mib_at_start"] = static_cast<double>(other_bytes) / kMiB;
    for (long percent : percents) {
      Point point;
      point.percent = percent;
      point.limit_bytes = working_set() * static_cast<uint64_t>(percent) / 100;
      point.limit_bytes -= point.limit_bytes % oslab::page_size();
      if (point.limit_bytes < other_bytes + 2 * kMiB) {
        report.note(fmt::format("{}% of the working set ({}) leaves no room beside the workload's own memory: not run",
                                percent, mib(point.limit_bytes)));
        continue;
      }
      group.set_limit(point.limit_bytes);
      measure(point, workload, group);
      point.swapped_kib = swapped_kib(workload.pid());
      points.push_back(std::move(point));
    }
    group.remove_limit();
    const uint64_t wrong = workload.wrong();
    workload.finish();
    if (wrong != 0) throw std::runtime_error(fmt::format("{} page reads returned another page's data", wrong));
    kernel_ran = true;
    for (const Point& point : points) add_result(report, point);
  }

  static long swapped_kib(pid_t pid) {
    std::ifstream status(fmt::format("/proc/{}/status", pid));
    std::string key;
    long kib = 0;
    while (status >> key)
      if (key == "VmSwap:") status >> kib;
    return kib;
  }
  static std::map<std::string, uint64_t> vmstat() {
    std::ifstream in("/proc/vmstat");
    std::ostringstream text;
    text << in.rdbuf();
    return oslab::memory::parse_keyed(text.str());
  }

  void measure(Point& point, Workload& workload, const MemoryCgroup& group) const {
    const auto settle = std::chrono::milliseconds(std::max<long>(50, measure_ms / 4));
    std::this_thread::sleep_for(settle);
    workload.alive_or_throw(fmt::format("at {}% of its working set", point.percent).c_str());
    const int window_count = windows_per_limit;
    const auto window = std::chrono::milliseconds(std::max<long>(10, measure_ms / window_count));
    for (int w = 0; w < window_count; ++w) {
      const uint64_t a0 = workload.accesses();
      const auto f0 = oslab::memory::faults_of(workload.pid());
      const uint64_t g0 = group.stats().major_faults;
      auto v0 = vmstat();
      const int64_t t0 = oslab::now_ns();
      uint64_t a1 = a0;
      // A window lasts until the workload has made some progress, however slowly it goes.
      for (int64_t waited = 0; a1 - a0 < 16 || waited == 0; waited = oslab::now_ns() - t0) {
        std::this_thread::sleep_for(waited == 0 ? window : std::chrono::milliseconds(5));
        a1 = workload.accesses();
        if (oslab::now_ns() - t0 > 5'000'000'000) break;
      }
      const int64_t t1 = oslab::now_ns();
      const auto f1 = oslab::memory::faults_of(workload.pid());
      const uint64_t accesses = a1 - a0;
      if (accesses == 0) throw std::runtime_error("the workload made no progress for 5 s");
      point.ns_per_access.push_back(static_cast<double>(t1 - t0) / static_cast<double>(accesses));
      point.accesses += accesses;
      point.seconds += static_cast<double>(t1 - t0) * 1e-9;
      point.major_faults += f1.major - f0.major;
      point.minor_faults += f1.minor - f0.minor;
      point.group_major_faults += group.stats().major_faults - g0;
      auto v1 = vmstat();
      point.swap_ins += v1["pswpin"] - v0["pswpin"];
      point.swap_outs += v1["pswpout"] - v0["pswpout"];
    }
  }

  void add_result(oslab::Report& report, const Point& point) const {
    const auto per_access = [&](uint64_t count) {
      return static_cast<double>(count) / static_cast<double>(point.accesses);
    };
    report.add_samples(
        "page read under a limit",
        {{"limit_percent", point.percent},
         {"limit_mib", static_cast<double>(point.limit_bytes) / kMiB},
         {"working_set_mib", static_cast<double>(working_set()) / kMiB},
         {"pattern", loop ? "loop" : "random"},
         {"backing", anon ? "anonymous, swap" : "file"}},
        point.ns_per_access,
        {.what = std::string("one 8-byte read of a page of the working set (") +
                 (anon ? "anonymous memory, MADV_RANDOM, evicted to swap" : "a file mapped MAP_SHARED, MADV_RANDOM") +
                 "), mean over a window of ~" + std::to_string(measure_ms / 8) + " ms; the limit is the cgroup's",
         .counters = {{"major_faults", per_access(point.major_faults)},
                      {"minor_faults", per_access(point.minor_faults)},
                      {"cgroup_major_faults", per_access(point.group_major_faults)},
                      {"swap_ins", per_access(point.swap_ins)},
                      {"swap_outs", per_access(point.swap_outs)},
                      {"swapped_mib", static_cast<double>(point.swapped_kib) / 1024},
                      {"accesses_per_s", point.accesses_per_s()}},
         .headline = point.percent == 100 || point.percent == 80});
  }

  // Page cache is charged to the cgroup that first touched it. The lab writes a file (its pages
  // are charged to the lab's own cgroup); a reader in the group maps and reads all of it; then
  // the lab drops the file's cache and the reader reads it again.
  void first_toucher() {
    if (!use_cgroup) throw oslab::SkipError("--cgroup none");
    MemoryCgroup group = MemoryCgroup::create("thrash");
    charge_file_bytes = static_cast<uint64_t>(std::max<long>(4, size_mib / 4)) * kMiB;
    oslab::UniqueFd file = oslab::memory::temporary_file(dir, charge_file_bytes);
    if (const std::string fs = oslab::memory::memory_file_system(file.get()); !fs.empty())
      throw oslab::SkipError(fmt::format("{} is {}: no page cache to drop", dir, fs));
    const std::vector<char> block(kMiB, 'x');
    for (uint64_t at = 0; at < charge_file_bytes; at += kMiB)
      check_errno("pwrite", ::pwrite(file.get(), block.data(), block.size(), static_cast<off_t>(at)));
    check_errno("fdatasync", ::fdatasync(file.get()));
    const int fd = file.get();
    const size_t bytes = charge_file_bytes;
    const char* procs = group.procs_file().c_str();
    auto read_in_group = [&] {
      oslab::Child reader = oslab::Child::fork([fd, bytes, procs] {
        oslab::memory::join_cgroup(procs);
        void* mapped = ::mmap(nullptr, bytes, PROT_READ, MAP_SHARED, fd, 0);
        if (mapped == MAP_FAILED) oslab::child_fail("mmap", errno);
        uint64_t sum = 0;
        for (size_t at = 0; at < bytes; at += oslab::page_size()) sum += static_cast<const volatile char*>(mapped)[at];
        return sum == bytes / oslab::page_size() * 'x' ? 0 : 1;
      });
      reader.wait_success(std::chrono::seconds(60), "the reader in the group");
      return group.stats().file_bytes;
    };
    const uint64_t before = group.stats().file_bytes;
    charge_cached = read_in_group() - before;
    check_errnum("posix_fadvise(DONTNEED)", ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED));
    const uint64_t dropped = group.stats().file_bytes;
    charge_dropped = read_in_group() - dropped;
    charge_ran = true;
  }

  void charge_verdict(oslab::Report& report) const {
    if (!charge_ran) return;
    const double file = static_cast<double>(charge_file_bytes);
    report.fact("page-cache-charged-to-first-toucher",
                "a page of the page cache is charged to the cgroup that first brought it in, not to whoever reads it "
                "later",
                static_cast<double>(charge_cached) <= 0.1 * file && static_cast<double>(charge_dropped) >= 0.9 * file,
                fmt::format("a {} file written and read by the lab: a process in the group read all of it and the "
                            "group was charged {}; after posix_fadvise(DONTNEED) dropped it from the cache, the same "
                            "read charged the group {} (holds at 10% or less, then 90% or more)",
                            mib(charge_file_bytes), mib(charge_cached), mib(charge_dropped)));
  }

  // Without a cgroup, the workload still runs (on anonymous memory, no limit) to record the
  // reference string the policies replay.
  void record_only() {
    oslab::Shared<Control> control;
    oslab::SharedArray<uint32_t> recording(references);
    Workload workload(args(-1, nullptr, control.get(), recording.data()), std::chrono::seconds(60));
    recorded.assign(recording.data(), recording.data() + references);
    workload.finish();
  }

  void simulate(oslab::Report& report) {
    if (recorded.empty()) record_only();
    const size_t n = pages(), warmup = recorded.size() / 4;
    for (long percent : percents) {
      Simulated row{percent, std::max<size_t>(1, n * static_cast<size_t>(percent) / 100), {}};
      for (size_t k = 0; k < std::size(kPolicies); ++k)
        row.rate[k] = oslab::memory::replay(kPolicies[k], recorded, row.frames, warmup).fault_rate();
      simulated.push_back(row);
    }
    for (double ratio : {0.125, 0.25, 0.5, 1.0, 2.0, 4.0}) {
      const auto window = std::max<size_t>(1, static_cast<size_t>(ratio * static_cast<double>(n)));
      windows.push_back({ratio, window, oslab::memory::replay_working_set(recorded, window, warmup)});
    }
    for (size_t k = 0; k < std::size(kPolicies); ++k) {
      std::vector<double> rates;
      for (const auto& row : simulated) rates.push_back(row.rate[k]);
      report.add_samples("replayed fault rate",
                         {{"policy", to_string(kPolicies[k])}, {"pattern", loop ? "loop" : "random"}}, rates,
                         {.what = "faults per reference of the recorded reference string replayed through frames "
                                  "= each --limits percentage of the working set (one sample per percentage)",
                          .unit = "faults/reference"});
    }
    report.params["references"] = recorded.size();
  }

  // ---- Tables and verdicts ----

  // "65.1 M": a count with a metric prefix.
  static std::string count(double value) {
    if (value >= 1e9) return oslab::format_number(value / 1e9) + " G";
    if (value >= 1e6) return oslab::format_number(value / 1e6) + " M";
    if (value >= 1e3) return oslab::format_number(value / 1e3) + " k";
    return oslab::format_number(value);
  }
  static std::string mib(uint64_t bytes) { return oslab::format_number(static_cast<double>(bytes) / kMiB) + " MiB"; }

  const Point* at(long percent) const {
    auto it = std::find_if(points.begin(), points.end(), [&](const Point& p) { return p.percent == percent; });
    return it == points.end() ? nullptr : &*it;
  }

  void tables(oslab::Report& report) const {
    if (!kernel_ran)
      report.note(
          "the kernel's curve was not measured (see Skipped): the fault rates below are the replacement "
          "policies' on the workload's recorded reference string, a simulation");
    oslab::Table table{"Fault rate against memory: the kernel under a cgroup limit, and the policies replayed",
                       {"limit", "of WS", "kernel: faults/read", "reads/s", "LRU", "FIFO", "Clock", "OPT"},
                       {},
                       "",
                       2};
    if (anon && kernel_ran) table.header.insert(table.header.begin() + 4, "in swap");
    for (const Simulated& row : simulated) {
      const Point* point = at(row.percent);
      std::vector<std::string> cells = {
          point ? mib(point->limit_bytes) : fmt::format("{} pages", row.frames), fmt::format("{}%", row.percent),
          point ? oslab::format_number(point->major_per_access()) : "-", point ? count(point->accesses_per_s()) : "-"};
      if (anon && kernel_ran) cells.push_back(point ? mib(static_cast<uint64_t>(point->swapped_kib) * 1024) : "-");
      for (double rate : row.rate) cells.push_back(oslab::format_number(rate));
      table.rows.push_back(std::move(cells));
    }
    table.footnote = fmt::format(
        "kernel: major faults per page read (the workload's /proc/PID/stat) and reads per second, under {}; "
        "the working set (WS) is the {} {} plus {} of the workload's other memory charged to the group{}. "
        "LRU .. OPT: faults per reference when the {} recorded references are replayed through frames = that "
        "percentage of the working set's {} pages.",
        kernel_ran ? cgroup_described : "no cgroup (not run)", mib(file_bytes ? file_bytes : size_mib * kMiB),
        anon ? "of anonymous memory" : "file", mib(other_bytes),
        anon ? "; in swap: the workload's VmSwap, its pages whose page-table entries hold a swap slot" : "",
        recorded.size(), pages());
    report.table(table);

    oslab::Table ws{"The working-set policy: keep the pages of the last D references",
                    {"D", "D / WS pages", "resident (mean)", "of WS", "faults/reference"},
                    {},
                    "resident = |W(D, t)| averaged over t; no fixed number of frames: the resident set follows "
                    "the program's locality",
                    1};
    for (const WindowPoint& w : windows)
      ws.rows.push_back({std::to_string(w.window), oslab::format_number(w.window_ws),
                         oslab::format_number(w.replay.mean_resident),
                         oslab::format_percent(w.replay.mean_resident / static_cast<double>(pages())),
                         oslab::format_number(w.replay.replay.fault_rate())});
    report.table(ws);
  }

  void verdicts(oslab::Report& report) const {
    if (kernel_ran) kernel_verdicts(report);
    charge_verdict(report);
    simulation_verdicts(report);
  }

  void kernel_verdicts(oslab::Report& report) const {
    std::vector<CurvePoint> curve;
    for (const Point& p : points) curve.push_back({static_cast<double>(p.limit_bytes) / kMiB, p.major_per_access()});
    const double ws_mib = static_cast<double>(working_set()) / kMiB;
    const std::string claim =
        "the page-fault rate against the memory allowed has a knee, and the knee is the working set";
    if (auto knee = oslab::memory::find_knee(curve)) {
      const double off = (knee->x - ws_mib) / ws_mib;
      report.fact("kernel-knee-at-working-set", claim, std::abs(off) <= 0.10,
                  fmt::format("the knee of major faults per read against the limit is at {} MiB (the {}% limit); the "
                              "working set is {} MiB ({:+.0f}%; holds within 10%). Rule: the point farthest from the "
                              "chord of the curve scaled to [0, 1] on both axes",
                              oslab::format_number(knee->x), points[knee->index].percent, oslab::format_number(ws_mib),
                              off * 100));
    } else {
      report.fact("kernel-knee-at-working-set", claim, false,
                  "the curve has no knee (no point lies 0.05 from the chord): add limits below and above 100%");
    }
    // Above the working set nothing is evicted; below it, a read misses about as often as
    // the part of the working set that does not fit.
    std::string above, below;
    bool quiet_above = true;
    for (const Point& p : points) {
      if (p.percent >= 110) {
        quiet_above = quiet_above && p.major_per_access() < 1e-3;
        above +=
            fmt::format("{}{}%: {}", above.empty() ? "" : ", ", p.percent, oslab::format_number(p.major_per_access()));
      }
    }
    if (!above.empty())
      report.fact("no-faults-above-working-set", "with memory for the whole working set, a read does not fault",
                  quiet_above, "major faults per read at " + above + " of the working set (holds below 0.001)");
    const Point *roomy = at(120), *full = at(100), *short_of = at(80);
    if (roomy && short_of) {
      const oslab::Estimate slower =
          oslab::ratio_of(oslab::summarize(short_of->ns_per_access), oslab::summarize(roomy->ns_per_access));
      report.verdict(
          "thrashing-below-working-set",
          "below the working set the process thrashes: its progress collapses (10x or more) as it waits on faults",
          slower, oslab::Compare::above, 10,
          fmt::format("reads per second at 120% of the working set {}, at 100% {}, at 80% {} ({} major faults per "
                      "read); time per read at 80% / at 120%",
                      count(roomy->accesses_per_s()), full ? count(full->accesses_per_s()) : "-",
                      count(short_of->accesses_per_s()), oslab::format_number(short_of->major_per_access())));
    } else {
      report.skip("thrashing-below-working-set", "needs 120 and 80 among --limits");
    }
  }

  void simulation_verdicts(oslab::Report& report) const {
    if (simulated.empty()) return;
    std::vector<CurvePoint> lru;
    for (const Simulated& row : simulated) lru.push_back({static_cast<double>(row.frames), row.rate[0]});
    const auto knee = oslab::memory::find_knee(lru);
    const double n = static_cast<double>(pages());
    report.fact("replayed-lru-knee-at-working-set",
                "on the recorded reference string, LRU's fault rate against frames has its knee at the working set",
                knee && std::abs(knee->x - n) / n <= 0.10,
                knee ? fmt::format("knee at {} frames; the working set is {} pages (holds within 10%)",
                                   oslab::format_number(knee->x), pages())
                     : "no knee");
    bool opt_lowest = true;
    for (const Simulated& row : simulated)
      for (double rate : row.rate) opt_lowest = opt_lowest && row.rate[3] <= rate;
    report.fact("opt-is-a-lower-bound", "no policy faults less than OPT (Belady's optimal, which knows the future)",
                opt_lowest,
                fmt::format("OPT's fault rate was the lowest at each of {} frame counts", simulated.size()));
    const WindowPoint& widest = windows.back();
    const double kept = widest.replay.mean_resident / n;
    report.fact("working-set-window-holds-the-working-set",
                "with a window D of several times the working set's pages, the working-set policy keeps nearly all "
                "of it resident and rarely faults",
                kept >= 0.95 && widest.replay.replay.fault_rate() <= 0.05,
                fmt::format("D = {} references ({}x the {} pages): {} resident on average, {} faults per reference "
                            "(holds at 95% or more and 5% or less)",
                            widest.window, widest.window_ws, pages(), oslab::format_percent(kept),
                            oslab::format_number(widest.replay.replay.fault_rate())));
  }
};

}  // namespace

int main(int argc, char** argv) {
  oslab::Lab lab({
      .name = "thrash",
      .purpose = "the page-fault rate against the memory a process may use: its knee at the working set, and "
                 "thrashing below it",
      .claim = "The notes: \"If you take the curve relating the number of page frames to the page fault rate,\n"
               "you can find a point of inflection that acts as that approximation for the correct working\n"
               "set size.\" And: \"If you run out of memory, you end up trashing pages directly after\n"
               "bringing them into memory. This is called thrashing, where most of your time is spent in\n"
               "page faults.\" Here a process with a known working set runs under a memory limit swept\n"
               "from above it to below it.",
      .explain = "A child process maps a --size MiB file and reads one word of a page at a time: pages chosen\n"
                 "uniformly at random (--pattern random) or in a loop (--pattern loop). Every page holds its own\n"
                 "number, and every read checks it. Its working set is therefore the whole file, known exactly.\n\n"
                 "The child runs in a memory cgroup of the lab's own (cgroup v2 memory.max or v1\n"
                 "memory.limit_in_bytes, whichever the machine has), made under the cgroup the lab runs in and\n"
                 "removed when it ends. The child writes the file inside the group, because the kernel charges a\n"
                 "page of the page cache to the cgroup that first touched it (the lab shows that too). Then the\n"
                 "limit steps down from above the working set to below it; at each step the lab counts the\n"
                 "child's reads and its major faults (/proc/PID/stat) for --measure-ms.\n\n"
                 "With no swap, the kernel can only evict pages it can read back from where they came from: so\n"
                 "the working set is a file, and a page evicted is a page read again from the disk (a major\n"
                 "fault). The child asks for MADV_RANDOM, which turns off read-around: otherwise each major\n"
                 "fault would read 32 neighbouring pages too, evicting others to make room, and the curve would\n"
                 "measure the readahead policy rather than the working set.\n\n"
                 "With swap (or, as root, --make-swap: a swap file the lab writes, enables with swapon, and\n"
                 "disables and deletes at the end), the working set can be anonymous memory instead\n"
                 "(--backing anon; auto picks it when there is swap). An evicted page then goes to a slot of\n"
                 "the swap area; the kernel's swap map records which slots are in use, and the page-table\n"
                 "entry of the evicted page holds its slot, so that a read of it is a major fault that reads\n"
                 "it back (a swap-in). The table shows how much of the working set is out (VmSwap), and the\n"
                 "results count swap-ins and swap-outs (/proc/vmstat). While the swap file exists the whole\n"
                 "machine may swap to it; only the lab's group is short of memory, so only it does.\n\n"
                 "Above the working set, nothing faults. Just below it, a fraction 1 - limit/WS of the reads\n"
                 "miss, and each miss costs a disk read (tens of microseconds) against a few nanoseconds for a\n"
                 "hit: progress collapses by orders of magnitude. That is thrashing. The knee is found by a\n"
                 "stated rule: scale the curve to [0, 1] on both axes and take the point farthest from the\n"
                 "straight line through its ends.\n\n"
                 "The same reference string, recorded by the child as it ran, is replayed through LRU, FIFO,\n"
                 "Clock (second chance) and OPT (Belady: evict the page used farthest in the future), with as\n"
                 "many frames as each limit allows, and through the working-set policy, which keeps the pages\n"
                 "of the last D references and has no fixed number of frames. On a machine without a memory\n"
                 "controller (a fresh container), or as a user who may not create cgroups, only the replay\n"
                 "runs, and the lab says so.\n\n"
                 "Questions: why is the kernel's curve for random reads close to LRU's? Why does a loop one\n"
                 "page larger than memory defeat LRU completely, and not OPT? What would a second process with\n"
                 "its own working set do to the knee?",
  });
  const long& size_mib =
      lab.integer_option("--size", "The workload's working set (a file, or anonymous memory with swap), MiB",
                         {.full = 64, .quick = 32}, 4, 4096);
  const auto& limits = lab.list_option(
      "--limits", "Memory limits to step through, % of the working set",
      {.full = {150, 120, 110, 105, 100, 95, 90, 80, 70, 60, 50}, .quick = {120, 110, 100, 90, 80, 60}}, 10, 400);
  const long& measure_ms =
      lab.integer_option("--measure-ms", "Time measured at each limit, ms (in --iterations windows, 8 by default)",
                         {.full = 1000, .quick = 150}, 40, 60'000);
  const long& references = lab.integer_option("--references", "References recorded and replayed by the policies",
                                              {.full = 2'000'000, .quick = 300'000}, 1000, 100'000'000);
  const auto& pattern = lab.choice_option("--pattern", "How the workload picks pages: random or loop",
                                          {"random", "loop"}, {.full = {"random"}, .quick = {"random"}});
  const auto& cgroup =
      lab.choice_option("--cgroup", "auto: use the memory controller if there is one; none: replay only",
                        {"auto", "none"}, {.full = {"auto"}, .quick = {"auto"}});
  const auto& backing =
      lab.choice_option("--backing",
                        "The working set: file (evicted pages are read again from it), anon (evicted to swap), or "
                        "auto: anon when there is swap, else file",
                        {"auto", "file", "anon"}, {.full = {"auto"}, .quick = {"auto"}});
  const bool& make_swap = lab.flag("--make-swap",
                                   "Root: create a swap file in --dir for the run (swapon; swapoff and deleted after). "
                                   "While it exists, the whole machine may swap to it");
  std::string dir = ::access("/var/tmp", W_OK) == 0 ? "/var/tmp" : "/tmp";
  lab.cli().add_option("--dir", dir, "Directory (on a disk) for the working-set file")->capture_default_str();

  std::optional<Experiment> experiment;
  auto prepare = [&](oslab::Report& report) {
    if (pattern.size() != 1) throw oslab::UsageError("--pattern: give one of random, loop");
    if (cgroup.size() != 1) throw oslab::UsageError("--cgroup: give one of auto, none");
    if (backing.size() != 1) throw oslab::UsageError("--backing: give one of auto, file, anon");
    if (make_swap && ::geteuid() != 0) throw oslab::UsageError("--make-swap: only root may enable swap");
    if (make_swap && cgroup[0] == "none") throw oslab::UsageError("--make-swap: needs the cgroup (--cgroup auto)");
    const bool has_swap = oslab::machine().has("swap") || make_swap;
    if (backing[0] == "anon" && !has_swap)
      throw oslab::UsageError(
          "--backing anon: this machine has no swap, so anonymous memory cannot be evicted (as "
          "root, add --make-swap)");
    const bool anon = backing[0] == "anon" || (backing[0] == "auto" && has_swap);
    if (::access(dir.c_str(), W_OK) != 0)
      throw oslab::UsageError(fmt::format("--dir {}: {}", dir, oslab::describe_errno(errno)));
    if (oslab::kThreadSanitizer)
      throw oslab::SkipError("built with ThreadSanitizer, whose shadow memory is charged to the cgroup too");
    // The file's pages (in the group, then evicted), the recording, and the replay's arrays.
    oslab::require_memory_mib(static_cast<double>(size_mib) + static_cast<double>(references) * 40 / 1e6,
                              fmt::format("--size {} --references {}", size_mib, references));
    std::vector<long> descending = limits;
    std::sort(descending.rbegin(), descending.rend());
    descending.erase(std::unique(descending.begin(), descending.end()), descending.end());
    experiment.emplace(Experiment{lab, size_mib, descending, measure_ms, static_cast<size_t>(references),
                                  pattern[0] == "loop", cgroup[0] == "auto", dir, anon, make_swap,
                                  std::max(3, lab.iterations(8, 8))});
    report.params["dir"] = dir;
    report.params["working_set_backing"] = anon ? "anonymous memory, swap" : "file";
  };
  return lab.run(
      argc, argv,
      [&](oslab::Report& report) {
        Experiment& e = *experiment;
        report.run_case("the kernel under a memory limit", [&] { e.kernel_curve(report); });
        report.run_case("page cache charged to the first toucher", [&] { e.first_toucher(); });
        report.run_case("replacement policies on the recorded reference string", [&] { e.simulate(report); });
        e.tables(report);
        e.verdicts(report);
        report.show_results_table = false;
      },
      prepare);
}
