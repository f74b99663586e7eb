// oslab-nonblock: what blocking, non-blocking, readiness (select, poll, epoll) and completion
// (io_uring) IO mean on a real descriptor, and what each path costs when the descriptor is
// ready and when it is not.
//
// Try:     oslab-nonblock
//          oslab-nonblock --iterations 500
// Expect:  a blocking read waits until data comes; with O_NONBLOCK the same read returns
//          EAGAIN at once (nothing is queued: the caller must come back); select, poll and
//          epoll say when to come back. Level-triggered epoll reports a descriptor again while
//          data remains; edge-triggered reports only new data, so a handler that reads part of
//          it never hears of the rest (the classic starvation bug, shown). io_uring queues the
//          read and completes it later. Each check or attempt is one system call, ready or not.
// Compare: oslab-blocking (what a blocking call does to green threads), oslab-echo (servers).

#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#include <map>
#include <optional>
#include <thread>

#include <fmt/format.h>

#include "oslab/clock.hpp"
#include "oslab/error.hpp"
#include "oslab/handles.hpp"
#include "oslab/lab.hpp"
#include "oslab/syscalls.hpp"

#ifdef OSLAB_HAVE_LIBURING
#include <liburing.h>
#endif

namespace {

using oslab::check_errno;
using oslab::check_neg;

oslab::UniqueFd epoll_watching(int fd, uint32_t events) {
  oslab::UniqueFd epoll(check_errno("epoll_create1", ::epoll_create1(EPOLL_CLOEXEC)));
  epoll_event event{};
  event.events = events;
  event.data.fd = fd;
  check_errno("epoll_ctl", ::epoll_ctl(epoll.get(), EPOLL_CTL_ADD, fd, &event));
  return epoll;
}

int epoll_ready(int epoll) {
  epoll_event event{};
  return check_errno("epoll_wait", ::epoll_wait(epoll, &event, 1, 0));
}

int bytes_waiting(int fd) {
  int bytes = 0;
  check_errno("ioctl FIONREAD", ::ioctl(fd, FIONREAD, &bytes));
  return bytes;
}

// ---- The semantics, each a small experiment with a fact as its result -----------------------

struct Semantics {
  oslab::Report& report;

  void blocking_read_waits() {
    oslab::Pipe pipe = oslab::Pipe::create();
    int64_t written_ns = 0;
    std::jthread writer([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(30));
      written_ns = oslab::now_ns();
      check_errno("write", ::write(pipe.write_end.get(), "x", 1));
    });
    const int64_t start = oslab::now_ns();
    char byte = 0;
    const ssize_t got = check_errno("read", ::read(pipe.read_end.get(), &byte, 1));
    const int64_t returned = oslab::now_ns();
    writer.join();
    report.fact("blocking-read-waits", "a blocking read of an empty pipe waits until data arrives",
                got == 1 && returned >= written_ns,
                fmt::format("read returned {} byte {:.1f} ms after it was called, {:.3f} ms after another thread "
                            "wrote",
                            got, static_cast<double>(returned - start) / 1e6,
                            static_cast<double>(returned - written_ns) / 1e6));
  }

  void nonblocking_read_says_eagain() {
    oslab::Pipe pipe = oslab::Pipe::create(O_NONBLOCK);
    char byte = 0;
    const int64_t start = oslab::now_ns();
    const ssize_t got = ::read(pipe.read_end.get(), &byte, 1);
    const int error = errno;
    const int64_t took = oslab::now_ns() - start;
    check_errno("write", ::write(pipe.write_end.get(), "y", 1));
    const ssize_t later = ::read(pipe.read_end.get(), &byte, 1);
    report.fact("nonblocking-read-returns-eagain",
                "with O_NONBLOCK, a read of an empty pipe returns EAGAIN at once and queues nothing: the caller must "
                "try again once data is there",
                got == -1 && error == EAGAIN && later == 1 && byte == 'y',
                fmt::format("read returned {} ({}) after {}; after a write, a second read returned {} byte", got,
                            oslab::errno_name(error), oslab::format_duration(static_cast<double>(took)), later));
  }

  void readiness_is_reported() {
    oslab::Pipe pipe = oslab::Pipe::create();
    const int fd = pipe.read_end.get();
    auto select_ready = [fd] {
      fd_set set;
      FD_ZERO(&set);
      FD_SET(fd, &set);
      timeval zero{};
      return check_errno("select", ::select(fd + 1, &set, nullptr, nullptr, &zero));
    };
    auto poll_ready = [fd] {
      pollfd entry{fd, POLLIN, 0};
      return check_errno("poll", ::poll(&entry, 1, 0));
    };
    oslab::UniqueFd epoll = epoll_watching(fd, EPOLLIN);
    const int empty[3] = {select_ready(), poll_ready(), epoll_ready(epoll.get())};
    check_errno("write", ::write(pipe.write_end.get(), "z", 1));
    const int full[3] = {select_ready(), poll_ready(), epoll_ready(epoll.get())};
    report.fact(
        "readiness-is-reported", "select, poll and epoll report a descriptor ready to read only once data is there",
        empty[0] == 0 && empty[1] == 0 && empty[2] == 0 && full[0] == 1 && full[1] == 1 && full[2] == 1,
        fmt::format("ready descriptors reported for an empty pipe: select {}, poll {}, epoll {}; after one byte: "
                    "select {}, poll {}, epoll {}",
                    empty[0], empty[1], empty[2], full[0], full[1], full[2]));
  }

  // Two bytes arrive; the handler reads one per notification.
  void level_vs_edge() {
    struct Seen {
      int first = 0, second = 0, left = 0, after_new_data = 0;
    };
    auto run = [](uint32_t mode) {
      oslab::Pipe pipe = oslab::Pipe::create(O_NONBLOCK);
      const int fd = pipe.read_end.get();
      oslab::UniqueFd epoll = epoll_watching(fd, EPOLLIN | mode);
      check_errno("write", ::write(pipe.write_end.get(), "ab", 2));
      Seen seen;
      char byte = 0;
      seen.first = epoll_ready(epoll.get());
      check_errno("read", ::read(fd, &byte, 1));  // the handler reads one byte only
      seen.second = epoll_ready(epoll.get());
      seen.left = bytes_waiting(fd);
      check_errno("write", ::write(pipe.write_end.get(), "c", 1));
      seen.after_new_data = epoll_ready(epoll.get());
      return seen;
    };
    const Seen level = run(0);
    const Seen edge = run(EPOLLET);
    report.fact("level-triggered-reports-again",
                "level-triggered epoll reports a descriptor again as long as unread data remains",
                level.first == 1 && level.second == 1,
                fmt::format("2 bytes written, 1 read: epoll_wait reported the pipe {} then {} time(s)", level.first,
                            level.second));
    report.fact("edge-triggered-starves-a-partial-reader",
                "edge-triggered epoll reports only new data: a handler that reads part of it is not told of the rest "
                "until more arrives (so it must read until EAGAIN)",
                edge.first == 1 && edge.second == 0 && edge.left == 1 && edge.after_new_data == 1,
                fmt::format("2 bytes written, 1 read: reported {} then {} time(s) with {} byte still unread; reported "
                            "again ({}) only when another byte arrived",
                            edge.first, edge.second, edge.left, edge.after_new_data));
  }

  void io_uring_completes_later() {
#ifdef OSLAB_HAVE_LIBURING
    io_uring ring{};
    const int rc = ::io_uring_queue_init(8, &ring, 0);
    if (rc < 0) throw oslab::SkipError("io_uring_queue_init: " + oslab::describe_errno(-rc));
    struct Exit {
      io_uring& ring;
      ~Exit() { ::io_uring_queue_exit(&ring); }
    } exit{ring};
    oslab::Pipe pipe = oslab::Pipe::create();
    char buffer[4] = {};
    io_uring_sqe* sqe = ::io_uring_get_sqe(&ring);
    ::io_uring_prep_read(sqe, pipe.read_end.get(), buffer, sizeof buffer, ~0ull);
    const int64_t start = oslab::now_ns();
    const int submitted = check_neg("io_uring_submit", ::io_uring_submit(&ring));
    const int64_t submit_ns = oslab::now_ns() - start;
    io_uring_cqe* cqe = nullptr;
    const bool done_before_write = ::io_uring_peek_cqe(&ring, &cqe) == 0;
    check_errno("write", ::write(pipe.write_end.get(), "data", 4));
    check_neg("io_uring_wait_cqe", ::io_uring_wait_cqe(&ring, &cqe));
    const int result = cqe->res;
    ::io_uring_cqe_seen(&ring, cqe);
    report.fact(
        "io-uring-completes-later",
        "io_uring queues a read of an empty pipe and returns at once; the read completes when data arrives",
        submitted == 1 && !done_before_write && result == 4 && std::string(buffer, 4) == "data",
        fmt::format("io_uring_submit returned {} after {}; no completion before the write; then the read "
                    "completed with {} bytes \"{}\"",
                    submitted, oslab::format_duration(static_cast<double>(submit_ns)), result, std::string(buffer, 4)));
#else
    throw oslab::SkipError("built without liburing");
#endif
  }
};

// ---- The cost of each path: a socket with one byte waiting (ready) or none (not ready) -------

struct Path {
  std::string name;
  std::function<void(int64_t)> ready, not_ready;  // not_ready empty: it would block
  uint64_t expected_calls = 1;
};

struct Costs {
  oslab::UniqueFd ready_a, ready_b, empty_a, empty_b;
  oslab::UniqueFd ready_epoll, empty_epoll;
#ifdef OSLAB_HAVE_LIBURING
  std::optional<io_uring> ring;
#endif
  std::string uring_skip;

  Costs() {
    int pair[2];
    check_errno("socketpair", ::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair));
    ready_a.reset(pair[0]);
    ready_b.reset(pair[1]);
    check_errno("socketpair", ::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair));
    empty_a.reset(pair[0]);
    empty_b.reset(pair[1]);
    check_errno("write", ::write(ready_b.get(), "r", 1));  // stays: every read below only peeks
    ready_epoll = epoll_watching(ready_a.get(), EPOLLIN);
    empty_epoll = epoll_watching(empty_a.get(), EPOLLIN);
#ifdef OSLAB_HAVE_LIBURING
    ring.emplace();
    const int rc = ::io_uring_queue_init(8, &*ring, 0);
    if (rc < 0) {
      ring.reset();
      uring_skip = "io_uring_queue_init: " + oslab::describe_errno(-rc);
    }
#else
    uring_skip = "built without liburing";
#endif
  }
  ~Costs() {
#ifdef OSLAB_HAVE_LIBURING
    if (ring) ::io_uring_queue_exit(&*ring);
#endif
  }
  Costs(const Costs&) = delete;
  Costs& operator=(const Costs&) = delete;

  static void peek(int fd, int flags, int64_t n) {
    char byte = 0;
    for (int64_t i = 0; i < n; ++i)
      if (::recv(fd, &byte, 1, MSG_PEEK | flags) < 0 && errno != EAGAIN) throw oslab::SysError("recv", errno);
  }
  static void select_on(int fd, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
      fd_set set;
      FD_ZERO(&set);
      FD_SET(fd, &set);
      timeval zero{};
      check_errno("select", ::select(fd + 1, &set, nullptr, nullptr, &zero));
    }
  }
  static void poll_on(int fd, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
      pollfd entry{fd, POLLIN, 0};
      check_errno("poll", ::poll(&entry, 1, 0));
    }
  }
  static void epoll_on(int epoll, int64_t n) {
    for (int64_t i = 0; i < n; ++i) epoll_ready(epoll);
  }
#ifdef OSLAB_HAVE_LIBURING
  void uring_peek(int fd, int64_t n) {
    char byte = 0;
    for (int64_t i = 0; i < n; ++i) {
      io_uring_sqe* sqe = ::io_uring_get_sqe(&*ring);
      ::io_uring_prep_recv(sqe, fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
      io_uring_cqe* cqe = nullptr;
      check_neg("io_uring_submit_and_wait", ::io_uring_submit_and_wait(&*ring, 1));
      check_neg("io_uring_peek_cqe", ::io_uring_peek_cqe(&*ring, &cqe));
      if (cqe->res < 0 && cqe->res != -EAGAIN) throw oslab::SysError("io_uring recv", -cqe->res);
      ::io_uring_cqe_seen(&*ring, cqe);
    }
  }
#endif

  std::vector<Path> paths() {
    const int ready = ready_a.get(), empty = empty_a.get();
    std::vector<Path> all = {
        {"blocking recv", [ready](int64_t n) { peek(ready, 0, n); }, {}},
        {"non-blocking recv", [ready](int64_t n) { peek(ready, MSG_DONTWAIT, n); },
         [empty](int64_t n) { peek(empty, MSG_DONTWAIT, n); }},
        {"select", [ready](int64_t n) { select_on(ready, n); }, [empty](int64_t n) { select_on(empty, n); }},
        {"poll", [ready](int64_t n) { poll_on(ready, n); }, [empty](int64_t n) { poll_on(empty, n); }},
        {"epoll_wait", [this](int64_t n) { epoll_on(ready_epoll.get(), n); },
         [this](int64_t n) { epoll_on(empty_epoll.get(), n); }},
    };
#ifdef OSLAB_HAVE_LIBURING
    if (ring)
      all.push_back({"io_uring recv", [this, ready](int64_t n) { uring_peek(ready, n); },
                     [this, empty](int64_t n) { uring_peek(empty, n); }});
#endif
    return all;
  }
};

struct Experiment {
  const oslab::Lab& lab;
  std::map<std::string, double> calls_per_op;

  void costs(oslab::Report& report) {
    Costs costs;
    if (!costs.uring_skip.empty()) report.skip("io_uring recv", costs.uring_skip);
    std::vector<Path> paths = costs.paths();
    std::vector<std::function<void(int64_t)>> ops;
    std::vector<std::pair<std::string, bool>> labels;
    for (const Path& path : paths) {
      ops.push_back(path.ready);
      labels.emplace_back(path.name, true);
      if (path.not_ready) {
        ops.push_back(path.not_ready);
        labels.emplace_back(path.name, false);
      }
    }
    oslab::SamplingPlan plan = lab.plan();
    plan.batch = oslab::calibrate_batch(ops[1], oslab::timer_info().overhead_ns, 100);
    const auto measured = oslab::measure_interleaved(plan, ops);
    for (size_t i = 0; i < ops.size(); ++i) {
      const std::string name = labels[i].first;
      const bool ready = labels[i].second;
      report.add(name, {{"descriptor", ready ? "ready" : "not ready"}}, measured[i],
                 {.what = fmt::format("one call on a UNIX stream socket {} (reads peek: MSG_PEEK keeps the byte for "
                                      "the next call; timeouts are 0); a sample is a batch's mean",
                                      ready ? "with one byte waiting" : "with nothing to read")});
      report.run_case(fmt::format("system calls of {} ({})", name, ready ? "ready" : "not ready"), [&] {
        // io_uring's rings are not inherited by a forked child (MADV_DONTFORK): perf only.
        const bool uring = name.starts_with("io_uring");
        const oslab::SyscallCounts counts = oslab::count_syscalls(
            [&] { ops[i](100); }, uring ? oslab::CountMethod::perf : oslab::CountMethod::automatic);
        calls_per_op[name + (ready ? "/ready" : "/not ready")] = static_cast<double>(counts.total) / 100;
      });
    }
  }

  void tables(oslab::Report& report) const {
    oslab::Table table{"One call on a socket, ready (a byte waiting) and not ready (empty)",
                       {"path", "ready", "calls", "not ready", "calls"},
                       {},
                       "calls = system calls per operation, counted by the kernel. A blocking recv on an empty "
                       "socket would wait (see the first fact).",
                       1};
    for (const char* name : {"blocking recv", "non-blocking recv", "select", "poll", "epoll_wait", "io_uring recv"}) {
      const oslab::Result* ready = report.find(name, {{"descriptor", "ready"}});
      if (ready == nullptr) continue;
      const oslab::Result* not_ready = report.find(name, {{"descriptor", "not ready"}});
      auto calls = [&](const std::string& key) {
        auto it = calls_per_op.find(key);
        return it == calls_per_op.end() ? std::string("?") : oslab::format_number(it->second);
      };
      table.rows.push_back({name, oslab::format_duration(ready->summary.p50), calls(std::string(name) + "/ready"),
                            not_ready ? oslab::format_duration(not_ready->summary.p50) : "blocks",
                            not_ready ? calls(std::string(name) + "/not ready") : ""});
    }
    report.table(table);
  }

  void verdicts(oslab::Report& report) const {
    const oslab::Result* ready = report.find("non-blocking recv", {{"descriptor", "ready"}});
    const oslab::Result* not_ready = report.find("non-blocking recv", {{"descriptor", "not ready"}});
    if (ready != nullptr && not_ready != nullptr)
      report.verdict(
          "an-attempt-costs-a-system-call",
          "trying a non-blocking read that finds nothing is not free: it costs a system call, about what a "
          "successful one costs",
          oslab::ratio_of(not_ready->summary, ready->summary), oslab::Compare::above, 0.5,
          fmt::format("recv(MSG_DONTWAIT) that returns EAGAIN {}, one that returns a byte {}",
                      oslab::format_duration(not_ready->summary.p50), oslab::format_duration(ready->summary.p50)));
  }
};

}  // namespace

int main(int argc, char** argv) {
  oslab::Lab lab({
      .name = "nonblock",
      .purpose = "blocking, O_NONBLOCK, select/poll/epoll (level and edge) and io_uring: what each does and costs",
      .claim = "The notes: a blocking IO call leaves the thread unable to do anything until the IO is\n"
               "done; a non-blocking call returns at once and the thread carries on.",
      .explain = "A read on an empty pipe or socket blocks: the kernel puts the thread to sleep until data\n"
                 "arrives. With O_NONBLOCK (or MSG_DONTWAIT) the same read returns -1 with EAGAIN at once.\n"
                 "Nothing is queued: the thread must try again later, and to know when, it asks the kernel\n"
                 "which descriptors are ready: select and poll take the whole list on every call; epoll\n"
                 "keeps the list in the kernel (epoll_ctl) and returns only the ready ones.\n\n"
                 "Level-triggered epoll (the default) reports a descriptor on every epoll_wait while it is\n"
                 "readable. Edge-triggered (EPOLLET) reports it when new data arrives; a handler that reads\n"
                 "only part of the data is not told of the rest until more comes, possibly never: with ET\n"
                 "one must read until EAGAIN. The lab shows the stuck byte with FIONREAD.\n\n"
                 "io_uring is completion-based: the read itself is queued in a ring shared with the kernel,\n"
                 "io_uring_submit returns at once, and the completion appears in the completion ring when\n"
                 "the data has been read into the buffer. That is the non-blocking IO the notes describe\n"
                 "(\"queued straight away\"); O_NONBLOCK is not: it only refuses to wait.\n\n"
                 "The costs are per call, on a UNIX stream socket with one byte waiting (ready) or empty\n"
                 "(not ready); reads peek (MSG_PEEK), so the ready socket stays ready; every timeout is 0.\n"
                 "The system calls of each path are counted by the kernel.\n\n"
                 "Questions: why does select cost more as the highest descriptor number grows, whatever\n"
                 "the number of descriptors watched? When is edge-triggered worth its trouble? What does\n"
                 "io_uring save when a server has many operations in flight?",
  });
  lab.sampling({.samples = {.full = 200, .quick = 30}, .budget_s = {.full = 0.3, .quick = 0.03}});
  return lab.run(argc, argv, [&](oslab::Report& report) {
    Semantics semantics{report};
    report.run_case("a blocking read waits", [&] { semantics.blocking_read_waits(); });
    report.run_case("O_NONBLOCK returns EAGAIN", [&] { semantics.nonblocking_read_says_eagain(); });
    report.run_case("select, poll and epoll report readiness", [&] { semantics.readiness_is_reported(); });
    report.run_case("level- and edge-triggered epoll", [&] { semantics.level_vs_edge(); });
    report.run_case("io_uring completes a read later", [&] { semantics.io_uring_completes_later(); });
    Experiment experiment{lab, {}};
    experiment.costs(report);
    experiment.tables(report);
    experiment.verdicts(report);
    report.show_results_table = false;
  });
}
