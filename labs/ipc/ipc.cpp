// oslab-ipc: every way two processes on one machine talk, measured by one harness with the
// same statistics and placement: latency (a ping-pong) and bandwidth (a stream), every
// message checked, the system calls of a round trip counted by the kernel, beside memcpy and
// the cache-line floor measured in the same run.
//
// Try:     oslab-ipc                                  every transport, latency and bandwidth
//          oslab-ipc --transport pipe,shm-futex --mode latency --sizes 64,65536
//          oslab-ipc -T                               the same between threads
//          oslab-ipc --listen 7000                    on one machine, then on another:
//          oslab-ipc --connect HOST:7000 --transport tcp,udp
// Expect:  shared memory with busy polling is a few hundred nanoseconds a round trip, close
//          to two cache-line transfers; everything that needs the kernel to wake the other side
//          costs microseconds, and on one CPU a context switch each way. A pipe streams data at
//          a fraction of memcpy's rate (copied in and out of the kernel); a memfd both sides map
//          does not copy at all. Where the kernel caps a message (POSIX and System V queues,
//          datagrams) the lab says so instead of running a smaller one.
// Compare: oslab-c2c (the cache-line floor for every CPU pair), oslab-signals (what a signal
//          costs to deliver), oslab-shm (shared memory itself, and why it needs a semaphore).

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <optional>

#include <fmt/format.h>

#include "c2c.hpp"
#include "oslab/clock.hpp"
#include "oslab/cpu.hpp"
#include "oslab/error.hpp"
#include "oslab/format.hpp"
#include "oslab/handles.hpp"
#include "oslab/lab.hpp"
#include "oslab/message.hpp"
#include "oslab/syscalls.hpp"
#include "oslab/transports.hpp"

namespace {

using oslab::Placement;

std::vector<std::string> transport_keys() {
  std::vector<std::string> keys;
  for (const auto& info : oslab::transport_list()) keys.push_back(info.key);
  return keys;
}

std::string size_label(size_t bytes) {
  if (bytes >= (1u << 20) && bytes % (1u << 20) == 0) return fmt::format("{} MiB", bytes >> 20);
  if (bytes >= 1024 && bytes % 1024 == 0) return fmt::format("{} KiB", bytes >> 10);
  return fmt::format("{} B", bytes);
}

std::string megabytes(double mb_per_s) {
  return fmt::format("{} MB/s", oslab::format_number(mb_per_s));
}

// Busy polling of a small message is timed in batches: one round trip lasts a few timer reads.
constexpr int64_t kSpinBatch = 100;

// ---- Across machines: --listen and --connect ---------------------------------------------

// The answering side for another machine's oslab-ipc --connect: TCP connections one at a
// time, and UDP datagrams, on one port. A message is answered with a message of its size.
class Server {
 public:
  explicit Server(uint16_t port) {
    tcp_.reset(oslab::check_errno("socket", ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)));
    udp_.reset(oslab::check_errno("socket", ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)));
    const int one = 1;
    ::setsockopt(tcp_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_ANY);
    oslab::check_errno("bind (TCP)", ::bind(tcp_.get(), reinterpret_cast<sockaddr*>(&address), sizeof address));
    socklen_t length = sizeof address;
    oslab::check_errno("getsockname", ::getsockname(tcp_.get(), reinterpret_cast<sockaddr*>(&address), &length));
    port_ = ntohs(address.sin_port);
    oslab::check_errno("bind (UDP)", ::bind(udp_.get(), reinterpret_cast<sockaddr*>(&address), sizeof address));
    oslab::check_errno("listen", ::listen(tcp_.get(), 4));
  }
  uint16_t port() const { return port_; }

  // Serves until SIGINT or SIGTERM (or --timeout). Returns the messages answered.
  [[noreturn]] void serve() {
    std::vector<std::byte> buffer(1 << 24);
    for (;;) {
      pollfd fds[2] = {{tcp_.get(), POLLIN, 0}, {udp_.get(), POLLIN, 0}};
      if (::poll(fds, 2, -1) == -1 && errno != EINTR) throw oslab::SysError("poll", errno);
      if (fds[1].revents & POLLIN) {
        try {
          answer_datagram(buffer);
        } catch (const std::exception& e) {
          fmt::print(stderr, "{}: datagram: {}\n", oslab::program_name(), e.what());
        }
      }
      if (fds[0].revents & POLLIN) {
        oslab::UniqueFd connection(::accept4(tcp_.get(), nullptr, nullptr, SOCK_CLOEXEC));
        if (!connection.valid()) continue;
        const int one = 1;
        ::setsockopt(connection.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        try {
          serve_connection(connection.get(), buffer);
        } catch (const std::exception& e) {
          fmt::print(stderr, "{}: connection: {}\n", oslab::program_name(), e.what());
        }
      }
    }
  }

 private:
  oslab::MessageMaker& maker_for(size_t bytes) {
    auto it = makers_.find(bytes);
    if (it == makers_.end()) it = makers_.emplace(bytes, oslab::MessageMaker(bytes, 77)).first;
    return it->second;
  }
  void answer_datagram(std::vector<std::byte>& buffer) {
    sockaddr_storage from{};
    socklen_t length = sizeof from;
    const ssize_t n = ::recvfrom(udp_.get(), buffer.data(), 65536, 0, reinterpret_cast<sockaddr*>(&from), &length);
    if (n < static_cast<ssize_t>(oslab::kMessageHeaderBytes)) return;
    const size_t bytes = static_cast<size_t>(n);
    const uint64_t sequence = oslab::check_message({buffer.data(), bytes}, bytes, "udp");
    if (sequence == oslab::kStopSequence) return;
    const auto answer = maker_for(bytes).make(sequence | oslab::kReplyBit);
    ::sendto(udp_.get(), answer.data(), answer.size(), 0, reinterpret_cast<sockaddr*>(&from), length);
  }
  static bool read_all(int fd, std::byte* data, size_t size) {
    while (size > 0) {
      const ssize_t n = ::recv(fd, data, size, 0);
      if (n == 0) return false;
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw oslab::SysError("recv", errno);
      data += n;
      size -= static_cast<size_t>(n);
    }
    return true;
  }
  void serve_connection(int fd, std::vector<std::byte>& buffer) {
    for (;;) {
      oslab::MessageHeader header{};
      if (!read_all(fd, buffer.data(), sizeof header)) return;
      std::memcpy(&header, buffer.data(), sizeof header);
      if (header.size < sizeof header || header.size > buffer.size())
        throw std::runtime_error(fmt::format("a message says it is {} bytes long", header.size));
      if (!read_all(fd, buffer.data() + sizeof header, header.size - sizeof header)) return;
      const uint64_t sequence = oslab::check_message({buffer.data(), header.size}, header.size, "tcp");
      if (sequence == oslab::kStopSequence) return;
      const auto answer = maker_for(header.size).make(sequence | oslab::kReplyBit);
      if (::send(fd, answer.data(), answer.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(answer.size()))
        throw oslab::SysError("send", errno);
    }
  }
  oslab::UniqueFd tcp_, udp_;
  uint16_t port_ = 0;
  std::map<size_t, oslab::MessageMaker> makers_;
};

// The asking side against a remote Server: side 0 of the ping-pong, in this process.
class RemoteClient {
 public:
  RemoteClient(const std::string& host, const std::string& port, bool tcp, size_t bytes)
      : tcp_(tcp), bytes_(bytes), maker_(bytes, 99), buffer_(bytes) {
    addrinfo hints{};
    hints.ai_family = AF_INET;
    hints.ai_socktype = tcp ? SOCK_STREAM : SOCK_DGRAM;
    addrinfo* found = nullptr;
    if (int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &found); rc != 0)
      throw std::runtime_error(fmt::format("--connect {}:{}: {}", host, port, ::gai_strerror(rc)));
    std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> owned(found, ::freeaddrinfo);
    fd_.reset(oslab::check_errno("socket", ::socket(found->ai_family, found->ai_socktype | SOCK_CLOEXEC, 0)));
    oslab::check_errno(tcp ? "connect (TCP)" : "connect (UDP)",
                       ::connect(fd_.get(), found->ai_addr, found->ai_addrlen));
    const int one = 1;
    if (tcp) ::setsockopt(fd_.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    timeval timeout{2, 0};  // a lost datagram, or a silent server, is an error after 2 s
    ::setsockopt(fd_.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  }
  ~RemoteClient() {
    try {
      const auto bye = maker_.make(oslab::kStopSequence);
      ::send(fd_.get(), bye.data(), bye.size(), MSG_NOSIGNAL);
    } catch (...) {
    }
  }
  void ping(uint64_t sequence) {
    const auto message = maker_.make(sequence);
    if (::send(fd_.get(), message.data(), message.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(message.size()))
      throw oslab::SysError("send", errno);
    size_t got = 0;
    while (got < bytes_) {
      const ssize_t n = ::recv(fd_.get(), buffer_.data() + got, bytes_ - got, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0)
        throw oslab::SysError(errno == EAGAIN ? "recv (no answer within 2 s: a lost datagram or no server)" : "recv",
                              errno);
      if (n == 0) throw std::runtime_error("the server closed the connection");
      got += static_cast<size_t>(n);
      if (!tcp_) break;
    }
    const uint64_t answer = oslab::check_message({buffer_.data(), got}, bytes_, tcp_ ? "tcp" : "udp");
    oslab::expect_sequence(answer, sequence | oslab::kReplyBit, tcp_ ? "tcp" : "udp");
  }

 private:
  oslab::UniqueFd fd_;
  bool tcp_;
  size_t bytes_;
  oslab::MessageMaker maker_;
  oslab::MessageBuffer buffer_;
};

// ---- The experiment -------------------------------------------------------------------------

struct Options {
  std::vector<std::string> transports;
  bool latency = true, bandwidth = true;
  std::vector<size_t> sizes;
  std::vector<Placement> placements;
  std::string connect_host, connect_port;
};

struct Experiment {
  const oslab::Lab& lab;
  Options options;
  std::map<std::pair<std::string, size_t>, oslab::SyscallCheck> syscalls;
  std::string syscall_skip;  // why the system calls could not be counted, if they could not
  Placement verify_placement = Placement::two_cpus;

  bool threads() const { return lab.options().threads; }
  const oslab::TransportInfo& info(const std::string& key) const { return oslab::transport_info(key); }
  bool has(const std::string& key) const {
    return std::find(options.transports.begin(), options.transports.end(), key) != options.transports.end();
  }
  bool has(Placement placement) const {
    return std::find(options.placements.begin(), options.placements.end(), placement) != options.placements.end();
  }
  // The sizes a transport runs at: the sweep, or 8 bytes for the fixed-word transports.
  std::vector<size_t> sizes_of(const std::string& key) const {
    return info(key).fixed_word ? std::vector<size_t>{8} : options.sizes;
  }
  oslab::Assignment assignment(Placement placement) const {
    return oslab::assign_cpus(placement, 2, lab.options().cpus);
  }
  oslab::PartyOptions party_options(Placement placement) const {
    return {.threads = threads(),
            .assignment = assignment(placement),
            .deadline = std::chrono::seconds(lab.quick() ? 15 : 30)};
  }
  nlohmann::json params_of(const std::string& key, size_t bytes, Placement placement) const {
    nlohmann::json params = {{"transport", key}, {"bytes", bytes}, {"threads", threads()}};
    params.update(assignment(placement).to_json());
    return params;
  }
  std::string where(Placement placement) const {
    return fmt::format("{}, {}", assignment(placement).describe(), threads() ? "threads" : "processes");
  }

  // ---- System calls ----

  void count_syscalls(oslab::Report& report) {
    verify_placement = has(Placement::two_cpus) ? Placement::two_cpus : options.placements.front();
    // verify_syscalls counts with perf in each party; a party's SkipError reaches us as a side's
    // failure, so probe here first.
    try {
      oslab::SyscallCounter probe;
    } catch (const oslab::SkipError& e) {
      syscall_skip = e.what();
    }
    for (const auto& key : options.transports) {
      if (!info(key).latency) continue;
      for (size_t bytes : sizes_of(key)) {
        if (!syscall_skip.empty()) return;
        const std::string what = fmt::format("{}: system calls per round trip, {}", key, size_label(bytes));
        report.run_case(what, [&] {
          std::unique_ptr<oslab::Exchange> exchange;
          try {
            exchange = oslab::make_exchange(key, bytes, lab.options().seed);
          } catch (const oslab::SkipError&) {
            return;  // the latency case says why
          }
          const int round_trips = bytes >= (256u << 10) ? 20 : bytes >= (16u << 10) ? 50 : 200;
          try {
            syscalls[{key, bytes}] = oslab::verify_syscalls(*exchange, party_options(verify_placement), round_trips);
          } catch (const oslab::SkipError& e) {
            syscall_skip = e.what();
          }
        });
      }
    }
    if (!syscall_skip.empty())
      report.skip("system calls per round trip (every transport)",
                  "the kernel's count is not available: " + syscall_skip);
  }

  // ---- Latency ----

  void measure_latency(oslab::Report& report) {
    for (Placement placement : options.placements)
      for (const auto& key : options.transports) {
        if (!info(key).latency) continue;
        if (info(key).fixed_word && placement == options.placements.front() && options.sizes != std::vector<size_t>{8})
          report.note(fmt::format("{} carries a fixed 8 bytes: measured at 8 bytes only, not at --sizes", key));
        for (size_t bytes : sizes_of(key))
          report.run_case(fmt::format("{} latency, {}, {}", key, size_label(bytes), to_string(placement)),
                          [&] { latency_case(report, key, bytes, placement); });
      }
  }

  void latency_case(oslab::Report& report, const std::string& key, size_t bytes, Placement placement) {
    auto exchange = oslab::make_exchange(key, bytes, lab.options().seed);
    oslab::SamplingPlan plan = lab.plan();
    // Busy polling is batched only where a round trip lasts a few timer reads (small messages).
    const bool spin = key == "shm-spin" && bytes <= 4096;
    if (spin) plan.batch = kSpinBatch;
    const oslab::PingPongResult r = oslab::run_ping_pong(*exchange, party_options(placement), plan);
    std::map<std::string, double> counters = r.pong_counters.to_map("answerer_");
    if (auto found = syscalls.find({key, bytes}); found != syscalls.end())
      counters["syscalls_per_round_trip"] = found->second.per_round_trip;
    const std::string what = fmt::format(
        "one round trip of a {}-byte message each way ({}), {}; every message checked by both sides{}; counters: "
        "side 0's, and side 1's as answerer_*",
        bytes, info(key).what, where(placement),
        spin ? fmt::format("; a sample is the mean of {} round trips", kSpinBatch) : "");
    report.add("round trip", params_of(key, bytes, placement), r.round_trips,
               {.what = what,
                .counters = counters,
                .headline = (key == "pipe" || key == "shm-spin") && bytes == sizes_of(key).front()});
  }

  // ---- Bandwidth ----

  void measure_memcpy(oslab::Report& report) {
    std::vector<std::vector<std::byte>> sources, targets;
    std::vector<int64_t> repeats;
    std::vector<std::function<void(int64_t)>> ops;
    for (size_t bytes : options.sizes) {
      sources.emplace_back(bytes, std::byte{1});
      targets.emplace_back(bytes, std::byte{0});
      repeats.push_back(std::max<int64_t>(1, static_cast<int64_t>((256u << 10) / bytes)));
    }
    for (size_t i = 0; i < options.sizes.size(); ++i)
      ops.emplace_back([&, i](int64_t batch) {
        for (int64_t n = 0; n < batch * repeats[i]; ++n) {
          std::memcpy(targets[i].data(), sources[i].data(), options.sizes[i]);
          asm volatile("" : : "r"(targets[i].data()) : "memory");
        }
      });
    oslab::ScopedAffinity pinned(assignment(Placement::same_cpu).party_cpus.front());
    const auto measured = oslab::measure_interleaved(lab.plan(), ops);
    for (size_t i = 0; i < options.sizes.size(); ++i) {
      std::vector<double> rates;
      for (double ns : measured[i].samples_ns)
        rates.push_back(static_cast<double>(options.sizes[i]) * 1e3 / (ns / static_cast<double>(repeats[i])));
      report.add_samples("memcpy", {{"bytes", options.sizes[i]}}, rates,
                         {.what = fmt::format("memcpy of {} bytes between two buffers of this process, repeated "
                                              "{} times per sample (warm caches where they fit): MB/s (10^6 bytes/s)",
                                              options.sizes[i], repeats[i]),
                          .unit = "MB/s"},
                         measured[i].blocks);
    }
  }

  void measure_bandwidth(oslab::Report& report) {
    for (Placement placement : options.placements)
      for (const auto& key : options.transports) {
        if (!info(key).no_bandwidth.empty()) {
          if (placement == options.placements.front())
            report.skip(fmt::format("{} bandwidth", key), info(key).no_bandwidth);
          continue;
        }
        for (size_t bytes : options.sizes)
          report.run_case(fmt::format("{} bandwidth, {}, {}", key, size_label(bytes), to_string(placement)),
                          [&] { bandwidth_case(report, key, bytes, placement); });
      }
  }

  void bandwidth_case(oslab::Report& report, const std::string& key, size_t bytes, Placement placement) {
    auto stream = oslab::make_stream(key, bytes, lab.options().seed);
    oslab::SamplingPlan plan = lab.plan();
    plan.batch = std::clamp<int64_t>(static_cast<int64_t>((256u << 10) / bytes), 4, 1024);
    const oslab::StreamResult r = oslab::run_stream(*stream, party_options(placement), plan);
    std::vector<double> rates;
    for (double ns : r.per_message.samples_ns) rates.push_back(static_cast<double>(bytes) * 1e3 / ns);
    std::map<std::string, double> counters = r.receiver_per_message.to_map("receiver_");
    for (const auto& [name, value] : r.per_message.self_per_op.to_map("sender_")) counters[name] = value;
    report.add_samples(
        "stream", params_of(key, bytes, placement), rates,
        {.what = fmt::format("MB/s (10^6 bytes/s) of {} messages of {} bytes sent back to back from side 0 to side 1 "
                             "over {} (its side 0 to side 1 direction: {}), {}, each checked by the receiver; a sample "
                             "ends when side 1 has checked the last; counters per message",
                             plan.batch, bytes, key, info(key).what, where(placement)),
         .unit = "MB/s",
         .counters = counters,
         .headline = (key == "pipe" || key == "memfd") && bytes == options.sizes.back()},
        r.per_message.blocks);
  }

  // ---- The floor ----

  void measure_c2c(oslab::Report& report) {
    if (!has("shm-spin") || !has(Placement::two_cpus) || lab.options().cpus.size() < 2) return;
    const oslab::Assignment pair = assignment(Placement::two_cpus);
    report.run_case("c2c two-lines", [&] {
      oslab::SamplingPlan plan = lab.plan();
      plan.batch = oslab::ipc::kC2cBatch;
      const oslab::Measurement round_trips = oslab::ipc::measure_c2c(
          oslab::ipc::C2cTest::two_lines, pair.party_cpus[0].front(), pair.party_cpus[1].front(), plan);
      std::vector<double> one_way = round_trips.samples_ns;
      for (double& sample : one_way) sample /= 2;
      nlohmann::json params = pair.to_json();
      params["test"] = "two-lines";
      report.add_samples("c2c one-way", params, one_way,
                         {.what = fmt::format("oslab-c2c's two-lines ping-pong between threads on the same two CPUs: "
                                              "round trip / 2, a sample the mean of {} round trips",
                                              plan.batch)},
                         round_trips.blocks);
    });
  }

  // ---- Across machines ----

  void measure_remote(oslab::Report& report) {
    if (options.bandwidth)
      report.skip("bandwidth to " + options.connect_host,
                  "--connect measures round trips only; for a stream between machines use a tool made for it (iperf3)");
    for (const auto& key : options.transports) {
      if (key != "tcp" && key != "udp") {
        report.skip(fmt::format("{} to {}", key, options.connect_host), "only tcp and udp reach another machine");
        continue;
      }
      for (size_t bytes : options.sizes)
        report.run_case(
            fmt::format("{} to {}:{}, {}", key, options.connect_host, options.connect_port, size_label(bytes)), [&] {
              if (key == "udp" && bytes > oslab::message_limit("udp").max_bytes)
                throw oslab::SkipError(oslab::message_limit("udp").why);
              if (bytes < oslab::kMessageHeaderBytes) throw oslab::SkipError("a checked message is at least 16 bytes");
              RemoteClient client(options.connect_host, options.connect_port, key == "tcp", bytes);
              uint64_t sequence = 0;
              const oslab::Measurement m = oslab::measure(lab.plan(), [&](int64_t batch) {
                for (int64_t i = 0; i < batch; ++i) client.ping(++sequence);
              });
              report.add("round trip",
                         {{"transport", key},
                          {"bytes", bytes},
                          {"placement", "remote"},
                          {"peer", options.connect_host + ":" + options.connect_port}},
                         m,
                         {.what = fmt::format("one round trip of a {}-byte message each way to oslab-ipc "
                                              "--listen on {}, checked by both sides",
                                              bytes, options.connect_host)});
            });
    }
  }

  // ---- Tables ----

  void latency_tables(oslab::Report& report) const {
    for (Placement placement : options.placements) {
      oslab::Table table{fmt::format("Round trip, median ({}); one way = round trip / 2", where(placement)),
                         {"transport"},
                         {},
                         "Each message carries a sequence number and a checksum, checked on arrival, both ways.",
                         1};
      for (size_t bytes : options.sizes) table.header.push_back(size_label(bytes));
      for (const auto& key : options.transports) {
        if (!info(key).latency) continue;
        std::vector<std::string> row{key};
        for (size_t bytes : options.sizes) {
          const size_t run_at = info(key).fixed_word ? 8 : bytes;
          const oslab::Result* r = report.find("round trip", params_of(key, run_at, placement));
          if (info(key).fixed_word && bytes != options.sizes.front())
            row.emplace_back("");
          else
            row.push_back(r ? oslab::format_duration(r->summary.p50) + (info(key).fixed_word ? " (8 B)" : "") : "-");
        }
        table.rows.push_back(row);
      }
      report.table(table);

      const size_t smallest = options.sizes.front();
      oslab::Table detail{
          fmt::format("Round trip at {} (8 B for eventfd and signal): spread and costs ({})", size_label(smallest),
                      where(placement)),
          {"transport", "p50", "p99", "p99.9", "max", "one way (p50/2)", "switches/message (vol + invol)",
           "syscalls/round trip"},
          {},
          std::string("switches/message: context switches of both sides per message (getrusage): "
                      "voluntary (it blocked) + involuntary (preempted, or yielded); syscalls: counted "
                      "by the kernel in a separate pass, both sides, ") +
              to_string(verify_placement) + " only." +
              std::string(has("shm-spin") ? " shm-spin figures up to 4 KiB are means of batches of round trips." : ""),
          1};
      for (const auto& key : options.transports) {
        if (!info(key).latency) continue;
        const size_t bytes = info(key).fixed_word ? 8 : smallest;
        const oslab::Result* r = report.find("round trip", params_of(key, bytes, placement));
        if (r == nullptr) continue;
        const double voluntary =
            (r->counters.at("voluntary_switches") + r->counters.at("answerer_voluntary_switches")) / 2;
        const double involuntary =
            (r->counters.at("involuntary_switches") + r->counters.at("answerer_involuntary_switches")) / 2;
        auto syscalls_found = placement == verify_placement ? syscalls.find({key, bytes}) : syscalls.end();
        detail.rows.push_back(
            {key, oslab::format_duration(r->summary.p50), oslab::format_duration(r->summary.p99),
             oslab::format_duration(r->summary.p999), oslab::format_duration(r->summary.max),
             oslab::format_duration(r->summary.p50 / 2),
             fmt::format("{} + {}", oslab::format_number(voluntary), oslab::format_number(involuntary)),
             syscalls_found == syscalls.end() ? "-" : oslab::format_number(syscalls_found->second.per_round_trip)});
      }
      report.table(detail);
    }
  }

  void syscall_table(oslab::Report& report) const {
    if (syscalls.empty()) return;
    oslab::Table table{
        fmt::format("System calls per round trip, counted by the kernel, both sides ({})", where(verify_placement)),
        {"transport"},
        {},
        "= exactly, >= at least: what the transport must make (see the verdicts for why). A pipe "
        "holds " +
            size_label(oslab::pipe_capacity()) + ": a larger message needs more than one read.",
        1};
    for (size_t bytes : options.sizes) table.header.push_back(size_label(bytes));
    for (const auto& key : options.transports) {
      if (!info(key).latency) continue;
      std::vector<std::string> row{key};
      for (size_t bytes : options.sizes) {
        const size_t run_at = info(key).fixed_word ? 8 : bytes;
        auto found = syscalls.find({key, run_at});
        if (info(key).fixed_word && bytes != options.sizes.front()) {
          row.emplace_back("");
        } else if (found == syscalls.end()) {
          row.emplace_back("-");
        } else {
          const oslab::SyscallCheck& check = found->second;
          row.push_back(fmt::format("{} ({} {})", oslab::format_number(check.per_round_trip),
                                    check.expected.exact ? "=" : ">=", check.expected.count));
        }
      }
      table.rows.push_back(row);
    }
    report.table(table);
  }

  void bandwidth_tables(oslab::Report& report) const {
    for (Placement placement : options.placements) {
      oslab::Table table{
          fmt::format("Stream bandwidth, median, and its share of memcpy at that size ({})", where(placement)),
          {"transport"},
          {},
          "memcpy: one copy within one process, measured in this run (pinned, one CPU). A transport "
          "that copies through the kernel copies twice (in and out), and its receiver also reads "
          "every byte to check it.",
          1};
      for (size_t bytes : options.sizes) table.header.push_back(size_label(bytes));
      std::vector<std::string> memcpy_row{"memcpy"};
      for (size_t bytes : options.sizes) {
        const oslab::Result* r = report.find("memcpy", {{"bytes", bytes}});
        memcpy_row.push_back(r ? megabytes(r->summary.p50) : "-");
      }
      table.rows.push_back(memcpy_row);
      for (const auto& key : options.transports) {
        if (!info(key).no_bandwidth.empty()) continue;
        std::vector<std::string> row{key};
        for (size_t bytes : options.sizes) {
          const oslab::Result* r = report.find("stream", params_of(key, bytes, placement));
          const oslab::Result* copy = report.find("memcpy", {{"bytes", bytes}});
          row.push_back(!r     ? "-"
                        : copy ? fmt::format("{} ({})", megabytes(r->summary.p50),
                                             oslab::format_percent(r->summary.p50 / copy->summary.p50))
                               : megabytes(r->summary.p50));
        }
        table.rows.push_back(row);
      }
      report.table(table);
    }
  }

  void floor_table(oslab::Report& report) const {
    const oslab::Result* line = report.find("c2c one-way");  // only measured with two CPUs
    if (line == nullptr) return;
    const oslab::Result* spin =
        report.find("round trip", params_of("shm-spin", options.sizes.front(), Placement::two_cpus));
    if (spin == nullptr) return;
    report.table({"Busy polling against the hardware floor (same two CPUs, this run)",
                  {"CPUs", "c2c two-lines one way", "2 x one way", "shm-spin round trip", "ratio"},
                  {{spin->params.value("cpus", ""), oslab::format_duration(line->summary.p50),
                    oslab::format_duration(2 * line->summary.p50), oslab::format_duration(spin->summary.p50),
                    fmt::format("{:.2f}x", spin->summary.p50 / (2 * line->summary.p50))}},
                  fmt::format("shm-spin at {}: its message is copied in, its checksum computed on arrival, and its "
                              "answer sent back: a round trip needs at least two line transfers, the floor.",
                              size_label(options.sizes.front())),
                  1});
  }

  // ---- Verdicts ----

  void verdicts(oslab::Report& report) const {
    syscall_facts(report);
    const size_t smallest = options.sizes.front(), largest = options.sizes.back();
    const Placement across = has(Placement::two_cpus) ? Placement::two_cpus : options.placements.front();

    {
      const std::string claim =
          "shared memory avoids the kernel: a busy-polled shared-memory round trip is faster than a pipe's";
      const oslab::Result* spin = report.find("round trip", params_of("shm-spin", smallest, across));
      const oslab::Result* pipe = report.find("round trip", params_of("pipe", smallest, across));
      if (spin && pipe) {
        const oslab::Estimate factor = oslab::ratio_of(spin->summary, pipe->summary);
        report.verdict("shared-memory-beats-pipe", claim, factor, oslab::Compare::below, 1.0,
                       fmt::format("{} at {}: shm-spin {} vs pipe {} a round trip ({:.3f}x)", where(across),
                                   size_label(smallest), oslab::format_duration(spin->summary.p50),
                                   oslab::format_duration(pipe->summary.p50), factor.value));
      } else {
        report.skip(claim, "needs the shm-spin and pipe latencies");
      }
    }
    {
      const std::string claim =
          "processes talking through a pipe pay for copies: a pipe streams data more slowly "
          "than memcpy copies it";
      const oslab::Result* pipe = report.find("stream", params_of("pipe", largest, across));
      const oslab::Result* copy = report.find("memcpy", {{"bytes", largest}});
      if (pipe && copy) {
        const oslab::Estimate share = oslab::ratio_of(pipe->summary, copy->summary);
        report.verdict(
            "pipe-pays-for-copies", claim, share, oslab::Compare::below, 1.0,
            fmt::format("{} messages, {}: pipe {}, memcpy {} ({:.0f}% of memcpy)", size_label(largest), where(across),
                        megabytes(pipe->summary.p50), megabytes(copy->summary.p50), 100 * share.value));
      } else {
        report.skip(claim, "needs the pipe bandwidth and memcpy");
      }
    }
    {
      const std::string claim = "memory both sides map needs no copy: a memfd ring streams faster than a pipe";
      const oslab::Result* memfd = report.find("stream", params_of("memfd", largest, across));
      const oslab::Result* pipe = report.find("stream", params_of("pipe", largest, across));
      if (memfd && pipe) {
        const oslab::Estimate factor = oslab::ratio_of(memfd->summary, pipe->summary);
        report.verdict("zero-copy-beats-pipe", claim, factor, oslab::Compare::above, 1.0,
                       fmt::format("{} messages, {}: memfd {}, pipe {} ({:.2f}x)", size_label(largest), where(across),
                                   megabytes(memfd->summary.p50), megabytes(pipe->summary.p50), factor.value));
      } else {
        report.skip(claim, "needs the memfd and pipe bandwidths");
      }
    }
    {
      const std::string claim =
          "busy-polled shared memory comes within 1.5x of the hardware's floor, two cache-line "
          "transfers (2 x oslab-c2c's two-lines one-way time, same CPUs)";
      const oslab::Result* line = report.find("c2c one-way");  // only measured with two CPUs
      const oslab::Result* spin =
          line ? report.find("round trip", params_of("shm-spin", smallest, Placement::two_cpus)) : nullptr;
      if (line && spin) {
        oslab::Summary floor = line->summary;
        for (double* value : {&floor.p50, &floor.p50_ci_low, &floor.p50_ci_high}) *value *= 2;
        const oslab::Estimate factor = oslab::ratio_of(spin->summary, floor);
        report.verdict(
            "busy-poll-near-floor", claim, factor, oslab::Compare::below, 1.5,
            fmt::format("CPUs {}: shm-spin round trip {} at {}, c2c two-lines 2 x {} = {} ({:.2f}x)",
                        spin->params.value("cpus", ""), oslab::format_duration(spin->summary.p50), size_label(smallest),
                        oslab::format_duration(line->summary.p50), oslab::format_duration(floor.p50), factor.value));
      } else {
        report.skip(claim, "needs shm-spin latency on two CPUs and the c2c measurement");
      }
    }
  }

  void syscall_facts(oslab::Report& report) const {
    for (const auto& key : options.transports) {
      std::vector<std::string> counted;
      std::string last_why;
      const oslab::SyscallCheck* first = nullptr;
      for (size_t bytes : sizes_of(key)) {
        auto found = syscalls.find({key, bytes});
        if (found == syscalls.end()) continue;
        if (first == nullptr) first = &found->second;
        const oslab::SyscallCheck& check = found->second;
        std::string names;
        for (const auto& [name, count] : check.by_name)
          names += fmt::format("{}{} {}", names.empty() ? "" : ", ", name, oslab::format_number(count));
        counted.push_back(fmt::format("{}: {} ({}), {} {} expected", size_label(bytes),
                                      oslab::format_number(check.per_round_trip), names.empty() ? "none" : names,
                                      check.expected.exact ? "exactly" : "at least", check.expected.count));
        last_why = check.expected.why;
      }
      if (first == nullptr) continue;
      std::string evidence;
      for (const auto& line : counted) evidence += (evidence.empty() ? "" : "; ") + line;
      evidence += fmt::format(". Why: {} (counted by {}, {} round trips after a warm-up)", last_why, first->method,
                              "20 to 200");
      // A shortfall throws in verify_syscalls and fails the case: every count here passed.
      report.fact(fmt::format("syscalls-{}", key),
                  fmt::format("{}: a round trip makes the system calls the transport must make", key), true, evidence);
    }
  }
};

}  // namespace

int main(int argc, char** argv) {
  oslab::Lab lab({
      .name = "ipc",
      .purpose = "every IPC transport in one harness: round-trip latency, stream bandwidth, system calls, vs memcpy",
      .claim = "The notes: processes talk through pipes and sockets by message passing, which 'uses system\n"
               "calls to send / receive a message, which is slow', and pays for copying; shared memory\n"
               "'may be comparable to inter-thread communication'. Which is faster, by how much, and why?",
      .explain = "Two parties (processes, or threads with -T), pinned as --placement says, pass messages over\n"
                 "one transport at a time. Latency: side 0 sends a message of --sizes bytes and waits for an\n"
                 "answer of the same size (a round trip; one way is round trip / 2). Bandwidth: side 0 sends\n"
                 "messages back to back and side 1 takes them; a sample ends when side 1 has checked the last\n"
                 "of a batch (it says so through shared memory, outside the transport): MB/s.\n\n"
                 "Every message carries a sequence number, a stamp in every 4 KiB page and a checksum over\n"
                 "every byte; each receiver checks them all, so a transport that corrupts, drops or reorders\n"
                 "fails loudly. A separate pass counts, with the kernel's own count (perf, raw_syscalls), the\n"
                 "system calls of a round trip on both sides and checks them against what the transport\n"
                 "must make: exactly 4 for a pipe ping-pong of a small message (a write and a read each way);\n"
                 "at least 1 + size/capacity per message when it does not fit the pipe; at least 2 for a\n"
                 "futex or POSIX semaphore (a wake costs a call only when someone sleeps); 0 for busy polling.\n"
                 "Beside each latency: context switches per message. On one CPU each hand-off is a context\n"
                 "switch; on two CPUs it is a wake-up of the other CPU, unless the receiver spins.\n\n"
                 "Transports: pipe, fifo, unix-stream, unix-dgram, unix-seqpacket, tcp and udp over 127.0.0.1,\n"
                 "sysv-msg, posix-mq, sysv-shm (with a System V semaphore), posix-shm (with a process-shared\n"
                 "POSIX semaphore), shm-futex, shm-spin (busy polling), eventfd and signal (8 bytes only), and\n"
                 "for bandwidth vmsplice (the sender's pages spliced into a pipe) and memfd (a ring both map,\n"
                 "its fd passed once with SCM_RIGHTS: the message is built in place and checked in place).\n"
                 "Where the kernel caps a message (POSIX mq msgsize_max, System V msgmax and msgmnb, a UDP\n"
                 "datagram, a UNIX datagram's send buffer) that size is skipped with the limit named. The\n"
                 "memcpy rate at each size and the cache-line floor (oslab-c2c's two-lines, same CPUs) are\n"
                 "measured in the same run. Every object is private (IPC_PRIVATE, unique names, 0600) and\n"
                 "removed as soon as both sides hold it; a guardian process removes what cannot be (a System\n"
                 "V queue or semaphore set) if the lab is killed.\n\n"
                 "--listen PORT answers another machine's --connect HOST:PORT over TCP and UDP.\n\n"
                 "Questions: why is a pipe round trip on one CPU two context switches? Why does busy polling\n"
                 "lose on one CPU? Why does a 1 MiB message through a pipe need 16 reads? Why does a memfd\n"
                 "stream come closest to memcpy, and what would it take to beat it? What does a futex save\n"
                 "over a System V semaphore?",
      .placements = {Placement::same_cpu, Placement::two_cpus, Placement::unpinned},
      .default_placements = {Placement::same_cpu, Placement::two_cpus},
      .threads_switch = true,
  });
  const auto& transports = lab.choice_option("--transport", "Transports to measure", transport_keys(),
                                             {.full = transport_keys(), .quick = transport_keys()});
  const auto& modes = lab.choice_option("--mode", "latency (ping-pong), bandwidth (stream)", {"latency", "bandwidth"},
                                        {.full = {"latency", "bandwidth"}, .quick = {"latency", "bandwidth"}});
  const auto& sizes = lab.list_option("--sizes", "Message sizes in bytes (at least 16)",
                                      {.full = {64, 4096, 65536, 1 << 20}, .quick = {64, 65536}}, 16, 16 << 20);
  const long& listen = lab.integer_option("--listen",
                                          "Answer another machine's --connect on this TCP and UDP port "
                                          "(0: do not)",
                                          {.full = 0, .quick = 0}, 0, 65535);
  std::string connect_text;
  lab.cli().add_option("--connect", connect_text, "Measure tcp and udp against oslab-ipc --listen on HOST:PORT");
  lab.sampling({.samples = {.full = 200, .quick = 30}, .budget_s = {.full = 0.2, .quick = 0.02}, .warmup = 3});

  std::optional<Experiment> experiment;
  auto prepare = [&](oslab::Report&) {
    experiment.emplace(Experiment{lab, {}, {}, {}});
    Options& o = experiment->options;
    o.transports = transports;
    o.latency = std::find(modes.begin(), modes.end(), "latency") != modes.end();
    o.bandwidth = std::find(modes.begin(), modes.end(), "bandwidth") != modes.end();
    for (long size : sizes) o.sizes.push_back(static_cast<size_t>(size));
    std::sort(o.sizes.begin(), o.sizes.end());
    o.sizes.erase(std::unique(o.sizes.begin(), o.sizes.end()), o.sizes.end());
    o.placements = lab.quick() && !lab.given("--placement") ? std::vector<Placement>{Placement::two_cpus}
                                                            : lab.options().placements;
    if (lab.options().cpus.size() < 2) {
      std::erase(o.placements, Placement::two_cpus);
      if (o.placements.empty()) o.placements.push_back(Placement::same_cpu);
    }
    if (!connect_text.empty()) {
      const auto colon = connect_text.rfind(':');
      if (colon == std::string::npos || colon == 0 || colon + 1 == connect_text.size())
        throw oslab::UsageError("--connect: expected HOST:PORT, got '" + connect_text + "'");
      o.connect_host = connect_text.substr(0, colon);
      o.connect_port = connect_text.substr(colon + 1);
      oslab::parse_integer(o.connect_port, "--connect port", 1, 65535);
      if (listen != 0) throw oslab::UsageError("--listen and --connect: one machine listens, the other connects");
    }
    oslab::require_memory_mib(static_cast<double>(o.sizes.back() >> 20) * 24 + 16,
                              fmt::format("--sizes up to {}", size_label(o.sizes.back())));
  };
  return lab.run(
      argc, argv,
      [&](oslab::Report& report) {
        Experiment& e = *experiment;
        std::vector<std::string> names;
        for (Placement p : e.options.placements) names.emplace_back(to_string(p));
        report.params["placements"] = names;
        report.params["pipe_capacity"] = oslab::pipe_capacity();
        report.show_results_table = false;
        if (listen != 0) {
          Server server(static_cast<uint16_t>(listen));
          fmt::print(stderr, "{}: answering on TCP and UDP port {} until interrupted\n", oslab::program_name(),
                     server.port());
          server.serve();
        }
        if (!e.options.connect_host.empty()) {
          report.params["connect"] = connect_text;
          e.measure_remote(report);
          report.show_results_table = true;
          return;
        }
        if (e.options.latency) {
          e.count_syscalls(report);
          e.measure_latency(report);
          e.measure_c2c(report);
        }
        if (e.options.bandwidth) {
          e.measure_memcpy(report);
          e.measure_bandwidth(report);
        }
        e.latency_tables(report);
        e.syscall_table(report);
        e.floor_table(report);
        if (e.options.bandwidth) e.bandwidth_tables(report);
        e.verdicts(report);
      },
      prepare);
}
