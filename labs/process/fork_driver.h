/* The protocol between oslab-fork and oslab-fork-driver (fork_driver.c), shared by both. */
#ifndef OSLAB_FORK_DRIVER_H
#define OSLAB_FORK_DRIVER_H

#include <stdint.h>

#define FORK_DRIVER_MAX_SAMPLES 100000

enum { OP_QUIT = 0, OP_TOUCH = 1, OP_BLOCK = 2 };

enum {
  M_FORK,
  M_VFORK,
  M_CLONE,
  M_CLONE_VM,
  M_POSIX_SPAWN,
  M_POSIX_SPAWN_DYNAMIC,
  M_FORK_EXEC,
  M_FORK_EXEC_DYNAMIC,
  M_VFORK_EXEC,
  M_VFORK_EXEC_DYNAMIC,
  M_PTHREAD,
};

struct ForkRequest {
  int32_t op;
  int32_t method;
  int32_t count;
  int32_t flag; /* OP_TOUCH: huge pages */
  int64_t arg;  /* OP_TOUCH: MiB */
};

struct ForkReply {
  int32_t status; /* 0, or an errno value; then `message` says what failed */
  int32_t count;  /* samples that follow (OP_BLOCK) */
  int32_t mappings;
  int32_t pad;
  double resident_mib;
  double self[4];     /* minor, major faults; voluntary, involuntary switches */
  double children[4]; /* the same for the reaped children */
  char message[200];
};

#endif
