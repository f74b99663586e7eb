// Homework: a ring buffer in POSIX shared memory between two processes, with two process-
// shared semaphores. Implement the six functions in shm_ring.cpp; README.md has the task.
#pragma once

#include <cstdint>

// Yours: define it in shm_ring.cpp (what this process needs: the mapping, its size...).
struct Ring;

// Creates the shared memory object `name` ("/oslab-ring-1234"), mode 0600, sized for a header
// and `capacity` 64-bit slots, maps it and initialises it. nullptr when the name exists
// already or anything fails.
Ring* ring_create(const char* name, uint32_t capacity);
// Opens and maps a ring another process created (after ring_create returned). nullptr on failure.
Ring* ring_open(const char* name);
// One producer puts, one consumer gets, each in its own process.
void ring_put(Ring* ring, uint64_t item);  // waits while the ring is full
uint64_t ring_get(Ring* ring);             // waits while the ring is empty
// Unmaps and frees this process's view; the object itself stays until ring_unlink.
void ring_close(Ring* ring);
// Removes the name (the memory lives on while someone has it mapped). 0, or -1 on failure.
int ring_unlink(const char* name);
