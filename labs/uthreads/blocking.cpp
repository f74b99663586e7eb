// oslab-blocking: the many-to-one problem. Green threads count while one of them makes a
// blocking call; a watcher on another kernel thread reads the counters before and after a
// window during which the call is blocked.
//
// Try:     oslab-blocking                     every case, a 200 ms window
//          oslab-blocking --window 1000 --counters 8
// Expect:  read(2) on an empty pipe (or nanosleep) in one green thread stops every green
//          thread: the kernel put the only kernel thread to sleep (state S in /proc), and the
//          counters do not move for the whole window. Kernel threads (one-to-one) keep
//          counting. The cure: the library's uthread::read / sleep_for park only the calling
//          green thread (io_uring or epoll underneath), and the counters keep running.
// Compare: oslab-uthreads (what green threads gain: cheap switches), oslab-nonblock (the
//          non-blocking calls the cure is made of), oslab-echo (servers built each way).

#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <optional>
#include <thread>

#include <fmt/format.h>

#include "counters.hpp"
#include "oslab/error.hpp"
#include "oslab/handles.hpp"
#include "oslab/lab.hpp"
#include "uthread.hpp"

namespace {

namespace ut = oslab::uthread;
using oslab::check_errno;

enum class Blocker { read, nanosleep, uthread_read, uthread_sleep };

struct Case {
  std::string name;
  bool green;  // green threads on one kernel thread, else kernel threads
  Blocker blocker;
  ut::Io io = ut::Io::none;
};

struct Observation {
  uint64_t counted_in_window = 0;
  double window_ms = 0;
  double longest_pause_ms = 0;
  double blocked_ms = 0;    // how long the blocking call took
  char kernel_state = '?';  // of the kernel thread that made the call, during the window
  std::string io;
};

pid_t gettid_now() {
  return static_cast<pid_t>(::syscall(SYS_gettid));
}

// The state letter of one of our kernel threads: R running, S sleeping in the kernel.
char state_of(pid_t tid) {
  std::ifstream stat(fmt::format("/proc/self/task/{}/stat", tid));
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  const auto close = text.rfind(')');
  return close == std::string::npos || close + 2 >= text.size() ? '?' : text[close + 2];
}

void sleep_ms(double ms) {
  std::this_thread::sleep_for(std::chrono::microseconds(static_cast<int64_t>(ms * 1000)));
}

struct Experiment {
  long counters;
  double window_ms;
  std::vector<Case> cases;
  std::map<std::string, Observation> observed;

  // The watcher: waits until the blocker is in its call, counts over the window, releases it.
  struct Watch {
    std::atomic<bool> started{false};
    std::atomic<pid_t> blocker_tid{0};
    int64_t call_ns = 0, return_ns = 0;
  };

  Observation observe(const Case& c) const {
    ut::ProgressCounters progress(static_cast<size_t>(counters));
    oslab::Pipe pipe = oslab::Pipe::create();
    Watch watch;
    const double settle_ms = 10;
    const auto block = [&] {
      // Let every counter count first, so that a pause shows as one.
      if (c.green)
        for (int i = 0; i < 100; ++i) ut::yield();
      else
        while (progress.total() < 1000) std::this_thread::yield();
      watch.blocker_tid = gettid_now();
      watch.call_ns = oslab::now_ns();
      watch.started = true;
      char byte = 0;
      switch (c.blocker) {
        case Blocker::read: check_errno("read", ::read(pipe.read_end.get(), &byte, 1)); break;
        case Blocker::uthread_read: check_errno("uthread::read", ut::read(pipe.read_end.get(), &byte, 1)); break;
        case Blocker::nanosleep: {
          const auto ns = static_cast<int64_t>((settle_ms + window_ms + 20) * 1e6);
          timespec duration{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
          while (::nanosleep(&duration, &duration) == -1 && errno == EINTR) {
          }
          break;
        }
        case Blocker::uthread_sleep:
          ut::sleep_for(std::chrono::microseconds(static_cast<int64_t>((settle_ms + window_ms + 20) * 1000)));
          break;
      }
      watch.return_ns = oslab::now_ns();
    };
    Observation obs;
    std::optional<ut::Scheduler> scheduler;
    if (c.green) {
      ut::Options options;
      options.io = c.io;
      try {
        scheduler.emplace(options);
      } catch (const std::exception& error) {
        if (c.io == ut::Io::io_uring) throw oslab::SkipError(std::string("io_uring is not available: ") + error.what());
        throw;
      }
      obs.io = ut::to_string(scheduler->io());
    }
    std::jthread watcher([&] {
      while (!watch.started) sleep_ms(1);
      sleep_ms(settle_ms);  // let the call reach the kernel and the counters settle
      const uint64_t before = progress.total();
      const int64_t start = oslab::now_ns();
      obs.kernel_state = state_of(watch.blocker_tid);
      sleep_ms(window_ms);
      obs.counted_in_window = progress.total() - before;
      obs.window_ms = static_cast<double>(oslab::now_ns() - start) / 1e6;
      if (c.blocker == Blocker::read || c.blocker == Blocker::uthread_read)
        check_errno("write", ::write(pipe.write_end.get(), "x", 1));
      sleep_ms(20);
      progress.stop();
    });
    if (scheduler) {
      for (size_t i = 0; i < progress.size(); ++i)
        scheduler->spawn([&progress, i] {
          while (progress.step(i)) ut::yield();
        });
      scheduler->spawn(block);
      scheduler->run();
    } else {
      std::vector<std::jthread> threads;
      for (size_t i = 0; i < progress.size(); ++i)
        threads.emplace_back([&progress, i] {
          while (progress.step(i)) {
          }
        });
      threads.emplace_back(block);
    }
    watcher.join();
    obs.longest_pause_ms = static_cast<double>(progress.longest_pause_ns()) / 1e6;
    obs.blocked_ms = static_cast<double>(watch.return_ns - watch.call_ns) / 1e6;
    return obs;
  }

  void measure(oslab::Report& report) {
    for (const Case& c : cases)
      report.run_case(c.name, [&] {
        const Observation obs = observe(c);
        observed[c.name] = obs;
        report.add_samples("longest pause of a counter", {{"case", c.name}}, {obs.longest_pause_ms * 1e6},
                           {.what = "the longest time between two increments of any one counter, over the whole run",
                            .counters = {{"increments_in_window", static_cast<double>(obs.counted_in_window)},
                                         {"window_ms", obs.window_ms},
                                         {"blocking_call_ms", obs.blocked_ms}}});
      });
  }

  void tables(oslab::Report& report) const {
    oslab::Table table{
        fmt::format("{} counting threads and one that blocks, watched for {:.0f} ms", counters, window_ms),
        {"case", "threads", "the call", "counted in the window", "longest pause", "caller's state"},
        {},
        "caller's state: the kernel thread that made the call, from /proc/self/task/<tid>/stat during "
        "the window (S = asleep in the kernel, R = running). Green threads run on one kernel thread.",
        3};
    for (const Case& c : cases) {
      auto it = observed.find(c.name);
      if (it == observed.end()) continue;
      const Observation& obs = it->second;
      table.rows.push_back({c.name, c.green ? "green (M:1)" : "kernel (1:1)", fmt::format("{:.0f} ms", obs.blocked_ms),
                            fmt::format("{}", obs.counted_in_window), fmt::format("{:.1f} ms", obs.longest_pause_ms),
                            std::string(1, obs.kernel_state)});
    }
    report.table(table);
  }

  void verdicts(oslab::Report& report) const {
    auto find = [&](const std::string& name) -> const Observation* {
      auto it = observed.find(name);
      return it == observed.end() ? nullptr : &it->second;
    };
    const Observation* green_read = find("read(2), empty pipe");
    const Observation* green_sleep = find("nanosleep(2)");
    if (green_read != nullptr && green_sleep != nullptr)
      report.fact(
          "one-blocking-call-stops-all",
          "a blocking system call in one green thread stops every green thread of its kernel thread",
          green_read->counted_in_window == 0 && green_sleep->counted_in_window == 0 && green_read->kernel_state == 'S',
          fmt::format("read(2) on an empty pipe: {} increments in {:.0f} ms, the kernel thread in state {}, "
                      "counters paused {:.0f} ms; nanosleep: {} increments, paused {:.0f} ms",
                      green_read->counted_in_window, green_read->window_ms, green_read->kernel_state,
                      green_read->longest_pause_ms, green_sleep->counted_in_window, green_sleep->longest_pause_ms));
    if (const Observation* kernel = find("read(2), empty pipe, kernel threads"))
      report.fact("kernel-threads-keep-running", "with kernel threads, one blocked thread does not stop the others",
                  kernel->counted_in_window > 0,
                  fmt::format("{} increments in {:.0f} ms while one thread was blocked in read(2) (state {})",
                              kernel->counted_in_window, kernel->window_ms, kernel->kernel_state));
    std::vector<std::string> cured;
    bool all_ran = true;
    std::string evidence;
    for (const char* name : {"uthread::read, io_uring", "uthread::read, epoll", "uthread::sleep_for"}) {
      const Observation* obs = find(name);
      if (obs == nullptr) continue;
      cured.emplace_back(name);
      all_ran = all_ran && obs->counted_in_window > 0;
      evidence += fmt::format("{}{}: {} increments in {:.0f} ms, longest pause {:.2f} ms", evidence.empty() ? "" : "; ",
                              name, obs->counted_in_window, obs->window_ms, obs->longest_pause_ms);
    }
    if (!cured.empty())
      report.fact("parking-keeps-the-others-running",
                  "a read or sleep that parks only the green thread (io_uring or epoll underneath) lets the others run",
                  all_ran, evidence);
  }
};

}  // namespace

int main(int argc, char** argv) {
  oslab::Lab lab({
      .name = "blocking",
      .purpose = "many-to-one: one blocking call stops every green thread; parking IO (io_uring, epoll) does not",
      .claim = "The notes: with user-level threads (many-to-one), one thread that makes a blocking system\n"
               "call blocks the whole process; kernel threads (one-to-one) do not. The cure is\n"
               "non-blocking IO underneath the thread library.",
      .explain = "The kernel schedules kernel threads; it knows nothing of the green threads a library\n"
                 "multiplexes on one of them. When a green thread calls read(2) on an empty pipe, the\n"
                 "kernel puts that kernel thread to sleep (state S) until data arrives, and with it every\n"
                 "green thread it would have run: the scheduler in user space never gets the CPU back.\n"
                 "The lab shows it with counters: several green threads count and yield; one of them calls\n"
                 "read on an empty pipe (or nanosleep); a watcher on another kernel thread reads the\n"
                 "counters before and after a window, then writes the byte that ends the read. The\n"
                 "counters do not move for the whole window. With kernel threads, the same counters keep\n"
                 "counting on the other cores while one thread sleeps in read.\n\n"
                 "The cure is what every green-thread runtime does (Go, Java's virtual threads, Tokio,\n"
                 "libuv): the library's read parks only the calling green thread and hands the wait to the\n"
                 "kernel in a form that does not block. With io_uring, the read is submitted to a ring and\n"
                 "its completion wakes the green thread; with epoll, the fd is made non-blocking, and on\n"
                 "EAGAIN the thread waits for readiness. The scheduler asks the kernel for completions when\n"
                 "nothing else is runnable (and every 64 switches otherwise). sleep_for parks the thread\n"
                 "on a timer heap instead of calling nanosleep.\n\n"
                 "Questions: what would happen to a green thread that calls a library which reads a file\n"
                 "with plain read(2)? Why is a page fault on a memory-mapped file a blocking call too? How\n"
                 "do Go and Java's virtual threads handle system calls they cannot make non-blocking?",
  });
  const long& counters =
      lab.integer_option("--counters", "Counting threads beside the one that blocks", {.full = 3, .quick = 3}, 1, 64);
  const double& window_ms = lab.number_option("--window", "How long the watcher watches the blocked call, ms",
                                              {.full = 200, .quick = 40}, 5, 10'000);
  const auto& cases_chosen = lab.choice_option(
      "--cases", "Cases to run", {"read", "nanosleep", "kernel-threads", "io_uring", "epoll", "sleep_for"},
      {.full = {"read", "nanosleep", "kernel-threads", "io_uring", "epoll", "sleep_for"},
       .quick = {"read", "nanosleep", "kernel-threads", "io_uring", "epoll", "sleep_for"}});

  std::optional<Experiment> experiment;
  auto prepare = [&](oslab::Report&) {
    experiment.emplace();
    experiment->counters = counters;
    experiment->window_ms = window_ms;
    for (const std::string& name : cases_chosen) {
      if (name == "read") experiment->cases.push_back({"read(2), empty pipe", true, Blocker::read});
      if (name == "nanosleep") experiment->cases.push_back({"nanosleep(2)", true, Blocker::nanosleep});
      if (name == "kernel-threads")
        experiment->cases.push_back({"read(2), empty pipe, kernel threads", false, Blocker::read});
      if (name == "io_uring")
        experiment->cases.push_back({"uthread::read, io_uring", true, Blocker::uthread_read, ut::Io::io_uring});
      if (name == "epoll")
        experiment->cases.push_back({"uthread::read, epoll", true, Blocker::uthread_read, ut::Io::epoll});
      if (name == "sleep_for") experiment->cases.push_back({"uthread::sleep_for", true, Blocker::uthread_sleep});
    }
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
