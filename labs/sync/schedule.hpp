// What the synchronisation labs need to catch broken code in the act, every time:
//
//   Schedule   a forced interleaving: the threads pass a token at marked points in the order a
//              script gives, and a step may also wait until another thread is asleep in the
//              kernel on a given futex word (read from /proc/self/task/TID/syscall), so the
//              failing interleaving happens on any machine, loaded or not. Without a script
//              (a random run) each point instead yields or spins for a seeded random time.
//   WaitBoard  who waits on what: each thread says what it is about to block on; a watchdog
//              thread finds a deadlock (every live thread asleep in the kernel, in a declared
//              wait, and no progress for a while), describes it, and breaks it so that the
//              run ends instead of hanging. A forced schedule that cannot go on (the code under
//              test makes the scripted order impossible) is released the same way.
//   Ledger     every item has an id and is checked exactly once: lost, duplicated, and taken
//              from an empty slot are counted.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace oslab::sync {

// Is thread `tid` of this process asleep in the kernel (state S or D)?
bool thread_asleep(pid_t tid);
// Is it inside futex() on this address (any futex when nullptr), from /proc/self/task/TID/syscall?
bool thread_in_futex_on(pid_t tid, const void* address);
// Can this process read its threads' system calls? ("" when yes, else why not.)
std::string futex_observation_unavailable();

class WaitBoard;

class Schedule {
 public:
  struct Step {
    int thread;                    // who passes
    std::string point;             // at which marked point
    std::vector<int> asleep = {};  // and, before going on, one of these must be asleep...
    const void* on = nullptr;      // ...in futex() on this word (nullptr: on any futex)
    int waiting = -1;              // and this thread must be waiting for its turn...
    const char* waiting_at = "";   // ...at this point (there already, not merely on its way)
  };

  // A forced schedule (script non-empty), or a random one (empty script; yields and spins
  // drawn from `seed`, differently for each thread).
  Schedule(std::vector<Step> script, uint64_t seed);

  void enroll(int thread);  // each thread first, from itself: its tid, for the observations
  // A marked point. Forced: if the rest of the script names (thread, point), waits until that
  // is the next step, does what the step asks and advances; a point the rest of the script does
  // not name, and every point once the script is done (or released), passes at once.
  // Random: perturbs. Returns early (doing nothing) once the board is aborted.
  void point(int thread, const char* point);

  bool forced() const noexcept { return !script_.empty(); }
  bool finished() const noexcept { return cursor_.load() >= script_.size() || released_.load(); }
  // The script cannot go on: every thread waits. From the watchdog.
  void release(std::string why);
  bool released() const noexcept { return released_.load(); }
  std::string released_why() const;
  std::string describe_next() const;  // "step 4 of 7: consumer 2 at 'before-lock'"
  void attach(WaitBoard* board) noexcept { board_ = board; }
  pid_t tid_of(int thread) const;

 private:
  std::vector<Step> script_;
  std::atomic<uint32_t> cursor_{0};
  std::atomic<bool> released_{false};
  mutable std::mutex why_mutex_;
  std::string released_why_;
  std::vector<std::atomic<pid_t>> tids_;
  std::vector<std::atomic<const char*>> waiting_at_;  // where each thread waits for its turn, or nullptr
  uint64_t seed_;
  WaitBoard* board_ = nullptr;
};

class WaitBoard {
 public:
  // `names`: "producer 0", "consumer 1", ...
  explicit WaitBoard(std::vector<std::string> names);

  // Before a blocking call: what this thread waits on and for what. `object` and `why` must
  // outlive the wait (string literals).
  void waiting(int thread, const char* object, const char* why) noexcept;
  void at_point(int thread, const char* point) noexcept;  // waiting for the schedule's token
  void running(int thread) noexcept;
  void done(int thread) noexcept;
  // Mutexes and binary semaphores: who holds one (for "held by consumer 0").
  void holds(int thread, const char* object) noexcept;
  void releases(int thread, const char* object) noexcept;
  void progress() noexcept { progress_.fetch_add(1, std::memory_order_relaxed); }
  void enroll(int thread);  // from the thread itself: its tid

  bool aborted() const noexcept { return aborted_.load(std::memory_order_acquire); }
  const std::string& deadlock() const { return deadlock_; }  // after the watch ended
  bool deadlocked() const noexcept { return !deadlock_.empty(); }

  // Watches from a thread of its own until stop() is called. On a deadlock: records who waits
  // on what, sets aborted(), and calls `unblock` (which must wake every waiter: broadcast the
  // condition variables, post the semaphores); on a stuck schedule: releases it.
  void watch(Schedule* schedule, std::function<std::string()> state, std::function<void()> unblock,
             std::chrono::milliseconds quiet);
  void stop();
  ~WaitBoard();

 private:
  struct Entry {
    std::atomic<int> kind{0};  // 0 running, 1 waiting, 2 at a schedule point, 3 done
    std::atomic<const char*> object{nullptr};
    std::atomic<const char*> why{nullptr};
    std::atomic<const char*> holding{nullptr};
    std::atomic<pid_t> tid{0};
  };
  std::string describe(const Schedule* schedule, const std::string& state) const;
  bool everyone_blocked(bool& any_at_point) const;

  std::vector<std::string> names_;
  std::vector<Entry> entries_;
  std::atomic<uint64_t> progress_{0};
  std::atomic<bool> aborted_{false};
  std::atomic<bool> stop_{false};
  std::string deadlock_;
  std::thread watcher_;
};

// Exactly-once bookkeeping of item ids in [0, capacity): what producers put in and what
// consumers took out, each id counted.
class Ledger {
 public:
  static constexpr uint64_t kEmpty = ~uint64_t{0};  // what an empty slot holds
  explicit Ledger(size_t capacity) : produced_(capacity), seen_(capacity) {}
  void produced(uint64_t id) noexcept;
  void consumed(uint64_t id) noexcept;  // a consumer took this out of the buffer
  struct Tally {
    uint64_t produced = 0, consumed = 0, lost = 0, duplicated = 0, empty_slots = 0, unknown = 0;
    bool exactly_once() const { return lost == 0 && duplicated == 0 && empty_slots == 0 && unknown == 0; }
    std::string describe() const;
  };
  Tally tally() const;
  size_t capacity() const noexcept { return seen_.size(); }

 private:
  std::vector<std::atomic<uint8_t>> produced_, seen_;
  std::atomic<uint64_t> produced_count_{0}, consumed_{0}, empty_slots_{0}, unknown_{0};
};

}  // namespace oslab::sync
