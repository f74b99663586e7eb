// Homework: a reader-writer lock that prefers writers. Implement the six functions in
// rwlock.cpp; README.md has the task. The structure is given: use its fields, add none.
#pragma once

#include <pthread.h>

struct RwLock {
  pthread_mutex_t mutex;       // guards the three counts below
  pthread_cond_t readers_ok;   // readers wait here
  pthread_cond_t writer_ok;    // writers wait here
  int active_readers = 0;      // readers holding the lock
  int waiting_writers = 0;     // writers waiting for it
  bool writer_active = false;  // a writer holds it
};

void rw_init(RwLock* lock);
void rw_read_lock(RwLock* lock);  // shared with other readers; waits while a writer holds or waits
void rw_read_unlock(RwLock* lock);
void rw_write_lock(RwLock* lock);  // alone; waits while anyone holds it
void rw_write_unlock(RwLock* lock);
void rw_destroy(RwLock* lock);
