// oslab-minimal: the smallest complete lab, compiled and tested with the others
// (docs/writing-a-lab.md explains each part). Is getppid() dearer than getpid()?
//
// Try:     build/tests/oslab-minimal --quick
// Expect:  both enter the kernel; on Linux neither is cached by glibc, so they cost the same.
// Compare: oslab-syscall.

#include <sys/syscall.h>
#include <unistd.h>

#include <fmt/format.h>

#include "oslab/lab.hpp"

int main(int argc, char** argv) {
  oslab::Lab lab({
      .name = "minimal",
      .purpose = "getpid() against getppid(): two null system calls",
      .claim = "Any system call costs at least a trip into the kernel and back.",
      .explain = "Each sample times a batch of calls made through syscall(2), so that nothing is\n"
                 "cached in user space; the figure is the batch's time divided by its size.\n\n"
                 "Questions: why batch? What would glibc's getpid() have cached before 2.25?",
  });
  const long& batch =
      lab.integer_option("--batch", "Calls per timed sample", {.full = 1000, .quick = 100}, 1, 1'000'000);
  lab.sampling({.samples = {.full = 200, .quick = 20}, .budget_s = {.full = 0.5, .quick = 0.05}});

  return lab.run(argc, argv, [&](oslab::Report& report) {
    oslab::SamplingPlan plan = lab.plan();
    plan.batch = batch;
    std::function<void(int64_t)> calls[] = {[](int64_t n) {
                                              for (int64_t i = 0; i < n; ++i) ::syscall(SYS_getpid);
                                            },
                                            [](int64_t n) {
                                              for (int64_t i = 0; i < n; ++i) ::syscall(SYS_getppid);
                                            }};
    const auto measured = oslab::measure_interleaved(plan, calls);  // in rotation, block by block
    const auto& pid =
        report.add("getpid", {}, measured[0], {.what = "syscall(SYS_getpid), per call", .headline = true});
    const auto& ppid = report.add("getppid", {}, measured[1], {.what = "syscall(SYS_getppid), per call"});
    report.verdict("same-cost", "getppid() costs no more than 1.5x getpid()",
                   oslab::ratio_of(ppid.summary, pid.summary), oslab::Compare::below, 1.5,
                   fmt::format("getppid / getpid = {:.2f}x", ppid.summary.p50 / pid.summary.p50));
  });
}
