// What /proc says about a process or one of its threads: the scheduler state of each task, the
// system call a blocked task sits in, its parent, and its memory (RSS, PSS, page tables).
// Readers return nullopt when the task is gone (or the file unreadable): a task can end
// between two reads, and a lab says so rather than failing.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace oslab {

// The fields of /proc/<pid>/task/<tid>/stat a lab shows.
struct TaskStat {
  char state = '?';  // R running or runnable, S sleeping, D uninterruptible, Z zombie, T stopped, ...
  std::string comm;  // the name, without parentheses
  pid_t ppid = 0;
  long minor_faults = 0;
  int processor = -1;  // the CPU it last ran on
};
// tid 0: the process's own line (/proc/<pid>/stat).
std::optional<TaskStat> read_task_stat(pid_t pid, pid_t tid = 0);
// "R (running)", "S (sleeping)", ... as the kernel's fs/proc/array.c names them.
std::string describe_task_state(char state);

// The thread ids in /proc/<pid>/task, sorted.
std::vector<pid_t> list_tasks(pid_t pid);

// The system call a task is blocked in, from /proc/<pid>/task/<tid>/syscall ("futex",
// "clock_nanosleep"); "running" when it is not in one; nullopt when unreadable.
std::optional<std::string> task_syscall(pid_t pid, pid_t tid);

// A line of /proc/<pid>/status ("PPid", "Threads", "VmRSS"): its value as written, without
// the name; nullopt when absent (a zombie has no Vm* lines: its memory is gone).
std::optional<std::string> status_field(pid_t pid, std::string_view field);
// The same for a "... kB" field, in KiB.
std::optional<double> status_kib(pid_t pid, std::string_view field);

// /proc/<pid>/smaps_rollup: resident memory, and the proportional share of it (each shared
// page divided among the processes that map it), in KiB.
struct MemoryUse {
  double rss_kib = 0;
  double pss_kib = 0;
};
std::optional<MemoryUse> read_memory_use(pid_t pid);

}  // namespace oslab
