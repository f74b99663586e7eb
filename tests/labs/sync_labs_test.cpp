// The facts the synchronisation labs demonstrate, checked on their --quick --json output:
// mutual exclusion of every lock, every right producer/consumer variant exactly once at several
// thread counts, every broken one failing under its forced schedule (and the same schedule
// passing on the right code), SEM_UNDO releasing after a SIGKILLed holder, and nothing left
// behind when a lab that holds System V sets and named semaphores is SIGKILLed. No time is
// asserted as speed.

#include <signal.h>

#include <algorithm>
#include <set>

#include <gtest/gtest.h>

#include "lab_runner.hpp"

namespace oslab::test {
namespace {

nlohmann::json seeded_quick_json(const std::string& lab, std::vector<std::string> extra = {}) {
  std::vector<std::string> args{"--quick", "--json", "--seed", "11"};
  args.insert(args.end(), extra.begin(), extra.end());
  RunResult run = run_lab(lab, args);
  EXPECT_EQ(run.exit_code, 0) << run.err;
  return run.json();
}

// A claim a run may leave undecided (e.g. on one CPU); decided, see expect_not_refuted.
void expect_not_refuted_if_decided(const nlohmann::json& doc, const std::string& id) {
  if (find_verdict(doc, id) != nullptr) expect_not_refuted(doc, id);
}

std::vector<const nlohmann::json*> results_named(const nlohmann::json& doc, const std::string& name) {
  std::vector<const nlohmann::json*> found;
  for (const auto& result : doc["results"])
    if (result["name"] == name) found.push_back(&result);
  return found;
}

TEST(LocksLab, EveryLockExcludesAsThreadsAndAsProcesses) {
  const nlohmann::json doc = seeded_quick_json(
      "locks", {"--locks", "mutex,tas,ttas,ticket,mcs,futex,rwlock-reads,posix-sem,sysv-sem,std-mutex", "-n", "1,3",
                "--as", "threads,processes", "--duration", "10"});
  expect_holds(doc, "mutual-exclusion");
  const auto throughput = results_named(doc, "contended throughput");
  // 10 locks x 2 counts as threads, and 9 (all but std::mutex) as processes.
  EXPECT_EQ(throughput.size(), 10u * 2 + 9u * 2);
  for (const nlohmann::json* r : throughput) {
    EXPECT_EQ((*r)["counters"]["overlaps"], 0) << (*r)["params"];
    EXPECT_EQ((*r)["counters"]["lost_updates"], 0) << (*r)["params"];
    EXPECT_GE((*r)["counters"]["fairness_cv"].get<double>(), 0);
    EXPECT_GT((*r)["p50"].get<double>(), 0) << (*r)["params"];
  }
  // Every contended case has its waits, one per acquisition, as a histogram.
  EXPECT_EQ(results_named(doc, "wait to acquire").size(), throughput.size());
  bool skipped_std_mutex = false;
  for (const auto& skip : doc["skipped"]) skipped_std_mutex |= skip["what"] == "std-mutex between processes";
  EXPECT_TRUE(skipped_std_mutex) << doc["skipped"].dump();
}

TEST(LocksLab, UncontendedLocksStayInUserSpaceExceptSystemV) {
  const nlohmann::json doc = seeded_quick_json("locks", {"--locks", "mutex,futex,tas,posix-sem,sysv-sem", "-n", "2"});
  if (find_verdict(doc, "uncontended-stays-in-user-space") == nullptr) GTEST_SKIP() << doc["skipped"].dump();
  expect_holds(doc, "uncontended-stays-in-user-space");
  expect_not_refuted_if_decided(doc, "spinners-never-sleep");
  expect_not_refuted_if_decided(doc, "uncontended-syscall-dominates");
  EXPECT_EQ(results_named(doc, "uncontended lock+unlock").size(), 5u);
}

TEST(LocksLab, RejectsWhatItCannotHonour) {
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"--locks", "nope"}, {"-n", "0"}, {"-n", "65"}, {"--as", "fibers"}, {"--duration", "0"}})
    expect_usage_error("locks", args);
}

TEST(ProdconsLab, EveryBrokenVariantFailsUnderItsForcedSchedule) {
  const nlohmann::json doc = seeded_quick_json(
      "prodcons", {"--random-runs", "0", "--variant", "if,signal,no-mutex,wrong-order", "-n", "1", "--buffer", "1"});
  for (const char* id :
       {"if-takes-from-empty-buffer", "signal-wakes-the-wrong-waiter", "no-mutex-overwrites", "wrong-order-deadlocks"})
    expect_holds(doc, id);
  // The deadlocks are reported with who waits on what, not as a hang.
  const std::string evidence = (*find_verdict(doc, "wrong-order-deadlocks"))["evidence"];
  EXPECT_NE(evidence.find("DEADLOCK: producer 0 waits on mutex 'buffer'"), std::string::npos) << evidence;
  EXPECT_NE(evidence.find("held by consumer 0"), std::string::npos) << evidence;
}

TEST(ProdconsLab, RightVariantsDeliverEveryItemExactlyOnce) {
  const nlohmann::json doc =
      seeded_quick_json("prodcons", {"--variant", "cv,sem,spsc", "-n", "1,2,3", "--buffer", "1,7", "--rounds", "1",
                                     "--random-runs", "2", "--duration", "15"});
  expect_holds(doc, "right-ones-exactly-once");
  // cv and sem at 1, 2 and 3 pairs and two sizes; spsc at one pair only.
  EXPECT_EQ(results_named(doc, "throughput").size(), 2u * 3 * 2 + 2);
  expect_not_refuted_if_decided(doc, "bigger-buffer-faster");
}

TEST(ProdconsLab, RejectsWhatItCannotHonour) {
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{{"--variant", "magic"}, {"--buffer", "0"}, {"-n", "17"}})
    expect_usage_error("prodcons", args);
}

TEST(CondvarLab, WaitsBelongInAWhileLoop) {
  const nlohmann::json doc = seeded_quick_json(
      "condvar", {"--methods", "condvar,semaphore,futex,pipe", "--placement", "same-cpu", "--as", "threads"});
  expect_holds(doc, "while-not-if");
  expect_not_refuted_if_decided(doc, "waiters-wake-to-nothing");
  expect_not_refuted_if_decided(doc, "condvar-costs-a-futex-and-more");
  if (find_verdict(doc, "handoffs-make-their-system-calls")) expect_holds(doc, "handoffs-make-their-system-calls");
  const auto round_trips = results_named(doc, "round trip");
  EXPECT_EQ(round_trips.size(), 4u);
  for (const nlohmann::json* r : round_trips) EXPECT_EQ((*r)["params"]["placement"], "same-cpu");
}

TEST(CondvarLab, HandsOffBetweenProcessesToo) {
  const nlohmann::json doc = seeded_quick_json(
      "condvar", {"--methods", "condvar,sysv-sem,eventfd", "--placement", "two-cpus", "--as", "processes"});
  if (doc["results"].empty()) GTEST_SKIP() << doc["skipped"].dump();
  EXPECT_EQ(results_named(doc, "round trip").size(), 3u);
  for (const nlohmann::json* r : results_named(doc, "round trip")) EXPECT_EQ((*r)["params"]["as"], "processes");
}

TEST(SemaphoresLab, SemUndoReleasesAfterASigkilledHolder) {
  const nlohmann::json doc = seeded_quick_json("semaphores");
  for (const char* id : {"named-reached-by-name", "sem-undo-releases-on-death", "no-undo-stays-taken",
                         "posix-not-released-on-death", "robust-mutex-reports-dead-owner"})
    expect_holds(doc, id);
  EXPECT_EQ(results_named(doc, "wait+post").size(), 4u);
}

TEST(PatternsLab, EveryPatternComputesTheSameAnswer) {
  const nlohmann::json doc = seeded_quick_json("patterns", {"--blocks", "200", "--requests", "300", "-n", "1,2,3"});
  expect_holds(doc, "patterns-lose-nothing");
  EXPECT_EQ(results_named(doc, "producer/consumer").size(), 3u);
  EXPECT_EQ(results_named(doc, "pipeline").size(), 3u);
  for (const char* id : {"workers-speed-up", "pipeline-speeds-up", "background-shortens-critical-path"})
    expect_not_refuted_if_decided(doc, id);
}

// System V sets and named semaphores are held while the labs run: however early they are
// killed, nothing stays (the guardian process removes what SIGKILL left).
TEST(SyncLabs, NothingLeftBehindWhenKilledAtAnyMoment) {
  become_subreaper();
  const IpcSnapshot before = IpcSnapshot::take();
  for (int after_ms : {20, 60, 110, 170, 250})
    run_and_signal("semaphores", {}, std::chrono::milliseconds(after_ms), SIGKILL);
  for (int after_ms : {80, 300})
    run_and_signal("locks", {"--locks", "sysv-sem", "--as", "processes"}, std::chrono::milliseconds(after_ms), SIGKILL);
  run_and_signal("condvar", {"--methods", "sysv-sem"}, std::chrono::milliseconds(150), SIGKILL);
  EXPECT_EQ(orphans_still_running(std::chrono::seconds(5)), 0);
  // The guardian notices within milliseconds; give it a moment.
  std::set<std::string> left;
  for (int i = 0; i < 50; ++i) {
    left = IpcSnapshot::take().added_since(before);
    if (left.empty()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(left, std::set<std::string>{});
}

TEST(LabSet, TheSyncLabsAreBuilt) {
  const std::vector<std::string> labs = all_labs();
  for (const char* lab : {"locks", "condvar", "prodcons", "patterns", "semaphores"})
    EXPECT_NE(std::find(labs.begin(), labs.end(), lab), labs.end()) << lab;
}

}  // namespace
}  // namespace oslab::test
