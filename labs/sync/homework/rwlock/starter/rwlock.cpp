// Your reader-writer lock: see ../README.md and ../rwlock.hpp.
#include "rwlock.hpp"

void rw_init(RwLock* lock) {
  // TODO: initialise the mutex and both condition variables, and the counts.
  (void)lock;
}

void rw_read_lock(RwLock* lock) {
  // TODO: wait on readers_ok while a writer is active or waiting; then count yourself in.
  (void)lock;
}

void rw_read_unlock(RwLock* lock) {
  // TODO: count yourself out; the last reader out lets a waiting writer in.
  (void)lock;
}

void rw_write_lock(RwLock* lock) {
  // TODO: count yourself as waiting; wait on writer_ok while a writer or any reader is active.
  (void)lock;
}

void rw_write_unlock(RwLock* lock) {
  // TODO: the next writer first, if one waits; otherwise every waiting reader.
  (void)lock;
}

void rw_destroy(RwLock* lock) {
  // TODO: destroy what init made.
  (void)lock;
}
