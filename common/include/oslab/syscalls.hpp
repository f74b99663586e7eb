// Counts the system calls a piece of code makes, by the kernel: a harness that makes half
// the calls it should reports an absurdly small latency, so labs count each method's calls
// once per run and check them.
//
// Two ways, and every count says which it used:
//   perf      perf_event_open on the raw_syscalls:sys_enter tracepoint, for the calling
//             thread: exact, no hardware counters needed; needs root (or CAP_PERFMON) and
//             tracefs, which is mounted at /sys/kernel/tracing when absent and allowed.
//   ptrace    the code runs in a forked child that this process traces, stopping at every
//             system call: for users without perf; the code must be safe to run after fork.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>

#include "oslab/machine.hpp"

namespace oslab {

struct SyscallCounts {
  std::string method;  // "perf raw_syscalls:sys_enter" or "ptrace"
  uint64_t total = 0;  // exact
  std::map<std::string, uint64_t> by_name;
  std::map<long, uint64_t> by_number;  // the same, by system call number
  uint64_t lost = 0;  // calls the per-name breakdown missed (perf's ring buffer was full); total stays exact
  uint64_t of(std::string_view name) const;
  std::string describe() const;  // "4 calls: read 2, write 2 (perf raw_syscalls:sys_enter)"
};

// The name of system call `number` on this architecture ("getppid"), or "syscall_<n>".
std::string syscall_name(long number);

// Whether and how counts can be taken here (does not mount anything).
Feature syscall_counting_available();

enum class CountMethod { automatic, perf, ptrace };

// Counts the calls `body` makes: with perf in the calling thread, or (automatic, when perf is
// not available) under ptrace in a forked child. Throws SkipError when neither is possible.
SyscallCounts count_syscalls(const std::function<void()>& body, CountMethod method = CountMethod::automatic);

// The perf way for code that must stay in its own thread (one party of a two-thread
// experiment): counts this thread's calls between start() and stop(). Throws SkipError from
// the constructor when perf counting is not available.
class SyscallCounter {
 public:
  explicit SyscallCounter(size_t ring_pages = 128);
  ~SyscallCounter();
  SyscallCounter(const SyscallCounter&) = delete;
  SyscallCounter& operator=(const SyscallCounter&) = delete;
  void start();
  SyscallCounts stop();

 private:
  int fd_ = -1;
  void* ring_ = nullptr;
  size_t ring_bytes_ = 0;
  size_t id_offset_ = 8;
};

}  // namespace oslab
