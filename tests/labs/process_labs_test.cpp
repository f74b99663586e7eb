// The facts the process-creation labs demonstrate, checked on their --quick --json output.
// Kernel semantics (faults, sharing) are asserted; times only where the kernel orders them
// by a wide margin, never against a number.

#include <gtest/gtest.h>

#include "lab_runner.hpp"

namespace oslab::test {
namespace {

nlohmann::json quick_json(const std::string& lab, std::vector<std::string> extra = {}) {
  std::vector<std::string> args{"--quick", "--json"};
  args.insert(args.end(), extra.begin(), extra.end());
  RunResult run = run_lab(lab, args);
  EXPECT_EQ(run.exit_code, 0) << run.err;
  return run.json();
}

const nlohmann::json* find_result(const nlohmann::json& doc, const std::string& name,
                                  const nlohmann::json& params_subset) {
  for (const auto& result : doc["results"]) {
    if (result["name"] != name) continue;
    bool all = true;
    for (const auto& [key, value] : params_subset.items())
      all = all && result["params"].value(key, nlohmann::json()) == value;
    if (all) return &result;
  }
  return nullptr;
}

void expect_usage_error(const std::string& lab, const std::vector<std::string>& args) {
  RunResult run = run_lab(lab, args);
  EXPECT_EQ(run.exit_code, 2) << args[0] << " " << (args.size() > 1 ? args[1] : "") << ": " << run.err;
  EXPECT_EQ(std::count(run.err.begin(), run.err.end(), '\n'), 1) << run.err;
  EXPECT_TRUE(run.out.empty()) << "bad input printed to stdout:\n" << run.out;
}

TEST(ForkLab, MeasuresEveryMethodAtEverySize) {
  nlohmann::json doc = quick_json("fork");
  const std::vector<std::string> names = {
      "fork+exit+wait",   "vfork+exit+wait", "clone(SIGCHLD)+exit+wait", "clone(CLONE_VM|CLONE_VFORK)+exit+wait",
      "posix_spawn+wait", "fork+exec+wait",  "vfork+exec+wait",          "pthread_create+join"};
  for (const auto& name : names)
    for (int touched : {0, 256}) {
      const nlohmann::json* r = find_result(doc, name, {{"touched_mib", touched}});
      ASSERT_NE(r, nullptr) << name << " at " << touched;
      EXPECT_GE((*r)["n"].get<int>(), 5);
      EXPECT_GE((*r)["params"]["parent_rss_mib"].get<double>(), touched) << "the memory was not touched";
    }
  EXPECT_EQ(doc["verdicts"].size(), 3u);
}

TEST(ForkLab, ForkCopiesPageTablesSoItGrowsWithMemory) {
  // 256 MiB is 65536 page-table entries to copy and tear down: a wide margin, not a benchmark.
  nlohmann::json doc = quick_json("fork", {"--methods", "fork,vfork", "--rss", "0,256", "--iterations", "9"});
  const double small = (*find_result(doc, "fork+exit+wait", {{"touched_mib", 0}}))["p50"];
  const double large = (*find_result(doc, "fork+exit+wait", {{"touched_mib", 256}}))["p50"];
  EXPECT_GT(large, small);
}

TEST(ForkLab, ThreadsAreNotChildren) {
  nlohmann::json doc = quick_json("fork", {"--methods", "pthread,fork", "--rss", "0"});
  const nlohmann::json& thread = *find_result(doc, "pthread_create+join", {});
  const nlohmann::json& fork = *find_result(doc, "fork+exit+wait", {});
  // RUSAGE_CHILDREN counts reaped processes: a forked child faults at least once, a thread never counts.
  EXPECT_EQ(thread["counters"]["child_minor_faults"].get<double>(), 0);
  EXPECT_GT(fork["counters"]["child_minor_faults"].get<double>(), 0);
}

TEST(ForkLab, RejectsWhatItCannotHonour) {
  for (const auto& args : std::vector<std::vector<std::string>>{{"--rss", "-5"},
                                                                {"--rss", "0,abc"},
                                                                {"--rss", ""},
                                                                {"--rss", "1048576"},
                                                                {"--rss", "99999999999"},
                                                                {"--methods", "spoon"},
                                                                {"--budget", "0"},
                                                                {"--cpus", "999"},
                                                                {"--cpus", "3-1"},
                                                                {"--cpus", "x"}})
    expect_usage_error("fork", args);
}

TEST(ForkLab, PinsWhereAsked) {
  nlohmann::json doc = quick_json("fork", {"--methods", "vfork", "--rss", "0", "--cpus", "0"});
  EXPECT_EQ(doc["params"]["cpus"], "0");
}

TEST(CowLab, PagesAreSharedUntilWritten) {
  nlohmann::json doc = quick_json("cow", {"--percent", "20,100"});
  for (int percent : {20, 100}) {
    const nlohmann::json& read =
        *find_result(doc, "read after fork", {{"mapping", "MAP_PRIVATE"}, {"huge_pages", false}, {"percent", percent}});
    const nlohmann::json& write = *find_result(
        doc, "write after fork", {{"mapping", "MAP_PRIVATE"}, {"huge_pages", false}, {"percent", percent}});
    EXPECT_LT(read["counters"]["minor_faults"].get<double>(), 0.05);
    EXPECT_NEAR(write["counters"]["minor_faults"].get<double>(), 1.0, 0.2);
    EXPECT_EQ(write["counters"]["parent_sees_child_writes"].get<double>(), 0);
    const nlohmann::json& shared =
        *find_result(doc, "write after fork", {{"mapping", "MAP_SHARED"}, {"huge_pages", false}, {"percent", percent}});
    EXPECT_EQ(shared["counters"]["parent_sees_child_writes"].get<double>(), 1.0);
  }
  for (const auto& verdict : doc["verdicts"]) EXPECT_TRUE(verdict["holds"].get<bool>()) << verdict.dump();
}

TEST(CowLab, SeedIsAppliedAndRecorded) {
  nlohmann::json doc = quick_json("cow", {"--seed", "12345", "--percent", "5"});
  EXPECT_EQ(doc["params"]["seed"], 12345);
}

TEST(CowLab, RejectsWhatItCannotHonour) {
  for (const auto& args : std::vector<std::vector<std::string>>{{"--size", "0"},
                                                                {"--size", "-1"},
                                                                {"--size", "1048576"},
                                                                {"--percent", "0"},
                                                                {"--percent", "101"},
                                                                {"--percent", "50,"}})
    expect_usage_error("cow", args);
}

TEST(CloneFlagsLab, MatrixIsLinuxSemantics) {
  nlohmann::json doc = quick_json("clone-flags");
  ASSERT_EQ(doc["verdicts"].size(), 48u);  // 8 variants x 6 observations
  for (const auto& verdict : doc["verdicts"]) EXPECT_TRUE(verdict["holds"].get<bool>()) << verdict.dump();
  auto claim = [&](const std::string& text) {
    for (const auto& verdict : doc["verdicts"])
      if (verdict["claim"] == text) return verdict["holds"].get<bool>();
    ADD_FAILURE() << "no verdict '" << text << "'";
    return false;
  };
  EXPECT_TRUE(claim("fork: memory is not shared with the parent"));
  EXPECT_TRUE(claim("vfork: memory is shared with the parent"));
  EXPECT_TRUE(claim("CLONE_FILES: an fd the child opens is shared with the parent"));
  EXPECT_TRUE(claim("CLONE_FS: the cwd is shared with the parent"));
  EXPECT_TRUE(claim("pthread_create: a signal handler is shared with the parent"));
  ASSERT_EQ(doc["results"].size(), 8u);
}

TEST(CloneFlagsLab, TableSaysEveryCellMatches) {
  RunResult run = run_lab("clone-flags", {"--quick"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_NE(run.out.find("Every cell matches Linux semantics."), std::string::npos) << run.out;
}

}  // namespace
}  // namespace oslab::test
