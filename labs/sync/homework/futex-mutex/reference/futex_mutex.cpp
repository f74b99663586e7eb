// Reference solution. Not for students: `scripts/oslab handout` leaves it out.
#include "futex_mutex.hpp"

void futex_mutex_lock(FutexMutex* mutex) {
  uint32_t c = compare_exchange(&mutex->state, 0, 1);
  if (c == 0) return;  // uncontended: no system call
  // Contended: say so (2), sleep while it stays 2; on waking take it as 2, since other
  // waiters may still be asleep and our unlock must wake them.
  if (c != 2) c = mutex->state.exchange(2);
  while (c != 0) {
    futex_wait(&mutex->state, 2);
    c = mutex->state.exchange(2);
  }
}

void futex_mutex_unlock(FutexMutex* mutex) {
  if (mutex->state.fetch_sub(1) != 1) {  // it was 2: there may be waiters
    mutex->state.store(0);
    futex_wake(&mutex->state, 1);
  }
}
