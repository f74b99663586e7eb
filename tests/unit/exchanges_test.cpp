// The token exchanges: each makes a correct ping-pong as threads and as processes, with and
// without a working set; each makes the system calls it claims; a lazy one is caught.
#include "oslab/exchanges.hpp"

#include <gtest/gtest.h>

#include "oslab/cpu.hpp"
#include "oslab/error.hpp"

namespace oslab {
namespace {

using namespace std::chrono_literals;

PartyOptions options(bool threads, Placement placement = Placement::same_cpu) {
  return {.threads = threads, .assignment = assign_cpus(placement, 2, get_affinity()), .deadline = 30s};
}

SamplingPlan plan(int samples) {
  SamplingPlan p;
  p.warmup = 3;
  p.min_samples = p.max_samples = samples;
  p.budget = std::chrono::hours(1);
  return p;
}

enum class Kind { pipe, futex, yield };

std::unique_ptr<TokenExchange> make(Kind kind) {
  switch (kind) {
    case Kind::pipe: return std::make_unique<PipeTokens>();
    case Kind::futex: return std::make_unique<FutexTokens>();
    case Kind::yield: return std::make_unique<YieldTokens>();
  }
  return nullptr;
}

class Exchanges : public ::testing::TestWithParam<std::tuple<Kind, bool>> {
 protected:
  std::unique_ptr<TokenExchange> exchange_ = make(std::get<0>(GetParam()));
  bool threads() const { return std::get<1>(GetParam()); }
};

TEST_P(Exchanges, PingPongsAndCanBeRunAgain) {
  for (size_t working_set : {size_t{0}, size_t{64 * 1024}}) {
    exchange_->set_working_set(working_set);
    for (int run = 0; run < 2; ++run) {  // the second run must not see the first one's tokens
      PingPongResult r = run_ping_pong(*exchange_, options(threads()), plan(200));
      EXPECT_EQ(r.round_trips.samples_ns.size(), 200u);
      EXPECT_EQ(r.answered, 203u);
    }
  }
}

TEST_P(Exchanges, MakesTheCallsItClaims) {
  SyscallCheck check;
  try {
    check = verify_syscalls(*exchange_, options(threads()));
  } catch (const SkipError& e) {
    GTEST_SKIP() << e.what();
  }
  EXPECT_TRUE(check.ok) << check.describe();
  EXPECT_GE(check.per_round_trip, static_cast<double>(exchange_->expected_syscalls().count)) << check.describe();
}

TEST_P(Exchanges, SoloRoundTripNeverWaits) {
  exchange_->set_working_set(16 * 1024);
  for (uint64_t sequence = 1; sequence < 100; ++sequence) exchange_->solo_round_trip(sequence, threads());
  // And a real run still works after it.
  PingPongResult r = run_ping_pong(*exchange_, options(threads()), plan(20));
  EXPECT_EQ(r.round_trips.samples_ns.size(), 20u);
}

std::string name_of(const ::testing::TestParamInfo<std::tuple<Kind, bool>>& info) {
  static constexpr const char* kNames[] = {"Pipe", "Futex", "Yield"};
  return std::string(kNames[static_cast<int>(std::get<0>(info.param))]) +
         (std::get<1>(info.param) ? "Threads" : "Processes");
}

INSTANTIATE_TEST_SUITE_P(All, Exchanges,
                         ::testing::Combine(::testing::Values(Kind::pipe, Kind::futex, Kind::yield), ::testing::Bool()),
                         name_of);

TEST(BlockingExchanges, EachSideBlocksOncePerRoundTripOnOneCpu) {
  for (bool threads : {true, false}) {
    PipeTokens pipe;
    PingPongResult r = run_ping_pong(pipe, options(threads), plan(300));
    const Counters& ping = r.round_trips.self_per_op;
    // Two switches per round trip, each side giving the CPU up once (blocked or preempted).
    EXPECT_NEAR(ping.voluntary_switches + ping.involuntary_switches + r.pong_counters.voluntary_switches +
                    r.pong_counters.involuntary_switches,
                2.0, 0.3)
        << (threads ? "threads" : "processes");
  }
}

TEST(LazyExchange, SkippingTheWaitIsCaught) {
  for (bool threads : {true, false}) {
    LazyPipeTokens lazy;
    try {
      verify_syscalls(lazy, options(threads));
      FAIL() << "the lazy exchange passed the check";
    } catch (const SkipError& e) {
      GTEST_SKIP() << e.what();
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find("the system-call check failed: 2 system calls per round trip"),
                std::string::npos)
          << e.what();
    }
  }
}

TEST(TokenExchange, TokensAreNeverTheStopToken) {
  EXPECT_EQ(TokenExchange::token_of(0), 1u);
  EXPECT_EQ(TokenExchange::token_of(UINT32_MAX - 2), UINT32_MAX - 1);
  EXPECT_EQ(TokenExchange::token_of(UINT32_MAX - 1), 1u);
  EXPECT_NE(TokenExchange::token_of(UINT32_MAX - 2) + 1, 0u);
}

TEST(WorkingSet, ReadsOneWordPerLine) {
  std::vector<std::byte> region(256);
  region[0] = std::byte{1};
  region[64] = std::byte{2};
  region[72] = std::byte{100};  // the same line: not read
  EXPECT_EQ(read_working_set(region), 3u);
}

}  // namespace
}  // namespace oslab
