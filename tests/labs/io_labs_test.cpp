// The IO labs on their --quick --json output: the semantics of each call (facts), and that
// every echo server model serves verified echoes to many connections and stops cleanly.

#include <gtest/gtest.h>

#include "lab_runner.hpp"

namespace oslab::test {
namespace {

TEST(NonblockLab, EachCallDoesWhatItSays) {
  nlohmann::json doc = quick_json("nonblock");
  for (const char* id : {"blocking-read-waits", "nonblocking-read-returns-eagain", "readiness-is-reported",
                         "level-triggered-reports-again", "edge-triggered-starves-a-partial-reader"})
    expect_holds(doc, id);
  if (skipped(doc, "io_uring")) {
    EXPECT_EQ(verdict_state(doc, "io-uring-completes-later"), "missing");
  } else {
    expect_holds(doc, "io-uring-completes-later");
  }
  size_t ready = 0, not_ready = 0;
  for (const auto& result : doc["results"]) {
    ready += result["params"]["descriptor"] == "ready";
    not_ready += result["params"]["descriptor"] == "not ready";
  }
  EXPECT_GE(ready, 5u);
  EXPECT_GE(not_ready, 4u);
}

// Up to 1,000 connections per model, as the tests allow; 10,000 is for the full run.
TEST(EchoLab, EveryModelServesAThousandVerifiedConnectionsAndStopsCleanly) {
  nlohmann::json doc = quick_json("echo", {"--connections", "1000", "--stall", "0", "--duration", "100"});
  expect_holds(doc, "every-echo-verified");
  expect_holds(doc, "servers-stop-cleanly");
  EXPECT_TRUE(doc["failed"].empty()) << doc["failed"].dump();
  for (const char* model : {"threads", "pool", "epoll-lt", "epoll-et", "uring", "uring-multishot", "green"}) {
    bool measured = false;
    for (const auto& result : doc["results"])
      measured = measured || (result["name"] == model && result["params"]["connections"] == 1000 &&
                              result["params"]["loop"] == "open");
    EXPECT_TRUE(measured || skipped(doc, model)) << model << ": neither measured nor skipped with a reason";
  }
  for (const auto& result : doc["results"]) {
    EXPECT_EQ(result["counters"]["lost"], 0) << result["name"];
    EXPECT_EQ(result["counters"]["corrupt"], 0) << result["name"];
    EXPECT_EQ(result["counters"]["echoed"], result["counters"]["sent"]) << result["name"];
    EXPECT_TRUE(result.contains("histogram")) << "latencies are kept in a histogram";
  }
  EXPECT_GE(doc["params"]["fd_limit"].get<double>(), 1064) << "RLIMIT_NOFILE raised for 1,000 connections";
}

TEST(EchoLab, CoordinatedOmissionIsShown) {
  nlohmann::json doc = quick_json("echo", {"--models", "epoll-lt", "--stall", "20"});
  EXPECT_NE(verdict_state(doc, "closed-loop-hides-the-stall"), "missing");
  bool closed = false, open = false;
  for (const auto& result : doc["results"]) {
    closed = closed || result["name"] == "stalled server, closed loop";
    open = open || result["name"] == "stalled server, open loop";
  }
  EXPECT_TRUE(closed && open);
}

TEST(EchoLab, BadInput) {
  expect_usage_error("echo", {"--models", "forking"});
  expect_usage_error("echo", {"--connections", "0"});
  expect_usage_error("echo", {"--size", "4"});
}

}  // namespace
}  // namespace oslab::test
