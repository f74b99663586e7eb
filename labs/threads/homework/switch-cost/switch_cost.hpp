// Homework: measure a system call and a context switch (OSTEP, chapter 6). Implement both
// functions in switch_cost.cpp; main.cpp (given) makes the program `switchcost`.
// README.md has the task.
#pragma once

// The cost of one null system call, in ns: `calls` calls of syscall(SYS_getppid), timed with
// clock_gettime(CLOCK_MONOTONIC) in batches of 1000; the median of the batches' per-call
// times (a batch in which another process ran is an outlier, not the cost).
double measure_syscall_ns(long calls);

// The cost of one context switch, in ns: this process and a child, both pinned to one CPU,
// pass one byte back and forth through two pipes `round_trips` times, timed in batches of 10
// round trips; a round trip is two switches: the median batch's time per round trip, halved.
// Leaves this process's CPU affinity as it found it, and no child behind.
double measure_switch_ns(long round_trips);
