// The facts the green-thread labs demonstrate, on their --quick --json output: behaviour (what
// ran, what stopped, what was counted), never how fast.

#include <gtest/gtest.h>

#include "lab_runner.hpp"

namespace oslab::test {
namespace {

const nlohmann::json* find_result(const nlohmann::json& doc, const std::string& name,
                                  const nlohmann::json& params_subset = nlohmann::json::object()) {
  for (const auto& result : doc["results"]) {
    if (result["name"] != name) continue;
    bool all = true;
    for (const auto& [key, value] : params_subset.items())
      all = all && result["params"].value(key, nlohmann::json()) == value;
    if (all) return &result;
  }
  return nullptr;
}

TEST(UthreadsLab, MeasuresEverySwitchCreationAndTheSweep) {
  nlohmann::json doc = quick_json("uthreads", {"--counts", "2,50,20000"});
  for (const char* name : {"oslab assembly", "oslab assembly-no-fpu", "oslab assembly, MXCSR differs", "swapcontext",
                           "kernel thread switch", "process switch", "create green thread", "pthread_create", "fork"})
    EXPECT_NE(find_result(doc, name), nullptr) << name;
  if (find_result(doc, "Boost.Context fcontext") == nullptr) {
    EXPECT_TRUE(skipped(doc, "Boost.Context"));
  }
  for (int n : {2, 50, 20000}) {
    const nlohmann::json* r = find_result(doc, "switch between N green threads", {{"green_threads", n}});
    ASSERT_NE(r, nullptr) << n;
    EXPECT_GT((*r)["counters"]["rss_bytes_per_thread"].get<double>(), 0) << "the stacks were touched";
    EXPECT_EQ((*r)["params"]["guard_pages"], n <= 10000) << "guard pages up to --guard-limit, an arena above";
  }
  // Counted by the kernel: one rt_sigprocmask per swapcontext, none in our switch.
  const std::string counted = verdict_state(doc, "swapcontext-makes-a-system-call");
  if (counted != "missing") {
    EXPECT_EQ(counted, "holds");
  }
}

TEST(UthreadsLab, BadInput) {
  expect_usage_error("uthreads", {"--counts", "1"});
  expect_usage_error("uthreads", {"--stack", "1"});
  expect_usage_error("uthreads", {"--guard-limit", "40000"});
}

TEST(BlockingLab, OneBlockingCallStopsEveryGreenThreadAndParkingDoesNot) {
  nlohmann::json doc = quick_json("blocking", {"--window", "30"});
  expect_holds(doc, "one-blocking-call-stops-all");
  expect_holds(doc, "kernel-threads-keep-running");
  expect_holds(doc, "parking-keeps-the-others-running");
  const nlohmann::json* stalled = find_result(doc, "longest pause of a counter", {{"case", "read(2), empty pipe"}});
  ASSERT_NE(stalled, nullptr);
  EXPECT_EQ((*stalled)["counters"]["increments_in_window"], 0);
  EXPECT_GE((*stalled)["counters"]["blocking_call_ms"].get<double>(), 30) << "the read lasted the whole window";
  const nlohmann::json* epoll = find_result(doc, "longest pause of a counter", {{"case", "uthread::read, epoll"}});
  ASSERT_NE(epoll, nullptr);
  EXPECT_GT((*epoll)["counters"]["increments_in_window"].get<double>(), 0);
}

TEST(BlockingLab, BadInput) {
  expect_usage_error("blocking", {"--cases", "fork"});
  expect_usage_error("blocking", {"--window", "0"});
}

TEST(ManyToManyLab, EveryTaskOnceAndOneCoreForManyToOne) {
  nlohmann::json doc = quick_json("many-to-many", {"--tasks", "12", "--chunks", "10", "--rounds", "1000"});
  expect_holds(doc, "no-work-lost-or-repeated");
  expect_holds(doc, "many-to-one-uses-one-core");
  for (const char* model : {"M:1", "M:N", "1:1"}) {
    const nlohmann::json* r = find_result(doc, model);
    ASSERT_NE(r, nullptr) << model;
    EXPECT_EQ((*r)["counters"]["wrong_tasks"], 0) << model;
  }
}

TEST(ManyToManyLab, BadInput) {
  expect_usage_error("many-to-many", {"--tasks", "0"});
}

TEST(PreemptionLab, ASpinnerStarvesCooperativeThreadsNotPreemptiveOnes) {
  nlohmann::json doc = quick_json("preemption", {"--spin", "50"});
  expect_holds(doc, "cooperative-spinner-starves-the-rest");
  const std::string preempted = verdict_state(doc, "preemption-ends-the-monopoly");
  if (preempted == "missing") {
    EXPECT_TRUE(skipped(doc, "preemptive")) << "preemption is skipped only with a reason (ThreadSanitizer)";
  } else {
    EXPECT_EQ(preempted, "holds");
  }
}

TEST(PreemptionLab, BadInput) {
  expect_usage_error("preemption", {"--slice", "5"});
}

}  // namespace
}  // namespace oslab::test
