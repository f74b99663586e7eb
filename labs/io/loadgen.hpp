// A load generator for echo servers: many TCP connections on loopback, requests sent on a
// planned schedule (open loop) or one at a time (closed loop), every echo verified byte by
// byte, every latency kept in a log-bucketed histogram.
//
// Open loop: request k is planned for start + k / rate, on connection k mod C, whatever the
// server is doing; its latency runs from that planned time to the last byte of its echo. A
// server that stalls cannot hide it: every request planned during the stall waits, and counts.
// Closed loop: each connection sends its next request when the previous echo is complete
// (paced: not before its own planned time); latency runs from the actual send. A stall then
// delays the sends themselves and only one request per connection sees it: "coordinated
// omission", which hides the tail.
//
// Runs in the calling thread (one epoll loop); the caller pins it.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "oslab/handles.hpp"
#include "oslab/histogram.hpp"

namespace oslab::io {

enum class Loop { open, closed };

struct LoadOptions {
  uint16_t port = 0;  // on 127.0.0.1
  Loop loop = Loop::open;
  double rate = 0;                          // requests per second, all connections together (0 in closed loop: unpaced)
  std::chrono::milliseconds duration{500};  // of sending
  std::chrono::milliseconds deadline{3000};  // requests not echoed this long after the sending ends are lost
  size_t message_bytes = 64;
};

struct LoadResult {
  LogHistogram latency;  // ns, per request
  uint64_t sent = 0, echoed = 0;
  uint64_t corrupt = 0;  // echoes whose bytes were not the request's
  uint64_t lost = 0;     // not echoed within the deadline (or a connection failed)
  uint64_t connection_errors = 0;
  double seconds = 0;          // from the first planned send to the last echo
  double achieved_rate = 0;    // echoed / seconds
  double max_send_lag_ns = 0;  // open loop: how late the generator itself sent (its own saturation)
  std::string first_error;
  bool clean() const { return corrupt == 0 && lost == 0 && connection_errors == 0 && echoed == sent; }
};

// Connections to one server, opened in batches so that the listen backlog never overflows.
class Connections {
 public:
  // Throws std::runtime_error when a connection fails or is not established in `timeout`.
  Connections(uint16_t port, size_t count, size_t batch = 1000,
              std::chrono::milliseconds timeout = std::chrono::milliseconds(20'000));
  size_t size() const noexcept { return fds_.size(); }
  const std::vector<UniqueFd>& fds() const noexcept { return fds_; }
  double connect_seconds() const noexcept { return connect_seconds_; }
  // A connection that lost a request is out of step with its echoes: later runs count every
  // request planned on it as lost.
  bool broken(size_t i) const noexcept { return broken_[i] != 0; }
  void mark_broken(size_t i) noexcept { broken_[i] = 1; }
  size_t broken_count() const noexcept;

 private:
  std::vector<UniqueFd> fds_;
  std::vector<char> broken_;
  double connect_seconds_ = 0;
};

// Runs one load on already-open connections. Each call starts from a clean slate: every
// connection has nothing in flight afterwards, or it is counted as lost and left unusable
// (later runs on it count as lost too).
LoadResult run_load(Connections& connections, const LoadOptions& options);

// The bytes of request `sequence` on connection `connection` (also what the echo must be).
void fill_message(uint32_t connection, uint64_t sequence, std::vector<char>& out, size_t bytes);

// Raises RLIMIT_NOFILE's soft limit to the hard limit; returns the new soft limit.
uint64_t raise_fd_limit();

}  // namespace oslab::io
