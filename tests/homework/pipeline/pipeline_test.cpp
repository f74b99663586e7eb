// Unit tests of the pipeline runner: parse_pipeline and run_pipeline called directly.
#include <dirent.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <gtest/gtest.h>

#include "pipeline.hpp"

namespace {

int open_fds() {
  int count = 0;
  if (DIR* dir = opendir("/proc/self/fd")) {
    while (const dirent* entry = readdir(dir))
      if (entry->d_name[0] != '.') ++count;
    closedir(dir);
  }
  return count - 1;  // the listing's own fd
}

// Runs the pipeline with its stdout in a file; returns what it wrote.
std::string output_of(const std::vector<Command>& commands, int* status = nullptr) {
  const char* home = getenv("HOME");
  std::string file = std::string(home ? home : "/tmp") + "/pipeline-test.XXXXXX";
  int fd = mkostemp(file.data(), O_CLOEXEC);
  if (fd < 0) throw std::runtime_error("cannot create " + file);
  (void)fflush(stdout);
  int saved = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 10);  // not inherited by the commands
  dup2(fd, STDOUT_FILENO);
  int rc = run_pipeline(commands);
  dup2(saved, STDOUT_FILENO);
  close(saved);
  close(fd);
  if (status) *status = rc;
  std::ifstream in(file);
  std::stringstream text;
  text << in.rdbuf();
  unlink(file.c_str());
  return text.str();
}

TEST(Parse, SplitsCommandsAndWords) {
  const std::vector<Command> expected = {{"ls", "-l"}, {"sort", "-r", "-k", "5"}, {"head"}};
  EXPECT_EQ(parse_pipeline("ls -l | sort  -r\t-k 5|head"), expected);
}

TEST(Parse, NoQuotingAndNoExpansion) {
  const std::vector<Command> expected = {{"echo", "$HOME", "'a", "b'", ">out"}};
  EXPECT_EQ(parse_pipeline("echo $HOME 'a b' >out"), expected);
}

TEST(Parse, BlankLineIsNoCommandAndAnEmptyCommandIsASyntaxError) {
  EXPECT_TRUE(parse_pipeline("   ").empty());
  EXPECT_TRUE(parse_pipeline("").empty());
  for (const char* bad : {"a | | b", "| a", "a |", "|", "a |  "})
    EXPECT_THROW(parse_pipeline(bad), std::invalid_argument) << bad;
}

TEST(Run, ConnectsEachOutputToTheNextInput) {
  EXPECT_EQ(output_of({{"echo", "one", "two"}, {"tr", "a-z", "A-Z"}, {"rev"}}), "OWT ENO\n");
}

TEST(Run, ReturnsTheStatusOfTheLastCommand) {
  EXPECT_EQ(run_pipeline({{"true"}, {"false"}}), 1);
  EXPECT_EQ(run_pipeline({{"false"}, {"true"}}), 0);
  EXPECT_EQ(run_pipeline({{"sh", "-c", "exit 7"}}), 7);
}

TEST(Run, ASignalIs128PlusItsNumber) {
  EXPECT_EQ(run_pipeline({{"true"}, {"sh", "-c", "kill -9 $$"}}), 137);
}

TEST(Run, CommandNotFoundIs127) {
  EXPECT_EQ(run_pipeline({{"oslab-no-such-command"}}), 127);
}

TEST(Run, ChildrenSeeOnlyStdinStdoutAndStderr) {
  EXPECT_EQ(output_of({{"echo", "x"}, {"hw-tool", "fds"}, {"cat"}}), "fds: 0 1 2\n");
}

TEST(Run, TheParentClosesEveryPipe) {
  const int before = open_fds();
  EXPECT_EQ(run_pipeline({{"true"}, {"true"}, {"true"}, {"true"}}), 0);
  EXPECT_EQ(open_fds(), before) << "fds left open in the parent";
}

TEST(Run, WaitsForEveryCommandAndLeavesNoZombie) {
  EXPECT_EQ(run_pipeline({{"sleep", "0.2"}, {"true"}}), 0);
  errno = 0;
  EXPECT_EQ(waitpid(-1, nullptr, WNOHANG), -1) << "a command was not waited for";
  EXPECT_EQ(errno, ECHILD);
}

TEST(Run, RunsTheCommandsAtTheSameTime) {
  // 1.2 MB through a 64 KiB pipe: only if both ends run together.
  int status = -1;
  EXPECT_EQ(output_of({{"seq", "1", "200000"}, {"wc", "-l"}}, &status), "200000\n");
  EXPECT_EQ(status, 0);
}

}  // namespace
