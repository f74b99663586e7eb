// Buggy solution (check-then-set): looks, then sets: two threads both see 0 and both take the lock.
// Not for students: `scripts/oslab handout` leaves it out.
#include "futex_mutex.hpp"

void futex_mutex_lock(FutexMutex* mutex) {
  uint32_t c = mutex->state.load();
  if (c == 0) {
    mutex->state.store(1);
    return;
  }
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
