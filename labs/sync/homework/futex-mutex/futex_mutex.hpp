// Homework: a mutex on a futex, Drepper's third ("Futexes Are Tricky", 2011). Implement lock
// and unlock in futex_mutex.cpp; README.md has the task.
#pragma once

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>

// state: 0 unlocked; 1 locked, nobody waiting; 2 locked, and someone may be waiting.
struct FutexMutex {
  std::atomic<uint32_t> state{0};
};

void futex_mutex_lock(FutexMutex* mutex);
void futex_mutex_unlock(FutexMutex* mutex);

// Given: the two futex operations (threads of one process: FUTEX_PRIVATE_FLAG).
// Sleeps while *word == expected (returns at once if it is not; may also return spuriously).
inline void futex_wait(std::atomic<uint32_t>* word, uint32_t expected) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAIT_PRIVATE, expected, nullptr, nullptr, 0);
}
// Wakes at most `count` threads sleeping on *word.
inline void futex_wake(std::atomic<uint32_t>* word, int count) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAKE_PRIVATE, count, nullptr, nullptr, 0);
}

// Atomically: if *word == expected, set it to desired. Returns the value *word had.
inline uint32_t compare_exchange(std::atomic<uint32_t>* word, uint32_t expected, uint32_t desired) {
  word->compare_exchange_strong(expected, desired);
  return expected;
}
