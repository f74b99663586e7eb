// The facts the memory labs demonstrate, checked on their --quick --json output: fault counts,
// sharing semantics, the working set found, the knee located; and that every memory cgroup a
// lab makes is gone after it ends, however it ends (SIGKILL included), and stale ones are
// reaped. Times are never asserted.

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>

#include <gtest/gtest.h>

#include "cgroup.hpp"
#include "lab_runner.hpp"

namespace oslab::test {
namespace {

const nlohmann::json* result(const nlohmann::json& doc, const std::string& name, const nlohmann::json& params) {
  if (!doc.contains("results")) return nullptr;
  for (const auto& r : doc["results"]) {
    if (r["name"] != name) continue;
    bool all = true;
    for (const auto& [key, value] : params.items()) all = all && r["params"].value(key, nlohmann::json()) == value;
    if (all) return &r;
  }
  return nullptr;
}

// The labs make their groups under the cgroup they run in, which is this test's.
std::optional<std::string> my_memory_cgroup() {
  auto probe = memory::find_memory_cgroup();
  if (!probe.location) return std::nullopt;
  return probe.location->dir;
}

std::vector<std::string> groups_now() {
  auto dir = my_memory_cgroup();
  if (!dir) return {};
  auto names = memory::oslab_cgroups_in(*dir);
  std::sort(names.begin(), names.end());
  return names;
}

// ---- oslab-thrash -------------------------------------------------------------------------

TEST(ThrashLab, FindsTheKneeAtTheWorkingSet) {
  const auto before = groups_now();
  nlohmann::json doc = quick_json("thrash");
  if (skipped(doc, "the kernel under a memory limit")) {
    GTEST_SKIP() << "no memory cgroup here: " << doc["skipped"].dump();
  }
  expect_holds(doc, "kernel-knee-at-working-set");
  expect_holds(doc, "no-faults-above-working-set");
  expect_holds(doc, "page-cache-charged-to-first-toucher");
  expect_not_refuted(doc, "thrashing-below-working-set");
  // Each read misses about as often as the share of the working set that does not fit: counted
  // by the kernel, so asserted with a wide margin, never timed.
  const nlohmann::json* roomy = result(doc, "page read under a limit", {{"limit_percent", 120}});
  const nlohmann::json* tight = result(doc, "page read under a limit", {{"limit_percent", 60}});
  ASSERT_NE(roomy, nullptr);
  ASSERT_NE(tight, nullptr);
  EXPECT_LT(roomy->at("counters")["major_faults"].get<double>(), 0.001);
  EXPECT_GT(tight->at("counters")["major_faults"].get<double>(), 0.2);
  EXPECT_LT(tight->at("counters")["major_faults"].get<double>(), 0.6);
  EXPECT_EQ(groups_now(), before) << "a cgroup was left behind";
}

TEST(ThrashLab, ReplaysThePoliciesWithoutACgroup) {
  nlohmann::json doc = quick_json("thrash", {"--cgroup", "none"});
  EXPECT_TRUE(skipped(doc, "the kernel under a memory limit")) << doc["skipped"].dump();
  EXPECT_EQ(result(doc, "page read under a limit", nlohmann::json::object()), nullptr);
  expect_holds(doc, "replayed-lru-knee-at-working-set");
  expect_holds(doc, "opt-is-a-lower-bound");
  expect_holds(doc, "working-set-window-holds-the-working-set");
  for (const char* policy : {"LRU", "FIFO", "Clock", "OPT"})
    EXPECT_NE(result(doc, "replayed fault rate", {{"policy", policy}}), nullptr) << policy;
}

TEST(ThrashLab, ALoopDefeatsLruInTheReplay) {
  nlohmann::json doc = quick_json("thrash", {"--cgroup", "none", "--pattern", "loop", "--limits", "120,90,60"});
  const nlohmann::json* lru = result(doc, "replayed fault rate", {{"policy", "LRU"}});
  const nlohmann::json* opt = result(doc, "replayed fault rate", {{"policy", "OPT"}});
  ASSERT_NE(lru, nullptr);
  ASSERT_NE(opt, nullptr);
  // One sample per limit, in the order given (descending): 120% fits, 90% and 60% do not.
  EXPECT_LT(lru->at("samples")[0].get<double>(), 0.01);
  EXPECT_GT(lru->at("samples")[1].get<double>(), 0.99);
  EXPECT_LT(opt->at("samples")[1].get<double>(), 0.2);
}

TEST(ThrashLab, RejectsWhatItCannotHonour) {
  for (const auto& args : std::vector<std::vector<std::string>>{{"--pattern", "zigzag"},
                                                                {"--pattern", "random,loop"},
                                                                {"--limits", "0"},
                                                                {"--limits", "100,abc"},
                                                                {"--size", "1"},
                                                                {"--cgroup", "v3"},
                                                                {"--measure-ms", "5"},
                                                                {"--backing", "tape"},
                                                                {"--dir", "/nonexistent/dir"}})
    expect_usage_error("thrash", args);
}

TEST(ThrashLab, AnonymousWorkingSetNeedsSwap) {
  std::ifstream swaps("/proc/swaps");
  std::string line;
  int devices = -1;  // the first line is the header
  while (std::getline(swaps, line)) ++devices;
  if (devices > 0) GTEST_SKIP() << "this machine has swap";
  expect_usage_error("thrash", {"--backing", "anon"});
}

// Every group a lab makes is removed: by the lab, by its guardian when the lab is killed, and
// by the reaper of the next run when even the guardian was.
TEST(MemoryCgroups, GoneAfterSigkillSigintAndSigterm) {
  if (!my_memory_cgroup() || ::geteuid() != 0) GTEST_SKIP() << "no memory cgroup this test may create groups in";
  become_subreaper();
  const auto before = groups_now();
  for (const char* lab : {"thrash", "oom"}) {
    for (int after_ms : {250, 700, 1500}) {
      run_and_signal(lab, {}, std::chrono::milliseconds(after_ms), SIGKILL);
      EXPECT_EQ(orphans_still_running(std::chrono::seconds(10)), 0) << lab << " killed after " << after_ms << " ms";
      EXPECT_EQ(groups_now(), before) << lab << " killed after " << after_ms << " ms";
    }
    for (int signo : {SIGINT, SIGTERM}) {
      run_and_signal(lab, {}, std::chrono::milliseconds(500), signo);
      EXPECT_EQ(orphans_still_running(std::chrono::seconds(10)), 0) << lab << " signal " << signo;
      EXPECT_EQ(groups_now(), before) << lab << " signal " << signo;
    }
  }
}

TEST(MemoryCgroups, StaleGroupsOfDeadOwnersAreReaped) {
  auto dir = my_memory_cgroup();
  if (!dir || ::geteuid() != 0) GTEST_SKIP() << "no memory cgroup this test may create groups in";
  const pid_t dead = ::fork();
  if (dead == 0) _exit(0);
  ::waitpid(dead, nullptr, 0);
  const std::string stale = *dir + "/oslab.thrash." + std::to_string(dead) + ".0";
  ASSERT_EQ(::mkdir(stale.c_str(), 0755), 0) << stale;
  quick_json("oom");
  struct stat info {};
  EXPECT_NE(::stat(stale.c_str(), &info), 0) << stale << " was not reaped";
  if (::stat(stale.c_str(), &info) == 0) ::rmdir(stale.c_str());
}

// ---- oslab-wss ----------------------------------------------------------------------------

TEST(WssLab, FindsTheWorkingSetOfEachPhase) {
  nlohmann::json doc = quick_json("wss");
  expect_holds(doc, "wss-finds-each-phase");
  expect_holds(doc, "working-set-within-resident-set");
  expect_not_refuted(doc, "clear-refs-walks-the-page-tables");
  for (int phase : {1, 2, 3}) {
    const nlohmann::json* w = result(doc, "W(D,t)", {{"phase", phase}});
    ASSERT_NE(w, nullptr) << phase;
    EXPECT_EQ(w->at("unit"), "MiB");
    EXPECT_GT(w->at("counters")["expected_mib"].get<double>(), 0);
  }
  EXPECT_NE(result(doc, "W of a hot set the TLB can hold", {{"method", "clear_refs 1"}}), nullptr);
}

TEST(WssLab, MeasuresAnyProcess) {
  const pid_t target = ::fork();
  if (target == 0) {
    ::execl("/bin/sleep", "sleep", "20", nullptr);
    _exit(127);
  }
  nlohmann::json doc =
      quick_json("wss", {"--pid", std::to_string(target), "--duration", "1", "--window", "100", "--referenced-only"});
  ::kill(target, SIGKILL);
  ::waitpid(target, nullptr, 0);
  const nlohmann::json* w = result(doc, "W(D,t)", {{"pid", target}});
  ASSERT_NE(w, nullptr);
  EXPECT_GE(w->at("n").get<int>(), 5);
  expect_holds(doc, "working-set-within-resident-set");
  EXPECT_EQ(find_verdict(doc, "wss-finds-each-phase"), nullptr) << "no known working set to check against";
}

TEST(WssLab, RejectsWhatItCannotHonour) {
  const pid_t gone = ::fork();
  if (gone == 0) _exit(0);
  ::waitpid(gone, nullptr, 0);
  for (const auto& args : std::vector<std::vector<std::string>>{{"--pid", std::to_string(gone)},
                                                                {"--pid", "-3"},
                                                                {"--window", "0"},
                                                                {"--phases", "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16"},
                                                                {"--phases", "0"},
                                                                {"--drift", "-1"},
                                                                {"--intervals", "0"}})
    expect_usage_error("wss", args);
}

// ---- oslab-faults -------------------------------------------------------------------------

TEST(FaultsLab, CountsWhatTheKernelMustProduce) {
  nlohmann::json doc = quick_json("faults");
  for (const char* id : {"anonymous-first-write-one-fault-per-page", "zero-page-then-copy", "fault-around",
                         "private-file-write-copies", "write-to-read-only-is-sigsegv"})
    expect_holds(doc, id);
  if (!skipped(doc, "file read from the disk")) expect_holds(doc, "major-fault-reads-the-disk");
  const nlohmann::json* anon = result(doc, "anonymous first write", nlohmann::json::object());
  ASSERT_NE(anon, nullptr);
  EXPECT_NEAR(anon->at("counters")["minor_faults"].get<double>(), 1.0, 0.05);
  EXPECT_GT(doc["params"]["pages_mapped_by_one_fault"].get<int>(), 1);
  if (const nlohmann::json* thp = find_verdict(doc, "huge-page-one-fault-per-2mib")) {
    EXPECT_EQ((*thp)["state"], "holds");
  }
}

// ---- oslab-mmap ---------------------------------------------------------------------------

TEST(MmapLab, SharingAndPermissionsAreWhatTheKernelPromises) {
  nlohmann::json doc = quick_json("mmap");
  for (const char* id : {"map-shared-is-shared", "map-private-copies-on-write", "protection-is-per-page",
                         "open-mode-limits-the-mapping", "library-mapped-by-offset"})
    expect_holds(doc, id);
  if (!skipped(doc, "execute-through-a-mapping")) expect_holds(doc, "execute-through-a-mapping");
  if (!skipped(doc, "msync")) expect_holds(doc, "msync-writes-back");
  for (const char* method : {"read()", "mmap+munmap", "mmap(MAP_POPULATE)+munmap"})
    EXPECT_NE(result(doc, method, {{"size_kib", 4}}), nullptr) << method;
}

TEST(MmapLab, RejectsWhatItCannotHonour) {
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"--sizes", "3"}, {"--sizes", "6"}, {"--sizes", ""}, {"--dir", "/nonexistent/dir"}})
    expect_usage_error("mmap", args);
}

// ---- oslab-oom ----------------------------------------------------------------------------

TEST(OomLab, KillsTheLargestUnlessOneVolunteers) {
  const auto before = groups_now();
  nlohmann::json doc = quick_json("oom");
  expect_holds(doc, "oom-score-ranks-memory");
  if (skipped(doc, "the OOM killer in a memory cgroup")) GTEST_SKIP() << doc["skipped"].dump();
  expect_holds(doc, "oom-kills-the-largest-not-the-asker");
  expect_holds(doc, "oom-score-adj-chooses-the-victim");
  EXPECT_EQ(groups_now(), before) << "a cgroup was left behind";
}

TEST(OomLab, RanksWithoutACgroup) {
  nlohmann::json doc = quick_json("oom", {"--cgroup", "none"});
  EXPECT_TRUE(skipped(doc, "the OOM killer in a memory cgroup"));
  expect_holds(doc, "oom-score-ranks-memory");
  EXPECT_EQ(find_verdict(doc, "oom-kills-the-largest-not-the-asker"), nullptr);
}

TEST(OomLab, RejectsWhatItCannotHonour) {
  for (const auto& args :
       std::vector<std::vector<std::string>>{{"--limit", "1"}, {"--limit", "lots"}, {"--cgroup", "maybe"}})
    expect_usage_error("oom", args);
}

TEST(LabSet, TheMemoryLabsAreBuilt) {
  std::vector<std::string> labs = all_labs();
  for (const char* lab : {"wss", "faults", "thrash", "oom", "mmap"})
    EXPECT_NE(std::find(labs.begin(), labs.end(), lab), labs.end()) << lab;
}

}  // namespace
}  // namespace oslab::test
