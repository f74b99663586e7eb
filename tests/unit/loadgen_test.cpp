// The echo load generator (labs/io/loadgen.hpp) against small echo servers made here: every
// echo counted and verified, a corrupted echo caught, a dropped connection counted as lost.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "loadgen.hpp"
#include "oslab/error.hpp"

namespace oslab::io {
namespace {

enum class Misbehaviour { none, corrupt, drop_first };

// A thread-per-connection echo server on 127.0.0.1:<ephemeral>, stopped by the destructor.
class TestServer {
 public:
  explicit TestServer(Misbehaviour misbehaviour = Misbehaviour::none) : misbehaviour_(misbehaviour) {
    listen_.reset(check_errno("socket", ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)));
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    check_errno("bind", ::bind(listen_.get(), reinterpret_cast<sockaddr*>(&address), sizeof address));
    check_errno("listen", ::listen(listen_.get(), 1024));
    socklen_t length = sizeof address;
    check_errno("getsockname", ::getsockname(listen_.get(), reinterpret_cast<sockaddr*>(&address), &length));
    port_ = ntohs(address.sin_port);
    acceptor_ = std::thread([this] { accept_loop(); });
  }
  ~TestServer() {
    stop_ = true;
    ::shutdown(listen_.get(), SHUT_RDWR);
    acceptor_.join();
    for (auto& thread : connections_) thread.join();
  }
  TestServer(const TestServer&) = delete;
  TestServer& operator=(const TestServer&) = delete;
  uint16_t port() const { return port_; }

 private:
  void accept_loop() {
    for (int index = 0;; ++index) {
      const int fd = ::accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) return;
      if (misbehaviour_ == Misbehaviour::drop_first && index == 0) {
        ::close(fd);
        continue;
      }
      connections_.emplace_back([this, fd] { echo(fd); });
    }
  }
  void echo(int fd) {
    char buffer[4096];
    while (!stop_) {
      pollfd entry{fd, POLLIN, 0};
      if (::poll(&entry, 1, 50) <= 0) continue;
      const ssize_t got = ::recv(fd, buffer, sizeof buffer, 0);
      if (got <= 0) break;
      if (misbehaviour_ == Misbehaviour::corrupt) buffer[0] = static_cast<char>(buffer[0] ^ 1);
      if (::send(fd, buffer, static_cast<size_t>(got), MSG_NOSIGNAL) != got) break;
    }
    ::close(fd);
  }

  Misbehaviour misbehaviour_;
  UniqueFd listen_;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread acceptor_;
  std::vector<std::thread> connections_;
};

TEST(LoadGenerator, MessagesDependOnConnectionAndSequence) {
  std::vector<char> a, b, c, again;
  fill_message(1, 7, a, 64);
  fill_message(2, 7, b, 64);
  fill_message(1, 8, c, 64);
  fill_message(1, 7, again, 64);
  EXPECT_EQ(a, again);
  EXPECT_NE(a, b);
  EXPECT_NE(a, c);
  EXPECT_EQ(a.size(), 64u);
}

TEST(LoadGenerator, OpenLoopEchoesEveryRequestOnSchedule) {
  TestServer server;
  Connections connections(server.port(), 20, 7);  // batches of 7: the last one is short
  ASSERT_EQ(connections.size(), 20u);
  const LoadResult result =
      run_load(connections,
               {.port = server.port(), .loop = Loop::open, .rate = 2000, .duration = std::chrono::milliseconds(100)});
  EXPECT_TRUE(result.clean()) << result.first_error;
  EXPECT_GE(result.sent, 150u);  // ~200 planned in 100 ms at 2000/s
  EXPECT_LE(result.sent, 201u);
  EXPECT_EQ(result.echoed, result.sent);
  EXPECT_EQ(result.latency.count(), result.echoed);
  EXPECT_GT(result.latency.min(), 0);
}

TEST(LoadGenerator, ClosedLoopAndASecondRunOnTheSameConnections) {
  TestServer server;
  Connections connections(server.port(), 5);
  const LoadResult closed = run_load(connections, {.port = server.port(),
                                                   .loop = Loop::closed,
                                                   .rate = 0,
                                                   .duration = std::chrono::milliseconds(50),
                                                   .message_bytes = 100});
  EXPECT_TRUE(closed.clean()) << closed.first_error;
  EXPECT_GT(closed.echoed, 0u);
  const LoadResult open = run_load(connections, {.port = server.port(),
                                                 .loop = Loop::open,
                                                 .rate = 500,
                                                 .duration = std::chrono::milliseconds(50),
                                                 .message_bytes = 100});
  EXPECT_TRUE(open.clean()) << open.first_error;
}

TEST(LoadGenerator, ACorruptedEchoIsCaught) {
  TestServer server(Misbehaviour::corrupt);
  Connections connections(server.port(), 3);
  const LoadResult result =
      run_load(connections,
               {.port = server.port(), .loop = Loop::open, .rate = 1000, .duration = std::chrono::milliseconds(30)});
  EXPECT_FALSE(result.clean());
  EXPECT_GT(result.corrupt, 0u);
  EXPECT_NE(result.first_error.find("differs"), std::string::npos) << result.first_error;
}

TEST(LoadGenerator, ADroppedConnectionLosesItsRequests) {
  TestServer server(Misbehaviour::drop_first);
  Connections connections(server.port(), 4);
  const LoadResult result = run_load(connections, {.port = server.port(),
                                                   .loop = Loop::open,
                                                   .rate = 1000,
                                                   .duration = std::chrono::milliseconds(40),
                                                   .deadline = std::chrono::milliseconds(300)});
  EXPECT_FALSE(result.clean());
  EXPECT_GT(result.lost, 0u);
  EXPECT_EQ(result.connection_errors, 1u);
  EXPECT_EQ(connections.broken_count(), 1u);
}

TEST(LoadGenerator, RaisesTheDescriptorLimitToTheHardLimit) {
  EXPECT_GE(raise_fd_limit(), 64u);
}

}  // namespace
}  // namespace oslab::io
