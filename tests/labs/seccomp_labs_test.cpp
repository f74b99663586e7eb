// oslab-seccomp: every behaviour it demonstrates holds (they are kernel semantics, not
// timings), each cost it measures is there, and its own bad input exits 2.
#include <gtest/gtest.h>

#include "lab_runner.hpp"

namespace oslab::test {
namespace {

TEST(SeccompLab, EveryBehaviourHolds) {
  const nlohmann::json doc = quick_json("seccomp");
  for (const char* id : {"deny-list-eperm", "allow-list-eperm", "trap-sigsys-decoded", "kill-process-sigsys",
                         "inherited-across-fork", "inherited-across-exec", "irreversible", "user-notif-answers"})
    expect_holds(doc, id);
  EXPECT_NE(find_verdict(doc, "trap-sigsys-decoded")->at("evidence").get<std::string>().find("= getppid"),
            std::string::npos);
}

TEST(SeccompLab, MeasuresEveryFilterAndTheVerdictsAreNotContradicted) {
  const nlohmann::json doc = quick_json("seccomp", {"--rules", "0,10,100"});
  std::set<std::pair<std::string, int>> seen;
  for (const auto& result : doc["results"]) {
    EXPECT_EQ(result["name"], "getppid");
    seen.insert({result["params"]["filter"].get<std::string>(), result["params"]["rules"].get<int>()});
    EXPECT_GT(result["p50"].get<double>(), 0);
  }
  for (const auto& expected : std::set<std::pair<std::string, int>>{{"none", 0},
                                                                    {"rules on another call", 10},
                                                                    {"rules on another call", 100},
                                                                    {"rules on getppid's argument", 10},
                                                                    {"rules on getppid's argument", 100},
                                                                    {"USER_NOTIF", 1}})
    EXPECT_TRUE(seen.count(expected)) << expected.first << " " << expected.second;
  for (const char* id : {"argument-rules-cost", "user-notif-costs-a-round-trip"}) expect_not_refuted(doc, id);
}

TEST(SeccompLab, BadRuleCountsExitTwo) {
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"--rules", "100,10"}, {"--rules", "-1"}, {"--rules", "x"}, {"--rules", "5000"}}) {
    RunResult run = run_lab("seccomp", args);
    EXPECT_EQ(run.exit_code, 2) << args[1] << ": " << run.err;
    EXPECT_EQ(std::count(run.err.begin(), run.err.end(), '\n'), 1) << run.err;
    EXPECT_TRUE(run.out.empty());
  }
}

}  // namespace
}  // namespace oslab::test
