// Was anything else running while a lab measured? What the CPUs did, from /proc/stat (all
// CPUs together), less what this process and its reaped children used (getrusage) and what
// kernel threads did (they do this lab's deferred work too: a kworker frees the page tables
// of exited children after an RCU grace period). The rest was other work.
#pragma once

namespace oslab {

struct CpuUse {
  double busy_s = 0;            // user + nice + system + steal
  double kernel_threads_s = 0;  // user + system of kernel threads (PF_KTHREAD)
  double steal_s = 0;           // time the hypervisor ran something else while a CPU of ours wanted to run
  double ours_s = 0;            // user + system time of this process and its reaped children
  double wall_s = 0;            // CLOCK_MONOTONIC
  static CpuUse now();
};

// Over an interval: the CPUs' worth of other work, and of steal, on average.
struct Contention {
  double other_cpus = 0;
  double steal_cpus = 0;
  double wall_s = 0;
  // /proc/stat counts in ticks (10 ms): over a short run only several ticks of other work
  // are believed, over a long one a quarter of a CPU on average.
  bool busy() const;
};
Contention contention_between(const CpuUse& before, const CpuUse& after);

}  // namespace oslab
