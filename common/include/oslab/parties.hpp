// The two-party (or N-party) harness every ping-pong, producer/consumer and client/server
// experiment runs through: the same worker as threads of this process or as processes
// (-T/--threads), each party pinned as a placement says, started together on a barrier that
// works across processes, joined with a deadline, and a failed side reported by name while
// the others are stopped.
//
//   oslab::Shared<Exchange> exchange;                     // what the parties share
//   oslab::run_parties({.threads = false, .assignment = assign_cpus(Placement::same_cpu, 2, cpus)},
//                      {[&](oslab::Party& p) { p.ready(); ...ping... },
//                       [&](oslab::Party& p) { p.ready(); ...pong... }});
//
// Data a party produces goes into shared memory made before the call (shared.hpp), so that
// the caller reads it the same way whether the parties were threads or processes.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "oslab/placement.hpp"

namespace oslab {

// A barrier for threads or processes (in MAP_SHARED memory), reusable, with a deadline on
// every wait, that can be broken so that nobody waits for a side that has failed.
class SharedBarrier {
 public:
  explicit SharedBarrier(uint32_t parties) : parties_(parties) {}
  // Waits until `parties` callers have arrived. Throws std::runtime_error when the barrier is
  // broken or `timeout` passes first (the caller is then no longer counted).
  void arrive_and_wait(std::chrono::milliseconds timeout);
  // Wakes every waiter, now and later, with an error.
  void break_barrier() noexcept;
  bool broken() const noexcept { return broken_.load() != 0; }

 private:
  uint32_t parties_;
  std::atomic<uint32_t> arrived_{0};
  std::atomic<uint32_t> generation_{0};
  std::atomic<uint32_t> broken_{0};
};

struct PartyOptions {
  bool threads = false;                        // threads of this process, instead of forked processes
  Assignment assignment = {};                  // where each party runs (placement.hpp); empty: unpinned
  std::chrono::milliseconds deadline{60'000};  // for the whole run of every party
  std::chrono::milliseconds grace{2'000};      // after one side fails, how long the others get to stop
};

// What one party sees.
class Party {
 public:
  // Made by run_parties for each side.
  Party(size_t index, size_t parties, bool in_thread, std::vector<int> cpus, SharedBarrier* barrier,
        std::chrono::steady_clock::time_point deadline)
      : index_(index),
        parties_(parties),
        in_thread_(in_thread),
        cpus_(std::move(cpus)),
        barrier_(barrier),
        deadline_(deadline) {}
  size_t index() const noexcept { return index_; }
  size_t parties() const noexcept { return parties_; }
  bool in_thread() const noexcept { return in_thread_; }
  const std::vector<int>& cpus() const noexcept { return cpus_; }  // empty: not pinned
  // The start line: returns when every party has called it. Throws when another side failed.
  void ready();
  // A second meeting point, for parties that must line up again (between phases).
  void sync() { ready(); }
  // Another side failed or the deadline passed: finish now.
  bool stop_requested() const noexcept;
  std::chrono::steady_clock::time_point deadline() const noexcept { return deadline_; }

 private:
  size_t index_, parties_;
  bool in_thread_;
  std::vector<int> cpus_;
  SharedBarrier* barrier_;
  std::chrono::steady_clock::time_point deadline_;
};

// Runs one body per party and returns when all have finished. Throws std::runtime_error
// naming each side that failed ("side 1 of 2 (process 1234 on CPU 1): read: EPIPE ...";
// "... killed by SIGSEGV"; "... did not finish within 60000 ms; killed"). A hung process is
// killed with its group; a thread cannot be killed, so a thread that does not stop within
// the grace period ends the whole run (exit 1, with the message), after clean-up.
void run_parties(const PartyOptions& options, const std::vector<std::function<void(Party&)>>& bodies);

}  // namespace oslab
