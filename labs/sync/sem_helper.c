/* oslab-sem-helper: the other process of oslab-semaphores, a separate program so that what it
 * reaches, it reaches by name or by an inherited descriptor, never by a copy of the lab's memory.
 *
 *   open-post NAME         sem_open(NAME) without O_CREAT, sem_post, exit
 *   hold-posix NAME        sem_open(NAME), sem_wait, say "held" on stdout, wait to be killed
 *   hold-sysv ID UNDO      semop(ID, -1, UNDO ? SEM_UNDO : 0), say "held", wait to be killed
 *   hold-robust FD         lock the robust, process-shared mutex at the start of the mapping of
 *                          inherited memfd FD, say "held", wait to be killed
 *
 * Exit codes: 0 done, 1 a call failed (named on stderr), 2 usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sem.h>
#include <unistd.h>

static int fail(const char* call) {
  fprintf(stderr, "oslab-sem-helper: %s: %s\n", call, strerror(errno));
  return 1;
}

static int held_then_wait(void) {
  if (write(STDOUT_FILENO, "held\n", 5) != 5) return fail("write");
  for (;;) pause();
}

int main(int argc, char** argv) {
  if (argc == 3 && strcmp(argv[1], "open-post") == 0) {
    sem_t* sem = sem_open(argv[2], 0);
    if (sem == SEM_FAILED) return fail("sem_open");
    if (sem_post(sem) == -1) return fail("sem_post");
    return sem_close(sem) == -1 ? fail("sem_close") : 0;
  }
  if (argc == 3 && strcmp(argv[1], "hold-posix") == 0) {
    sem_t* sem = sem_open(argv[2], 0);
    if (sem == SEM_FAILED) return fail("sem_open");
    while (sem_wait(sem) == -1)
      if (errno != EINTR) return fail("sem_wait");
    return held_then_wait();
  }
  if (argc == 4 && strcmp(argv[1], "hold-sysv") == 0) {
    struct sembuf take = {0, -1, (short)(atoi(argv[3]) ? SEM_UNDO : 0)};
    while (semop(atoi(argv[2]), &take, 1) == -1)
      if (errno != EINTR) return fail("semop");
    return held_then_wait();
  }
  if (argc == 3 && strcmp(argv[1], "hold-robust") == 0) {
    pthread_mutex_t* mutex = mmap(NULL, sizeof(pthread_mutex_t), PROT_READ | PROT_WRITE, MAP_SHARED, atoi(argv[2]), 0);
    if (mutex == MAP_FAILED) return fail("mmap");
    int rc = pthread_mutex_lock(mutex);
    if (rc != 0) {
      errno = rc;
      return fail("pthread_mutex_lock");
    }
    return held_then_wait();
  }
  fprintf(stderr, "usage: oslab-sem-helper open-post NAME | hold-posix NAME | hold-sysv ID UNDO | hold-robust FD\n");
  return 2;
}
