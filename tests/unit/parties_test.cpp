// The two-party harness: threads and processes, placement applied, the start barrier, a
// deadline on a hung side, a failed side named, and a pipe ping-pong as its first user.
#include "oslab/parties.hpp"

#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "oslab/clock.hpp"
#include "oslab/cpu.hpp"
#include "oslab/error.hpp"
#include "oslab/handles.hpp"
#include "oslab/measure.hpp"
#include "oslab/shared.hpp"

namespace oslab {
namespace {

using namespace std::chrono_literals;

class Harness : public ::testing::TestWithParam<bool> {
 protected:
  bool threads() const { return GetParam(); }
  PartyOptions options(Placement placement = Placement::unpinned) const {
    return {.threads = threads(), .assignment = assign_cpus(placement, 2, get_affinity()), .deadline = 20s};
  }
};

TEST_P(Harness, RunsEveryPartyWhereThePlacementSays) {
  struct Seen {
    std::atomic<int> cpu[2];
    std::atomic<pid_t> pid[2];
  };
  Shared<Seen> seen;
  const auto body = [&](Party& party) {
    party.ready();
    seen->cpu[party.index()] = ::sched_getcpu();
    seen->pid[party.index()] = ::getpid();
  };
  const PartyOptions same = options(Placement::same_cpu);
  run_parties(same, {body, body});
  EXPECT_EQ(seen->cpu[0], same.assignment.party_cpus[0].front());
  EXPECT_EQ(seen->cpu[1], same.assignment.party_cpus[0].front());
  EXPECT_EQ(seen->pid[0] == ::getpid(), threads());
  EXPECT_EQ(seen->pid[0] == seen->pid[1], threads());
  if (get_affinity().size() >= 2) {
    const PartyOptions two = options(Placement::two_cpus);
    run_parties(two, {body, body});
    EXPECT_EQ(seen->cpu[0], two.assignment.party_cpus[0].front());
    EXPECT_EQ(seen->cpu[1], two.assignment.party_cpus[1].front());
    EXPECT_NE(seen->cpu[0], seen->cpu[1]);
  }
}

TEST_P(Harness, TheBarrierStartsEveryoneTogether) {
  struct Stamps {
    std::atomic<int64_t> arrived[3], left[3];
  };
  Shared<Stamps> stamps;
  const auto body = [&](Party& party) {
    ::usleep(static_cast<useconds_t>(20'000 * party.index()));  // arrive at different times
    stamps->arrived[party.index()] = now_ns();
    party.ready();
    stamps->left[party.index()] = now_ns();
  };
  run_parties(options(), {body, body, body});
  const int64_t last_arrival =
      std::max({stamps->arrived[0].load(), stamps->arrived[1].load(), stamps->arrived[2].load()});
  for (int i = 0; i < 3; ++i) EXPECT_GE(stamps->left[i].load(), last_arrival) << "party " << i;
}

TEST_P(Harness, AFailedSideIsNamedAndTheOthersAreReleased) {
  const auto waits = [](Party& party) { party.ready(); };  // would wait forever for side 1
  const auto fails = [](Party&) { throw std::runtime_error("read: EPIPE (Broken pipe)"); };
  const auto start = std::chrono::steady_clock::now();
  try {
    run_parties(options(), {waits, fails});
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find(fmt::format("side 1 of 2 ({} ", threads() ? "thread" : "process")), std::string::npos)
        << message;
    EXPECT_NE(message.find("read: EPIPE (Broken pipe)"), std::string::npos) << message;
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s) << "the waiting side was not released";
}

TEST_P(Harness, ASideThatRunsPastTheDeadlineIsStopped) {
  PartyOptions o = options();
  o.deadline = 300ms;
  o.grace = 300ms;
  // A process side that never ends is killed; a thread side must look at stop_requested().
  const auto slow = [&](Party& party) {
    party.ready();
    while (!(threads() && party.stop_requested())) ::usleep(1000);
    throw std::runtime_error("stopped");
  };
  const auto quick = [](Party& party) { party.ready(); };
  const auto start = std::chrono::steady_clock::now();
  try {
    run_parties(o, {quick, slow});
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("side 1 of 2"), std::string::npos) << message;
    if (!threads()) {
      EXPECT_NE(message.find("did not finish within the deadline (300 ms); killed"), std::string::npos) << message;
    }
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
}

INSTANTIATE_TEST_SUITE_P(ThreadsAndProcesses, Harness, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& param) {
                           return param.param ? "Threads" : "Processes";
                         });

TEST(Harness, AProcessSideKilledByASignalIsNamed) {
  const auto dies = [](Party&) { (void)::raise(SIGKILL); };
  const auto waits = [](Party& party) { party.ready(); };
  try {
    run_parties({.threads = false, .deadline = 10s, .grace = 500ms}, {waits, dies});
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("killed by SIGKILL"), std::string::npos) << e.what();
  }
}

// A thread cannot be killed: one that ignores the stop request ends the run, with a message.
TEST(HarnessDeathTest, AHungThreadEndsTheRun) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        const auto hangs = [](Party&) {
          for (;;) ::pause();
        };
        run_parties({.threads = true, .deadline = 200ms, .grace = 200ms}, {hangs});
      },
      ::testing::ExitedWithCode(1), "side\\(s\\) 0 of 1 \\(threads\\) did not finish");
}

// The harness's first user: a pipe ping-pong, verified byte by byte, timed by side 0.
struct PingPong {
  Pipe there = Pipe::create(), back = Pipe::create();
};

void ping(Party& party, PingPong& pp, int rounds, SharedMeasurement& out) {
  party.ready();
  uint32_t sequence = 0;
  SamplingPlan plan;
  plan.warmup = 10;
  plan.min_samples = plan.max_samples = rounds;
  plan.block_samples = rounds / 10;
  plan.budget = std::chrono::hours(1);
  plan.usage = Usage::thread;
  out.store(measure(plan, [&](int64_t) {
    ++sequence;
    if (::write(pp.there.write_end.get(), &sequence, sizeof sequence) != sizeof sequence)
      throw std::runtime_error("write");
    uint32_t echoed = 0;
    if (::read(pp.back.read_end.get(), &echoed, sizeof echoed) != sizeof echoed) throw std::runtime_error("read");
    if (echoed != sequence + 1) throw std::runtime_error("the echo was not sequence + 1");
  }));
  const uint32_t stop = 0;
  if (::write(pp.there.write_end.get(), &stop, sizeof stop) != sizeof stop) throw std::runtime_error("write");
}

void pong(Party& party, PingPong& pp, std::atomic<int>& echoed) {
  party.ready();
  for (;;) {
    uint32_t value = 0;
    if (::read(pp.there.read_end.get(), &value, sizeof value) != sizeof value) throw std::runtime_error("read");
    if (value == 0) return;
    ++value;
    if (::write(pp.back.write_end.get(), &value, sizeof value) != sizeof value) throw std::runtime_error("write");
    ++echoed;
  }
}

TEST_P(Harness, PipePingPong) {
  PingPong pp;
  SharedMeasurement measured(1000);
  Shared<std::atomic<int>> echoed(0);
  run_parties(options(Placement::same_cpu),
              {[&](Party& p) { ping(p, pp, 1000, measured); }, [&](Party& p) { pong(p, pp, *echoed); }});
  Measurement m = measured.load();
  EXPECT_EQ(m.samples_ns.size(), 1000u);
  EXPECT_EQ(m.blocks.size(), 10u);
  EXPECT_EQ(echoed->load(), 1010);  // warm-up included
  for (double sample : m.samples_ns) EXPECT_GT(sample, 0);
  // Pinned to one CPU, the echo side can only run when this side gives up the CPU: by blocking
  // in read (a voluntary switch) or by being preempted when its write wakes the other
  // (involuntary). At least one switch per round trip, one way or the other.
  EXPECT_GT(m.self_per_op.voluntary_switches + m.self_per_op.involuntary_switches, 0.9);
}

TEST(SharedBarrier, TimesOutAndCanBeBroken) {
  SharedBarrier barrier(2);
  EXPECT_THROW(barrier.arrive_and_wait(50ms), std::runtime_error);
  barrier.break_barrier();
  EXPECT_THROW(barrier.arrive_and_wait(1s), std::runtime_error);
}

TEST(Shared, ObjectsAndArraysAreSharedAcrossFork) {
  Shared<std::atomic<int>> counter(5);
  SharedArray<double> values(1000);
  pid_t pid = ::fork();
  if (pid == 0) {
    *counter += 1;
    values[999] = 2.5;
    _exit(0);
  }
  ASSERT_EQ(::waitpid(pid, nullptr, 0), pid);
  EXPECT_EQ(counter->load(), 6);
  EXPECT_DOUBLE_EQ(values[999], 2.5);
}

TEST(StackDeathTest, AnOverflowHitsTheGuardPage) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  Stack stack = Stack::create(64 * 1024);
  EXPECT_GE(stack.usable_bytes(), 64u * 1024);
  stack.top()[-1] = std::byte{1};  // the top of the stack is usable
  EXPECT_DEATH(*static_cast<volatile std::byte*>(stack.guard()) = std::byte{1}, "");
}

TEST(Placement, ParsesAndAssigns) {
  EXPECT_EQ(parse_placements("same-cpu,unpinned,same-cpu"),
            (std::vector<Placement>{Placement::same_cpu, Placement::unpinned}));
  EXPECT_THROW(parse_placements("moon"), UsageError);
  EXPECT_THROW(parse_placements(""), UsageError);
  Assignment same = assign_cpus(Placement::same_cpu, 2, {3, 5});
  EXPECT_EQ(same.party_cpus, (std::vector<std::vector<int>>{{3}, {3}}));
  EXPECT_EQ(same.to_json()["cpus"], "3");
  Assignment two = assign_cpus(Placement::two_cpus, 3, {3, 5});
  EXPECT_EQ(two.party_cpus, (std::vector<std::vector<int>>{{3}, {5}, {3}}));
  EXPECT_EQ(two.to_json()["placement"], "two-cpus");
  EXPECT_THROW(assign_cpus(Placement::two_cpus, 2, {0}), SkipError);
  EXPECT_EQ(assign_cpus(Placement::unpinned, 1, {0, 1}).describe(), "unpinned (CPUs 0-1)");
}

}  // namespace
}  // namespace oslab
