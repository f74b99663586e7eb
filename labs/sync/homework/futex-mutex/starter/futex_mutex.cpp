// Your futex mutex: see ../README.md and ../futex_mutex.hpp.
#include "futex_mutex.hpp"

void futex_mutex_lock(FutexMutex* mutex) {
  // TODO: 0 -> 1 with compare_exchange: then it is ours, with no system call. Otherwise mark it
  // 2 (contended) and futex_wait while it is 2; when woken, try to take it again, as 2.
  (void)mutex;
}

void futex_mutex_unlock(FutexMutex* mutex) {
  // TODO: set it to 0; if it was 2, someone may be sleeping: futex_wake one.
  (void)mutex;
}
