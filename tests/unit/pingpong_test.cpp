// The ping-pong runner and its system-call check, on the pipe exchange and on two broken ones
// that the harness must catch: one that corrupts the answer, one that skips half the calls.
#include "oslab/pingpong.hpp"

#include <unistd.h>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "oslab/cpu.hpp"
#include "oslab/error.hpp"

namespace oslab {
namespace {

using namespace std::chrono_literals;

PartyOptions options(bool threads) {
  return {.threads = threads, .assignment = assign_cpus(Placement::same_cpu, 2, get_affinity()), .deadline = 30s};
}

SamplingPlan plan(int samples) {
  SamplingPlan p;
  p.warmup = 5;
  p.min_samples = p.max_samples = samples;
  p.budget = std::chrono::hours(1);
  return p;
}

class PingPongTest : public ::testing::TestWithParam<bool> {};

TEST_P(PingPongTest, TimesEveryRoundTripAndReadsBothSides) {
  PipeExchange pipe;
  PingPongResult r = run_ping_pong(pipe, options(GetParam()), plan(500));
  EXPECT_EQ(r.round_trips.samples_ns.size(), 500u);
  EXPECT_EQ(r.answered, 505u);  // warm-up included
  // On one CPU each side must give the CPU up once per round trip, blocking or preempted.
  EXPECT_GT(r.round_trips.self_per_op.voluntary_switches + r.round_trips.self_per_op.involuntary_switches, 0.9);
  EXPECT_GT(r.pong_counters.voluntary_switches + r.pong_counters.involuntary_switches, 0.9);
}

TEST_P(PingPongTest, APipeRoundTripIsFourSystemCalls) {
  PipeExchange pipe;
  SyscallCheck check;
  try {
    check = verify_syscalls(pipe, options(GetParam()));
  } catch (const SkipError& e) {
    GTEST_SKIP() << e.what();
  }
  EXPECT_TRUE(check.ok);
  EXPECT_DOUBLE_EQ(check.per_round_trip, 4) << check.describe();
  EXPECT_DOUBLE_EQ(check.by_name["read"], 2) << check.describe();
  EXPECT_DOUBLE_EQ(check.by_name["write"], 2) << check.describe();
}

// Claims to make a round trip but never waits for the answer: half the calls, an absurdly
// small latency. The system-call check must fail it.
class LazyExchange : public Exchange {
 public:
  void ping(uint64_t sequence) override {
    const auto sent = static_cast<uint32_t>(sequence);
    check_errno("write", ::write(pipe_.write_end.get(), &sent, sizeof sent));
  }
  bool pong() override {
    uint32_t message = 0;
    if (check_errno("read", ::read(pipe_.read_end.get(), &message, sizeof message)) != sizeof message) return false;
    return message != 0;
  }
  void stop() override {
    const uint32_t zero = 0;
    check_errno("write", ::write(pipe_.write_end.get(), &zero, sizeof zero));
  }
  SyscallExpectation expected_syscalls() const override { return {4, true, "a write and a read on each side"}; }

 private:
  Pipe pipe_ = Pipe::create();
};

TEST_P(PingPongTest, AnExchangeThatSkipsTheWaitIsCaught) {
  LazyExchange lazy;
  try {
    verify_syscalls(lazy, options(GetParam()));
    FAIL() << "the lazy exchange passed the check";
  } catch (const SkipError& e) {
    GTEST_SKIP() << e.what();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("the system-call check failed: 2 system calls per round trip"),
              std::string::npos)
        << e.what();
  }
}

// Answers every message with the wrong number: the ping side must fail, not look fast.
class WrongAnswerExchange : public PipeExchange {
 public:
  WrongAnswerExchange() : there_(Pipe::create()), back_(Pipe::create()) {}
  void ping(uint64_t sequence) override {
    const auto sent = static_cast<uint32_t>(sequence);
    check_errno("write", ::write(there_.write_end.get(), &sent, sizeof sent));
    uint32_t answer = 0;
    check_errno("read", ::read(back_.read_end.get(), &answer, sizeof answer));
    if (answer != sent + 1) throw std::runtime_error(fmt::format("sent {}, the answer was {}", sent, answer));
  }
  bool pong() override {
    uint32_t message = 0;
    if (check_errno("read", ::read(there_.read_end.get(), &message, sizeof message)) != sizeof message) return false;
    if (message == 0) return false;
    message += 2;  // corrupted
    check_errno("write", ::write(back_.write_end.get(), &message, sizeof message));
    return true;
  }
  void stop() override {
    const uint32_t zero = 0;
    check_errno("write", ::write(there_.write_end.get(), &zero, sizeof zero));
  }

 private:
  Pipe there_, back_;
};

TEST_P(PingPongTest, ACorruptingExchangeFails) {
  WrongAnswerExchange wrong;
  try {
    run_ping_pong(wrong, options(GetParam()), plan(100));
    FAIL() << "a corrupting exchange looked fine";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("side 0 of 2"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("the answer was"), std::string::npos) << e.what();
  }
}

INSTANTIATE_TEST_SUITE_P(ThreadsAndProcesses, PingPongTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& param) {
                           return param.param ? "Threads" : "Processes";
                         });

}  // namespace
}  // namespace oslab
