// The facts the scheduling labs demonstrate, checked on their --quick --json output. What the
// kernel decides (who ran, in which order, which weight, which priority) is asserted; a
// measured share or latency only as "not contradicted" (it may be inconclusive on a busy
// machine), never against a number.

#include <signal.h>
#include <unistd.h>

#include <algorithm>

#include <gtest/gtest.h>

#include "lab_runner.hpp"
#include "oslab/sched.hpp"

namespace oslab::test {
namespace {

// Whether the lab skipped exactly this (lab_runner's skipped() matches a part).
bool skipped_exactly(const nlohmann::json& doc, const std::string& what) {
  return std::any_of(doc["skipped"].begin(), doc["skipped"].end(),
                     [&](const nlohmann::json& s) { return s["what"] == what; });
}

bool realtime_allowed() {
  return probe_rt(80).allowed && read_rt_throttle().on();
}

TEST(TimesliceLab, RebuildsWhoRanWhenUnderEachPolicy) {
  const nlohmann::json doc = quick_json("timeslice");
  expect_holds(doc, "other-one-at-a-time");
  expect_holds(doc, "other-time-shared");
  expect_holds(doc, "other-kernel-counts-switches");
  expect_not_refuted(doc, "other-fair-shares");
  expect_not_refuted(doc, "other-stamps-match-cpu-time");
  EXPECT_FALSE(doc["params"]["timeline_ms"]["SCHED_OTHER"].empty());
  const std::string fair = doc["params"]["fair_scheduler"];
  EXPECT_TRUE(fair.starts_with("EEVDF") || fair.starts_with("CFS")) << fair;
  if (!realtime_allowed()) {
    EXPECT_TRUE(skipped_exactly(doc, "SCHED_RR") && skipped_exactly(doc, "SCHED_FIFO")) << doc["skipped"].dump();
    return;
  }
  expect_holds(doc, "fifo-no-slices");
  expect_holds(doc, "rr-kernel-counts-switches");
  expect_not_refuted(doc, "rr-slice-is-the-quantum");
  EXPECT_EQ(doc["params"]["timeline_ms"]["SCHED_FIFO"].size(), 1u) << "FIFO: one slice, no switch";
}

TEST(TimesliceLab, ThreadsAndAWorkerCount) {
  const nlohmann::json doc = quick_json("timeslice", {"-T", "-n", "2", "--policies", "other", "--window-ms", "100"});
  EXPECT_EQ(doc["params"]["threads"], true);
  expect_holds(doc, "other-one-at-a-time");
  const auto& rows = doc["params"]["timeline_ms"]["SCHED_OTHER"];
  ASSERT_FALSE(rows.empty());
  for (const auto& row : rows) EXPECT_TRUE(row[0] == "A" || row[0] == "B") << row.dump();
}

TEST(TimesliceLab, RejectsWhatItCannotHonour) {
  expect_usage_error("timeslice", {"--workers", "1"});
  expect_usage_error("timeslice", {"--policies", "deadline"});
  expect_usage_error("timeslice", {"--window-ms", "0"});
}

TEST(PriorityLab, SharesFollowTheKernelsWeights) {
  const nlohmann::json doc = quick_json("priority", {"--cases", "nice", "--nice", "5"});
  const int base = doc["params"]["base_nice"];
  if (base + 5 > 19) GTEST_SKIP() << "the test runs at nice " << base;
  for (const char* kind : {"processes", "threads"}) {
    const std::string pair = "nice-" + std::to_string(base) + "-vs-" + std::to_string(base + 5) + "-" + kind;
    expect_not_refuted(doc, "share-" + pair);
    expect_holds(doc, "weight-" + pair + "-a");
    expect_holds(doc, "weight-" + pair + "-b");
  }
  expect_holds(doc, "nice-is-per-thread");
}

TEST(PriorityLab, RealTimeStarvesAndYields) {
  const nlohmann::json doc = quick_json("priority", {"--cases", "idle,batch,fifo,yield"});
  expect_not_refuted(doc, "idle-gets-almost-nothing");
  expect_not_refuted(doc, "share-other-vs-batch");
  if (!realtime_allowed()) {
    EXPECT_TRUE(skipped_exactly(doc, "SCHED_FIFO vs SCHED_OTHER")) << doc["skipped"].dump();
    return;
  }
  expect_not_refuted(doc, "fifo-starves-normal");
  expect_not_refuted(doc, "throttle-lets-normal-run");
  expect_holds(doc, "fifo-yield-hands-over");
}

TEST(PriorityLab, RejectsWhatItCannotHonour) {
  expect_usage_error("priority", {"--nice", "0"});
  expect_usage_error("priority", {"--nice", "20"});
  expect_usage_error("priority", {"--cases", "deadline"});
  expect_usage_error("priority", {"--as", "fibers"});
}

// The forced schedule: on one CPU, SCHED_FIFO decides the order, so these are facts.
TEST(InversionLab, InheritanceBoundsTheWait) {
  RunResult run = run_lab("inversion", {"--quick", "--json"});
  if (!realtime_allowed()) {
    EXPECT_EQ(run.exit_code, 77) << run.err;
    return;
  }
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const nlohmann::json doc = run.json();
  expect_holds(doc, "plain-high-waits-for-medium");
  expect_holds(doc, "plain-no-boost");
  expect_holds(doc, "inherit-high-before-medium");
  expect_holds(doc, "inherit-boosts-holder");
  expect_not_refuted(doc, "plain-wait-unbounded");
  expect_not_refuted(doc, "inherit-wait-bounded");
}

TEST(InversionLab, RejectsWhatItCannotHonour) {
  expect_usage_error("inversion", {"--medium-ms", "2", "--cs-ms", "2"});
  expect_usage_error("inversion", {"--iterations", "5000"});
  expect_usage_error("inversion", {"--cs-ms", "0"});
}

TEST(WakeupLab, SaysWhatASampleIsAndNeverWakesEarly) {
  const nlohmann::json doc = quick_json("wakeup", {"--duration-ms", "100", "--block-ms", "50"});
  size_t latencies = 0;
  for (const auto& result : doc["results"]) {
    if (result["name"] != "wakeup-latency") continue;
    ++latencies;
    EXPECT_NE(result["what"].get<std::string>().find("clock_nanosleep"), std::string::npos);
    EXPECT_GE(result["min"].get<double>(), 0);
    EXPECT_GE(result["blocks"].size(), 2u);
  }
  EXPECT_EQ(latencies, realtime_allowed() ? 4u : 2u);
  for (const char* id : {"other-idle-never-early", "other-hog-never-early"}) expect_holds(doc, id);
  if (realtime_allowed()) {
    expect_holds(doc, "fifo-hog-never-early");
    expect_not_refuted(doc, "fifo-wakes-sooner-beside-a-hog");
  }
}

TEST(WakeupLab, RejectsWhatItCannotHonour) {
  expect_usage_error("wakeup", {"--block-ms", "1000", "--duration-ms", "100"});
  expect_usage_error("wakeup", {"--interval-us", "10"});
  expect_usage_error("wakeup", {"--priority", "100"});
  expect_usage_error("wakeup", {"--load", "storm"});
}

// An unprivileged user gets the normal rows and a skip row, with the reason, for each
// real-time one.
TEST(SchedLabs, RealTimeRowsAreSkippedWithoutPrivileges) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to switch to an unprivileged user";
  if (::access("/usr/bin/setpriv", X_OK) != 0) GTEST_SKIP() << "setpriv (util-linux) is missing";
  auto as_nobody = [](const std::string& lab, std::vector<std::string> args) {
    std::vector<std::string> argv{"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                  lab_path(lab),      "--quick",       "--json"};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_command(argv);
  };
  auto expect_skips = [](const RunResult& run, const std::vector<std::string>& rows) {
    ASSERT_EQ(run.exit_code, 0) << run.err;
    const nlohmann::json doc = run.json();
    for (const auto& row : rows) {
      bool found = false;
      for (const auto& s : doc["skipped"])
        if (s["what"] == row) {
          found = true;
          EXPECT_NE(s["why"].get<std::string>().find("CAP_SYS_NICE"), std::string::npos) << s.dump();
        }
      EXPECT_TRUE(found) << row << " not skipped: " << doc["skipped"].dump();
    }
    EXPECT_FALSE(doc["results"].empty());
  };
  expect_skips(as_nobody("timeslice", {"--window-ms", "100"}), {"SCHED_RR", "SCHED_FIFO"});
  expect_skips(as_nobody("priority", {"--cases", "fifo,yield"}),
               {"SCHED_FIFO vs SCHED_OTHER", "sched_yield under SCHED_RR", "sched_yield under SCHED_FIFO"});
  expect_skips(as_nobody("wakeup", {"--duration-ms", "50", "--block-ms", "50"}),
               {"SCHED_FIFO, idle", "SCHED_FIFO, hog"});
  const RunResult inversion = as_nobody("inversion", {});
  EXPECT_EQ(inversion.exit_code, 77) << inversion.err;
  EXPECT_NE(inversion.err.find("CAP_SYS_NICE"), std::string::npos) << inversion.err;
}

// A real-time spinner must die with the lab: processes (their parent-death signal) and threads.
TEST(SchedLabs, NothingRealTimeOutlivesAKill) {
  if (!realtime_allowed()) GTEST_SKIP() << "real-time threads are not allowed here";
  become_subreaper();
  run_and_signal("timeslice", {"--policies", "fifo"}, std::chrono::milliseconds(150), SIGKILL);
  EXPECT_EQ(orphans_still_running(std::chrono::seconds(5)), 0) << "a SCHED_FIFO worker process outlived the lab";
  run_and_signal("priority", {"--cases", "fifo"}, std::chrono::milliseconds(400), SIGKILL);
  EXPECT_EQ(orphans_still_running(std::chrono::seconds(5)), 0);
  run_and_signal("inversion", {}, std::chrono::milliseconds(100), SIGKILL);
  EXPECT_EQ(orphans_still_running(std::chrono::seconds(5)), 0);
}

TEST(LabSet, TheSchedulingLabsAreBuilt) {
  std::vector<std::string> labs = all_labs();
  for (const char* lab : {"timeslice", "priority", "inversion", "wakeup"})
    EXPECT_NE(std::find(labs.begin(), labs.end(), lab), labs.end()) << lab;
}

}  // namespace
}  // namespace oslab::test
