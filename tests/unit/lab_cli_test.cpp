#include "oslab/lab.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "oslab/error.hpp"
#include "oslab/process.hpp"

namespace oslab {
namespace {

using namespace std::chrono_literals;

TEST(Parse, NumberLists) {
  EXPECT_EQ(parse_number_list("0,64,256", "--rss", 0, 1024), (std::vector<long>{0, 64, 256}));
  EXPECT_EQ(parse_number_list("5", "--x", 1, 10), (std::vector<long>{5}));
}

TEST(Parse, RejectsWithTheOptionName) {
  for (const char* bad : {"", ",", "1,", "a", "1.5", "-1", "2000", "1,,2", "99999999999999999999"}) {
    try {
      parse_number_list(bad, "--rss", 0, 1024);
      FAIL() << bad;
    } catch (const UsageError& e) {
      EXPECT_TRUE(std::string(e.what()).starts_with("--rss: ")) << e.what();
    }
  }
  EXPECT_THROW(parse_real("nan", "--budget", 0, 10), UsageError);
  EXPECT_THROW(parse_real("inf", "--budget", 0, 10), UsageError);
  EXPECT_THROW(parse_real("", "--budget", 0, 10), UsageError);
  EXPECT_THROW(parse_real("0", "--budget", 0.001, 10), UsageError);
  EXPECT_DOUBLE_EQ(parse_real("0.25", "--budget", 0, 10), 0.25);
  try {
    parse_integer("abc", "--iterations", 1, 10);
    FAIL();
  } catch (const UsageError& e) {
    EXPECT_STREQ(e.what(), "--iterations: 'abc' is not a whole number");
  }
}

TEST(Parse, Seeds) {
  EXPECT_EQ(parse_seed("0"), 0u);
  EXPECT_EQ(parse_seed("18446744073709551615"), UINT64_MAX);
  for (const char* bad : {"-1", "", "99999999999999999999", "12x", " 1", "1e3"})
    EXPECT_THROW(parse_seed(bad), UsageError) << bad;
}

struct TinyRun {
  int code = -1;
  std::string out, err;
};

std::string read_memfd(int fd) {
  std::string text;
  char buffer[4096];
  ::lseek(fd, 0, SEEK_SET);
  ssize_t n;
  while ((n = ::read(fd, buffer, sizeof buffer)) > 0) text.append(buffer, static_cast<size_t>(n));
  ::close(fd);
  return text;
}

// Runs a tiny lab in a child (Lab::run installs handlers and a watchdog), capturing its output.
TinyRun run_tiny_lab(std::vector<std::string> args, std::function<void(Lab&, Report&)> body,
                     std::function<void()> before = {}) {
  const int out = ::memfd_create("out", 0), err = ::memfd_create("err", 0);
  Child child = Child::fork([&] {
    ::dup2(out, STDOUT_FILENO);
    ::dup2(err, STDERR_FILENO);
    if (before) before();
    Lab lab({.name = "tiny",
             .purpose = "a lab for tests",
             .claim = "claim",
             .explain = "explain",
             .placements = {Placement::same_cpu, Placement::two_cpus, Placement::unpinned},
             .default_placements = {Placement::same_cpu}});
    const auto& sizes = lab.list_option("--sizes", "Sizes", {.full = {1, 2, 3}, .quick = {1}}, 0, 100);
    lab.sampling({.samples = {.full = 200, .quick = 20}, .budget_s = {.full = 1, .quick = 0.1}});
    std::vector<char*> argv{const_cast<char*>("oslab-tiny")};
    for (auto& arg : args) argv.push_back(arg.data());
    return lab.run(static_cast<int>(argv.size()), argv.data(), [&](Report& report) {
      report.params["seen_sizes"] = sizes;
      body(lab, report);
    });
  });
  ExitStatus status = child.wait(30s);
  return {status.exited ? status.code : 128 + status.signal, read_memfd(out), read_memfd(err)};
}

auto ok_body = [](Lab&, Report& report) { report.fact("a", "a claim", true, "evidence"); };

TEST(LabRun, ExitCodes) {
  EXPECT_EQ(run_tiny_lab({}, ok_body).code, 0);
  EXPECT_EQ(run_tiny_lab({"--json"}, ok_body).code, 0);
  EXPECT_EQ(run_tiny_lab({"--help"}, ok_body).code, 0);
  EXPECT_EQ(run_tiny_lab({"--purpose"}, ok_body).code, 0);
  EXPECT_EQ(run_tiny_lab({"--bogus"}, ok_body).code, 2);
  EXPECT_EQ(run_tiny_lab({"--iterations", "-3"}, ok_body).code, 2);
  EXPECT_EQ(run_tiny_lab({"--cpus", "5-2"}, ok_body).code, 2);
  EXPECT_EQ(run_tiny_lab({"--cpus", ""}, ok_body).code, 2);
  EXPECT_EQ(run_tiny_lab({"--seed", "-1"}, ok_body).code, 2);
  EXPECT_EQ(run_tiny_lab({"--seed", ""}, ok_body).code, 2);
  EXPECT_EQ(run_tiny_lab({"--budget", "nan"}, ok_body).code, 2);
  EXPECT_EQ(run_tiny_lab({"--placement", "moon"}, ok_body).code, 2);
  EXPECT_EQ(run_tiny_lab({"--sizes", "1,x"}, ok_body).code, 2);
  EXPECT_EQ(run_tiny_lab({}, [](Lab&, Report&) { throw UsageError("bad size"); }).code, 2);
  EXPECT_EQ(run_tiny_lab({}, [](Lab&, Report&) { throw SkipError("no io_uring"); }).code, 77);
  EXPECT_EQ(run_tiny_lab({}, [](Lab&, Report&) { throw SysError("fork", EAGAIN); }).code, 1);
  EXPECT_EQ(run_tiny_lab({}, [](Lab&, Report&) { throw std::runtime_error("broken transport"); }).code, 1);
}

TEST(LabRun, BadInputIsOneLineNamingTheOption) {
  TinyRun run = run_tiny_lab({"--sizes", "1,x"}, ok_body);
  EXPECT_EQ(run.err, "oslab-tiny: --sizes: 'x' is not a whole number\n");
  EXPECT_TRUE(run.out.empty());
}

TEST(LabRun, OptionsTakeTheirQuickOrFullDefaults) {
  auto sizes_of = [](const std::vector<std::string>& args) {
    TinyRun run = run_tiny_lab(args, ok_body);
    EXPECT_EQ(run.code, 0) << run.err;
    return nlohmann::json::parse(run.out)["params"];
  };
  EXPECT_EQ(sizes_of({"--json"})["sizes"], nlohmann::json({1, 2, 3}));
  EXPECT_EQ(sizes_of({"--json", "--quick"})["sizes"], nlohmann::json({1}));
  nlohmann::json given = sizes_of({"--json", "--quick", "--sizes", "7,8"});
  EXPECT_EQ(given["sizes"], nlohmann::json({7, 8}));
  EXPECT_EQ(given["seen_sizes"], nlohmann::json({7, 8}));
  EXPECT_EQ(given["placements"], nlohmann::json({"same-cpu"}));
  EXPECT_EQ(sizes_of({"--json", "--seed", "42"})["seed"], 42);
}

TEST(LabRun, HelpShowsBothDefaults) {
  TinyRun run = run_tiny_lab({"--help"}, ok_body);
  EXPECT_NE(run.out.find("(default: 1,2,3; --quick: 1)"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("(default: 200; --quick: 20)"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("--placement"), std::string::npos);
}

TEST(LabRun, IterationsAndBudgetStopAtWhicheverComesFirst) {
  // In the child: the plan is checked there and reported through the exit code instead.
  auto check = [](const std::vector<std::string>& args, const std::function<bool(const SamplingPlan&)>& ok) {
    return run_tiny_lab(args,
                        [ok](Lab& lab, Report&) {
                          if (!ok(lab.plan())) throw std::runtime_error("wrong plan");
                        })
        .code;
  };
  EXPECT_EQ(check({"--iterations", "50"},
                  [](const SamplingPlan& p) {
                    return p.max_samples == 50 && p.min_samples == 50 && p.budget > std::chrono::hours(1);
                  }),
            0);
  EXPECT_EQ(check({"--budget", "0.5"},
                  [](const SamplingPlan& p) {
                    return p.max_samples == 200 && p.min_samples == 5 && p.budget == std::chrono::milliseconds(500);
                  }),
            0);
  EXPECT_EQ(check({"--iterations", "50", "--budget", "0.5"},
                  [](const SamplingPlan& p) {
                    return p.max_samples == 50 && p.min_samples == 5 && p.budget == std::chrono::milliseconds(500);
                  }),
            0);
  EXPECT_EQ(
      check({"--quick"},
            [](const SamplingPlan& p) { return p.max_samples == 20 && p.budget == std::chrono::milliseconds(100); }),
      0);
}

TEST(LabRun, VersionAndJsonExplain) {
  TinyRun version = run_tiny_lab({"--version"}, ok_body);
  EXPECT_EQ(version.code, 0);
  EXPECT_TRUE(version.out.starts_with("oslab-tiny (oslab) ")) << version.out;
  TinyRun explain = run_tiny_lab({"--json", "--explain"}, ok_body);
  EXPECT_EQ(nlohmann::json::parse(explain.out)["explain"], "explain");
}

TEST(LabRun, AFailedCaseKeepsTheOtherResultsAndExitsOne) {
  TinyRun run = run_tiny_lab({"--json"}, [](Lab&, Report& report) {
    report.run_case("good", [&] { report.add_samples("good", {}, {1, 2, 3}, {.what = "w"}); });
    report.run_case("bad", [] { throw std::runtime_error("checksum mismatch"); });
  });
  EXPECT_EQ(run.code, 1);
  nlohmann::json doc = nlohmann::json::parse(run.out);
  EXPECT_EQ(doc["results"].size(), 1u);
  EXPECT_EQ(doc["failed"][0]["why"], "checksum mismatch");
  EXPECT_NE(run.err.find("checksum mismatch"), std::string::npos);
}

TEST(LabRun, AnExceptionInTheBodyStillPrintsWhatWasMeasured) {
  TinyRun run = run_tiny_lab({"--json"}, [](Lab&, Report& report) {
    report.add_samples("before", {}, {1}, {.what = "w"});
    throw std::runtime_error("then it broke");
  });
  EXPECT_EQ(run.code, 1);
  nlohmann::json doc = nlohmann::json::parse(run.out);
  EXPECT_EQ(doc["results"][0]["name"], "before");
  EXPECT_EQ(doc["failed"][0]["why"], "then it broke");
}

TEST(LabRun, LostOutputIsAFailure) {
  TinyRun run = run_tiny_lab({}, ok_body, [] { ::close(STDOUT_FILENO); });
  EXPECT_EQ(run.code, 1);
  EXPECT_NE(run.err.find("could not write the output"), std::string::npos) << run.err;
}

TEST(LabRun, AnIgnoredSigintStaysIgnored) {
  TinyRun run = run_tiny_lab(
      {},
      [](Lab&, Report&) {
        struct sigaction current {};
        ::sigaction(SIGINT, nullptr, &current);
        if (current.sa_handler != SIG_IGN) throw std::runtime_error("SIGINT was not left ignored");
      },
      [] { (void)::signal(SIGINT, SIG_IGN); });
  EXPECT_EQ(run.code, 0) << run.err;
}

TEST(LabRun, IterationsDefaultWithoutSampling) {
  Lab lab({.name = "tiny", .purpose = "p"});
  EXPECT_EQ(lab.iterations(100, 10), 100);
}

}  // namespace
}  // namespace oslab
