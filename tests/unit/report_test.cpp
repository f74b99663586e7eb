#include "oslab/report.hpp"

#include <sstream>

#include <gtest/gtest.h>

#include "oslab/contention.hpp"
#include "oslab/error.hpp"
#include "oslab/histogram.hpp"

namespace oslab {
namespace {

TEST(Format, Durations) {
  EXPECT_EQ(format_duration(850), "850 ns");
  EXPECT_EQ(format_duration(1234), "1.23 us");
  EXPECT_EQ(format_duration(45'100), "45.1 us");
  EXPECT_EQ(format_duration(1'290'000), "1.29 ms");
  EXPECT_EQ(format_duration(2.5e9), "2.50 s");
  EXPECT_EQ(format_signed_duration(-1500), "-1.50 us");
  EXPECT_EQ(format_signed_duration(300), "+300 ns");
}

TEST(Format, Numbers) {
  EXPECT_EQ(format_number(1234), "1234");
  EXPECT_EQ(format_number(3), "3");
  EXPECT_EQ(format_number(1.234), "1.23");
  EXPECT_EQ(format_number(0.0123), "0.012");
  EXPECT_EQ(format_number(0.00073), "0.00073");
  EXPECT_EQ(format_number(1.620413685284791), "1.62");
}

TEST(Format, ParamsForPeople) {
  EXPECT_EQ(format_params({{"huge_pages", false},
                           {"other_work_cpus", 1.620413685284791},
                           {"sizes", {0, 64}},
                           {"placement", "same-cpu"}}),
            "huge_pages=no, other_work_cpus=1.62, placement=same-cpu, sizes=0,64");
}

TEST(Table, AlignsColumns) {
  std::ostringstream out;
  print_table(out, Table{"T", {"name", "time"}, {{"a", "1 ms"}, {"long name", "100 ms"}}, "foot"});
  EXPECT_EQ(out.str(),
            "T\n"
            "   name       time\n"
            "   ---------  ------\n"
            "   a            1 ms\n"
            "   long name  100 ms\n"
            "foot\n\n");
}

Measurement three_samples() {
  Measurement m;
  m.add_block(std::vector<double>{3, 1, 2}, Counters{12, 0, 0, 0}, Counters{60, 0, 0, 0});
  return m;
}

TEST(Report, JsonFollowsTheSchema) {
  Report report("fork", "oslab-fork --quick");
  report.params["rss_mib"] = {0, 64};
  report.add("fork+exit+wait", {{"touched_mib", 64}}, three_samples(), {.what = "one fork", .headline = true});
  report.fact("fork-copies", "fork grows", true, "7x");
  report.skip("thp", "never");
  report.note("a VM");
  report.table({"A table", {"a", "b"}, {{"1", "2"}}, "foot"});
  nlohmann::json doc = report.to_json();
  EXPECT_EQ(doc["schema"], "oslab/1");
  EXPECT_EQ(doc["lab"], "fork");
  EXPECT_FALSE(doc["version"].get<std::string>().empty());
  EXPECT_EQ(doc["cmdline"], "oslab-fork --quick");
  EXPECT_TRUE(doc["machine"].contains("cpu_model"));
  ASSERT_EQ(doc["results"].size(), 1u);
  const auto& result = doc["results"][0];
  EXPECT_EQ(result["n"], 3);
  EXPECT_EQ(result["p50"], 2);
  EXPECT_TRUE(result.contains("p99_9"));
  EXPECT_EQ(result["samples"], nlohmann::json({3, 1, 2}));  // every sample, in order
  EXPECT_EQ(result["counters"]["minor_faults"], 4);
  EXPECT_EQ(result["counters"]["child_minor_faults"], 20);
  EXPECT_EQ(result["params"]["touched_mib"], 64);
  EXPECT_EQ(result["what"], "one fork");
  EXPECT_DOUBLE_EQ(result["ci_coverage"].get<double>(), 0.75);
  EXPECT_TRUE(result["headline"].get<bool>());
  EXPECT_EQ(doc["verdicts"][0]["id"], "fork-copies");
  EXPECT_EQ(doc["verdicts"][0]["state"], "holds");
  EXPECT_EQ(doc["verdicts"][0]["holds"], true);
  EXPECT_EQ(doc["skipped"][0]["why"], "never");
  EXPECT_EQ(doc["notes"][0], "a VM");
  EXPECT_EQ(doc["tables"][0]["rows"][0][1], "2");
  EXPECT_EQ(doc["failed"].size(), 0u);
}

TEST(Report, ResultsStayValidAndAreFoundByNameAndParams) {
  Report report("x", "oslab-x");
  const Result& first = report.add_samples("op", {{"size", 1}, {"placement", "same-cpu"}}, {5, 6, 7}, {.what = "w"});
  for (int i = 2; i < 200; ++i) report.add_samples("op", {{"size", i}}, {1}, {.what = "w"});
  EXPECT_EQ(first.summary.p50, 6);  // still the first result after 199 more
  EXPECT_EQ(&report.get("op", {{"size", 1}}), &first);
  EXPECT_EQ(report.find("op", {{"size", 1}, {"placement", "two-cpus"}}), nullptr);
  EXPECT_EQ(report.find("other"), nullptr);
  EXPECT_THROW(report.get("op", {{"size", 999}}), std::logic_error);
}

TEST(Report, HistogramResultsKeepTheirBuckets) {
  Report report("x", "oslab-x");
  LogHistogram histogram;
  for (int i = 1; i <= 1000; ++i) histogram.record(i * 100.0);
  const Result& r = report.add_histogram("latency", {}, histogram, {.what = "one request"});
  EXPECT_EQ(r.summary.n, 1000u);
  nlohmann::json json = result_to_json(r);
  EXPECT_TRUE(json["samples"].empty());
  EXPECT_FALSE(json["histogram"].empty());
}

TEST(Decide, ThreeStatesFromTheInterval) {
  EXPECT_EQ(decide({3, 2.5, 3.5}, Compare::above, 2), VerdictState::holds);
  EXPECT_EQ(decide({1, 0.8, 1.2}, Compare::above, 2), VerdictState::does_not_hold);
  EXPECT_EQ(decide({2.1, 1.9, 2.4}, Compare::above, 2), VerdictState::inconclusive);
  EXPECT_EQ(decide({0.02, 0.01, 0.03}, Compare::below, 0.05), VerdictState::holds);
  EXPECT_EQ(decide({0.2, 0.1, 0.3}, Compare::below, 0.05), VerdictState::does_not_hold);
  EXPECT_EQ(decide({0.04, 0.03, 0.06}, Compare::below, 0.05), VerdictState::inconclusive);
  EXPECT_EQ(all_of({VerdictState::holds, VerdictState::inconclusive}), VerdictState::inconclusive);
  EXPECT_EQ(all_of({VerdictState::inconclusive, VerdictState::does_not_hold}), VerdictState::does_not_hold);
  EXPECT_EQ(all_of({VerdictState::holds, VerdictState::holds}), VerdictState::holds);
}

TEST(Report, VerdictsAreFoundByIdAndCarryTheThreshold) {
  Report report("x", "oslab-x");
  report.verdict("ratio", "a is twice b", Estimate{2.2, 2.1, 2.3}, Compare::above, 2, "a/b");
  const Verdict* v = report.find_verdict("ratio");
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(v->state, VerdictState::holds);
  EXPECT_NE(v->evidence.find("holds when 2.20x > 2.00x"), std::string::npos) << v->evidence;
  EXPECT_NE(v->evidence.find("2.10x .. 2.30x"), std::string::npos) << v->evidence;
  EXPECT_EQ(report.find_verdict("missing"), nullptr);
}

// On a busy machine every measured verdict becomes inconclusive, saying what it would have
// been; a fact the kernel decides does not.
TEST(Report, ABusyMachineMakesMeasuredVerdictsInconclusive) {
  Report report("x", "oslab-x");
  report.verdict("measured", "fork grows", VerdictState::does_not_hold, "1.0x");
  report.verdict("already", "unsure", VerdictState::inconclusive, "straddles");
  report.fact("fact", "CLONE_VM shares memory", true, "42");
  report.machine_was_busy(Contention{.other_cpus = 1.6, .steal_cpus = 0, .wall_s = 2});
  EXPECT_EQ(report.find_verdict("measured")->state, VerdictState::inconclusive);
  EXPECT_NE(report.find_verdict("measured")->evidence.find("would be 'does-not-hold'"), std::string::npos);
  EXPECT_EQ(report.find_verdict("fact")->state, VerdictState::holds);
  std::ostringstream out;
  report.print_human(out);
  EXPECT_NE(out.str().find("[inconclusive] fork grows"), std::string::npos) << out.str();
  EXPECT_NE(out.str().find("Note: the machine was busy"), std::string::npos);
  EXPECT_EQ(out.str().find("DOES NOT HOLD"), std::string::npos);
}

TEST(Report, AFailedCaseIsKeptBesideTheGoodOnes) {
  Report report("x", "oslab-x");
  EXPECT_TRUE(report.run_case("pipe", [&] { report.add_samples("pipe", {}, {1, 2, 3}, {.what = "w"}); }));
  EXPECT_FALSE(report.run_case("broken", [] { throw std::runtime_error("payload corrupted"); }));
  EXPECT_FALSE(report.run_case("io_uring", [] { throw SkipError("io_uring is disabled"); }));
  EXPECT_TRUE(report.run_case("fifo", [&] { report.add_samples("fifo", {}, {4}, {.what = "w"}); }));
  EXPECT_THROW(report.run_case("bad", [] { throw UsageError("--size: 0"); }), UsageError);
  EXPECT_EQ(report.results().size(), 2u);
  ASSERT_EQ(report.failed().size(), 1u);
  EXPECT_EQ(report.failed()[0].why, "payload corrupted");
  ASSERT_EQ(report.skipped().size(), 1u);
  EXPECT_EQ(report.skipped()[0].what, "io_uring");
  nlohmann::json doc = report.to_json();
  EXPECT_EQ(doc["failed"][0]["what"], "broken");
}

TEST(Report, HumanOutputShowsFailedVerdictsEvenWhenHoldingOnesAreHidden) {
  Report report("x", "oslab-x");
  report.fact("quiet", "kept quiet", true, "fine");
  report.fact("loud", "this one fails", false, "because");
  report.show_holding_verdicts = false;
  std::ostringstream out;
  report.print_human(out);
  EXPECT_NE(out.str().find("Verdicts (1 of 2 hold)"), std::string::npos);
  EXPECT_NE(out.str().find("DOES NOT HOLD"), std::string::npos);
  EXPECT_EQ(out.str().find("kept quiet"), std::string::npos);
}

}  // namespace
}  // namespace oslab
