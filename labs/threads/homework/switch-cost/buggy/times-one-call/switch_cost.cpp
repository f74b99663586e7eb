// Buggy solution (times-one-call): times one system call with gettimeofday, whose microseconds cannot see it.
// Not for students: `scripts/oslab handout` leaves it out.
#include "switch_cost.hpp"

#include <sched.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <vector>

namespace {

double now_ns() {
  timespec t{};
  clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<double>(t.tv_sec) * 1e9 + static_cast<double>(t.tv_nsec);
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values.empty() ? 0 : values[values.size() / 2];
}

}  // namespace

double measure_syscall_ns(long calls) {
  (void)calls;
  timeval before{}, after{};
  gettimeofday(&before, nullptr);
  syscall(SYS_getppid);
  gettimeofday(&after, nullptr);
  return static_cast<double>((after.tv_sec - before.tv_sec) * 1'000'000 + (after.tv_usec - before.tv_usec)) * 1000;
}

double measure_switch_ns(long round_trips) {
  cpu_set_t saved;
  if (sched_getaffinity(0, sizeof saved, &saved) != 0) return -1;
  int cpu = 0;
  while (cpu < CPU_SETSIZE && !CPU_ISSET(cpu, &saved)) ++cpu;
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(cpu, &one);
  // Pinned before fork: the child inherits it. On one CPU, every hand-over is a switch.
  if (sched_setaffinity(0, sizeof one, &one) != 0) return -1;
  int there[2], back[2];
  if (pipe(there) != 0 || pipe(back) != 0) return -1;
  (void)std::fflush(nullptr);
  const pid_t child = fork();
  if (child == 0) {
    close(there[1]);  // or it never reads end of file
    close(back[0]);
    char byte;
    while (read(there[0], &byte, 1) == 1)
      if (write(back[1], &byte, 1) != 1) break;
    _exit(0);
  }
  close(there[0]);
  close(back[1]);
  char byte = 'x';
  auto round_trip = [&] { return write(there[1], &byte, 1) == 1 && read(back[0], &byte, 1) == 1; };
  for (int i = 0; i < 100; ++i) round_trip();  // warm up
  constexpr long kBatch = 10;
  std::vector<double> per_round_trip;
  for (long done = 0; done < round_trips; done += kBatch) {
    const double start = now_ns();
    for (long i = 0; i < kBatch; ++i) round_trip();
    per_round_trip.push_back((now_ns() - start) / kBatch);
  }
  close(there[1]);  // the child reads end of file and leaves
  close(back[0]);
  waitpid(child, nullptr, 0);
  sched_setaffinity(0, sizeof saved, &saved);
  return median(per_round_trip) / 2;
}
