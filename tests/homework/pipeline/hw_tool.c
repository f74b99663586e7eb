/* hw-tool: the grader's small commands for the pipeline cases.
 *   hw-tool fds       prints "fds: 0 1 2", the fds this process has open (from /proc/self/fd)
 *   hw-tool exit N    exits with N
 *   hw-tool kill N    kills itself with signal N
 *   hw-tool slow      sleeps 300 ms, then says "slow: done" on stderr: only if it was waited for */
#define _GNU_SOURCE
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int compare(const void* a, const void* b) {
  return *(const int*)a - *(const int*)b;
}

int main(int argc, char** argv) {
  if (argc >= 2 && !strcmp(argv[1], "fds")) {
    DIR* dir = opendir("/proc/self/fd");
    if (!dir) return perror("opendir /proc/self/fd"), 1;
    int fds[1024], n = 0;
    struct dirent* entry;
    while ((entry = readdir(dir)) != NULL && n < 1024)
      if (entry->d_name[0] != '.' && atoi(entry->d_name) != dirfd(dir)) fds[n++] = atoi(entry->d_name);
    closedir(dir);
    qsort(fds, (size_t)n, sizeof fds[0], compare);
    printf("fds:");
    for (int i = 0; i < n; ++i) printf(" %d", fds[i]);
    printf("\n");
    return 0;
  }
  if (argc >= 3 && !strcmp(argv[1], "exit")) return atoi(argv[2]);
  if (argc >= 3 && !strcmp(argv[1], "kill")) {
    signal(atoi(argv[2]), SIG_DFL);
    raise(atoi(argv[2]));
    return 1;
  }
  if (argc >= 2 && !strcmp(argv[1], "slow")) {
    struct timespec wait = {0, 300 * 1000 * 1000};
    nanosleep(&wait, NULL);
    fprintf(stderr, "slow: done\n");
    return 0;
  }
  fprintf(stderr, "usage: hw-tool fds | exit N | kill N | slow\n");
  return 2;
}
