// oslab-uthreads: what a switch between user-level (green) threads costs, next to the
// switches the kernel makes, and how that cost moves as the number of green threads grows.
//
// Try:     oslab-uthreads                       every switch, creation, 2 .. 1,000,000 green threads
//          oslab-uthreads --counts 2,1000,100000 --iterations 50
// Expect:  our switch (callee-saved registers + the two FPU control words, no system call) in
//          a few nanoseconds, about as fast as Boost.Context's fcontext; swapcontext several
//          times dearer, because it makes an rt_sigprocmask system call on every switch (counted
//          here); a kernel thread switch (futex ping-pong on one CPU) and a process switch a
//          hundred times dearer. Creating a green thread costs far less than pthread_create,
//          and fork far more. The cost per switch stays flat while the green threads' state
//          fits in the caches and climbs when it does not.
// Compare: oslab-blocking (what green threads cannot do: run while one blocks), oslab-many-to-many,
//          oslab-preemption, oslab-fork (creation of processes and threads).
//
// The library under test is labs/uthreads/ (uthread.hpp); its switch is switch_x86_64.S.

#include <fcntl.h>
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <fstream>
#include <optional>

#include <fmt/format.h>

#include "context.hpp"
#include "oslab/clock.hpp"
#include "oslab/cpu.hpp"
#include "oslab/error.hpp"
#include "oslab/futex.hpp"
#include "oslab/handles.hpp"
#include "oslab/lab.hpp"
#include "oslab/machine.hpp"
#include "oslab/pingpong.hpp"
#include "oslab/shared.hpp"
#include "oslab/syscalls.hpp"
#include "uthread.hpp"

#ifdef OSLAB_HAVE_BOOST_CONTEXT
#include <boost/context/detail/fcontext.hpp>
#endif

namespace {

namespace ut = oslab::uthread;
using oslab::check_errno;
using oslab::check_errnum;

// ---- Green switches: main <-> one other context, round trips -----------------------------

// The other side of a raw ping-pong: switch straight back, forever.
struct RawPingPong {
  ut::Backend backend;
  ut::Context main, other;
  oslab::Stack stack = oslab::Stack::create(64 * 1024);

  bool differing_mxcsr = false;  // the other side flips a sticky status flag of its MXCSR

  explicit RawPingPong(ut::Backend b, bool differ = false) : backend(b), differing_mxcsr(differ) {
    main.adopt_this_thread();
    const size_t usable = stack.usable_bytes();
    other.make(backend, {stack.top() - usable, usable}, &RawPingPong::bounce, this);
  }
  static void bounce(void* self) {
    auto* ping = static_cast<RawPingPong*>(self);
#if defined(__x86_64__)
    if (ping->differing_mxcsr) {
      uint32_t mxcsr = 0;
      asm volatile("stmxcsr %0" : "=m"(mxcsr));
      mxcsr ^= 0x20;  // the precision (inexact) flag: changes no result, only the register's value
      asm volatile("ldmxcsr %0" : : "m"(mxcsr));
    }
#endif
    for (;;) ut::switch_context(ping->backend, ping->other, ping->main);
  }
  void round_trips(int64_t count) {
    for (int64_t i = 0; i < count; ++i) ut::switch_context(backend, main, other);
  }
};

#ifdef OSLAB_HAVE_BOOST_CONTEXT
namespace fc = boost::context::detail;
// The same with Boost.Context's fcontext: jump_fcontext is its switch.
struct BoostPingPong {
  oslab::Stack stack = oslab::Stack::create(64 * 1024);
  fc::fcontext_t other = nullptr;

  BoostPingPong() {
    other = fc::make_fcontext(stack.top(), stack.usable_bytes(), &BoostPingPong::bounce);
    other = fc::jump_fcontext(other, nullptr).fctx;  // start it: it comes straight back
  }
  static void bounce(fc::transfer_t from) {
    for (;;) from = fc::jump_fcontext(from.fctx, nullptr);
  }
  void round_trips(int64_t count) {
    for (int64_t i = 0; i < count; ++i) other = fc::jump_fcontext(other, nullptr).fctx;
  }
};
#endif

// ---- Kernel switches: a futex ping-pong ----------------------------------------------------

// Each side wakes the other and waits on one futex word: on one CPU, every round trip is two
// context switches made by the kernel (and the four system calls that cause them).
class FutexExchange : public oslab::Exchange {
 public:
  void ping(uint64_t sequence) override {
    words_->value.store(sequence);
    hand_over(1);
    if (words_->answer.load() != sequence + 1)
      throw std::runtime_error(fmt::format("futex ping-pong: sent {}, got back {}", sequence, words_->answer.load()));
  }
  bool pong() override {
    wait_while(0);
    if (words_->stop.load() != 0) return false;
    words_->answer.store(words_->value.load() + 1);
    words_->turn.store(0);
    oslab::futex_wake(&words_->turn, 1);
    return true;
  }
  void stop() override {
    words_->stop.store(1);
    words_->turn.store(1);
    oslab::futex_wake(&words_->turn, 1);
  }
  oslab::SyscallExpectation expected_syscalls() const override {
    return {4, false, "a futex wake and at least one futex wait on each side"};
  }

 private:
  struct Words {
    std::atomic<uint32_t> turn{0};  // 0: ping's turn; 1: pong's
    std::atomic<uint32_t> stop{0};
    std::atomic<uint64_t> value{0}, answer{0};
  };
  void hand_over(uint32_t to) {
    words_->turn.store(to);
    oslab::futex_wake(&words_->turn, 1);
    wait_while(to);
  }
  // Always one wait call at least: the count of system calls is then the same every round trip.
  void wait_while(uint32_t value) {
    do oslab::futex_wait(&words_->turn, value);
    while (words_->turn.load() == value);
  }
  oslab::Shared<Words> words_;
};

// ---- Creation ------------------------------------------------------------------------------

void* thread_returns(void*) {
  return nullptr;
}
void pthread_create_join(int64_t count) {
  for (int64_t i = 0; i < count; ++i) {
    pthread_t thread;
    check_errnum("pthread_create", ::pthread_create(&thread, nullptr, thread_returns, nullptr));
    check_errnum("pthread_join", ::pthread_join(thread, nullptr));
  }
}
void fork_exit_wait(int64_t count) {
  for (int64_t i = 0; i < count; ++i) {
    const pid_t pid = check_errno("fork", ::fork());
    if (pid == 0) _exit(0);
    int status = 0;
    while (::waitpid(pid, &status, 0) == -1 && errno == EINTR) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) throw std::runtime_error("fork: the child failed");
  }
}

// ---- Memory and caches ---------------------------------------------------------------------

// Small enough for a 2 KiB green-thread stack (an ifstream needs several KiB).
double resident_bytes() {
  char text[128] = {};
  const int fd = ::open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  const ssize_t got = ::read(fd, text, sizeof text - 1);
  ::close(fd);
  if (got <= 0) return 0;
  const char* resident = std::strchr(text, ' ');  // "size resident shared ..." in pages
  return resident == nullptr ? 0 : std::strtod(resident, nullptr) * static_cast<double>(oslab::page_size());
}

struct Cache {
  int level;
  double bytes;
};
std::vector<Cache> data_caches() {
  std::vector<Cache> caches;
  for (int index = 0; index < 8; ++index) {
    const std::string dir = fmt::format("/sys/devices/system/cpu/cpu0/cache/index{}/", index);
    const std::string type = oslab::read_first_line(dir + "type");
    if (type.empty()) break;
    if (type == "Instruction") continue;
    const std::string size = oslab::read_first_line(dir + "size");  // "48K", "2048K", "32M"
    double bytes = std::atof(size.c_str());
    if (size.ends_with('K')) bytes *= 1024;
    if (size.ends_with('M')) bytes *= 1024 * 1024;
    caches.push_back({std::atoi(oslab::read_first_line(dir + "level").c_str()), bytes});
  }
  return caches;
}

std::string smallest_cache_holding(double bytes, const std::vector<Cache>& caches) {
  for (const Cache& cache : caches)
    if (bytes <= cache.bytes) return fmt::format("L{}", cache.level);
  return "memory";
}

// ---- The experiment --------------------------------------------------------------------------

struct SweepPoint {
  long threads;
  bool guarded;
  size_t stack_bytes;
  double rss_per_thread = 0;
  double working_set = 0;
};

struct Experiment {
  const oslab::Lab& lab;
  std::vector<long> counts;
  long stack_kib;
  long arena_stack_bytes;
  long guard_limit;
  std::vector<int> cpu;  // the one CPU everything here runs on
  std::vector<SweepPoint> sweep;
  std::vector<Cache> caches = data_caches();

  Experiment(const oslab::Lab& l, std::vector<long> c, long stack, long arena, long limit, std::vector<int> on)
      : lab(l),
        counts(std::move(c)),
        stack_kib(stack),
        arena_stack_bytes(arena),
        guard_limit(limit),
        cpu(std::move(on)) {}

  void switches(oslab::Report& report) {
    oslab::ScopedAffinity pinned(cpu);
    oslab::SamplingPlan plan = lab.plan();
    std::vector<std::string> names;
    std::vector<std::function<void(int64_t)>> ops;
    std::vector<std::string> whats;
    std::vector<std::unique_ptr<RawPingPong>> raw;
    for (ut::Backend backend : {ut::Backend::assembly, ut::Backend::assembly_no_fpu, ut::Backend::ucontext}) {
      if (!ut::available(backend)) {
        report.skip(fmt::format("{} switch", ut::to_string(backend)), "the assembly switch is written for x86-64");
        continue;
      }
      raw.push_back(std::make_unique<RawPingPong>(backend));
      RawPingPong* ping = raw.back().get();
      names.emplace_back(backend == ut::Backend::ucontext ? "swapcontext"
                                                          : std::string("oslab ") + ut::to_string(backend));
      whats.emplace_back(backend == ut::Backend::assembly
                             ? "our switch: callee-saved registers, MXCSR, x87 control word"
                         : backend == ut::Backend::assembly_no_fpu
                             ? "our switch without MXCSR and the x87 control word (wrong: see the unit test)"
                             : "glibc swapcontext: all registers and the signal mask (rt_sigprocmask)");
      ops.emplace_back([ping](int64_t batch) { ping->round_trips(batch); });
    }
    if (ut::available(ut::Backend::assembly)) {
      raw.push_back(std::make_unique<RawPingPong>(ut::Backend::assembly, true));
      RawPingPong* ping = raw.back().get();
      names.emplace_back("oslab assembly, MXCSR differs");
      whats.emplace_back(
          "our switch between two threads whose MXCSR differ in one sticky status flag: every ldmxcsr "
          "loads a new value");
      ops.emplace_back([ping](int64_t batch) { ping->round_trips(batch); });
    }
#ifdef OSLAB_HAVE_BOOST_CONTEXT
    std::optional<BoostPingPong> boost;
    if (ut::built_with_asan() || ut::built_with_tsan()) {
      report.skip("Boost.Context fcontext switch", "its switch is not annotated for the sanitizers of this build");
    } else {
      boost.emplace();
      names.emplace_back("Boost.Context fcontext");
      whats.emplace_back("jump_fcontext: callee-saved registers, MXCSR, x87 control word");
      ops.emplace_back([&boost](int64_t batch) { boost->round_trips(batch); });
    }
#else
    report.skip("Boost.Context fcontext switch", "built without Boost.Context (apt-get install libboost-context-dev)");
#endif
    plan.batch = oslab::calibrate_batch(ops.front(), oslab::timer_info().overhead_ns);
    const auto measured = oslab::measure_interleaved(plan, ops);
    for (size_t i = 0; i < ops.size(); ++i)
      add_per_switch(report, names[i], measured[i],
                     whats[i] + "; one switch, one direction (a round trip / 2), mean of a batch", i == 0);
    count_signal_mask_calls(report);
  }

  void add_per_switch(oslab::Report& report, const std::string& name, const oslab::Measurement& m,
                      const std::string& what, bool headline) const {
    std::vector<double> per_switch;
    per_switch.reserve(m.samples_ns.size());
    for (double round_trip : m.samples_ns) per_switch.push_back(round_trip / 2);
    report.add_samples(name, {{"cpu", cpu.front()}}, per_switch,
                       {.what = what, .counters = m.self_per_op.per(2).to_map(), .headline = headline}, m.blocks);
  }

  void count_signal_mask_calls(oslab::Report& report) const {
    constexpr int kRoundTrips = 1000;
    for (ut::Backend backend : {ut::Backend::ucontext, ut::Backend::assembly}) {
      if (!ut::available(backend)) continue;
      report.run_case(fmt::format("system calls of the {} switch", ut::to_string(backend)), [&] {
        const oslab::SyscallCounts calls = oslab::count_syscalls([backend] {
          RawPingPong ping(backend);
          ping.round_trips(kRoundTrips);
        });
        // Setting up (mmap, mprotect, getcontext) makes a few calls: count per switch what
        // grows with the switches.
        const double per_switch = static_cast<double>(calls.of("rt_sigprocmask")) / (2.0 * kRoundTrips);
        signal_mask_per_switch[backend == ut::Backend::ucontext ? 0 : 1] = per_switch;
        syscall_evidence +=
            fmt::format("{}{}: {} rt_sigprocmask calls over {} switches ({})", syscall_evidence.empty() ? "" : "; ",
                        ut::to_string(backend), calls.of("rt_sigprocmask"), 2 * kRoundTrips, calls.method);
      });
    }
  }
  mutable std::array<double, 2> signal_mask_per_switch{-1, -1};
  mutable std::string syscall_evidence;

  void kernel_switches(oslab::Report& report) {
    for (bool threads : {true, false}) {
      const std::string name = threads ? "kernel thread switch" : "process switch";
      report.run_case(name, [&] {
        FutexExchange exchange;
        const oslab::Assignment assignment = oslab::assign_cpus(oslab::Placement::same_cpu, 2, cpu);
        const oslab::PartyOptions options{.threads = threads, .assignment = assignment};
        oslab::PingPongResult result = oslab::run_ping_pong(exchange, options, lab.plan());
        nlohmann::json params = {{"cpu", cpu.front()}};
        std::vector<double> per_switch;
        for (double round_trip : result.round_trips.samples_ns) per_switch.push_back(round_trip / 2);
        auto counters = result.round_trips.self_per_op.per(1).to_map();
        for (const auto& [key, value] : result.pong_counters.to_map("pong_")) counters[key] = value;
        report.add_samples(name, params, per_switch,
                           {.what = fmt::format("futex ping-pong between two {} pinned to one CPU: a round trip / 2; "
                                                "includes the futex wake and wait that cause the switch",
                                                threads ? "threads of one process" : "processes"),
                            .counters = counters},
                           result.round_trips.blocks);
      });
    }
  }

  void creation(oslab::Report& report) {
    oslab::ScopedAffinity pinned(cpu);
    oslab::SamplingPlan plan = lab.plan();
    plan.budget = std::chrono::milliseconds(std::max<int64_t>(50, plan.budget.count() / 2));
    // A green thread is created from a green thread (spawn, then join: it runs and ends).
    oslab::Measurement green;
    ut::Options options;
    options.stack_bytes = static_cast<size_t>(stack_kib) * 1024;
    ut::Scheduler scheduler(options);
    scheduler.spawn([&] {
      green = oslab::measure(plan, [](int64_t batch) {
        for (int64_t i = 0; i < batch; ++i) ut::join(ut::current_scheduler().spawn([] {}));
      });
    });
    scheduler.run();
    report.add("create green thread", {{"stack_kib", stack_kib}}, green,
               {.what = "spawn + run to its end + join, from a green thread; the stack (with its guard page) comes "
                        "from the library's cache of freed stacks, as glibc caches thread stacks",
                .headline = true});
    std::function<void(int64_t)> ops[] = {pthread_create_join, fork_exit_wait};
    const auto measured = oslab::measure_interleaved(plan, ops);
    report.add("pthread_create", {}, measured[0],
               {.what = "pthread_create + pthread_join of a thread that returns at once"});
    report.add("fork", {}, measured[1], {.what = "fork + _exit(0) + waitpid, of this lab's process"});
  }

  // N green threads yield round-robin; the first one times whole rounds (N yields each).
  void sweep_counts(oslab::Report& report) {
    oslab::ScopedAffinity pinned(cpu);
    for (long n : counts) {
      report.run_case(fmt::format("{} green threads", n), [&] { sweep_one(report, n); });
    }
  }

  void sweep_one(oslab::Report& report, long n) {
    const bool guarded = n <= guard_limit;
    ut::Options options;
    options.stack_bytes = guarded ? static_cast<size_t>(stack_kib) * 1024 : static_cast<size_t>(arena_stack_bytes);
    options.guard_pages = guarded;
    options.arena_stacks = guarded ? 0 : static_cast<size_t>(n);
    const double per_thread_virtual = static_cast<double>(options.stack_bytes + (guarded ? oslab::page_size() : 0));
    oslab::require_memory_mib(static_cast<double>(n) * (per_thread_virtual / 8 + 512) / (1 << 20) + 64,
                              fmt::format("{} green threads", n));
    // Each sample is the mean of whole rounds, at least 2,000 yields.
    const long samples = lab.quick() ? 10 : 30;
    const long rounds_per_sample = std::max<long>(1, 2000 / n);
    std::vector<double> per_switch;
    per_switch.reserve(static_cast<size_t>(samples));
    const double rss_before = resident_bytes();
    double rss_running = 0;
    {
      ut::Scheduler scheduler(options);
      bool done = false;
      // The first thread times rounds: each of its yields lets all N - 1 others run once.
      scheduler.spawn([&] {
        ut::yield();  // every thread has now run once: its stack is touched
        rss_running = resident_bytes();
        ut::yield();  // a warm round
        for (long sample = 0; sample < samples; ++sample) {
          const int64_t start = oslab::now_ns();
          for (long round = 0; round < rounds_per_sample; ++round) ut::yield();
          per_switch.push_back(static_cast<double>(oslab::now_ns() - start) /
                               static_cast<double>(rounds_per_sample * n));
        }
        done = true;
      });
      for (long i = 1; i < n; ++i)
        scheduler.spawn([&done] {
          while (!done) ut::yield();
        });
      scheduler.run();
    }
    SweepPoint point{n, guarded, options.stack_bytes};
    point.rss_per_thread = std::max(0.0, rss_running - rss_before) / static_cast<double>(n);
    point.working_set = static_cast<double>(n) * static_cast<double>(ut::thread_record_bytes() + 64);
    sweep.push_back(point);
    report.add_samples("switch between N green threads", {{"green_threads", n}, {"guard_pages", guarded}}, per_switch,
                       {.what = fmt::format(
                            "a yield through the run queue (one switch to the next thread, round-robin), "
                            "per switch; a sample is the mean of {} rounds of {} yields; stacks: {}",
                            rounds_per_sample, n,
                            guarded ? fmt::format("{} KiB each with a guard page", stack_kib)
                                    : fmt::format("{} bytes each from one arena, no guard pages", options.stack_bytes)),
                        .counters = {{"rss_bytes_per_thread", point.rss_per_thread}}});
  }

  static std::string times(double value) {
    return fmt::format("{:.1f}x", value);
  }

  void tables(oslab::Report& report) const {
    const oslab::Result* ours = report.find("oslab assembly");
    oslab::Table switches{fmt::format("One switch, one direction, on CPU {}", cpu.front()),
                          {"switch", "median", "p99", "vs our switch", "rt_sigprocmask per switch"},
                          {},
                          "Green switches: a ping-pong between two contexts, timed in batches (a sample is a batch's "
                          "mean). Kernel switches: a futex ping-pong, each round trip timed; they include the futex "
                          "system calls that make the switch happen.",
                          1};
    for (const char* name : {"oslab assembly", "oslab assembly-no-fpu", "oslab assembly, MXCSR differs",
                             "Boost.Context fcontext", "swapcontext", "kernel thread switch", "process switch"}) {
      const oslab::Result* r = report.find(name);
      if (r == nullptr) continue;
      std::string calls = "";
      if (std::string(name) == "swapcontext" && signal_mask_per_switch[0] >= 0)
        calls = oslab::format_number(signal_mask_per_switch[0]);
      if (std::string(name) == "oslab assembly" && signal_mask_per_switch[1] >= 0)
        calls = oslab::format_number(signal_mask_per_switch[1]);
      switches.rows.push_back({name, oslab::format_duration(r->summary.p50), oslab::format_duration(r->summary.p99),
                               ours ? times(oslab::ratio(r->summary.p50, ours->summary.p50)) : "", calls});
    }
    report.table(switches);

    const oslab::Result* green = report.find("create green thread");
    oslab::Table creation{"Creating a flow of control, running it to its end, and reaping it",
                          {"what", "median", "p99", "vs green thread"},
                          {},
                          "",
                          1};
    for (const char* name : {"create green thread", "pthread_create", "fork"}) {
      const oslab::Result* r = report.find(name);
      if (r == nullptr) continue;
      creation.rows.push_back({name, oslab::format_duration(r->summary.p50), oslab::format_duration(r->summary.p99),
                               green ? times(oslab::ratio(r->summary.p50, green->summary.p50)) : ""});
    }
    report.table(creation);

    std::string cache_list;
    for (const Cache& cache : caches)
      cache_list += fmt::format("{}L{} {} KiB", cache_list.empty() ? "" : ", ", cache.level, cache.bytes / 1024);
    oslab::Table table{"The switch as the number of green threads grows",
                       {"green threads", "stacks", "per switch", "resident per thread", "switched state", "fits in"},
                       {},
                       fmt::format("switched state = N x (the {}-byte thread record + the 64-byte saved frame): what "
                                   "a round of switches touches. Data caches of CPU 0: {}.",
                                   ut::thread_record_bytes(), cache_list.empty() ? "unknown" : cache_list),
                       1};
    for (const SweepPoint& point : sweep) {
      const oslab::Result* r = report.find("switch between N green threads", {{"green_threads", point.threads}});
      if (r == nullptr) continue;
      table.rows.push_back({fmt::format("{}", point.threads),
                            point.guarded ? fmt::format("{} KiB + guard", point.stack_bytes / 1024)
                                          : fmt::format("{} B, arena", point.stack_bytes),
                            oslab::format_duration(r->summary.p50), fmt::format("{:.0f} B", point.rss_per_thread),
                            fmt::format("{:.0f} KiB", point.working_set / 1024),
                            smallest_cache_holding(point.working_set, caches)});
    }
    report.table(table);
    report.plot({.id = "switch-vs-threads",
                 .title = "Green-thread switch (a yield) vs the number of green threads",
                 .x_param = "green_threads",
                 .x_label = "green threads",
                 .y_label = "per switch",
                 .names = {"switch between N green threads"},
                 .log_x = true});
  }

  void verdicts(oslab::Report& report) const {
    const oslab::Result* ours = report.find("oslab assembly");
    const oslab::Result* no_fpu = report.find("oslab assembly-no-fpu");
    const oslab::Result* boost = report.find("Boost.Context fcontext");
    const oslab::Result* ucontext = report.find("swapcontext");
    const oslab::Result* kernel = report.find("kernel thread switch");
    const oslab::Result* process = report.find("process switch");
    if (ours != nullptr && kernel != nullptr) {
      const oslab::Estimate ratio = oslab::ratio_of(kernel->summary, ours->summary);
      report.verdict(
          "user-switch-cheaper", "a switch between user-level threads is cheaper than a kernel thread switch", ratio,
          oslab::Compare::above, 2,
          fmt::format(
              "on CPU {}, one direction: our switch {}, a kernel thread switch {} (futex ping-pong): "
              "a user-level switch is {:.0f} times cheaper here{}",
              cpu.front(), oslab::format_duration(ours->summary.p50), oslab::format_duration(kernel->summary.p50),
              ratio.value,
              process ? fmt::format("; a process switch {}", oslab::format_duration(process->summary.p50)) : ""));
    }
    if (ours != nullptr && boost != nullptr)
      report.verdict(
          "close-to-boost-context", "our switch is within 1.5x of Boost.Context's fcontext switch",
          oslab::ratio_of(ours->summary, boost->summary), oslab::Compare::below, 1.5,
          fmt::format("ours {}, Boost.Context {} per switch (one direction)", oslab::format_duration(ours->summary.p50),
                      oslab::format_duration(boost->summary.p50)));
    if (ours != nullptr && ucontext != nullptr)
      report.verdict("swapcontext-dearer", "glibc's swapcontext costs more than a switch that skips the signal mask",
                     oslab::ratio_of(ucontext->summary, ours->summary), oslab::Compare::above, 1.5,
                     fmt::format("swapcontext {}, ours {} per switch", oslab::format_duration(ucontext->summary.p50),
                                 oslab::format_duration(ours->summary.p50)));
    const oslab::Result* differs = report.find("oslab assembly, MXCSR differs");
    if (ours != nullptr && differs != nullptr)
      report.note(
          fmt::format("loading a different MXCSR value costs: {} per switch when the two threads' MXCSR differ "
                      "in one status flag, {} when they are equal: the switch is cheap only because a new "
                      "green thread inherits its creator's value",
                      oslab::format_duration(differs->summary.p50), oslab::format_duration(ours->summary.p50)));
    if (ours != nullptr && no_fpu != nullptr)
      report.note(
          fmt::format("saving and restoring MXCSR and the x87 control word costs {} per switch here ({} with "
                      "them, {} without)",
                      oslab::format_signed_duration(ours->summary.p50 - no_fpu->summary.p50),
                      oslab::format_duration(ours->summary.p50), oslab::format_duration(no_fpu->summary.p50)));
    if (signal_mask_per_switch[0] >= 0 && signal_mask_per_switch[1] >= 0)
      report.fact("swapcontext-makes-a-system-call",
                  "swapcontext makes an rt_sigprocmask system call on every switch; our switch makes none",
                  signal_mask_per_switch[0] >= 0.99 && signal_mask_per_switch[1] == 0, syscall_evidence);
    const oslab::Result* green = report.find("create green thread");
    const oslab::Result* pthread = report.find("pthread_create");
    if (green != nullptr && pthread != nullptr)
      report.verdict(
          "green-creation-cheaper", "creating a green thread costs less than creating a kernel thread",
          oslab::ratio_of(pthread->summary, green->summary), oslab::Compare::above, 2,
          fmt::format("spawn+run+join {}, pthread_create+join {}", oslab::format_duration(green->summary.p50),
                      oslab::format_duration(pthread->summary.p50)));
    sweep_verdict(report);
  }

  void sweep_verdict(oslab::Report& report) const {
    const std::string claim =
        "the cost per switch climbs once the switched threads' state outgrows the CPU's own caches (L1 and L2)";
    double l1 = 0, l2 = 0;
    for (const Cache& cache : caches) {
      if (cache.level == 1) l1 = cache.bytes;
      if (cache.level == 2) l2 = cache.bytes;
    }
    if (sweep.size() < 2 || l1 == 0 || l2 == 0 || sweep.front().working_set > l1 || sweep.back().working_set <= l2) {
      report.skip(claim, fmt::format("needs a sweep from inside L1 ({:.0f} KiB) to beyond L2 ({:.0f} KiB); here {:.0f} "
                                     "to {:.0f} KiB of switched state (try --counts 2,100000)",
                                     l1 / 1024, l2 / 1024, sweep.empty() ? 0.0 : sweep.front().working_set / 1024,
                                     sweep.empty() ? 0.0 : sweep.back().working_set / 1024));
      return;
    }
    const SweepPoint& small = sweep.front();
    const SweepPoint& large = sweep.back();
    const auto& first = report.get("switch between N green threads", {{"green_threads", small.threads}});
    const auto& last = report.get("switch between N green threads", {{"green_threads", large.threads}});
    report.verdict("switch-climbs-beyond-caches", claim, oslab::ratio_of(last.summary, first.summary),
                   oslab::Compare::above, 1.5,
                   fmt::format("{} green threads ({:.1f} KiB of switched state, in L1): {} per switch; {} ({:.1f} MiB, "
                               "beyond L2): {}",
                               small.threads, small.working_set / 1024, oslab::format_duration(first.summary.p50),
                               large.threads, large.working_set / (1 << 20), oslab::format_duration(last.summary.p50)));
  }
};

}  // namespace

int main(int argc, char** argv) {
  oslab::Lab lab({
      .name = "uthreads",
      .purpose = "green threads: a user-level switch vs swapcontext, Boost.Context, kernel thread and process switches",
      .claim = "The notes: switching between user-level threads is faster than between kernel threads: no\n"
               "system call, no kernel. Here our own green threads (labs/uthreads/) are timed against\n"
               "glibc's swapcontext, Boost.Context and the kernel's switches, on one CPU, in one run.",
      .explain = "A green thread is a stack and the registers a function call must preserve. Switching\n"
                 "from one to another is a function call that returns in the other thread: push the\n"
                 "callee-saved registers (rbx, rbp, r12-r15 on x86-64) and the two floating-point control\n"
                 "words the ABI also makes callee-saved (MXCSR and the x87 control word), save the stack\n"
                 "pointer, load the other thread's, pop, return: about 20 instructions, no system call\n"
                 "(labs/uthreads/switch_x86_64.S). The lab also times the switch without the two control\n"
                 "words, to price them: leaving them out is a real bug (a rounding mode set in one thread\n"
                 "leaks into the next; a unit test shows it).\n\n"
                 "glibc's swapcontext saves the callee-saved and argument registers, the FPU environment and\n"
                 "MXCSR, and the signal mask, which lives in the kernel: it makes an rt_sigprocmask system\n"
                 "call on every switch, counted here by the kernel's own\n"
                 "tracepoint. Boost.Context's fcontext is the reference user-level switch. The kernel's\n"
                 "switches are timed as a futex ping-pong between two threads (or two processes) pinned to\n"
                 "one CPU: each round trip is two switches, and each includes the system calls that cause\n"
                 "it, which is what a kernel-thread switch costs a program. A switch here is one direction.\n\n"
                 "Creation: spawn + run + join of a green thread (its stack from a cache, as glibc caches\n"
                 "thread stacks), pthread_create + join, fork + exit + wait.\n\n"
                 "The sweep: N green threads yield round-robin, each yield one switch to the next thread.\n"
                 "Each switch touches the next thread's saved frame and record; once N of them no longer\n"
                 "fit in the caches, every switch misses. The resident memory per green thread is what N of\n"
                 "them added to the process (record, stack pages touched). A stack with its guard page is\n"
                 "two mappings and vm.max_map_count (65530 by default) limits a process's mappings, so above\n"
                 "--guard-limit threads the stacks are small slices of one arena, without guard pages.\n\n"
                 "Questions: why may a user-level switch skip the caller-saved registers? What would a\n"
                 "signal handler that ran on a green thread's stack need? Why do green threads not use a\n"
                 "second core (oslab-many-to-many), and why does one blocking read stop them all\n"
                 "(oslab-blocking)?",
  });
  const auto& counts = lab.list_option(
      "--counts", "Numbers of green threads in the sweep (2 or more)",
      {.full = {2, 10, 100, 1000, 10'000, 100'000, 1'000'000}, .quick = {2, 100, 20'000}}, 2, 4'000'000);
  const long& stack_kib = lab.integer_option("--stack", "Stack of a green thread with a guard page, KiB",
                                             {.full = 64, .quick = 64}, 8, 1 << 20);
  const long& arena_stack = lab.integer_option("--arena-stack", "Stack of a green thread from the arena, bytes",
                                               {.full = 2048, .quick = 2048}, 1024, 1 << 20);
  const long& guard_limit =
      lab.integer_option("--guard-limit", "Above this many green threads, arena stacks without guard pages",
                         {.full = 10'000, .quick = 10'000}, 1, 30'000);
  lab.sampling({.samples = {.full = 200, .quick = 20}, .budget_s = {.full = 0.5, .quick = 0.05}});

  std::optional<Experiment> experiment;
  auto prepare = [&](oslab::Report& report) {
    experiment.emplace(lab, counts, stack_kib, arena_stack, guard_limit, std::vector<int>{lab.options().cpus.front()});
    report.params["cpu"] = lab.options().cpus.front();
    report.params["thread_record_bytes"] = ut::thread_record_bytes();
  };
  return lab.run(
      argc, argv,
      [&](oslab::Report& report) {
        experiment->switches(report);
        experiment->kernel_switches(report);
        experiment->creation(report);
        experiment->sweep_counts(report);
        experiment->tables(report);
        experiment->verdicts(report);
        report.show_results_table = false;
      },
      prepare);
}
