// Reference solution. Not for students: `scripts/oslab handout` leaves it out.
#include "rwlock.hpp"

void rw_init(RwLock* lock) {
  pthread_mutex_init(&lock->mutex, nullptr);
  pthread_cond_init(&lock->readers_ok, nullptr);
  pthread_cond_init(&lock->writer_ok, nullptr);
  lock->active_readers = 0;
  lock->waiting_writers = 0;
  lock->writer_active = false;
}

void rw_read_lock(RwLock* lock) {
  pthread_mutex_lock(&lock->mutex);
  // Writer preference: a waiting writer, not only an active one, keeps new readers out.
  while (lock->writer_active || lock->waiting_writers > 0) pthread_cond_wait(&lock->readers_ok, &lock->mutex);
  ++lock->active_readers;
  pthread_mutex_unlock(&lock->mutex);
}

void rw_read_unlock(RwLock* lock) {
  pthread_mutex_lock(&lock->mutex);
  if (--lock->active_readers == 0 && lock->waiting_writers > 0) pthread_cond_signal(&lock->writer_ok);
  pthread_mutex_unlock(&lock->mutex);
}

void rw_write_lock(RwLock* lock) {
  pthread_mutex_lock(&lock->mutex);
  ++lock->waiting_writers;
  while (lock->writer_active || lock->active_readers > 0) pthread_cond_wait(&lock->writer_ok, &lock->mutex);
  --lock->waiting_writers;
  lock->writer_active = true;
  pthread_mutex_unlock(&lock->mutex);
}

void rw_write_unlock(RwLock* lock) {
  pthread_mutex_lock(&lock->mutex);
  lock->writer_active = false;
  if (lock->waiting_writers > 0)
    pthread_cond_signal(&lock->writer_ok);
  else
    pthread_cond_broadcast(&lock->readers_ok);  // every waiting reader may go in together
  pthread_mutex_unlock(&lock->mutex);
}

void rw_destroy(RwLock* lock) {
  pthread_cond_destroy(&lock->writer_ok);
  pthread_cond_destroy(&lock->readers_ok);
  pthread_mutex_destroy(&lock->mutex);
}
