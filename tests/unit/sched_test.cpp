#include "oslab/sched.hpp"

#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#include <thread>

#include <gtest/gtest.h>

namespace oslab {
namespace {

TEST(Weights, TheKernelsTable) {
  EXPECT_EQ(nice_to_weight(0), 1024);
  EXPECT_EQ(nice_to_weight(-20), 88761);
  EXPECT_EQ(nice_to_weight(19), 15);
  // About 1.25x per step: nice 0 against nice 5 is about 3:1.
  EXPECT_NEAR(static_cast<double>(nice_to_weight(0)) / nice_to_weight(5), 3.06, 0.01);
  for (int nice = -20; nice < 19; ++nice) {
    const double step = static_cast<double>(nice_to_weight(nice)) / nice_to_weight(nice + 1);
    EXPECT_GT(step, 1.15) << nice;
    EXPECT_LT(step, 1.35) << nice;
  }
  EXPECT_THROW(nice_to_weight(20), std::out_of_range);
}

TEST(Weights, TheKernelHoldsTheTablesWeight) {
  std::optional<double> weight;
  int nice = 0;
  std::thread([&] {
    nice = std::min(get_nice() + 3, 19);  // raising one's nice value needs no privilege
    set_nice(nice);
    weight = kernel_weight(::gettid());
  }).join();
  if (!weight) GTEST_SKIP() << "/proc/self/task/<tid>/sched shows no se.load.weight here";
  EXPECT_DOUBLE_EQ(*weight, nice_to_weight(nice));
}

TEST(Policies, Names) {
  EXPECT_STREQ(to_string(Policy::fifo), "SCHED_FIFO");
  EXPECT_EQ(native_policy(Policy::idle), SCHED_IDLE);
  EXPECT_TRUE(is_realtime(Policy::rr));
  EXPECT_FALSE(is_realtime(Policy::batch));
}

TEST(Throttle, Describes) {
  RtThrottle throttle{950'000, 1'000'000};
  EXPECT_TRUE(throttle.on());
  EXPECT_NEAR(throttle.others_share(), 0.05, 1e-12);
  EXPECT_NE(throttle.describe().find("5.00%"), std::string::npos) << throttle.describe();
  EXPECT_FALSE((RtThrottle{-1, 1'000'000}).on());
  const RtThrottle here = read_rt_throttle();
  EXPECT_GT(here.period_us, 0);
}

TEST(FairScheduler, NamesOne) {
  const FairScheduler fair = detect_fair_scheduler();
  EXPECT_TRUE(fair.name == "EEVDF" || fair.name == "CFS") << fair.name;
  EXPECT_FALSE(fair.how_detected.empty());
  EXPECT_GE(fair.slice_ns, 0);
}

TEST(RtAccess, SaysWhyNot) {
  const RtAccess access = probe_rt(1);
  if (access.allowed) {
    EXPECT_TRUE(access.why.empty());
  } else {
    EXPECT_NE(access.why.find("sched_setscheduler"), std::string::npos) << access.why;
  }
}

TEST(RtWatchdog, DemotesAThreadPastItsDeadline) {
  if (!probe_rt(1).allowed) GTEST_SKIP() << probe_rt(1).why;
  RtWatchdog watchdog(std::chrono::milliseconds(2));
  int policy_after = -1;
  std::thread([&] {
    auto registration = watchdog.watch(std::chrono::steady_clock::now() + std::chrono::milliseconds(20));
    set_policy(Policy::fifo, 1);
    // Sleeps rather than spins: the test must not hold a CPU at a real-time priority.
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (::sched_getscheduler(0) == SCHED_FIFO && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    policy_after = ::sched_getscheduler(0);
  }).join();
  EXPECT_EQ(policy_after, SCHED_OTHER);
  EXPECT_EQ(watchdog.demoted(), 1u);
}

TEST(RtWatchdog, ARegistrationEndsNormal) {
  if (!probe_rt(1).allowed) GTEST_SKIP() << probe_rt(1).why;
  RtWatchdog watchdog;
  int policy_after = -1;
  std::thread([&] {
    {
      auto registration = watchdog.watch(std::chrono::steady_clock::now() + std::chrono::seconds(5));
      set_policy(Policy::rr, 1);
    }
    policy_after = ::sched_getscheduler(0);
  }).join();
  EXPECT_EQ(policy_after, SCHED_OTHER);
  EXPECT_EQ(watchdog.demoted(), 0u);
}

TEST(ScopedRtTimeLimit, PutsTheOldLimitBack) {
  rlimit before{};
  ASSERT_EQ(::getrlimit(RLIMIT_RTTIME, &before), 0);
  {
    ScopedRtTimeLimit limit(std::chrono::seconds(3));
    rlimit during{};
    ASSERT_EQ(::getrlimit(RLIMIT_RTTIME, &during), 0);
    EXPECT_LE(during.rlim_cur, 3'000'000u);
    EXPECT_EQ(during.rlim_max, before.rlim_max);
  }
  rlimit after{};
  ASSERT_EQ(::getrlimit(RLIMIT_RTTIME, &after), 0);
  EXPECT_EQ(after.rlim_cur, before.rlim_cur);
}

}  // namespace
}  // namespace oslab
