// Every lab, whatever it measures: the standard options, the JSON document of DESIGN.md,
// sane figures, one-line usage errors with exit 2, and nothing left behind.

#include <signal.h>

#include <unistd.h>

#include <algorithm>
#include <set>

#include <gtest/gtest.h>

#include "lab_runner.hpp"
#include "schema_check.hpp"

namespace oslab::test {
namespace {

class EveryLab : public ::testing::TestWithParam<std::string> {};

size_t count_lines(const std::string& text) {
  return static_cast<size_t>(std::count(text.begin(), text.end(), '\n'));
}

TEST_P(EveryLab, PurposeIsOneLine) {
  RunResult run = run_lab(GetParam(), {"--purpose"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(count_lines(run.out), 1u) << run.out;
  EXPECT_GT(run.out.size(), 10u);
}

TEST_P(EveryLab, HelpListsTheStandardOptions) {
  RunResult run = run_lab(GetParam(), {"--help"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  for (const char* option :
       {"--help", "--version", "--json", "--quick", "--iterations", "--cpus", "--seed", "--explain", "--timeout"})
    EXPECT_NE(run.out.find(option), std::string::npos) << option << " missing from --help:\n" << run.out;
}

TEST_P(EveryLab, ExplainTeaches) {
  RunResult run = run_lab(GetParam(), {"--explain"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_GT(count_lines(run.out), 5u);
}

TEST_P(EveryLab, AnswersVersionAndExplainsInJson) {
  RunResult version = run_lab(GetParam(), {"--version"});
  EXPECT_EQ(version.exit_code, 0);
  EXPECT_TRUE(version.out.starts_with("oslab-" + GetParam() + " (oslab) ")) << version.out;
  RunResult explain = run_lab(GetParam(), {"--explain", "--json"});
  EXPECT_EQ(explain.exit_code, 0);
  EXPECT_EQ(explain.json()["lab"], GetParam());
}

TEST_P(EveryLab, BadInputIsOneLineAndExitTwo) {
  const std::vector<std::vector<std::string>> bad = {
      {"--no-such-option"},
      {"--iterations", "-1"},
      {"--iterations", "many"},
      {"--iterations", "99999999999"},
      {"--iterations", "0"},
      {"--seed", "x"},
      {"--seed", "-1"},
      {"--seed", ""},
      {"--seed", "99999999999999999999"},
      {"--timeout", "0"},
      {"--timeout", "abc"},
      {"--cpus", ""},
      {"--cpus", "9999"},
      {"extra-argument"},
      {"--quick", "--iterations"},
  };
  for (const auto& args : bad) {
    RunResult run = run_lab(GetParam(), args);
    std::string shown = args[0] + (args.size() > 1 ? " " + args[1] : "");
    EXPECT_EQ(run.exit_code, 2) << shown << "\nstderr: " << run.err;
    EXPECT_EQ(count_lines(run.err), 1u) << shown << "\nstderr: " << run.err;
    EXPECT_NE(run.err.find("oslab-" + GetParam()), std::string::npos) << run.err;
    EXPECT_TRUE(run.out.empty()) << shown << "\nstdout: " << run.out;
  }
}

void expect_sane_result(const nlohmann::json& result) {
  SCOPED_TRACE(result.value("name", "?") + " " + result.value("params", nlohmann::json::object()).dump());
  for (const char* field : {"name", "params", "unit", "n", "min", "p50", "p90", "p99", "max", "mean", "stddev",
                            "p50_ci95", "counters", "samples"})
    ASSERT_TRUE(result.contains(field)) << field;
  const double n = result["n"], min = result["min"], p50 = result["p50"], p90 = result["p90"], p99 = result["p99"],
               max = result["max"], mean = result["mean"], stddev = result["stddev"];
  EXPECT_GT(n, 0);
  if (result.contains("histogram")) {  // millions of samples, kept as bucket counts (Report::add_histogram)
    EXPECT_TRUE(result["samples"].empty());
    double counted = 0;
    for (const auto& bucket : result["histogram"]) counted += bucket[1].get<double>();
    EXPECT_EQ(counted, n);
  } else {
    EXPECT_EQ(result["samples"].size(), static_cast<size_t>(n));
  }
  EXPECT_GE(min, 0);
  EXPECT_LE(min, p50);
  EXPECT_LE(p50, p90);
  EXPECT_LE(p90, p99);
  EXPECT_LE(p99, max);
  EXPECT_GE(mean, min);
  EXPECT_LE(mean, max);
  EXPECT_GE(stddev, 0);
  EXPECT_LE(result["p50_ci95"][0].get<double>(), p50);
  EXPECT_GE(result["p50_ci95"][1].get<double>(), p50);
  if (result["unit"] == "ns") {
    EXPECT_GT(p50, 0) << "a time of zero means nothing was measured";
  }
  for (const auto& [name, value] : result["counters"].items()) EXPECT_GE(value.get<double>(), 0) << name;
}

TEST_P(EveryLab, QuickJsonIsAResultDocument) {
  RunResult run = run_lab(GetParam(), {"--quick", "--json", "--seed", "7"});
  if (run.exit_code == 77) GTEST_SKIP() << run.err;
  ASSERT_EQ(run.exit_code, 0) << run.err;
  nlohmann::json doc = run.json();
  EXPECT_EQ(doc["schema"], "oslab/1");
  EXPECT_EQ(doc["lab"], GetParam());
  EXPECT_NE(doc["cmdline"].get<std::string>().find("--quick"), std::string::npos);
  EXPECT_EQ(doc["params"]["seed"], 7);
  EXPECT_EQ(doc["started"].get<std::string>().size(), 20u);  // 2026-11-23T03:40:00Z
  for (const char* field : {"cpu_model", "logical_cpus", "kernel", "clocksource", "virtualization", "mitigations",
                            "features", "null_syscall_ns", "timer_overhead_ns"})
    EXPECT_TRUE(doc["machine"].contains(field)) << field;
  EXPECT_GT(doc["machine"]["logical_cpus"].get<int>(), 0);
  ASSERT_FALSE(doc["results"].empty());
  for (const auto& result : doc["results"]) expect_sane_result(result);
  ASSERT_FALSE(doc["verdicts"].empty());
  std::set<std::string> ids;
  for (const auto& verdict : doc["verdicts"]) {
    const std::string id = verdict["id"];
    EXPECT_FALSE(id.empty());
    EXPECT_TRUE(ids.insert(id).second) << "two verdicts with the id " << id;
    EXPECT_EQ(verdict["holds"].get<bool>(), verdict["state"] == "holds") << id;
    EXPECT_FALSE(verdict["claim"].get<std::string>().empty());
    EXPECT_FALSE(verdict["evidence"].get<std::string>().empty());
  }
  EXPECT_TRUE(doc["failed"].empty()) << doc["failed"].dump();
  EXPECT_EQ(schema_errors(doc, oslab_schema()), std::vector<std::string>{});
}

TEST_P(EveryLab, HumanOutputHasHeaderTableAndVerdicts) {
  RunResult run = run_lab(GetParam(), {"--quick"});
  if (run.exit_code == 77) GTEST_SKIP() << run.err;
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_TRUE(run.out.starts_with("oslab-" + GetParam() + ": ")) << run.out.substr(0, 200);
  EXPECT_NE(run.out.find("Machine: "), std::string::npos);
  EXPECT_NE(run.out.find("seed "), std::string::npos);
  EXPECT_NE(run.out.find("Verdicts ("), std::string::npos);
  EXPECT_NE(run.out.find("---"), std::string::npos) << "no table";
}

// An unprivileged user gets a run or a skip with the reason, never a failure.
TEST_P(EveryLab, RunsOrSkipsAsAnUnprivilegedUser) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to switch to an unprivileged user";
  if (::access("/usr/bin/setpriv", X_OK) != 0) GTEST_SKIP() << "setpriv (util-linux) is missing";
  if (const std::string closed = private_ancestor(lab_path(GetParam())); !closed.empty())
    GTEST_SKIP() << closed << " is not searchable by other users: clone oslab where they can reach it";
  RunResult run = run_command({"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                               lab_path(GetParam()), "--quick", "--json"});
  EXPECT_TRUE(run.exit_code == 0 || run.exit_code == 77) << "exit " << run.exit_code << ": " << run.err;
  if (run.exit_code == 77) {
    EXPECT_EQ(std::count(run.err.begin(), run.err.end(), '\n'), 1) << run.err;
  }
}

TEST_P(EveryLab, LeavesNothingBehind) {
  become_subreaper();
  IpcSnapshot before = IpcSnapshot::take();
  RunResult run = run_lab(GetParam(), {"--quick", "--json"});
  EXPECT_TRUE(run.exit_code == 0 || run.exit_code == 77) << run.err;
  EXPECT_EQ(orphans_still_running(std::chrono::milliseconds(500)), 0);
  EXPECT_EQ(IpcSnapshot::take().added_since(before), std::set<std::string>{});
}

TEST_P(EveryLab, LeavesNothingBehindWhenKilled) {
  become_subreaper();
  IpcSnapshot before = IpcSnapshot::take();
  // A full run is long enough to be killed in the middle of its measurements.
  for (int after_ms : {150, 400, 900}) {
    run_and_signal(GetParam(), {}, std::chrono::milliseconds(after_ms), SIGKILL);
    EXPECT_EQ(orphans_still_running(std::chrono::seconds(5)), 0) << "killed after " << after_ms << " ms";
  }
  EXPECT_EQ(IpcSnapshot::take().added_since(before), std::set<std::string>{});
}

TEST_P(EveryLab, SigintCleansUpAndStops) {
  become_subreaper();
  IpcSnapshot before = IpcSnapshot::take();
  for (int signo : {SIGINT, SIGTERM}) {
    oslab::ExitStatus status = run_and_signal(GetParam(), {}, std::chrono::milliseconds(300), signo);
    // Either the lab was done in 300 ms (exit 0) or the signal ended it, as the signal.
    EXPECT_TRUE(status.success() || (!status.exited && status.signal == signo)) << status.describe();
    EXPECT_EQ(orphans_still_running(std::chrono::seconds(5)), 0) << "after signal " << signo;
  }
  EXPECT_EQ(IpcSnapshot::take().added_since(before), std::set<std::string>{});
}

INSTANTIATE_TEST_SUITE_P(Labs, EveryLab, ::testing::ValuesIn(all_labs()),
                         [](const ::testing::TestParamInfo<std::string>& param) {
                           std::string name = param.param;
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

TEST(LabSet, TheProcessLabsAreBuilt) {
  std::vector<std::string> labs = all_labs();
  for (const char* lab : {"fork", "cow", "clone-flags"})
    EXPECT_NE(std::find(labs.begin(), labs.end(), lab), labs.end()) << lab;
}

}  // namespace
}  // namespace oslab::test

namespace oslab::test {
namespace {

// The checker must be able to fail, or the schema test proves nothing.
TEST(SchemaCheck, CatchesWhatTheSchemaForbids) {
  const nlohmann::json schema = nlohmann::json::parse(R"({
    "type": "object", "required": ["a"],
    "properties": {"a": {"type": "integer", "minimum": 1}, "b": {"enum": ["x", "y"]},
                   "c": {"type": "array", "items": {"$ref": "#/$defs/s"}, "minItems": 1}},
    "$defs": {"s": {"type": "string"}}})");
  EXPECT_TRUE(schema_errors(nlohmann::json::parse(R"({"a": 3, "b": "x", "c": ["s"]})"), schema).empty());
  EXPECT_EQ(schema_errors(nlohmann::json::parse(R"({"b": "z", "c": [1]})"), schema),
            (std::vector<std::string>{"/: missing a", "/b: \"z\" is not one of [\"x\",\"y\"]",
                                      "/c/0: expected \"string\", got number"}));
  EXPECT_EQ(schema_errors(nlohmann::json::parse(R"({"a": 0, "c": []})"), schema),
            (std::vector<std::string>{"/a: 0 is below the minimum 1", "/c: 0 items, fewer than 1"}));
  EXPECT_THROW(schema_errors(1, nlohmann::json::parse(R"({"pattern": "x"})")), std::invalid_argument);
}

TEST(SchemaCheck, TheSchemaFileIsValidJson) {
  EXPECT_EQ(oslab_schema()["properties"]["schema"]["const"], "oslab/1");
}

}  // namespace
}  // namespace oslab::test
