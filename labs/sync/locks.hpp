// Hand-written locks, each small enough to read in one sitting: the spinlocks of every OS
// course (test-and-set, test-and-test-and-set with backoff, ticket, MCS) and the futex mutex
// of Ulrich Drepper's "Futexes Are Tricky" (2011), "Mutex, Take 3". oslab-locks measures
// them beside the pthread locks; homework graders reuse them as the reference.
//
// Every lock here works between threads, and between processes when the object (and, for
// MCS, every queue node) lives in shared memory mapped before fork: they hold nothing but
// lock-free atomics (and, for MCS, pointers, which mean the same in a forked child as long
// as the mapping was made before the fork).
//
// Memory order, in one sentence per lock: taking the lock is an acquire (what the previous
// holder wrote is visible inside), releasing it a release (what we wrote is visible to the
// next holder). That pairing, and nothing stronger, is what makes a lock a lock.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>

#include "oslab/futex.hpp"

namespace oslab::sync {

// One cache line: two locks (or a lock and the data it protects) on the same line make every
// CPU that touches either fight over the line ("false sharing").
inline constexpr size_t kCacheLine = 64;

// A hint to the CPU that this is a spin loop: x86 PAUSE (yields the core to an SMT sibling and
// avoids a pipeline flush when the loop exits), ARM YIELD.
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__) || defined(__arm__)
  asm volatile("yield" ::: "memory");
#else
  std::atomic_signal_fence(std::memory_order_seq_cst);
#endif
}

// Test-and-set: the simplest spinlock. Correct, but every spinning CPU keeps writing the lock
// word (an exchange is a write even when it changes nothing), so the cache line holding it
// bounces between the spinning CPUs and the holder's release has to queue behind them.
class alignas(kCacheLine) TasLock {
 public:
  void lock() noexcept {
    while (held_.exchange(true, std::memory_order_acquire)) cpu_relax();
  }
  bool try_lock() noexcept { return !held_.exchange(true, std::memory_order_acquire); }
  void unlock() noexcept { held_.store(false, std::memory_order_release); }

 private:
  std::atomic<bool> held_{false};
};

// Test-and-test-and-set with exponential backoff. Spinning on a plain load is served from the
// spinner's own cache until the holder writes the line; only when the lock looks free does a
// waiter try the (writing) exchange. When several see it free at once, all but one lose; the
// losers wait a random time from a range that doubles with every loss, so that they do not all
// retry together again (Anderson, 1990).
class alignas(kCacheLine) TtasLock {
 public:
  static constexpr uint32_t kMinBackoff = 4;     // PAUSEs after the first lost race
  static constexpr uint32_t kMaxBackoff = 1024;  // the range stops doubling here

  void lock() noexcept {
    uint32_t limit = kMinBackoff;
    for (;;) {
      while (held_.load(std::memory_order_relaxed)) cpu_relax();     // test: read-only spin
      if (!held_.exchange(true, std::memory_order_acquire)) return;  // and set: we won
      // We lost the race to another waiter: back off for a random time in [limit/2, limit).
      const uint32_t pauses = limit / 2 + next_random() % (limit / 2);
      for (uint32_t i = 0; i < pauses; ++i) cpu_relax();
      limit = std::min(limit * 2, kMaxBackoff);
    }
  }
  bool try_lock() noexcept {
    return !held_.load(std::memory_order_relaxed) && !held_.exchange(true, std::memory_order_acquire);
  }
  void unlock() noexcept { held_.store(false, std::memory_order_release); }

 private:
  // xorshift32, one state per thread: cheap, and different threads draw different delays.
  static uint32_t next_random() noexcept {
    thread_local uint32_t state = 0x9E3779B9u ^ static_cast<uint32_t>(reinterpret_cast<uintptr_t>(&state));
    state ^= state << 13;
    state ^= state >> 17;
    state ^= state << 5;
    return state;
  }
  std::atomic<bool> held_{false};
};

// The ticket lock (a bakery with a number dispenser): take a number, wait until it is served.
// Waiters enter in the order they took their numbers: FIFO, so no thread starves. The price:
// when the next thread in line is not running (preempted, with more threads than CPUs), every
// thread behind it waits too, however many CPUs are free.
class TicketLock {
 public:
  void lock() noexcept {
    // Take a number. Relaxed: the number only orders us in the queue; the acquire that
    // matters is seeing our number served.
    const uint32_t mine = next_.fetch_add(1, std::memory_order_relaxed);
    while (serving_.load(std::memory_order_acquire) != mine) cpu_relax();
  }
  void unlock() noexcept {
    // Only the holder writes serving_, so a load and a store make the increment: no atomic
    // read-modify-write needed. (Numbers wrap at 2^32; equality still works.)
    serving_.store(serving_.load(std::memory_order_relaxed) + 1, std::memory_order_release);
  }

 private:
  // On separate lines: a new arrival taking a number does not disturb the waiters' line.
  alignas(kCacheLine) std::atomic<uint32_t> next_{0};
  alignas(kCacheLine) std::atomic<uint32_t> serving_{0};
};

// The MCS queue lock (Mellor-Crummey and Scott, 1991). Waiters form a linked queue of nodes,
// one per waiter, and each spins on a flag in its own node, which only its predecessor writes:
// one cache-line transfer per hand-over however many wait (a ticket lock's release invalidates
// every waiter's copy). FIFO like the ticket lock. Each acquisition brings its own Node, which
// must stay put until unlock returns (for processes: in shared memory, one per worker).
class McsLock {
 public:
  struct alignas(kCacheLine) Node {
    std::atomic<Node*> next{nullptr};
    std::atomic<bool> waiting{false};
  };

  void lock(Node& me) noexcept {
    me.next.store(nullptr, std::memory_order_relaxed);
    me.waiting.store(true, std::memory_order_relaxed);
    // Join the queue: make our node the tail. acq_rel: acquire pairs with the previous
    // holder's release when the queue was empty; release publishes our node's fields.
    Node* predecessor = tail_.exchange(&me, std::memory_order_acq_rel);
    if (predecessor == nullptr) return;  // the queue was empty: the lock is ours
    // Link behind the predecessor (release: it must see waiting == true before it can clear it).
    predecessor->next.store(&me, std::memory_order_release);
    while (me.waiting.load(std::memory_order_acquire)) cpu_relax();  // our own line only
  }

  void unlock(Node& me) noexcept {
    Node* successor = me.next.load(std::memory_order_acquire);
    if (successor == nullptr) {
      // Nobody linked behind us. If we are still the tail, the queue is empty: done.
      Node* expected = &me;
      if (tail_.compare_exchange_strong(expected, nullptr, std::memory_order_acq_rel, std::memory_order_relaxed))
        return;
      // Someone has swapped itself in as the tail but not yet linked to us: wait for the link.
      while ((successor = me.next.load(std::memory_order_acquire)) == nullptr) cpu_relax();
    }
    successor->waiting.store(false, std::memory_order_release);  // hand the lock over
  }

 private:
  alignas(kCacheLine) std::atomic<Node*> tail_{nullptr};
};

// Drepper's futex mutex ("Futexes Are Tricky", Mutex, Take 3). The word has three states:
//   0  unlocked
//   1  locked, and nobody sleeps on it
//   2  locked, and somebody may sleep on it
// Uncontended, lock and unlock are one atomic instruction each and no system call. Only a
// thread that finds the lock taken enters the kernel (FUTEX_WAIT), and only an unlock that
// finds state 2 calls FUTEX_WAKE. "Take 1" (a plain counter) woke on every unlock; "Take 2"
// made the same number of calls but more atomic operations; this one makes the fewest.
// Drepper's paper explains why each simpler version is wrong or slow.
class FutexMutex {
 public:
  // process_private: threads of one process (FUTEX_PRIVATE_FLAG: the kernel hashes the
  // address alone); shared: processes sharing the memory (the kernel hashes the page).
  explicit FutexMutex(FutexScope scope = FutexScope::process_private) : scope_(scope) {}

  void lock() {
    uint32_t state = 0;
    // Fast path: 0 -> 1. On failure compare_exchange leaves the value it saw in `state`.
    if (word_.compare_exchange_strong(state, 1, std::memory_order_acquire, std::memory_order_relaxed)) return;
    // Contended. From now on we announce a possible sleeper by writing 2, and we may own the
    // lock whenever the exchange returns 0; so a lock taken this way is always in state 2,
    // and its unlock will wake someone even if nobody sleeps (a spurious wake, never a lost one).
    if (state != 2) state = word_.exchange(2, std::memory_order_acquire);
    while (state != 0) {
      // Sleep only while the word is still 2: if the holder unlocked between our exchange and
      // this call, the kernel sees a value other than 2 and returns at once (EAGAIN).
      futex_wait(&word_, 2, std::chrono::nanoseconds(-1), scope_);
      state = word_.exchange(2, std::memory_order_acquire);
    }
  }

  bool try_lock() {
    uint32_t state = 0;
    return word_.compare_exchange_strong(state, 1, std::memory_order_acquire, std::memory_order_relaxed);
  }

  void unlock() {
    // 1 -> 0: nobody sleeps, no system call. 2 -> 1 (fetch_sub returned 2): someone may
    // sleep; release the lock fully and wake one sleeper, who will set 2 again.
    if (word_.fetch_sub(1, std::memory_order_release) != 1) {
      word_.store(0, std::memory_order_release);
      futex_wake(&word_, 1, scope_);
    }
  }

  uint32_t state() const noexcept { return word_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint32_t> word_{0};
  FutexScope scope_;
};

}  // namespace oslab::sync
