// 10,000 uncontended lock/unlock pairs in one thread. The grader counts the futex calls this
// makes (there must be none) and checks the state protocol on the way.
#include <cstdio>

#include "futex_mutex.hpp"

int main() {
  FutexMutex mutex;
  for (int i = 0; i < 10'000; ++i) {
    futex_mutex_lock(&mutex);
    if (mutex.state.load() != 1) {
      std::printf("state %u after an uncontended lock, expected 1\n", mutex.state.load());
      return 1;
    }
    futex_mutex_unlock(&mutex);
    if (mutex.state.load() != 0) {
      std::printf("state %u after unlock, expected 0\n", mutex.state.load());
      return 1;
    }
  }
  std::printf("10000 uncontended lock/unlock pairs\n");
  return 0;
}
