// Homework: a bounded buffer (the producer/consumer problem), two ways. Implement the eight
// functions in bounded_buffer.cpp; README.md has the task. The structures are given: use
// their fields, add none.
#pragma once

#include <pthread.h>
#include <semaphore.h>

#include <cstddef>
#include <cstdint>
#include <vector>

// With a mutex and two condition variables.
struct CondBuffer {
  pthread_mutex_t mutex;
  pthread_cond_t not_full;   // a slot became free
  pthread_cond_t not_empty;  // an item arrived
  std::vector<int64_t> slots;
  size_t head = 0;   // the next item to get
  size_t tail = 0;   // the next free slot
  size_t count = 0;  // items in the buffer
};

void cond_buffer_init(CondBuffer* buffer, size_t capacity);
void cond_buffer_put(CondBuffer* buffer, int64_t item);  // waits while the buffer is full
int64_t cond_buffer_get(CondBuffer* buffer);             // waits while the buffer is empty
void cond_buffer_destroy(CondBuffer* buffer);

// With three semaphores.
struct SemBuffer {
  sem_t free_slots;  // counts free slots (starts at the capacity)
  sem_t items;       // counts items (starts at 0)
  sem_t mutex;       // a binary semaphore that guards head and tail
  std::vector<int64_t> slots;
  size_t head = 0;
  size_t tail = 0;
};

void sem_buffer_init(SemBuffer* buffer, size_t capacity);
void sem_buffer_put(SemBuffer* buffer, int64_t item);
int64_t sem_buffer_get(SemBuffer* buffer);
void sem_buffer_destroy(SemBuffer* buffer);
