#include "oslab/error.hpp"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

namespace oslab {
namespace {

TEST(ErrnoName, SymbolicNames) {
  EXPECT_EQ(errno_name(EACCES), "EACCES");
  EXPECT_EQ(errno_name(ENOENT), "ENOENT");
  EXPECT_EQ(errno_name(9999), "E9999");
  EXPECT_EQ(describe_errno(EACCES), "EACCES (Permission denied)");
}

TEST(CheckErrno, ThrowsWithCallAndErrno) {
  try {
    check_errno("open", ::open("/nonexistent/oslab", O_RDONLY));
    FAIL();
  } catch (const SysError& e) {
    EXPECT_EQ(e.errnum(), ENOENT);
    EXPECT_STREQ(e.what(), "open: ENOENT (No such file or directory)");
  }
  EXPECT_EQ(check_errno("getpid", ::getpid()), ::getpid());
}

TEST(CheckErrnum, ForReturnedErrorNumbers) {
  EXPECT_EQ(check_errnum("pthread_x", 0), 0);
  EXPECT_THROW(check_errnum("pthread_x", EAGAIN), SysError);
  try {
    check_errnum("posix_spawn", EAGAIN);
  } catch (const SysError& e) {
    EXPECT_EQ(e.errnum(), EAGAIN);
    EXPECT_NE(std::string(e.what()).find("posix_spawn: EAGAIN"), std::string::npos);
  }
}

TEST(CheckNeg, ForMinusErrno) {
  EXPECT_EQ(check_neg("io_uring_submit", 3), 3);
  try {
    check_neg("io_uring_submit", -EBUSY);
    FAIL();
  } catch (const SysError& e) {
    EXPECT_EQ(e.errnum(), EBUSY);
  }
}

TEST(ChildFail, WritesOneLineAndExits) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  set_program_name("oslab-test");
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(fds[1], STDERR_FILENO);
    child_fail("execve", ENOENT, 127);
  }
  ::close(fds[1]);
  char buffer[256] = {};
  ssize_t n = ::read(fds[0], buffer, sizeof buffer - 1);
  ::close(fds[0]);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 127);
  EXPECT_GT(n, 0);
  EXPECT_STREQ(buffer, "oslab-test: child: execve: ENOENT\n");
}

}  // namespace
}  // namespace oslab
