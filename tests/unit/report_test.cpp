#include "oslab/report.hpp"

#include <sstream>

#include <gtest/gtest.h>

namespace oslab {
namespace {

TEST(Format, Durations) {
  EXPECT_EQ(format_duration(850), "850 ns");
  EXPECT_EQ(format_duration(1234), "1.23 us");
  EXPECT_EQ(format_duration(45'100), "45.1 us");
  EXPECT_EQ(format_duration(1'290'000), "1.29 ms");
  EXPECT_EQ(format_duration(2.5e9), "2.50 s");
}

TEST(Format, Numbers) {
  EXPECT_EQ(format_number(1234), "1234");
  EXPECT_EQ(format_number(3), "3");
  EXPECT_EQ(format_number(1.234), "1.23");
  EXPECT_EQ(format_number(0.0123), "0.012");
  EXPECT_EQ(format_number(0.00073), "0.00073");
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

TEST(Report, JsonFollowsTheSchema) {
  Report report("fork", "oslab-fork --quick");
  report.params["rss_mib"] = {0, 64};
  Measurement m;
  m.samples_ns = {3, 1, 2};
  m.operations = 3;
  m.self_per_op.minor_faults = 4;
  m.children_per_op.minor_faults = 20;
  Result& r = report.add("fork+exit+wait", {{"touched_mib", 64}}, m, "one fork");
  r.headline = true;
  report.verdict("fork grows", true, "7x");
  report.skip("thp", "never");
  report.note("a VM");
  nlohmann::json doc = report.to_json();
  EXPECT_EQ(doc["schema"], "oslab/1");
  EXPECT_EQ(doc["lab"], "fork");
  EXPECT_EQ(doc["cmdline"], "oslab-fork --quick");
  EXPECT_TRUE(doc["machine"].contains("cpu_model"));
  ASSERT_EQ(doc["results"].size(), 1u);
  const auto& result = doc["results"][0];
  EXPECT_EQ(result["n"], 3);
  EXPECT_EQ(result["p50"], 2);
  EXPECT_EQ(result["samples"], nlohmann::json({3, 1, 2}));  // every sample, in order
  EXPECT_EQ(result["counters"]["minor_faults"], 4);
  EXPECT_EQ(result["counters"]["child_minor_faults"], 20);
  EXPECT_EQ(result["params"]["touched_mib"], 64);
  EXPECT_TRUE(result["headline"].get<bool>());
  EXPECT_EQ(doc["verdicts"][0]["holds"], true);
  EXPECT_EQ(doc["skipped"][0]["why"], "never");
  EXPECT_EQ(doc["notes"][0], "a VM");
}

TEST(Report, HumanOutputShowsFailedVerdictsEvenWhenHoldingOnesAreHidden) {
  Report report("x", "oslab-x");
  report.verdict("kept quiet", true, "fine");
  report.verdict("this one fails", false, "because");
  report.show_holding_verdicts = false;
  std::ostringstream out;
  report.print_human(out);
  EXPECT_NE(out.str().find("Verdicts (1 of 2 hold)"), std::string::npos);
  EXPECT_NE(out.str().find("DOES NOT HOLD"), std::string::npos);
  EXPECT_EQ(out.str().find("kept quiet"), std::string::npos);
}

}  // namespace
}  // namespace oslab
