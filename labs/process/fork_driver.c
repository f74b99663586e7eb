/* oslab-fork-driver: the lean parent oslab-fork measures process creation from.
 *
 * Forking the lab itself would measure the lab: a C++ program with its libraries has four
 * or five times the mappings of a small C program, and fork copies every one. This helper
 * is a static C program of about ten mappings; oslab-fork starts one per memory size, tells
 * it how much memory to touch, and asks it for blocks of timed operations, one method at a
 * time, over a pipe. It answers with every sample and its getrusage counts. It never prints:
 * errors travel back over the pipe.
 *
 * Protocol (host byte order; both ends are on this machine):
 *   request  struct ForkRequest                    -> reply  struct ForkReply [+ samples]
 *   OP_TOUCH   arg = MiB, flag = huge pages    -> reply.status, reply.resident_mib, reply.mappings
 *   OP_BLOCK   method, count                   -> reply.status, reply.count, counters, then count doubles (ns)
 *   OP_QUIT                                    -> exits 0
 * argv: oslab-fork-driver STATIC_TARGET DYNAMIC_TARGET (the programs the exec methods run);
 * requests on fd 0, replies on fd 1.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fork_driver.h"

extern char** environ;

static char* g_targets[2]; /* static, dynamic */
static char g_stack[64 * 1024] __attribute__((aligned(64)));
static double g_samples[FORK_DRIVER_MAX_SAMPLES];

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int child_returns(void* unused) {
  (void)unused;
  return 0;
}
static void* thread_returns(void* unused) {
  (void)unused;
  return NULL;
}

/* Reaps `pid`; 0 when it exited with 0, else an errno-like code. */
static int reap(pid_t pid) {
  int status = 0;
  pid_t rc;
  do rc = waitpid(pid, &status, 0);
  while (rc == -1 && errno == EINTR);
  if (rc == -1) return errno;
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : ECHILD;
}

/* One operation of each method: create a task that ends at once, and reap it. */
static int op_fork(void) {
  pid_t pid = fork();
  if (pid == 0) _exit(0);
  return pid < 0 ? errno : reap(pid);
}
static int op_vfork(void) {
  pid_t pid = vfork();
  if (pid == 0) _exit(0);
  return pid < 0 ? errno : reap(pid);
}
static int op_clone(void) {
  pid_t pid = clone(child_returns, g_stack + sizeof g_stack, SIGCHLD, NULL);
  return pid < 0 ? errno : reap(pid);
}
static int op_clone_vm(void) {
  pid_t pid = clone(child_returns, g_stack + sizeof g_stack, CLONE_VM | CLONE_VFORK | SIGCHLD, NULL);
  return pid < 0 ? errno : reap(pid);
}
static int op_posix_spawn(char* target) {
  char* argv[] = {target, NULL};
  pid_t pid = 0;
  int rc = posix_spawn(&pid, target, NULL, NULL, argv, environ);
  return rc != 0 ? rc : reap(pid);
}
static int op_fork_exec(char* target) {
  char* argv[] = {target, NULL};
  pid_t pid = fork();
  if (pid == 0) {
    execve(target, argv, environ);
    _exit(127);
  }
  return pid < 0 ? errno : reap(pid);
}
static int op_vfork_exec(char* target) {
  char* argv[] = {target, NULL};
  pid_t pid = vfork();
  if (pid == 0) {
    execve(target, argv, environ);
    _exit(127);
  }
  return pid < 0 ? errno : reap(pid);
}
static int op_pthread(void) {
  pthread_t thread;
  int rc = pthread_create(&thread, NULL, thread_returns, NULL);
  return rc != 0 ? rc : pthread_join(thread, NULL);
}

/* vfork must be called where it returns, never through a pointer: a switch, not a table. */
static int run_once(int method) {
  switch (method) {
    case M_FORK: return op_fork();
    case M_VFORK: return op_vfork();
    case M_CLONE: return op_clone();
    case M_CLONE_VM: return op_clone_vm();
    case M_POSIX_SPAWN: return op_posix_spawn(g_targets[0]);
    case M_POSIX_SPAWN_DYNAMIC: return op_posix_spawn(g_targets[1]);
    case M_FORK_EXEC: return op_fork_exec(g_targets[0]);
    case M_FORK_EXEC_DYNAMIC: return op_fork_exec(g_targets[1]);
    case M_VFORK_EXEC: return op_vfork_exec(g_targets[0]);
    case M_VFORK_EXEC_DYNAMIC: return op_vfork_exec(g_targets[1]);
    case M_PTHREAD: return op_pthread();
  }
  return EINVAL;
}

static int write_all(const void* data, size_t size) {
  const char* p = data;
  while (size > 0) {
    ssize_t n = write(1, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    p += n;
    size -= (size_t)n;
  }
  return 0;
}

static int read_all(void* data, size_t size) {
  char* p = data;
  while (size > 0) {
    ssize_t n = read(0, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    p += n;
    size -= (size_t)n;
  }
  return 0;
}

static void counters_of(int who, double out[4]) {
  struct rusage usage;
  getrusage(who, &usage);
  out[0] = (double)usage.ru_minflt;
  out[1] = (double)usage.ru_majflt;
  out[2] = (double)usage.ru_nvcsw;
  out[3] = (double)usage.ru_nivcsw;
}

static int count_mappings(void) {
  FILE* maps = fopen("/proc/self/maps", "r");
  if (maps == NULL) return -1;
  int lines = 0, c;
  while ((c = fgetc(maps)) != EOF) lines += c == '\n';
  fclose(maps);
  return lines;
}

static double resident_mib(void) {
  FILE* statm = fopen("/proc/self/statm", "r");
  long size = 0, resident = 0;
  if (statm == NULL) return -1;
  if (fscanf(statm, "%ld %ld", &size, &resident) != 2) resident = -1;
  fclose(statm);
  return (double)resident * (double)sysconf(_SC_PAGESIZE) / (1024.0 * 1024.0);
}

static void touch(struct ForkReply* reply, int64_t mib, int huge_pages) {
  if (mib > 0) {
    size_t bytes = (size_t)mib << 20;
    char* memory = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED) {
      reply->status = errno;
      snprintf(reply->message, sizeof reply->message, "mmap(%lld MiB): %s", (long long)mib, strerror(errno));
      return;
    }
    if (madvise(memory, bytes, huge_pages ? MADV_HUGEPAGE : MADV_NOHUGEPAGE) != 0) {
      reply->status = errno;
      snprintf(reply->message, sizeof reply->message, "madvise: %s", strerror(errno));
      return;
    }
    long page = sysconf(_SC_PAGESIZE);
    for (size_t offset = 0; offset < bytes; offset += (size_t)page) ((volatile char*)memory)[offset] = 1;
  }
  reply->resident_mib = resident_mib();
  reply->mappings = count_mappings();
}

static void block(struct ForkReply* reply, int method, int count) {
  double before_self[4], before_children[4], after_self[4], after_children[4];
  if (count < 0 || count > FORK_DRIVER_MAX_SAMPLES) {
    reply->status = EINVAL;
    snprintf(reply->message, sizeof reply->message, "block of %d samples: at most %d", count, FORK_DRIVER_MAX_SAMPLES);
    return;
  }
  counters_of(RUSAGE_SELF, before_self);
  counters_of(RUSAGE_CHILDREN, before_children);
  for (int i = 0; i < count; ++i) {
    int64_t start = now_ns();
    int rc = run_once(method);
    int64_t elapsed = now_ns() - start;
    if (rc != 0) {
      reply->status = rc;
      snprintf(reply->message, sizeof reply->message, "method %d, operation %d: %s", method, i,
               rc == ECHILD ? "the child did not exit with 0" : strerror(rc));
      return;
    }
    g_samples[i] = (double)elapsed;
  }
  counters_of(RUSAGE_SELF, after_self);
  counters_of(RUSAGE_CHILDREN, after_children);
  for (int k = 0; k < 4; ++k) {
    reply->self[k] = after_self[k] - before_self[k];
    reply->children[k] = after_children[k] - before_children[k];
  }
  reply->count = count;
}

int main(int argc, char** argv) {
  if (argc != 3) return 2;
  g_targets[0] = argv[1];
  g_targets[1] = argv[2];
  signal(SIGPIPE, SIG_IGN);
  for (;;) {
    struct ForkRequest request;
    if (read_all(&request, sizeof request) != 0) return 0; /* the lab went away */
    if (request.op == OP_QUIT) return 0;
    struct ForkReply reply;
    memset(&reply, 0, sizeof reply);
    if (request.op == OP_TOUCH)
      touch(&reply, request.arg, request.flag);
    else if (request.op == OP_BLOCK)
      block(&reply, request.method, request.count);
    else
      reply.status = EINVAL;
    if (write_all(&reply, sizeof reply) != 0) return 1;
    if (request.op == OP_BLOCK && reply.status == 0 && write_all(g_samples, sizeof(double) * (size_t)reply.count) != 0)
      return 1;
  }
}
