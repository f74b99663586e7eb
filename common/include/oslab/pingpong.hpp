// A ping-pong between two parties, the shape of every latency experiment: side 0 sends a
// message and waits for the answer, side 1 answers. The context-switch, IPC, signal and
// hand-off labs each bring the Exchange (how a message travels); this file runs it through
// the two-party harness, times the round trips on side 0, reads both sides' counters, and
// checks by the kernel's own count that a round trip makes the system calls it must.
//
//   PipeExchange pipe;                                  // or a lab's own Exchange
//   PingPongResult r = run_ping_pong(pipe, {.threads = false, .assignment = ...}, plan);
//   SyscallCheck check = verify_syscalls(pipe, options); // fails loudly if too few calls
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "oslab/handles.hpp"
#include "oslab/measure.hpp"
#include "oslab/parties.hpp"
#include "oslab/syscalls.hpp"

namespace oslab {

// What one round trip must cost in system calls, both sides together.
struct SyscallExpectation {
  uint64_t count = 0;
  bool exact = true;  // false: at least `count` (a wake-up that may or may not be needed)
  std::string why;    // "write + read on each side"
};

// One way to pass a message back and forth. Made before the parties start (so that what it
// opens is inherited by forked sides); every method but the constructor runs in a party.
class Exchange {
 public:
  virtual ~Exchange() = default;
  // In each party, before the start barrier: whatever must be done per side (close the ends
  // it does not use, map, register).
  virtual void attach(Party&) {}
  // Side 0: one round trip carrying `sequence`: send, wait for the answer, check it (throw
  // std::runtime_error on a wrong answer: a broken transport must fail, not look fast).
  virtual void ping(uint64_t sequence) = 0;
  // Side 1: wait for a message and answer it. Returns false when side 0 has said stop.
  virtual bool pong() = 0;
  // Side 0, when done: make side 1's pong() return false.
  virtual void stop() = 0;
  virtual SyscallExpectation expected_syscalls() const = 0;
};

struct PingPongResult {
  Measurement round_trips;  // side 0: one sample per round trip; its own counters
  Counters pong_counters;   // side 1's counters, per round trip
  uint64_t answered = 0;    // messages side 1 answered, warm-up included
};

// Runs the exchange under the harness: both sides attach, meet at the barrier, side 0 takes
// the plan's samples (each one round trip; plan.batch round trips per sample if set) and then
// stops side 1. Counters are per thread (RUSAGE_THREAD), so threads and processes compare.
PingPongResult run_ping_pong(Exchange& exchange, const PartyOptions& options, const SamplingPlan& plan);

// The system calls each side made per round trip, counted by the kernel (perf, each side
// counting its own thread) over `round_trips` round trips after a warm-up.
struct SyscallCheck {
  std::string method;
  double per_round_trip = 0;  // both sides together
  std::map<std::string, double> by_name;
  SyscallExpectation expected;
  bool ok = false;
  std::string describe() const;  // "4 per round trip (read 2, write 2), expected exactly 4: ..."
};

// Counts and compares with exchange.expected_syscalls(). Throws std::runtime_error naming the
// counts when the exchange makes fewer calls than it must (or other than exactly, when exact);
// SkipError when the machine cannot count (perf unavailable: not root, no tracefs).
SyscallCheck verify_syscalls(Exchange& exchange, const PartyOptions& options, int round_trips = 200);

// The classic: two pipes, a 4-byte sequence number each way; write + read on each side,
// 4 system calls per round trip.
class PipeExchange : public Exchange {
 public:
  PipeExchange();
  void attach(Party& party) override;
  void ping(uint64_t sequence) override;
  bool pong() override;
  void stop() override;
  SyscallExpectation expected_syscalls() const override { return {4, true, "a write and a read on each side"}; }

 private:
  Pipe there_, back_;
};

}  // namespace oslab
