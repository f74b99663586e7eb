// Buggy solution (mutex-before-slot): takes the mutex before waiting for a free slot: a full buffer deadlocks.
// Not for students: `scripts/oslab handout` leaves it out.
#include "bounded_buffer.hpp"

void cond_buffer_init(CondBuffer* buffer, size_t capacity) {
  pthread_mutex_init(&buffer->mutex, nullptr);
  pthread_cond_init(&buffer->not_full, nullptr);
  pthread_cond_init(&buffer->not_empty, nullptr);
  buffer->slots.assign(capacity, 0);
  buffer->head = buffer->tail = buffer->count = 0;
}

void cond_buffer_put(CondBuffer* buffer, int64_t item) {
  pthread_mutex_lock(&buffer->mutex);
  // A loop, not an if: another producer may fill the slot between the signal and our wake-up.
  while (buffer->count == buffer->slots.size()) pthread_cond_wait(&buffer->not_full, &buffer->mutex);
  buffer->slots[buffer->tail] = item;
  buffer->tail = (buffer->tail + 1) % buffer->slots.size();
  ++buffer->count;
  pthread_cond_signal(&buffer->not_empty);
  pthread_mutex_unlock(&buffer->mutex);
}

int64_t cond_buffer_get(CondBuffer* buffer) {
  pthread_mutex_lock(&buffer->mutex);
  while (buffer->count == 0) pthread_cond_wait(&buffer->not_empty, &buffer->mutex);
  const int64_t item = buffer->slots[buffer->head];
  buffer->head = (buffer->head + 1) % buffer->slots.size();
  --buffer->count;
  pthread_cond_signal(&buffer->not_full);
  pthread_mutex_unlock(&buffer->mutex);
  return item;
}

void cond_buffer_destroy(CondBuffer* buffer) {
  pthread_cond_destroy(&buffer->not_empty);
  pthread_cond_destroy(&buffer->not_full);
  pthread_mutex_destroy(&buffer->mutex);
}

void sem_buffer_init(SemBuffer* buffer, size_t capacity) {
  sem_init(&buffer->free_slots, 0, static_cast<unsigned>(capacity));
  sem_init(&buffer->items, 0, 0);
  sem_init(&buffer->mutex, 0, 1);
  buffer->slots.assign(capacity, 0);
  buffer->head = buffer->tail = 0;
}

// sem_wait is interrupted by signal handlers (EINTR): try again.
static void wait_for(sem_t* semaphore) {
  while (sem_wait(semaphore) != 0) {
  }
}

void sem_buffer_put(SemBuffer* buffer, int64_t item) {
  wait_for(&buffer->mutex);
  wait_for(&buffer->free_slots);
  buffer->slots[buffer->tail] = item;
  buffer->tail = (buffer->tail + 1) % buffer->slots.size();
  sem_post(&buffer->mutex);
  sem_post(&buffer->items);
}

int64_t sem_buffer_get(SemBuffer* buffer) {
  wait_for(&buffer->items);
  wait_for(&buffer->mutex);
  const int64_t item = buffer->slots[buffer->head];
  buffer->head = (buffer->head + 1) % buffer->slots.size();
  sem_post(&buffer->mutex);
  sem_post(&buffer->free_slots);
  return item;
}

void sem_buffer_destroy(SemBuffer* buffer) {
  sem_destroy(&buffer->mutex);
  sem_destroy(&buffer->items);
  sem_destroy(&buffer->free_slots);
}
