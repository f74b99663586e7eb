// Unit tests of serve_until_sigterm, run in a forked child that this test signals.
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <random>
#include <string>

#include <gtest/gtest.h>

#include "sigcount.hpp"

namespace {

using Counts = std::array<SignalCount, kKinds>;

// A server in a child process: its stdout and its result come back through pipes.
class Server {
 public:
  Server() {
    int out[2], result[2];
    if (pipe(out) != 0 || pipe(result) != 0) throw std::runtime_error("pipe");
    (void)std::fflush(nullptr);
    pid_ = fork();
    if (pid_ == 0) {
      dup2(out[1], STDOUT_FILENO);
      close(out[0]);
      close(result[0]);
      const Counts counts = serve_until_sigterm();
      (void)std::fflush(stdout);
      (void)!write(result[1], &counts, sizeof counts);
      _exit(0);
    }
    close(out[1]);
    close(result[1]);
    out_ = out[0];
    result_ = result[0];
  }
  ~Server() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    close(out_);
    close(result_);
  }
  bool ready() {
    std::string text;
    while (text.find("ready\n") == std::string::npos) {
      pollfd p{out_, POLLIN, 0};
      if (poll(&p, 1, 2000) <= 0) return false;
      char buffer[256];
      const ssize_t n = read(out_, buffer, sizeof buffer);
      if (n <= 0) return false;
      text.append(buffer, static_cast<size_t>(n));
    }
    return true;
  }
  void send(int kind, int payload) {
    sigval value{};
    value.sival_int = payload;
    while (sigqueue(pid_, SIGRTMIN + kind, value) != 0) {
      ASSERT_EQ(errno, EAGAIN) << "sigqueue";
      usleep(200);
    }
  }
  void stop() {
    kill(pid_, SIGSTOP);
    int status = 0;
    waitpid(pid_, &status, WUNTRACED);
  }
  // SIGTERM (and SIGCONT), then the counts; fails the test if the server did not end well.
  Counts finish(bool continue_it = false) {
    kill(pid_, SIGTERM);
    if (continue_it) kill(pid_, SIGCONT);
    Counts counts{};
    pollfd p{result_, POLLIN, 0};
    if (poll(&p, 1, 3000) <= 0 || read(result_, &counts, sizeof counts) != sizeof counts)
      ADD_FAILURE() << "the server did not return its counts after SIGTERM";
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "the server did not end cleanly: status " << status;
    return counts;
  }

 private:
  pid_t pid_ = -1;
  int out_ = -1, result_ = -1;
};

TEST(SignalCounter, OneSignalAndItsPayload) {
  Server server;
  ASSERT_TRUE(server.ready()) << "no \"ready\" line";
  server.send(2, 77);
  const Counts counts = server.finish();
  for (int k = 0; k < kKinds; ++k) {
    EXPECT_EQ(counts[k].count, k == 2 ? 1 : 0) << "SIGRTMIN+" << k;
    EXPECT_EQ(counts[k].sum, k == 2 ? 77 : 0) << "SIGRTMIN+" << k;
  }
}

TEST(SignalCounter, ThousandsOfSignalsOfThreeKindsExactly) {
  Server server;
  ASSERT_TRUE(server.ready());
  std::mt19937 random(7);
  Counts expected{};
  for (int i = 0; i < 3000; ++i) {
    const int kind = static_cast<int>(random() % 3);
    const int payload = static_cast<int>(random() % 2001) - 1000;
    server.send(kind, payload);
    ++expected[kind].count;
    expected[kind].sum += payload;
  }
  const Counts counts = server.finish();
  for (int k = 0; k < kKinds; ++k) {
    EXPECT_EQ(counts[k].count, expected[k].count) << "SIGRTMIN+" << k;
    EXPECT_EQ(counts[k].sum, expected[k].sum) << "SIGRTMIN+" << k;
  }
}

TEST(SignalCounter, SignalsStillPendingAtSigtermAreCounted) {
  Server server;
  ASSERT_TRUE(server.ready());
  server.stop();  // everything below is pending at once, SIGTERM first in line
  for (int i = 0; i < 500; ++i) server.send(i % 4, i);
  const Counts counts = server.finish(true);
  for (int k = 0; k < 4; ++k) EXPECT_EQ(counts[k].count, 125) << "SIGRTMIN+" << k;
  int64_t sum = 0;
  for (int k = 0; k < kKinds; ++k) sum += counts[k].sum;
  EXPECT_EQ(sum, 499 * 500 / 2);
}

TEST(SignalCounter, PayloadSumsNeedSixtyFourBits) {
  Server server;
  ASSERT_TRUE(server.ready());
  for (int i = 0; i < 100; ++i) server.send(0, INT_MAX);
  for (int i = 0; i < 100; ++i) server.send(1, INT_MIN);
  const Counts counts = server.finish();
  EXPECT_EQ(counts[0].sum, int64_t{100} * INT_MAX);
  EXPECT_EQ(counts[1].sum, int64_t{100} * INT_MIN);
}

}  // namespace
