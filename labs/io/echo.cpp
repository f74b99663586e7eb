// oslab-echo: one echo server, seven concurrency models, under an honest load.
//
// Try:     oslab-echo                                   every model at 10, 1,000 and 10,000 connections
//          oslab-echo --models epoll-lt,green --connections 1,10,100,1000,10000
//          oslab-echo --load 50,80,95,99 --duration 1000
// Expect:  the server runs in its own process on one CPU, the load generator (this process)
//          on another. For each model and number of connections, a short closed-loop probe
//          finds the saturation rate; then requests are offered open-loop at 50%, 80% and 95%
//          of it, on a planned schedule, latency counted from the planned send time. Event
//          loops (epoll, io_uring) and green threads hold their throughput as connections grow
//          and cost a few KiB per connection; a kernel thread per connection costs a stack and a
//          switch per request; a fixed pool adds hand-offs between threads. Every echo is
//          checked byte for byte. The last table shows coordinated omission: a closed-loop
//          generator hides a server stall that the open-loop one reports.
// Compare: oslab-nonblock (the calls these servers are made of), oslab-blocking (why a green
//          thread must not block), oslab-uthreads (what a green switch costs).

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "loadgen.hpp"
#include "oslab/clock.hpp"
#include "oslab/cpu.hpp"
#include "oslab/error.hpp"
#include "oslab/lab.hpp"
#include "oslab/machine.hpp"
#include "oslab/process.hpp"

namespace {

using oslab::check_errno;
namespace lg = oslab::io;

constexpr long kOmissionConnections = 4;
const std::vector<std::string> kModels = {"threads",         "pool", "epoll-lt", "epoll-et", "uring",
                                          "uring-multishot", "green"};

std::string describe_model(const std::string& model) {
  if (model == "threads") return "a kernel thread per connection, blocking IO";
  if (model == "pool") return "a fixed thread pool sharing one epoll set (EPOLLONESHOT)";
  if (model == "epoll-lt") return "one thread, epoll level-triggered";
  if (model == "epoll-et") return "one thread, epoll edge-triggered";
  if (model == "uring") return "one thread, io_uring recv/send";
  if (model == "uring-multishot") return "one thread, io_uring multishot recv, provided buffers";
  return "a green thread per connection (oslab uthreads), io_uring underneath";
}

double kib_of_status(pid_t pid, const std::string& field) {
  std::ifstream status(fmt::format("/proc/{}/status", pid));
  std::string line;
  while (std::getline(status, line))
    if (line.starts_with(field + ":")) return std::atof(line.c_str() + field.size() + 1);
  return 0;
}

// Pages of TCP socket buffers in use, machine-wide (/proc/net/sockstat "TCP: ... mem N").
double tcp_buffer_pages() {
  std::ifstream sockstat("/proc/net/sockstat");
  std::string line;
  while (std::getline(sockstat, line)) {
    if (!line.starts_with("TCP:")) continue;
    const auto at = line.find(" mem ");
    return at == std::string::npos ? 0 : std::atof(line.c_str() + at + 5);
  }
  return 0;
}

// Kernel memory of socket objects: the "TCP" and "sock_inode_cache" slab caches (bytes), from
// /proc/slabinfo, which only root may read (-1 otherwise).
double socket_slab_bytes() {
  std::ifstream slabinfo("/proc/slabinfo");
  if (!slabinfo) return -1;
  std::string line;
  double bytes = 0;
  bool any = false;
  while (std::getline(slabinfo, line)) {
    std::istringstream fields(line);
    std::string name;
    double active = 0, total = 0, size = 0;
    fields >> name >> active >> total >> size;
    if (name == "TCP" || name == "sock_inode_cache") {
      bytes += active * size;
      any = true;
    }
  }
  return any ? bytes : -1;
}

// Sockets on `port` that are still open (LISTEN, ESTABLISHED, CLOSE_WAIT) in /proc/net/tcp:
// after a clean stop there are none (TIME_WAIT belongs to the kernel, not to a process).
size_t open_sockets_on(uint16_t port) {
  std::ifstream tcp("/proc/net/tcp");
  std::string line;
  std::getline(tcp, line);
  size_t open = 0;
  while (std::getline(tcp, line)) {
    std::istringstream fields(line);
    std::string slot, local, remote, state;
    fields >> slot >> local >> remote >> state;
    auto port_of = [](const std::string& address) {
      const auto colon = address.find(':');
      return colon == std::string::npos ? 0u
                                        : static_cast<unsigned>(std::stoul(address.substr(colon + 1), nullptr, 16));
    };
    if ((port_of(local) == port || port_of(remote) == port) && (state == "01" || state == "0A" || state == "08"))
      ++open;
  }
  return open;
}

// The server in its own process: the listening socket made here and passed as fd 3.
class ServerProcess {
 public:
  ServerProcess(const std::string& model, int cpu, long pool_threads, long stack_kib) {
    oslab::UniqueFd listen_fd(check_errno("socket", ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)));
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    check_errno("bind", ::bind(listen_fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address));
    check_errno("listen", ::listen(listen_fd.get(), 4096));
    socklen_t length = sizeof address;
    check_errno("getsockname", ::getsockname(listen_fd.get(), reinterpret_cast<sockaddr*>(&address), &length));
    port_ = ntohs(address.sin_port);
    output_ = oslab::Pipe::create();
    const std::string path = oslab::helper_path("oslab-echo-server");
    std::vector<std::string> args = {
        path, "--model", model, "--threads", std::to_string(pool_threads), "--stack-kib", std::to_string(stack_kib)};
    std::vector<char*> argv;
    for (auto& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    const int listen_raw = listen_fd.get(), out_raw = output_.write_end.get();
    child_ = oslab::Child::fork([&]() -> int {
      // Only async-signal-safe calls from here to exec.
      if (::dup2(out_raw, 1) < 0) oslab::child_fail("dup2", errno);
      if (listen_raw == 3) {
        if (::fcntl(3, F_SETFD, 0) < 0) oslab::child_fail("fcntl", errno);
      } else if (::dup2(listen_raw, 3) < 0) {
        oslab::child_fail("dup2", errno);
      }
      if (::sched_setaffinity(0, sizeof set, &set) < 0) oslab::child_fail("sched_setaffinity", errno);
      ::execv(argv[0], argv.data());
      oslab::child_fail("execv", errno);
      return 127;
    });
    output_.write_end.reset();
    const std::string first = read_line(std::chrono::seconds(10));
    if (first.starts_with("skip ")) {
      wait_end();
      throw oslab::SkipError(first.substr(5));
    }
    if (first != "ready")
      throw std::runtime_error(fmt::format("oslab-echo-server --model {}: said '{}'", model, first));
  }
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  uint16_t port() const noexcept { return port_; }
  pid_t pid() const noexcept { return child_.pid(); }

  // SIGTERM, then the server's own account of its stop; true when it exited 0 in time.
  bool stop(std::string& said) {
    ::kill(child_.pid(), SIGTERM);
    said = read_line(std::chrono::seconds(20));
    return wait_end().success();
  }

 private:
  oslab::ExitStatus wait_end() { return child_.wait(std::chrono::seconds(20)); }

  std::string read_line(std::chrono::milliseconds timeout) {
    std::string line;
    const int64_t give_up = oslab::now_ns() + std::chrono::duration_cast<std::chrono::nanoseconds>(timeout).count();
    for (;;) {
      const auto newline = buffer_.find('\n');
      if (newline != std::string::npos) {
        line = buffer_.substr(0, newline);
        buffer_.erase(0, newline + 1);
        return line;
      }
      const int64_t left = give_up - oslab::now_ns();
      if (left <= 0) throw std::runtime_error("oslab-echo-server did not answer in time");
      pollfd entry{output_.read_end.get(), POLLIN, 0};
      const int ready = ::poll(&entry, 1, static_cast<int>(left / 1'000'000) + 1);
      if (ready < 0 && errno == EINTR) continue;
      check_errno("poll", ready);
      if (ready == 0) continue;
      char chunk[256];
      const ssize_t got = ::read(output_.read_end.get(), chunk, sizeof chunk);
      if (got <= 0) return buffer_.empty() ? std::string("(the server ended)") : std::exchange(buffer_, {});
      buffer_.append(chunk, static_cast<size_t>(got));
    }
  }

  uint16_t port_ = 0;
  oslab::Pipe output_;
  oslab::Child child_;
  std::string buffer_;
};

struct SizeRun {
  std::string model;
  long connections = 0;
  double saturation_rps = 0;
  double connect_s = 0;
  double rss_kib_per_connection = 0;
  double tcp_kib_per_connection = 0;
  double slab_kib_per_connection = -1;     // -1: /proc/slabinfo not readable
  std::map<long, lg::LoadResult> by_load;  // offered percent -> result
  bool clean_stop = false;
  size_t left_open = 0;
  uint64_t lost = 0, corrupt = 0;
  std::string first_error;
};

struct Experiment {
  explicit Experiment(const oslab::Lab& l) : lab(l) {}
  const oslab::Lab& lab;
  std::vector<std::string> models;
  std::vector<long> connection_counts, loads;
  long duration_ms = 0, probe_ms = 0, message_bytes = 0, pool_threads = 0, stack_kib = 0, stall_ms = 0;
  int server_cpu = 0, generator_cpu = 0;
  uint64_t fd_limit = 0;
  std::vector<SizeRun> runs;
  std::optional<std::pair<lg::LoadResult, lg::LoadResult>> omission;  // closed, open
  double omission_rate = 0;

  void check_limits(const std::string& model, long connections) const {
    const uint64_t needed = static_cast<uint64_t>(connections) + 64;
    if (needed > fd_limit)
      throw oslab::SkipError(
          fmt::format("{} connections need {} descriptors in each process; RLIMIT_NOFILE is {} "
                      "(its hard limit, which root cannot raise here)",
                      connections, needed, fd_limit));
    if (model == "threads") {
      rlimit processes{};
      ::getrlimit(RLIMIT_NPROC, &processes);
      const double pid_max = std::atof(oslab::read_first_line("/proc/sys/kernel/pid_max").c_str());
      const double threads_max = std::atof(oslab::read_first_line("/proc/sys/kernel/threads-max").c_str());
      const double limit = std::min(
          {pid_max, threads_max, processes.rlim_cur == RLIM_INFINITY ? 1e18 : static_cast<double>(processes.rlim_cur)});
      if (static_cast<double>(connections) + 1000 > limit)
        throw oslab::SkipError(
            fmt::format("{} threads: pid_max, threads-max or RLIMIT_NPROC allows {:.0f} tasks", connections, limit));
    }
  }

  void measure(oslab::Report& report) {
    for (const std::string& model : models)
      for (long connections : connection_counts)
        report.run_case(fmt::format("{}, {} connections", model, connections), [&] {
          check_limits(model, connections);
          runs.push_back(run_size(report, model, connections));
        });
  }

  SizeRun run_size(oslab::Report& report, const std::string& model, long connections) {
    SizeRun run;
    run.model = model;
    run.connections = connections;
    ServerProcess server(model, server_cpu, pool_threads, stack_kib);
    const double rss_before = kib_of_status(server.pid(), "VmRSS");
    const double tcp_before = tcp_buffer_pages();
    const double slab_before = socket_slab_bytes();
    std::optional<lg::Connections> open;
    // A server on a busy CPU may accept slowly: 10 s, and 3 ms more per connection.
    open.emplace(server.port(), static_cast<size_t>(connections), 1000,
                 std::chrono::milliseconds(10'000 + 3 * connections));
    run.connect_s = open->connect_seconds();
    const double slab_after = socket_slab_bytes();
    if (slab_before >= 0 && slab_after >= 0)
      run.slab_kib_per_connection = std::max(0.0, slab_after - slab_before) / 1024 / static_cast<double>(connections);
    // The probe: closed loop, each connection one request at a time, as fast as echoes come.
    lg::LoadOptions probe{.port = server.port(),
                          .loop = lg::Loop::closed,
                          .rate = 0,
                          .duration = std::chrono::milliseconds(probe_ms),
                          .message_bytes = static_cast<size_t>(message_bytes)};
    const lg::LoadResult probed = lg::run_load(*open, probe);
    run.saturation_rps = probed.achieved_rate;
    run.rss_kib_per_connection =
        std::max(0.0, kib_of_status(server.pid(), "VmRSS") - rss_before) / static_cast<double>(connections);
    run.tcp_kib_per_connection = std::max(0.0, tcp_buffer_pages() - tcp_before) *
                                 static_cast<double>(oslab::page_size()) / 1024 / static_cast<double>(connections);
    account(run, probed);
    const nlohmann::json base = {{"model", model},
                                 {"connections", connections},
                                 {"message_bytes", message_bytes},
                                 {"server_cpu", server_cpu},
                                 {"generator_cpu", generator_cpu}};
    add(report, model, base, "closed", 0, probed,
        "closed loop: each connection sends its next request when the previous echo is back; latency from the send");
    for (long load : loads) {
      lg::LoadOptions offered{.port = server.port(),
                              .loop = lg::Loop::open,
                              .rate = run.saturation_rps * static_cast<double>(load) / 100,
                              .duration = std::chrono::milliseconds(duration_ms),
                              .message_bytes = static_cast<size_t>(message_bytes)};
      lg::LoadResult result;
      for (int repetition = 0; repetition < lab.iterations(1, 1); ++repetition) {
        lg::LoadResult one = lg::run_load(*open, offered);
        if (repetition == 0) {
          result = std::move(one);
        } else {
          result.latency.merge(one.latency);
          result.sent += one.sent;
          result.echoed += one.echoed;
          result.lost += one.lost;
          result.corrupt += one.corrupt;
          result.achieved_rate = (result.achieved_rate + one.achieved_rate) / 2;
        }
      }
      account(run, result);
      add(report, model, base, "open", load, result,
          fmt::format("open loop at {}% of the probe's rate: requests sent on a planned schedule, latency from the "
                      "planned send time to the whole echo",
                      load));
      run.by_load[load] = std::move(result);
    }
    std::string said;
    run.clean_stop = server.stop(said) && said.starts_with("stopped");
    open.reset();  // our side closes after the server's
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    run.left_open = open_sockets_on(server.port());
    return run;
  }

  static void account(SizeRun& run, const lg::LoadResult& result) {
    run.lost += result.lost;
    run.corrupt += result.corrupt;
    if (run.first_error.empty()) run.first_error = result.first_error;
  }

  void add(oslab::Report& report, const std::string& name, nlohmann::json params, const std::string& loop, long load,
           const lg::LoadResult& result, const std::string& what) const {
    params["loop"] = loop;
    params["offered_percent"] = load;
    if (result.latency.count() == 0) return;
    report.add_histogram(name, params, result.latency,
                         {.what = what + "; per request, log-bucketed (within 0.8%)",
                          .counters = {{"offered_rps", loop == "open" ? result.achieved_rate : 0},
                                       {"echoed_rps", result.achieved_rate},
                                       {"sent", static_cast<double>(result.sent)},
                                       {"echoed", static_cast<double>(result.echoed)},
                                       {"lost", static_cast<double>(result.lost)},
                                       {"corrupt", static_cast<double>(result.corrupt)},
                                       {"generator_lag_max_ns", result.max_send_lag_ns}},
                          .headline = loop == "open" && name == "epoll-lt"});
  }

  // Coordinated omission: the same server, the same rate, a stall of the server in the middle
  // (SIGSTOP for stall_ms), measured by a closed-loop and by an open-loop generator.
  void omission_demo(oslab::Report& report) {
    if (stall_ms == 0) return;
    report.run_case("coordinated omission", [&] {
      ServerProcess server("epoll-lt", server_cpu, pool_threads, stack_kib);
      lg::Connections open(server.port(), kOmissionConnections);
      const lg::LoadResult probed = lg::run_load(open, {.port = server.port(),
                                                        .loop = lg::Loop::closed,
                                                        .rate = 0,
                                                        .duration = std::chrono::milliseconds(probe_ms),
                                                        .message_bytes = static_cast<size_t>(message_bytes)});
      omission_rate = probed.achieved_rate / 2;
      const auto run_with_stall = [&](lg::Loop loop) {
        // Long enough that the few requests a closed loop delays are under 1% of all, short
        // enough that the stall holds well over 1% of the open loop's plan.
        const long duration = std::max(15 * stall_ms, 300L);
        std::jthread staller([&, duration] {
          std::this_thread::sleep_for(std::chrono::milliseconds(duration / 2));
          ::kill(server.pid(), SIGSTOP);
          std::this_thread::sleep_for(std::chrono::milliseconds(stall_ms));
          ::kill(server.pid(), SIGCONT);
        });
        return lg::run_load(open, {.port = server.port(),
                                   .loop = loop,
                                   .rate = omission_rate,
                                   .duration = std::chrono::milliseconds(duration),
                                   .message_bytes = static_cast<size_t>(message_bytes)});
      };
      lg::LoadResult closed = run_with_stall(lg::Loop::closed);
      lg::LoadResult open_loop = run_with_stall(lg::Loop::open);
      const nlohmann::json params = {{"model", "epoll-lt"},
                                     {"connections", kOmissionConnections},
                                     {"stall_ms", stall_ms},
                                     {"rate_rps", omission_rate}};
      report.add_histogram("stalled server, closed loop", params, closed.latency,
                           {.what = "closed loop paced at the rate: a connection's next request waits for its echo; "
                                    "latency from the actual send"});
      report.add_histogram("stalled server, open loop", params, open_loop.latency,
                           {.what = "open loop at the rate: requests planned on a schedule; latency from the planned "
                                    "send time"});
      std::string said;
      server.stop(said);
      omission.emplace(std::move(closed), std::move(open_loop));
    });
  }

  static std::string rate(double rps) {
    return rps >= 1e6   ? fmt::format("{:.2f}M/s", rps / 1e6)
           : rps >= 1e3 ? fmt::format("{:.1f}k/s", rps / 1e3)
                        : fmt::format("{:.0f}/s", rps);
  }

  const SizeRun* find(const std::string& model, long connections) const {
    for (const SizeRun& run : runs)
      if (run.model == model && run.connections == connections) return &run;
    return nullptr;
  }

  void tables(oslab::Report& report) const {
    oslab::Table described{"The models", {"model", "how it serves its connections"}, {}, "", 1};
    for (const std::string& model : models) described.rows.push_back({model, describe_model(model)});
    report.table(described);
    const long middle = loads[loads.size() / 2];
    for (long connections : connection_counts) {
      oslab::Table table{fmt::format("{} connections: saturation (closed-loop probe), then open loop at {}% of it",
                                     connections, middle),
                         {"model", "saturation", "vs epoll-lt", "p50", "p99", "p99.9", "max", "server KiB/conn",
                          "sockets KiB/conn", "verified"},
                         {},
                         "Latency from the planned send time to the whole echo. server KiB/conn: the server's resident "
                         "memory added per connection (VmRSS, after the probe). sockets KiB/conn: the kernel's socket "
                         "objects (slab caches TCP and sock_inode_cache, both ends of each loopback connection; "
                         "needs root) plus TCP buffers in use after the probe (/proc/net/sockstat; idle sockets hold "
                         "none); both machine-wide. verified: every echo byte compared; lost = not echoed within the "
                         "deadline.",
                         1};
      const SizeRun* base = find("epoll-lt", connections);
      for (const std::string& model : models) {
        const SizeRun* run = find(model, connections);
        if (run == nullptr) continue;
        auto it = run->by_load.find(middle);
        const bool have = it != run->by_load.end() && it->second.latency.count() > 0;
        const oslab::Summary s = have ? it->second.latency.summary() : oslab::Summary{};
        table.rows.push_back(
            {model, rate(run->saturation_rps),
             base ? fmt::format("{:.2f}x", oslab::ratio(run->saturation_rps, base->saturation_rps)) : "",
             have ? oslab::format_duration(s.p50) : "", have ? oslab::format_duration(s.p99) : "",
             have ? oslab::format_duration(s.p999) : "", have ? oslab::format_duration(s.max) : "",
             fmt::format("{:.1f}", run->rss_kib_per_connection),
             run->slab_kib_per_connection < 0
                 ? fmt::format("{:.1f} + ?", run->tcp_kib_per_connection)
                 : fmt::format("{:.1f}", run->slab_kib_per_connection + run->tcp_kib_per_connection),
             run->lost + run->corrupt == 0 ? "all" : fmt::format("{} lost, {} wrong", run->lost, run->corrupt)});
      }
      report.table(table);
      report.plot(
          {.id = fmt::format("latency-cdf-{}", connections),
           .title = fmt::format("Echo latency, {} connections, open loop at {}% of saturation", connections, middle),
           .kind = "cdf",
           .x_label = "latency from the planned send",
           .where = {{"connections", connections}, {"offered_percent", middle}, {"loop", "open"}},
           .log_x = true});
    }
    if (omission) {
      const auto& [closed, open] = *omission;
      const oslab::Summary c = closed.latency.summary(), o = open.latency.summary();
      report.table(
          {fmt::format("Coordinated omission: epoll-lt, {} connections, {} offered, the server stopped "
                       "(SIGSTOP) for {} ms mid-run",
                       kOmissionConnections, rate(omission_rate), stall_ms),
           {"generator", "requests", "p50", "p99", "p99.9", "max"},
           {{"closed loop (latency from the send)", fmt::format("{}", closed.echoed), oslab::format_duration(c.p50),
             oslab::format_duration(c.p99), oslab::format_duration(c.p999), oslab::format_duration(c.max)},
            {"open loop (latency from the plan)", fmt::format("{}", open.echoed), oslab::format_duration(o.p50),
             oslab::format_duration(o.p99), oslab::format_duration(o.p999), oslab::format_duration(o.max)}},
           "The closed-loop generator stops sending while the server is stopped, so only one request per "
           "connection sees the stall; the open-loop one keeps its schedule, and every request planned "
           "during the stall is counted late.",
           1});
    }
  }

  void verdicts(oslab::Report& report) const {
    uint64_t lost = 0, corrupt = 0, echoed = 0;
    size_t unclean = 0, left_open = 0;
    std::string first_error;
    for (const SizeRun& run : runs) {
      lost += run.lost;
      corrupt += run.corrupt;
      for (const auto& [load, result] : run.by_load) echoed += result.echoed;
      unclean += !run.clean_stop;
      left_open += run.left_open;
      if (first_error.empty()) first_error = run.first_error;
    }
    if (!runs.empty()) {
      report.fact("every-echo-verified", "every model echoed every request, byte for byte, within the deadline",
                  lost == 0 && corrupt == 0,
                  fmt::format("{} runs, {} echoes checked in the open-loop runs; {} lost, {} wrong{}", runs.size(),
                              echoed, lost, corrupt, first_error.empty() ? "" : " (first: " + first_error + ")"));
      report.fact("servers-stop-cleanly",
                  "every server stopped on SIGTERM (exit 0), and no socket of its port stayed open",
                  unclean == 0 && left_open == 0,
                  fmt::format("{} servers; {} did not stop cleanly; {} sockets left open (LISTEN, ESTABLISHED or "
                              "CLOSE_WAIT in /proc/net/tcp)",
                              runs.size(), unclean, left_open));
    }
    const long largest = connection_counts.back();
    const SizeRun* threads = find("threads", largest);
    const SizeRun* epoll = find("epoll-lt", largest);
    const SizeRun* green = find("green", largest);
    if (threads != nullptr && epoll != nullptr) {
      const double r = oslab::ratio(epoll->saturation_rps, threads->saturation_rps);
      report.verdict("event-loop-beats-threads-at-scale",
                     "at many connections, one event-loop thread echoes more than a thread per connection",
                     oslab::Estimate{r, r, r}, oslab::Compare::above, 1.0,
                     fmt::format("{} connections: epoll-lt {}, threads {} at saturation; server memory per connection "
                                 "{:.1f} vs {:.1f} KiB",
                                 largest, rate(epoll->saturation_rps), rate(threads->saturation_rps),
                                 epoll->rss_kib_per_connection, threads->rss_kib_per_connection));
    }
    if (green != nullptr && epoll != nullptr) {
      const double r = oslab::ratio(green->saturation_rps, epoll->saturation_rps);
      report.verdict("green-threads-keep-up",
                     "green threads with parking IO serve many connections at least half as fast as a hand-written "
                     "event loop",
                     oslab::Estimate{r, r, r}, oslab::Compare::above, 0.5,
                     fmt::format("{} connections: green {}, epoll-lt {}", largest, rate(green->saturation_rps),
                                 rate(epoll->saturation_rps)));
    }
    if (omission) {
      const double c = omission->first.latency.percentile(0.99), o = omission->second.latency.percentile(0.99);
      const double r = oslab::ratio(o, c);
      report.verdict(
          "closed-loop-hides-the-stall",
          "a closed-loop generator reports a far lower p99 than an open-loop one for the same stalled server",
          oslab::Estimate{r, r, r}, oslab::Compare::above, 2,
          fmt::format("server stopped {} ms at {}: p99 closed loop {}, open loop {}", stall_ms, rate(omission_rate),
                      oslab::format_duration(c), oslab::format_duration(o)));
    }
  }
};

}  // namespace

int main(int argc, char** argv) {
  oslab::Lab lab({
      .name = "echo",
      .purpose =
          "echo servers: thread per connection, pool, epoll (LT/ET), io_uring, green threads, under open-loop load",
      .claim = "The notes: blocking IO ties up a thread per request; non-blocking IO lets one thread serve\n"
               "many. Here one echo server is built seven ways and measured under the same honest load.",
      .explain = "The server (libexec/oslab-echo-server) runs in its own process, pinned to one CPU; this\n"
                 "process is the load generator, pinned to another. Both raise RLIMIT_NOFILE to its hard\n"
                 "limit: each needs one descriptor per connection. Connections are opened in batches of\n"
                 "1,000 (the listen backlog is 4,096), on loopback.\n\n"
                 "The models: a kernel thread per connection with blocking read/write (64 KiB stacks); a\n"
                 "fixed pool of threads sharing one epoll set with EPOLLONESHOT; one thread with epoll,\n"
                 "level-triggered (one read per event) and edge-triggered (read until EAGAIN); one thread\n"
                 "with io_uring (a recv, then a send, per connection); io_uring with multishot recv into a\n"
                 "ring of provided buffers (one recv request serves many messages); and oslab's green\n"
                 "threads, one per connection, whose read/write park on io_uring.\n\n"
                 "The load: for each model and number of connections, a closed-loop probe (each connection\n"
                 "sends its next request as soon as its echo is back) finds the saturation rate. Then the\n"
                 "generator offers 50%, 80% and 95% of it open-loop: request k is planned for start + k/rate\n"
                 "on connection k mod C and sent then, whatever the server is doing; its latency runs from\n"
                 "that planned time to the last byte of its echo. A generator that waited for each answer\n"
                 "before sending the next would send less while the server stalls, and so record fewer\n"
                 "slow requests: coordinated omission. The last table shows it on a server stopped with\n"
                 "SIGSTOP mid-run. Every echo is compared byte for byte; latencies go into log-bucketed\n"
                 "histograms (0.8% resolution), so percentiles cover every request.\n\n"
                 "Memory per connection: the server's VmRSS added per connection, and the TCP buffer pages\n"
                 "the kernel counts in /proc/net/sockstat (machine-wide: both ends of each connection).\n\n"
                 "Questions: why does the thread-per-connection server slow down as connections grow,\n"
                 "though only a few are busy at a time? What does a thread pool add to each request's\n"
                 "path? When does io_uring's batching pay off? Why is a closed-loop benchmark's p99 a lie\n"
                 "under a stall?",
  });
  const auto& models =
      lab.choice_option("--models", "Concurrency models of the server", kModels, {.full = kModels, .quick = kModels});
  const auto& connections = lab.list_option("--connections", "Numbers of connections, comma-separated",
                                            {.full = {10, 1000, 10'000}, .quick = {10}}, 1, 100'000);
  const auto& loads = lab.list_option("--load", "Offered load, percent of the saturation rate",
                                      {.full = {50, 80, 95}, .quick = {80}}, 1, 200);
  const long& duration_ms = lab.integer_option("--duration", "Milliseconds of sending per open-loop run",
                                               {.full = 400, .quick = 120}, 10, 600'000);
  const long& probe_ms = lab.integer_option("--probe", "Milliseconds of the closed-loop saturation probe",
                                            {.full = 250, .quick = 80}, 10, 600'000);
  const long& message_bytes =
      lab.integer_option("--size", "Bytes per request (and echo)", {.full = 64, .quick = 64}, 12, 65536);
  const long& pool_threads =
      lab.integer_option("--pool-threads", "Threads of the pool model", {.full = 4, .quick = 4}, 1, 1024);
  const long& stall_ms = lab.integer_option("--stall",
                                            "Milliseconds the server is stopped in the coordinated-omission "
                                            "run (0: no such run)",
                                            {.full = 100, .quick = 20}, 0, 10'000);
  std::optional<Experiment> experiment;
  auto prepare = [&](oslab::Report& report) {
    const std::vector<int>& cpus = lab.options().cpus;
    experiment.emplace(lab);
    Experiment& e = *experiment;
    e.models = models;
    e.connection_counts = connections;
    e.loads = loads;
    e.duration_ms = duration_ms;
    e.probe_ms = probe_ms;
    e.message_bytes = message_bytes;
    e.pool_threads = pool_threads;
    e.stack_kib = 64;
    e.stall_ms = stall_ms;
    experiment->server_cpu = cpus.front();
    experiment->generator_cpu = cpus.size() > 1 ? cpus[1] : cpus.front();
    experiment->fd_limit = lg::raise_fd_limit();
    report.params["fd_limit"] = experiment->fd_limit;
    report.params["server_cpu"] = experiment->server_cpu;
    report.params["generator_cpu"] = experiment->generator_cpu;
    if (cpus.size() < 2) report.note("one CPU only: the server and the load generator share it");
  };
  return lab.run(
      argc, argv,
      [&](oslab::Report& report) {
        oslab::ScopedAffinity pinned({experiment->generator_cpu});
        experiment->measure(report);
        experiment->omission_demo(report);
        experiment->tables(report);
        experiment->verdicts(report);
        report.show_results_table = false;
      },
      prepare);
}
