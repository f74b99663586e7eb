// The futex, the kernel's one blocking primitive under every pthread lock, condition
// variable and semaphore: wait while a 32-bit word holds an expected value; wake waiters.
// Shared (not FUTEX_PRIVATE_FLAG) futexes work between processes on a MAP_SHARED word.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace oslab {

enum class FutexScope { process_private, shared };

// FUTEX_WAIT: sleeps while *word == expected, at most `timeout` (negative: no limit).
// Returns false on timeout; true when woken, when *word != expected (EAGAIN), or on a signal
// (EINTR): callers re-check their condition in a loop. Other errors throw SysError.
bool futex_wait(std::atomic<uint32_t>* word, uint32_t expected,
                std::chrono::nanoseconds timeout = std::chrono::nanoseconds(-1), FutexScope scope = FutexScope::shared);

// FUTEX_WAKE: wakes at most `count` waiters; returns how many were woken.
int futex_wake(std::atomic<uint32_t>* word, int count, FutexScope scope = FutexScope::shared);

}  // namespace oslab
