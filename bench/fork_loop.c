/* oslab-fork-loop: the smallest C program that measures fork+exit+wait, the yardstick the
 * lean parent of oslab-fork is held against (it must add nothing: ratio 1.00).
 *
 *   build/bench/oslab-fork-loop [N]            N forks (default 2000), unpinned
 *   taskset -c 0 build/bench/oslab-fork-loop   pinned, as oslab-fork --placement same-cpu
 *
 * Prints the median and the mean of N samples in ns, one operation each: fork(); the child
 * _exit(0)s; the parent waitpid()s. Statically linked, like oslab-fork-driver. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int by_value(const void* a, const void* b) {
  long long x = *(const long long*)a, y = *(const long long*)b;
  return (x > y) - (x < y);
}

int main(int argc, char** argv) {
  int n = argc > 1 ? atoi(argv[1]) : 2000;
  if (n < 1) {
    fprintf(stderr, "usage: oslab-fork-loop [N >= 1]\n");
    return 2;
  }
  long long* samples = malloc(sizeof *samples * (size_t)n);
  if (samples == NULL) return 1;
  for (int i = 0; i < n + 10; ++i) {
    long long start = now_ns();
    pid_t pid = fork();
    if (pid == 0) _exit(0);
    if (pid < 0) {
      perror("fork");
      return 1;
    }
    int status;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      fprintf(stderr, "oslab-fork-loop: the child did not exit with 0\n");
      return 1;
    }
    if (i >= 10) samples[i - 10] = now_ns() - start; /* the first 10 warm up */
  }
  long long sum = 0;
  for (int i = 0; i < n; ++i) sum += samples[i];
  qsort(samples, (size_t)n, sizeof *samples, by_value);
  printf("fork+exit+wait: n %d, median %lld ns, mean %lld ns\n", n, samples[n / 2], sum / n);
  free(samples);
  return 0;
}
