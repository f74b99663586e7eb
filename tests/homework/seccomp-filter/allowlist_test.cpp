// Unit tests of install_filter, each in a forked child that loads the filter and reports what
// its calls did through a pipe (write is one of the calls the filter must allow).
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <string>

#include <gtest/gtest.h>

#include "allowlist.hpp"

namespace {

struct Outcome {
  std::string out;
  int status = -1;
};

// Forks; the child loads the filter and runs `body(fd)`, which writes its findings to fd.
Outcome filtered(const std::function<void(int)>& body) {
  int fds[2];
  if (pipe(fds) != 0) return {};
  (void)std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    const int rc = install_filter();
    if (rc != 0) {
      dprintf(fds[1], "install_filter returned %d\n", rc);
      _exit(90);
    }
    body(fds[1]);
    _exit(0);
  }
  close(fds[1]);
  Outcome outcome;
  char buffer[4096];
  ssize_t n;
  while ((n = read(fds[0], buffer, sizeof buffer)) > 0) outcome.out.append(buffer, static_cast<size_t>(n));
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  outcome.status = status;
  return outcome;
}

// "name: EPERM" or "name: allowed" or "name: <other errno>".
void report(int fd, const char* name, long rc) {
  const char* what = rc != -1 ? "allowed" : errno == EPERM ? "EPERM" : strerrorname_np(errno);
  const std::string line = std::string(name) + ": " + what + "\n";
  (void)!write(fd, line.data(), line.size());
}

int status_field(const std::string& field) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.starts_with(field + ":")) return std::atoi(line.c_str() + field.size() + 1);
  return -1;
}

TEST(Allowlist, LoadsOneFilterAndTheProcessSurvivesIt) {
  const int before = status_field("Seccomp_filters");
  Outcome outcome = filtered([&](int fd) {
    const std::string line = "mode " + std::to_string(status_field("Seccomp")) + " filters " +
                             std::to_string(status_field("Seccomp_filters")) + "\n";
    (void)!write(fd, line.data(), line.size());  // not dprintf: it lseeks, which the filter need not allow
  });
  ASSERT_TRUE(WIFEXITED(outcome.status)) << "the child was killed: status " << outcome.status;
  EXPECT_EQ(WEXITSTATUS(outcome.status), 0) << outcome.out;
  // Reading /proc/self/status needs openat, read and close: all allowed.
  EXPECT_EQ(outcome.out, "mode 2 filters " + std::to_string(before + 1) + "\n")
      << "expected seccomp mode 2 (filter) and one more filter than before";
}

TEST(Allowlist, CallsHwWcDoesNotNeedFailWithEperm) {
  Outcome outcome = filtered([](int fd) {
    report(fd, "getppid", syscall(SYS_getppid));
    report(fd, "socket", socket(AF_INET, SOCK_STREAM, 0));
    utsname name{};
    report(fd, "uname", uname(&name));
    report(fd, "kill", kill(0, 0));  // our own process group: allowed but for the filter
    report(fd, "mkdir", mkdir("/tmp/oslab-allowlist-test", 0700));
    const long pid = syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
    if (pid == 0) _exit(0);
    report(fd, "clone", pid);
    report(fd, "getpid", syscall(SYS_getpid));
  });
  EXPECT_EQ(outcome.out,
            "getppid: EPERM\nsocket: EPERM\nuname: EPERM\nkill: EPERM\nmkdir: EPERM\nclone: EPERM\ngetpid: EPERM\n");
  EXPECT_TRUE(WIFEXITED(outcome.status)) << "a denied call must fail with EPERM, not kill";
}

TEST(Allowlist, OpenOnlyToRead) {
  const char* home = std::getenv("HOME");
  const std::string path = std::string(home ? home : "/tmp") + "/allowlist-test-" + std::to_string(getpid());
  Outcome outcome = filtered([&](int fd) {
    report(fd, "read-only", open("/proc/self/status", O_RDONLY));
    report(fd, "write-only", open(path.c_str(), O_WRONLY | O_CREAT, 0600));
    report(fd, "read-write", open("/proc/self/status", O_RDWR));
    report(fd, "create", open(path.c_str(), O_RDONLY | O_CREAT, 0600));
  });
  unlink(path.c_str());
  EXPECT_EQ(outcome.out, "read-only: allowed\nwrite-only: EPERM\nread-write: EPERM\ncreate: EPERM\n");
}

TEST(Allowlist, WhatHwWcNeedsWorksAndItCanExit) {
  Outcome outcome = filtered([](int fd) {
    char* block = static_cast<char*>(std::malloc(1 << 16));  // brk or mmap
    block[0] = 'x';
    const int file = open("/proc/self/status", O_RDONLY);
    struct stat st {};
    report(fd, "fstat", fstat(file, &st));
    report(fd, "read", read(file, block, 100));
    report(fd, "close", close(file));
    report(fd, "getppid", syscall(SYS_getppid));  // and the filter is there
    std::free(block);
    _exit(7);  // exit_group
  });
  EXPECT_EQ(outcome.out, "fstat: allowed\nread: allowed\nclose: allowed\ngetppid: EPERM\n");
  EXPECT_TRUE(WIFEXITED(outcome.status) && WEXITSTATUS(outcome.status) == 7) << "status " << outcome.status;
}

}  // namespace
