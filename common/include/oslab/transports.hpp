// Every way two processes (or threads) on one machine pass messages, behind one interface, so
// that one harness measures them all alike: a ping-pong (an Exchange, pingpong.hpp) for
// latency and a stream (run_stream) for bandwidth, with every message checked (message.hpp).
//
//   pipe, fifo                      write()/read() on two pipes (FIFOs: named, opened, unlinked)
//   unix-stream, unix-dgram,        send()/recv() on a socketpair(AF_UNIX, ...)
//   unix-seqpacket
//   tcp, udp                        send()/recv() over 127.0.0.1 (TCP_NODELAY)
//   sysv-msg, posix-mq              msgsnd()/msgrcv(); mq_send()/mq_timedreceive()
//   sysv-shm, posix-shm,            a slot of shared memory per direction (a ring for streams)
//   shm-futex, shm-spin             and a way to say "it is there": a System V semaphore, a
//                                   process-shared POSIX semaphore, a futex, busy polling
//   eventfd, signal                 8 bytes: write()/read() of two eventfds; sigqueue() and
//                                   sigtimedwait() (a real-time signal's value)
//   vmsplice, memfd                 streams only: vmsplice() of the sender's pages into a pipe;
//                                   a memfd mapped by both sides (its fd passed once with
//                                   SCM_RIGHTS), a descriptor per message over a UNIX socket
//
// Where the kernel caps a message (a datagram, a message queue), the factory throws SkipError
// naming the effective limit: a transport never runs a silently smaller message, and never
// waits forever for room that cannot exist. Every object is private to the run and removed as
// soon as both sides hold it (guardian.hpp covers the rest, even after SIGKILL). While
// waiting, a side notices within a fraction of a second that the other has failed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "oslab/measure.hpp"
#include "oslab/message.hpp"
#include "oslab/parties.hpp"
#include "oslab/pingpong.hpp"

namespace oslab {

// A path for whole messages of one size between side 0 and side 1: both ways for a ping-pong
// (one message in flight), side 0 to side 1 for a stream.
class Channel {
 public:
  Channel(std::string name, size_t message_bytes) : name_(std::move(name)), bytes_(message_bytes) {}
  virtual ~Channel() = default;
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  const std::string& name() const noexcept { return name_; }
  size_t message_bytes() const noexcept { return bytes_; }

  // In each party, before the start barrier: keeps the party (to notice a failed peer while
  // waiting); in a process, closes what this side does not use.
  virtual void attach(Party& party);
  // Sends one whole message from `side`. The message comes from a MessageMaker: the
  // MessageMaker::kHeadroom bytes before it may be written.
  virtual void send(size_t side, std::span<std::byte> message) = 0;
  // Waits for the next whole message to `side`; the view stays valid until release(side).
  virtual std::span<const std::byte> receive(size_t side) = 0;
  virtual void release(size_t /*side*/) {}
  // The system calls one message costs its sender and its receiver together, in a ping-pong.
  virtual SyscallExpectation per_message() const = 0;

 protected:
  // Throws when the run is over for this side: the other side failed, or the deadline passed.
  void check_stop(size_t side) const;
  bool attached(size_t side) const noexcept { return parties_[side] != nullptr; }

 private:
  std::string name_;
  size_t bytes_;
  Party* parties_[2] = {nullptr, nullptr};
};

// A ping-pong over a channel: side 0 sends message n, side 1 checks it and answers with a
// message of the same size carrying n | kReplyBit, which side 0 checks. Both ends check every
// message: sequence, length, stamps and checksum.
class ChannelExchange : public Exchange {
 public:
  ChannelExchange(std::unique_ptr<Channel> channel, uint64_t seed);
  void attach(Party& party) override;
  void ping(uint64_t sequence) override;
  bool pong() override;
  void stop() override;
  SyscallExpectation expected_syscalls() const override;
  Channel& channel() noexcept { return *channel_; }

 private:
  std::unique_ptr<Channel> channel_;
  std::vector<MessageMaker> makers_;  // one per side
  uint64_t expected_[2] = {1, 1};
};

// One-way messages side 0 -> side 1, for bandwidth.
class Stream {
 public:
  virtual ~Stream() = default;
  virtual const std::string& name() const = 0;
  virtual size_t message_bytes() const = 0;
  virtual void attach(Party& party) = 0;
  // Side 0: one message (waits while the transport is full).
  virtual void send(uint64_t sequence) = 0;
  // Side 1: the next message, checked; returns its sequence (kStopSequence at the end).
  virtual uint64_t receive() = 0;
  // Side 1, after a failure: takes whatever comes, unchecked, until the end, so that side 0
  // is never left waiting for room. Calls `seen` with each message's claimed sequence.
  virtual void drain(const std::function<void(uint64_t)>& seen) = 0;
  // Side 0: the end of the stream.
  virtual void finish() { send(kStopSequence); }
};

// A stream over a channel (side 0 sends, side 1 receives and checks).
class ChannelStream : public Stream {
 public:
  ChannelStream(std::unique_ptr<Channel> channel, uint64_t seed);
  const std::string& name() const override { return channel_->name(); }
  size_t message_bytes() const override { return channel_->message_bytes(); }
  void attach(Party& party) override { channel_->attach(party); }
  void send(uint64_t sequence) override;
  uint64_t receive() override;
  void drain(const std::function<void(uint64_t)>& seen) override;

 private:
  std::unique_ptr<Channel> channel_;
  MessageMaker maker_;
};

struct StreamResult {
  Measurement per_message;        // side 0: ns per message, a sample per batch of plan.batch messages
  Counters receiver_per_message;  // side 1's counters
  uint64_t received = 0;          // messages side 1 checked, warm-up included
};

// Side 0 sends plan.batch messages back to back per sample; a sample ends when side 1 has
// checked the last of them (it says so through a futex in shared memory, outside the
// transport). Each sample is the batch's time / plan.batch: ns per message, every copy,
// wake-up and check included.
StreamResult run_stream(Stream& stream, const PartyOptions& options, const SamplingPlan& plan);

// ---- The transports --------------------------------------------------------------------

struct TransportInfo {
  std::string key;           // "pipe"
  std::string what;          // how one message travels
  bool fixed_word = false;   // carries 8 bytes, whatever the size (no size sweep)
  bool latency = true;       // has a ping-pong
  std::string no_bandwidth;  // why it has no stream ("" when it has one)
};

// Every transport, in the order the lab shows them.
const std::vector<TransportInfo>& transport_list();
const TransportInfo& transport_info(std::string_view key);  // throws std::invalid_argument

// The largest message this machine lets the transport carry, and what sets it ("" when
// nothing does but memory): checked by the factories.
struct MessageLimit {
  size_t max_bytes = SIZE_MAX;
  std::string why;
};
MessageLimit message_limit(std::string_view key);

// A ping-pong of `bytes`-byte messages (8 for the fixed-word transports, whatever `bytes`
// says). Throws SkipError when the kernel caps the size below `bytes`, with the reason.
std::unique_ptr<Exchange> make_exchange(std::string_view key, size_t bytes, uint64_t seed);
// A stream of `bytes`-byte messages; SkipError also for transports without one.
std::unique_ptr<Stream> make_stream(std::string_view key, size_t bytes, uint64_t seed);
// The channel behind a message transport's exchange (not eventfd, signal): for tests that
// wrap it. `slots` > 1 makes a shared-memory channel a ring with flow control (a stream).
std::unique_ptr<Channel> make_channel(std::string_view key, size_t bytes, size_t slots = 1);

// The pipe capacity new pipes get here (F_GETPIPE_SZ), in bytes.
size_t pipe_capacity();

}  // namespace oslab
