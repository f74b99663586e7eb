#include "oslab/lab.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "oslab/error.hpp"
#include "oslab/process.hpp"

namespace oslab {
namespace {

using namespace std::chrono_literals;

TEST(NumberList, Parses) {
  EXPECT_EQ(parse_number_list("0,64,256", "--rss", 0, 1024), (std::vector<long>{0, 64, 256}));
  EXPECT_EQ(parse_number_list("5", "--x", 1, 10), (std::vector<long>{5}));
}

TEST(NumberList, RejectsWithTheOptionName) {
  for (const char* bad : {"", ",", "1,", "a", "1.5", "-1", "2000", "1,,2", "99999999999999999999"}) {
    try {
      parse_number_list(bad, "--rss", 0, 1024);
      FAIL() << bad;
    } catch (const UsageError& e) {
      EXPECT_TRUE(std::string(e.what()).starts_with("--rss: ")) << e.what();
    }
  }
}

// Runs a tiny lab in a child (Lab::main installs handlers and a watchdog) and returns its exit code.
int run_tiny_lab(std::vector<std::string> args, std::function<void(Report&)> body) {
  Child child = Child::fork([&] {
    int devnull = ::open("/dev/null", O_WRONLY);
    ::dup2(devnull, STDOUT_FILENO);
    ::dup2(devnull, STDERR_FILENO);
    Lab lab({.name = "tiny", .purpose = "a lab for tests", .claim = "", .explain = "", .pins_cpus = true});
    std::vector<char*> argv{const_cast<char*>("oslab-tiny")};
    for (auto& arg : args) argv.push_back(arg.data());
    return lab.main(static_cast<int>(argv.size()), argv.data(), body);
  });
  ExitStatus status = child.wait(30s);
  return status.exited ? status.code : 128 + status.signal;
}

auto ok_body = [](Report& report) { report.verdict("a claim", true, "evidence"); };

TEST(LabMain, ExitCodes) {
  EXPECT_EQ(run_tiny_lab({}, ok_body), 0);
  EXPECT_EQ(run_tiny_lab({"--json"}, ok_body), 0);
  EXPECT_EQ(run_tiny_lab({"--help"}, ok_body), 0);
  EXPECT_EQ(run_tiny_lab({"--purpose"}, ok_body), 0);
  EXPECT_EQ(run_tiny_lab({"--bogus"}, ok_body), 2);
  EXPECT_EQ(run_tiny_lab({"--iterations", "-3"}, ok_body), 2);
  EXPECT_EQ(run_tiny_lab({"--cpus", "5-2"}, ok_body), 2);
  EXPECT_EQ(run_tiny_lab({}, [](Report&) { throw UsageError("bad size"); }), 2);
  EXPECT_EQ(run_tiny_lab({}, [](Report&) { throw SkipError("no io_uring"); }), 77);
  EXPECT_EQ(run_tiny_lab({}, [](Report&) { throw SysError("fork", EAGAIN); }), 1);
  EXPECT_EQ(run_tiny_lab({}, [](Report&) { throw std::runtime_error("broken transport"); }), 1);
}

TEST(LabMain, IterationsDefaultAndOverride) {
  Lab lab({.name = "tiny", .purpose = "p"});
  EXPECT_EQ(lab.iterations(100, 10), 100);
}

}  // namespace
}  // namespace oslab
