// The load generator (loadgen.hpp): one epoll loop over every connection.

#include "loadgen.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <queue>
#include <stdexcept>

#include <fmt/format.h>

#include "oslab/clock.hpp"
#include "oslab/error.hpp"

namespace oslab::io {

void fill_message(uint32_t connection, uint64_t sequence, std::vector<char>& out, size_t bytes) {
  out.resize(bytes);
  // A header a human can read in a packet dump, then bytes that depend on both numbers.
  uint64_t state = (static_cast<uint64_t>(connection) << 32) ^ sequence ^ 0x9e3779b97f4a7c15ull;
  for (size_t i = 0; i < bytes; ++i) {
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    out[i] = static_cast<char>((state * 0x2545f4914f6cdd1dull) >> 56);
  }
  if (bytes >= 12) {
    std::memcpy(out.data(), &sequence, 8);
    std::memcpy(out.data() + 8, &connection, 4);
  }
}

uint64_t raise_fd_limit() {
  rlimit limit{};
  check_errno("getrlimit", ::getrlimit(RLIMIT_NOFILE, &limit));
  if (limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    check_errno("setrlimit RLIMIT_NOFILE", ::setrlimit(RLIMIT_NOFILE, &limit));
  }
  return limit.rlim_cur;
}

Connections::Connections(uint16_t port, size_t count, size_t batch, std::chrono::milliseconds timeout) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  UniqueFd epoll(check_errno("epoll_create1", ::epoll_create1(EPOLL_CLOEXEC)));
  const int64_t start = now_ns();
  const int64_t give_up = start + std::chrono::duration_cast<std::chrono::nanoseconds>(timeout).count();
  fds_.reserve(count);
  while (fds_.size() < count) {
    const size_t first = fds_.size();
    const size_t end = std::min(count, first + batch);
    for (size_t i = first; i < end; ++i) {
      UniqueFd fd(check_errno("socket", ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)));
      const int one = 1;
      check_errno("setsockopt TCP_NODELAY", ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one));
      if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0 && errno != EINPROGRESS)
        throw SysError("connect", errno);
      epoll_event event{};
      event.events = EPOLLOUT;
      event.data.u64 = i;
      check_errno("epoll_ctl", ::epoll_ctl(epoll.get(), EPOLL_CTL_ADD, fd.get(), &event));
      fds_.push_back(std::move(fd));
    }
    // Wait until the whole batch is established (writable, no error).
    size_t pending = end - first;
    std::vector<epoll_event> events(256);
    while (pending > 0) {
      const int64_t left_ms = (give_up - now_ns()) / 1'000'000;
      if (left_ms <= 0)
        throw std::runtime_error(fmt::format("{} of {} connections not established within {} ms", pending + count - end,
                                             count, timeout.count()));
      const int ready = ::epoll_wait(epoll.get(), events.data(), static_cast<int>(events.size()),
                                     static_cast<int>(std::min<int64_t>(left_ms, 1000)));
      if (ready < 0 && errno == EINTR) continue;
      check_errno("epoll_wait", ready);
      for (int e = 0; e < ready; ++e) {
        const int fd = fds_[events[static_cast<size_t>(e)].data.u64].get();
        int error = 0;
        socklen_t length = sizeof error;
        check_errno("getsockopt SO_ERROR", ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length));
        if (error != 0) throw SysError("connect (127.0.0.1)", error);
        check_errno("epoll_ctl DEL", ::epoll_ctl(epoll.get(), EPOLL_CTL_DEL, fd, nullptr));
        --pending;
      }
    }
  }
  connect_seconds_ = static_cast<double>(now_ns() - start) / 1e9;
  broken_.assign(fds_.size(), 0);
}

size_t Connections::broken_count() const noexcept {
  return static_cast<size_t>(std::count(broken_.begin(), broken_.end(), 1));
}

namespace {

struct Connection {
  int fd = -1;
  uint32_t id = 0;
  uint64_t next_send = 0;        // sequence of the next request
  uint64_t next_echo = 0;        // sequence of the next echo expected
  std::deque<int64_t> start_ns;  // of each request in flight: planned (open) or sent (closed)
  std::vector<char> out;         // bytes not yet written
  size_t out_offset = 0;
  std::vector<char> in;  // bytes of the echo being received
  bool want_out = false;
  bool failed = false;
  int64_t next_planned = 0;  // closed loop, paced: not before this
};

class Run {
 public:
  Run(Connections& connections, const LoadOptions& options) : owner_(connections), options_(options) {
    epoll_.reset(check_errno("epoll_create1", ::epoll_create1(EPOLL_CLOEXEC)));
    connections_.resize(connections.size());
    for (size_t i = 0; i < connections.size(); ++i) {
      Connection& c = connections_[i];
      c.fd = connections.fds()[i].get();
      c.id = static_cast<uint32_t>(i);
      c.failed = connections.broken(i);
      c.in.reserve(options.message_bytes);
      epoll_event event{};
      event.events = EPOLLIN;
      event.data.u64 = i;
      check_errno("epoll_ctl", ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, c.fd, &event));
    }
  }

  LoadResult run() {
    interval_ = options_.rate > 0 ? static_cast<int64_t>(1e9 / options_.rate) : 0;
    start_ = now_ns() + 1'000'000;  // 1 ms to settle
    stop_sending_ = start_ + std::chrono::duration_cast<std::chrono::nanoseconds>(options_.duration).count();
    const int64_t give_up =
        stop_sending_ + std::chrono::duration_cast<std::chrono::nanoseconds>(options_.deadline).count();
    if (options_.loop == Loop::closed)  // connection i starts at its share of the first round
      for (size_t i = 0; i < connections_.size(); ++i) {
        connections_[i].next_planned = start_ + interval_ * static_cast<int64_t>(i);
        due_.push({connections_[i].next_planned, i});
      }
    uint64_t next_k = 0;
    std::vector<epoll_event> events(1024);
    int64_t last_echo = start_;
    for (;;) {
      const int64_t now = now_ns();
      const bool sending = now < stop_sending_;
      if (sending && options_.loop == Loop::open) {
        // Send everything planned up to now, even if the server is behind.
        for (;;) {
          const int64_t planned = start_ + static_cast<int64_t>(next_k) * interval_;
          if (planned > now || planned >= stop_sending_) break;
          Connection& c = connections_[next_k % connections_.size()];
          result_.max_send_lag_ns = std::max(result_.max_send_lag_ns, static_cast<double>(now - planned));
          send_request(c, planned);
          ++next_k;
        }
      } else if (sending) {
        while (!due_.empty() && due_.top().first <= now) {
          Connection& c = connections_[due_.top().second];
          due_.pop();
          send_request(c, now);  // closed loop: latency from the actual send
        }
      }
      if (!sending && (in_flight_ == 0 || now > give_up)) break;
      int64_t wait_ns = 1'000'000;
      if (sending && options_.loop == Loop::open)
        wait_ns = start_ + static_cast<int64_t>(next_k) * interval_ - now;
      else if (sending && !due_.empty())
        wait_ns = std::min(wait_ns, due_.top().first - now);
      wait_ns = std::clamp<int64_t>(wait_ns, 0, 1'000'000);
      const timespec timeout{0, static_cast<long>(wait_ns)};
      const int ready = ::epoll_pwait2(epoll_.get(), events.data(), static_cast<int>(events.size()), &timeout, nullptr);
      if (ready < 0 && errno == EINTR) continue;
      check_errno("epoll_pwait2", ready);
      for (int e = 0; e < ready; ++e) {
        Connection& c = connections_[events[static_cast<size_t>(e)].data.u64];
        if ((events[static_cast<size_t>(e)].events & EPOLLOUT) != 0) flush(c);
        if ((events[static_cast<size_t>(e)].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) != 0 && receive(c))
          last_echo = now_ns();
      }
    }
    for (Connection& c : connections_)
      if (!c.start_ns.empty() || (c.failed && !owner_.broken(c.id))) {
        result_.lost += c.start_ns.size();
        owner_.mark_broken(c.id);
      }
    result_.seconds = static_cast<double>(std::max(last_echo, start_ + 1) - start_) / 1e9;
    result_.achieved_rate = static_cast<double>(result_.echoed) / result_.seconds;
    return result_;
  }

  std::vector<Connection>& connections() { return connections_; }

 private:
  void fail(Connection& c, const std::string& why) {
    if (c.failed) return;
    c.failed = true;
    ++result_.connection_errors;
    result_.lost += c.start_ns.size();  // what it had in flight will never come
    in_flight_ -= c.start_ns.size();
    c.start_ns.clear();
    if (result_.first_error.empty()) result_.first_error = fmt::format("connection {}: {}", c.id, why);
  }

  void send_request(Connection& c, int64_t start) {
    if (c.failed) {  // a request planned on a dead connection is lost, not skipped
      ++result_.sent;
      ++result_.lost;
      return;
    }
    fill_message(c.id, c.next_send++, message_, options_.message_bytes);
    c.out.insert(c.out.end(), message_.begin(), message_.end());
    c.start_ns.push_back(start);
    ++result_.sent;
    ++in_flight_;
    flush(c);
  }

  void flush(Connection& c) {
    while (c.out_offset < c.out.size()) {
      const ssize_t wrote = ::send(c.fd, c.out.data() + c.out_offset, c.out.size() - c.out_offset, MSG_NOSIGNAL);
      if (wrote < 0) {
        if (errno == EAGAIN) break;
        fail(c, "send: " + describe_errno(errno));
        return;
      }
      c.out_offset += static_cast<size_t>(wrote);
    }
    if (c.out_offset == c.out.size()) {
      c.out.clear();
      c.out_offset = 0;
    }
    const bool want = !c.out.empty();
    if (want != c.want_out) {
      epoll_event event{};
      event.events = EPOLLIN | (want ? EPOLLOUT : 0u);
      event.data.u64 = c.id;
      check_errno("epoll_ctl MOD", ::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, c.fd, &event));
      c.want_out = want;
    }
  }

  // Reads what arrived; returns true when at least one echo completed.
  bool receive(Connection& c) {
    bool completed = false;
    char buffer[16384];
    for (;;) {
      const ssize_t got = ::recv(c.fd, buffer, sizeof buffer, 0);
      if (got < 0) {
        if (errno != EAGAIN) fail(c, "recv: " + describe_errno(errno));
        return completed;
      }
      if (got == 0) {
        fail(c, "the server closed the connection");
        return completed;
      }
      for (ssize_t offset = 0; offset < got;) {
        const size_t take = std::min(options_.message_bytes - c.in.size(), static_cast<size_t>(got - offset));
        c.in.insert(c.in.end(), buffer + offset, buffer + offset + take);
        offset += static_cast<ssize_t>(take);
        if (c.in.size() < options_.message_bytes) continue;
        if (c.start_ns.empty()) {
          fail(c, "an echo arrived for a request never sent");
          return completed;
        }
        fill_message(c.id, c.next_echo++, expected_, options_.message_bytes);
        if (c.in != expected_) {
          ++result_.corrupt;
          if (result_.first_error.empty())
            result_.first_error = fmt::format("connection {}: echo {} differs from the request", c.id, c.next_echo - 1);
        } else {
          ++result_.echoed;
        }
        const int64_t now = now_ns();
        result_.latency.record(static_cast<double>(now - c.start_ns.front()));
        c.start_ns.pop_front();
        --in_flight_;
        c.in.clear();
        completed = true;
        if (options_.loop == Loop::closed) {  // the next request: now, or at its paced time
          c.next_planned = std::max(c.next_planned + interval_ * static_cast<int64_t>(connections_.size()), now);
          due_.push({c.next_planned, c.id});
        }
      }
    }
  }

  Connections& owner_;
  LoadOptions options_;
  UniqueFd epoll_;
  int64_t interval_ = 0, stop_sending_ = 0;
  uint64_t in_flight_ = 0;
  std::priority_queue<std::pair<int64_t, size_t>, std::vector<std::pair<int64_t, size_t>>, std::greater<>> due_;
  std::vector<Connection> connections_;
  LoadResult result_;
  std::vector<char> message_, expected_;
  int64_t start_ = 0;
};

}  // namespace

LoadResult run_load(Connections& connections, const LoadOptions& options) {
  if (connections.size() == 0) throw std::invalid_argument("run_load: no connections");
  if (options.loop == Loop::open && options.rate <= 0) throw std::invalid_argument("run_load: open loop needs a rate");
  if (options.message_bytes < 12) throw std::invalid_argument("run_load: messages are at least 12 bytes");
  Run run(connections, options);
  return run.run();
}

}  // namespace oslab::io
