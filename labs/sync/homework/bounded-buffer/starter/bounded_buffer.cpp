// Your bounded buffers: see ../README.md and ../bounded_buffer.hpp.
#include "bounded_buffer.hpp"

void cond_buffer_init(CondBuffer* buffer, size_t capacity) {
  // TODO: initialise the mutex and both condition variables; make room for `capacity` items.
  buffer->slots.assign(capacity, 0);
}

void cond_buffer_put(CondBuffer* buffer, int64_t item) {
  // TODO: lock; wait on not_full while the buffer is full; store; signal not_empty; unlock.
  (void)buffer;
  (void)item;
}

int64_t cond_buffer_get(CondBuffer* buffer) {
  // TODO: lock; wait on not_empty while the buffer is empty; take; signal not_full; unlock.
  (void)buffer;
  return -1;
}

void cond_buffer_destroy(CondBuffer* buffer) {
  // TODO: destroy what init made.
  (void)buffer;
}

void sem_buffer_init(SemBuffer* buffer, size_t capacity) {
  // TODO: free_slots = capacity, items = 0, mutex = 1 (sem_init, not shared between processes).
  buffer->slots.assign(capacity, 0);
}

void sem_buffer_put(SemBuffer* buffer, int64_t item) {
  // TODO: wait for a free slot, then for the mutex; store; release the mutex; post an item.
  (void)buffer;
  (void)item;
}

int64_t sem_buffer_get(SemBuffer* buffer) {
  // TODO: wait for an item, then for the mutex; take; release the mutex; post a free slot.
  (void)buffer;
  return -1;
}

void sem_buffer_destroy(SemBuffer* buffer) {
  // TODO: destroy the three semaphores.
  (void)buffer;
}
