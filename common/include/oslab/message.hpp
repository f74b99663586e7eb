// Messages that prove their own integrity, so that a transport that corrupts, drops, repeats
// or reorders fails loudly instead of looking fast.
//
// A message of N bytes (N >= 16) starts with a header {sequence, size, checksum}; every 4 KiB
// page after the first, and the last whole word, carry a stamp derived from the sequence
// number and their position; the rest is fixed pseudo-random content. The checksum covers
// every byte. So a receiver that checks a message (check_message) has read all of it and knows
// that it is whole, that no page of it came from another message, and which message it is.
// Making the next message costs the sender O(N / 4096) (header, stamps and the checksum are
// updated, not recomputed); checking costs the receiver one pass over the bytes.
//
//   MessageMaker maker(4096, seed);
//   write(fd, maker.make(7).data(), 4096);            // sender
//   uint64_t seq = check_message(received, 4096, "pipe");  // receiver: throws MessageError
//
// Eight-byte transports (an eventfd counter, a signal's value) carry pack_word(sequence): 56
// bits of sequence and an 8-bit check.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <stdexcept>
#include <string_view>
#include <vector>

namespace oslab {

struct MessageHeader {
  uint64_t sequence;
  uint32_t size;
  uint32_t checksum;
};
inline constexpr size_t kMessageHeaderBytes = sizeof(MessageHeader);  // 16: the smallest message
inline constexpr size_t kMessageStampStride = 4096;

// Sequence numbers with a meaning: 0 ends an exchange; an answer carries its question's number
// with kReplyBit set; kAbortSequence says that the sender has failed.
inline constexpr uint64_t kStopSequence = 0;
inline constexpr uint64_t kReplyBit = uint64_t{1} << 54;
inline constexpr uint64_t kAbortSequence = uint64_t{1} << 55;
inline constexpr uint64_t kMaxSequence = kReplyBit - 1;

// A message that fails its check: the text says what was wrong and on which transport.
class MessageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The sender's side: one buffer of `size` bytes, rewritten for each sequence number.
class MessageMaker {
 public:
  // Bytes before the message that a transport may use (a System V message's type).
  static constexpr size_t kHeadroom = 64;
  // Its own buffer (64-byte aligned, with headroom).
  MessageMaker(size_t size, uint64_t seed);
  // Builds the message in `memory` (e.g. a slot of shared memory, for zero-copy), which must
  // stay valid; no headroom.
  MessageMaker(std::span<std::byte> memory, uint64_t seed);
  MessageMaker(MessageMaker&&) noexcept = default;
  MessageMaker& operator=(MessageMaker&&) noexcept = default;

  // The message for `sequence`: header, stamps and checksum rewritten in place.
  std::span<std::byte> make(uint64_t sequence);
  std::span<std::byte> message() const noexcept { return {data_, size_}; }
  size_t size() const noexcept { return size_; }

 private:
  void fill(uint64_t seed);
  std::unique_ptr<std::byte[]> storage_;
  std::byte* data_ = nullptr;
  size_t size_ = 0;
  uint64_t base_sum_ = 0;              // checksum sum over every word that is not rewritten
  std::vector<uint32_t> stamp_words_;  // word indices of the stamps
};

// A receive buffer of `size` bytes, 64-byte aligned, with MessageMaker::kHeadroom before it.
class MessageBuffer {
 public:
  explicit MessageBuffer(size_t size);
  std::span<std::byte> span() const noexcept { return {data_, size_}; }
  std::byte* data() const noexcept { return data_; }
  size_t size() const noexcept { return size_; }

 private:
  std::unique_ptr<std::byte[]> storage_;
  std::byte* data_ = nullptr;
  size_t size_ = 0;
};

// Checks a whole received message: its length against `expected_size` and its header, every
// stamp, and the checksum over every byte. Returns its sequence number; throws MessageError
// naming `transport` and what was wrong.
uint64_t check_message(std::span<const std::byte> message, size_t expected_size, std::string_view transport);

// The sequence number in a message's header, unchecked (for a stop or abort message).
uint64_t sequence_of(std::span<const std::byte> message);

// Throws MessageError unless `got` is `expected` ("sent 41, received 40: a message was repeated").
void expect_sequence(uint64_t got, uint64_t expected, std::string_view transport);

// Eight-byte messages: never 0 and never all ones (an eventfd cannot carry either).
uint64_t pack_word(uint64_t sequence);
// The sequence in a word; throws MessageError when the check byte does not match.
uint64_t unpack_word(uint64_t word, std::string_view transport);

}  // namespace oslab
