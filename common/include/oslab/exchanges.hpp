// The ways a token travels back and forth in a ping-pong, beside pingpong.hpp's PipeExchange:
// the context-switch lab measures them, and the IPC and synchronisation labs reuse them.
//
// A TokenExchange passes a 32-bit token one way at a time: side 0 sends, side 1 receives and
// sends the answer back. The base class makes the ping-pong of that (every answer checked),
// and can make each side read a working set every time it holds the token, between receiving
// and sending, as lmbench's lat_ctx -s does: then each hop also pays for refilling the caches
// and TLB that the other side's run evicted.
//
//   oslab::FutexTokens futex;                      // or PipeTokens, YieldTokens
//   futex.set_working_set(64 * 1024);              // before the parties start
//   oslab::run_ping_pong(futex, options, plan);    // pingpong.hpp
//   futex.solo_round_trip(sequence, threads);      // the same calls, no switch (for "switch only")
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>

#include "oslab/futex.hpp"
#include "oslab/handles.hpp"
#include "oslab/pingpong.hpp"
#include "oslab/shared.hpp"

namespace oslab {

// Reads one word per cache line of `region` and returns their sum (so the reads happen).
uint64_t read_working_set(std::span<const std::byte> region) noexcept;

class TokenExchange : public Exchange {
 public:
  // Bytes each side reads, one word per 64-byte line, every time it holds the token (0: none).
  // Each side's region is its own, allocated in the side (private to it when sides are
  // processes). Call before the parties start.
  void set_working_set(size_t bytes) { working_set_bytes_ = bytes; }
  size_t working_set() const noexcept { return working_set_bytes_; }

  void attach(Party& party) final;
  void ping(uint64_t sequence) final;
  bool pong() final;
  void stop() final;

  // One round trip's calls made by the calling thread alone, with nobody to switch to: each
  // side's send and receive (which never waits: the token is already there) and each side's
  // working-set read. What a round trip costs without its two switches; `threads` picks the
  // variant the parties would use (a process-private futex for threads).
  void solo_round_trip(uint64_t sequence, bool threads);

  // The token for a sequence number: never 0 (the stop token), and its answer (+1) never 0.
  static uint32_t token_of(uint64_t sequence) noexcept {
    return static_cast<uint32_t>(1 + sequence % (UINT32_MAX - 1));
  }

 protected:
  // Sends `token` from `side` to the other side.
  virtual void send(int side, uint32_t token) = 0;
  // Waits (with the party's deadline) for the other side's next token and returns it.
  virtual uint32_t receive(int side) = 0;
  // Per side, before the start barrier: reset what the previous run left.
  virtual void attach_side(Party&) {}
  // send(side, token) followed by a receive of that same token by the same thread.
  virtual void solo_hop(int side, uint32_t token, bool threads) = 0;
  // The party of each side, while a run is on (for its stop and deadline).
  Party* party(int side) const noexcept { return parties_[side]; }
  // Throws when the run is over for this side (the other side failed, or the deadline passed).
  void check_not_stopped(int side) const;

 private:
  void touch(int side) noexcept;
  size_t regions_for_solo() const noexcept;

  size_t working_set_bytes_ = 0;
  Party* parties_[2] = {nullptr, nullptr};
  Mapping regions_[2];
  Mapping solo_regions_[2];
  uint64_t sink_[2] = {0, 0};
};

// Two pipes, the token one way on each: a write and a read on each side, 4 system calls per
// round trip, each read blocking until the token arrives (the shape of perf bench sched pipe).
class PipeTokens : public TokenExchange {
 public:
  PipeTokens();
  SyscallExpectation expected_syscalls() const override { return {4, true, "a write and a read on each side"}; }

 protected:
  void send(int side, uint32_t token) override;
  uint32_t receive(int side) override;
  void solo_hop(int side, uint32_t token, bool threads) override;

 private:
  Pipe pipes_[2];  // pipes_[s]: side s writes, the other side reads
};

// A 32-bit word per direction in shared memory: the sender stores the token and calls
// FUTEX_WAKE; the receiver calls FUTEX_WAIT until the word changes (it returns at once, EAGAIN,
// when the token is already there). A wake and a wait on each side: at least 4 system calls
// per round trip. Threads use process-private futexes (as pthreads does), processes shared ones.
class FutexTokens : public TokenExchange {
 public:
  FutexTokens() = default;
  SyscallExpectation expected_syscalls() const override {
    return {4, false, "a FUTEX_WAKE and a FUTEX_WAIT on each side (a wait that is woken early is repeated)"};
  }

 protected:
  void send(int side, uint32_t token) override;
  uint32_t receive(int side) override;
  void attach_side(Party& party) override;
  void solo_hop(int side, uint32_t token, bool threads) override;

 private:
  struct Words {
    std::atomic<uint32_t> word[2];  // word[s]: side s writes
  };
  Shared<Words> words_;
  FutexScope scope_[2] = {FutexScope::shared, FutexScope::shared};
  uint32_t last_seen_[2] = {0, 0};
};

// A word per direction in shared memory, and sched_yield() while waiting: nobody blocks. On
// one CPU each yield hands the CPU to the other side (an involuntary switch, since the yielder
// stays runnable); on two CPUs both spin through yields that find nobody to switch to. At
// least one sched_yield on each side per round trip.
class YieldTokens : public TokenExchange {
 public:
  YieldTokens() = default;
  SyscallExpectation expected_syscalls() const override {
    return {2, false, "at least one sched_yield on each side (more while the token has not arrived)"};
  }

 protected:
  void send(int side, uint32_t token) override;
  uint32_t receive(int side) override;
  void attach_side(Party& party) override;
  void solo_hop(int side, uint32_t token, bool threads) override;

 private:
  struct Words {
    std::atomic<uint32_t> word[2];
  };
  Shared<Words> words_;
  uint32_t last_seen_[2] = {0, 0};
};

// A deliberately broken pipe ping-pong: side 0 sends and never waits for the answer, and side
// 1 never sends one. Its "round trips" look several times faster than real ones; the
// system-call check must reject it (2 calls of the 4 a round trip makes). For tests, and for
// the context-switch lab's demonstration of why the calls are counted.
class LazyPipeTokens : public PipeTokens {
 protected:
  void send(int side, uint32_t token) override;
  uint32_t receive(int side) override;

 private:
  uint32_t last_sent_ = 0;
};

}  // namespace oslab
