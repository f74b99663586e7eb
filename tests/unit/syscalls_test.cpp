// The system-call counter on known call sequences, by both methods.
#include "oslab/syscalls.hpp"

#include <sys/syscall.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "oslab/error.hpp"

namespace oslab {
namespace {

void ten_getppid() {
  for (int i = 0; i < 10; ++i) ::syscall(SYS_getppid);
}

TEST(SyscallNames, ComeFromTheCLibrary) {
  EXPECT_EQ(syscall_name(SYS_getppid), "getppid");
  EXPECT_EQ(syscall_name(SYS_read), "read");
  EXPECT_EQ(syscall_name(SYS_futex), "futex");
  EXPECT_EQ(syscall_name(99999), "syscall_99999");
}

TEST(CountSyscalls, PerfCountsTenGetppidAsTen) {
  SyscallCounts counts;
  try {
    counts = count_syscalls(ten_getppid, CountMethod::perf);
  } catch (const SkipError& e) {
    GTEST_SKIP() << e.what();
  }
  EXPECT_EQ(counts.method, "perf raw_syscalls:sys_enter");
  EXPECT_EQ(counts.total, 10u) << counts.describe();
  EXPECT_EQ(counts.of("getppid"), 10u) << counts.describe();
  EXPECT_EQ(counts.lost, 0u);
}

TEST(CountSyscalls, PtraceCountsTenGetppidAsTen) {
  SyscallCounts counts = count_syscalls(ten_getppid, CountMethod::ptrace);
  EXPECT_EQ(counts.method, "ptrace");
  EXPECT_EQ(counts.total, 10u) << counts.describe();
  EXPECT_EQ(counts.of("getppid"), 10u) << counts.describe();
}

TEST(CountSyscalls, BothMethodsAgreeOnAPipeRoundTrip) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  auto round_trips = [&] {
    char byte = 'x';
    for (int i = 0; i < 5; ++i) {
      if (::write(fds[1], &byte, 1) != 1 || ::read(fds[0], &byte, 1) != 1) throw std::runtime_error("pipe");
    }
  };
  SyscallCounts traced = count_syscalls(round_trips, CountMethod::ptrace);
  EXPECT_EQ(traced.of("write"), 5u) << traced.describe();
  EXPECT_EQ(traced.of("read"), 5u) << traced.describe();
  EXPECT_EQ(traced.total, 10u) << traced.describe();
  SyscallCounts automatic = count_syscalls(round_trips);
  EXPECT_EQ(automatic.total, 10u) << automatic.describe();
  ::close(fds[0]);
  ::close(fds[1]);
}

TEST(CountSyscalls, NothingCountsZero) {
  SyscallCounts counts = count_syscalls([] {});
  EXPECT_EQ(counts.total, 0u) << counts.describe();
}

TEST(CountSyscalls, AFailureInThePtraceChildIsAnError) {
  EXPECT_THROW(count_syscalls([] { throw std::runtime_error("no"); }, CountMethod::ptrace), std::runtime_error);
}

}  // namespace
}  // namespace oslab
