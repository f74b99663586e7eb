#include "oslab/message.hpp"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

namespace oslab {
namespace {

constexpr uint64_t kMix = 0x9E3779B97F4A7C15ull;  // position weight: a swapped word changes the sum
constexpr uint64_t kStampSalt = 0x5EC0'0000'0000'0000ull;

uint64_t load_word(const std::byte* p) noexcept {
  uint64_t word;
  std::memcpy(&word, p, sizeof word);
  return word;
}
void store_word(std::byte* p, uint64_t word) noexcept {
  std::memcpy(p, &word, sizeof word);
}

// Sum over every (word ^ index * kMix), the tail zero-padded: one pass at memory speed.
uint64_t weighted_sum(const std::byte* data, size_t size) noexcept {
  const size_t words = size / 8;
  uint64_t sum = 0;
  for (size_t i = 0; i < words; ++i) sum += load_word(data + 8 * i) ^ (i * kMix);
  if (size % 8 != 0) {
    uint64_t tail = 0;
    std::memcpy(&tail, data + 8 * words, size % 8);
    sum += tail ^ (words * kMix);
  }
  return sum;
}

uint32_t fold(uint64_t sum) noexcept {
  return static_cast<uint32_t>(sum ^ (sum >> 32));
}

uint64_t stamp_of(uint64_t sequence, size_t word_index) noexcept {
  return sequence ^ kStampSalt ^ (static_cast<uint64_t>(word_index) << 20);
}

// Calls f(word index) for each word that carries a stamp: the first word of every 4 KiB page
// after the first, and the last whole word (when it is not part of the header).
template <typename F>
void for_each_stamp(size_t size, F f) {
  size_t previous = 0;
  for (size_t offset = kMessageStampStride; offset + 8 <= size; offset += kMessageStampStride) f(previous = offset / 8);
  const size_t last = size / 8 - 1;
  if (last >= 2 && last != previous) f(last);
}

std::unique_ptr<std::byte[]> aligned_storage(size_t size, std::byte*& data) {
  auto storage = std::make_unique<std::byte[]>(size + MessageMaker::kHeadroom + 64);
  auto address = reinterpret_cast<uintptr_t>(storage.get()) + MessageMaker::kHeadroom;
  data = reinterpret_cast<std::byte*>((address + 63) & ~uintptr_t{63});
  return storage;
}

uint64_t splitmix(uint64_t& state) noexcept {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace

MessageMaker::MessageMaker(size_t size, uint64_t seed) : size_(size) {
  if (size < kMessageHeaderBytes) throw std::invalid_argument("a message is at least 16 bytes");
  storage_ = aligned_storage(size, data_);
  fill(seed);
}

MessageMaker::MessageMaker(std::span<std::byte> memory, uint64_t seed) : data_(memory.data()), size_(memory.size()) {
  if (size_ < kMessageHeaderBytes) throw std::invalid_argument("a message is at least 16 bytes");
  fill(seed);
}

void MessageMaker::fill(uint64_t seed) {
  uint64_t state = seed;
  for (size_t offset = 0; offset < size_; offset += 8) {
    const uint64_t word = splitmix(state);
    std::memcpy(data_ + offset, &word, std::min<size_t>(8, size_ - offset));
  }
  stamp_words_.clear();
  for_each_stamp(size_, [&](size_t w) { stamp_words_.push_back(static_cast<uint32_t>(w)); });
  store_word(data_, 0);
  store_word(data_ + 8, 0);
  for (uint32_t w : stamp_words_) store_word(data_ + 8 * size_t{w}, 0);
  base_sum_ = weighted_sum(data_, size_) - (0 ^ (0 * kMix)) - (0 ^ (1 * kMix));
  for (uint32_t w : stamp_words_) base_sum_ -= 0 ^ (w * kMix);
}

std::span<std::byte> MessageMaker::make(uint64_t sequence) {
  uint64_t sum = base_sum_;
  const uint64_t size_word = static_cast<uint32_t>(size_);  // checksum field zero while summing
  store_word(data_, sequence);
  sum += sequence ^ (0 * kMix);
  sum += size_word ^ (1 * kMix);
  for (uint32_t w : stamp_words_) {
    const uint64_t stamp = stamp_of(sequence, w);
    store_word(data_ + 8 * size_t{w}, stamp);
    sum += stamp ^ (w * kMix);
  }
  store_word(data_ + 8, size_word | (uint64_t{fold(sum)} << 32));
  return {data_, size_};
}

MessageBuffer::MessageBuffer(size_t size) : size_(size) {
  storage_ = aligned_storage(size, data_);
  std::memset(data_, 0, size);
}

uint64_t sequence_of(std::span<const std::byte> message) {
  return message.size() >= 8 ? load_word(message.data()) : ~uint64_t{0};
}

uint64_t check_message(std::span<const std::byte> message, size_t expected_size, std::string_view transport) {
  if (message.size() != expected_size)
    throw MessageError(
        fmt::format("{}: received {} bytes, expected a whole message of {}", transport, message.size(), expected_size));
  MessageHeader header;
  std::memcpy(&header, message.data(), sizeof header);
  if (header.size != static_cast<uint32_t>(expected_size))
    throw MessageError(fmt::format("{}: a message of {} bytes says it is {} bytes long: corrupted", transport,
                                   expected_size, header.size));
  const uint64_t word1 = load_word(message.data() + 8);
  const uint64_t sum =
      weighted_sum(message.data(), message.size()) - (word1 ^ (1 * kMix)) + ((word1 & 0xffff'ffffull) ^ (1 * kMix));
  if (fold(sum) != header.checksum)
    throw MessageError(fmt::format("{}: message {} fails its checksum ({:08x}, expected {:08x}): corrupted on the way",
                                   transport, header.sequence, fold(sum), header.checksum));
  for_each_stamp(expected_size, [&](size_t w) {
    const uint64_t stamp = load_word(message.data() + 8 * w);
    if (stamp != stamp_of(header.sequence, w))
      throw MessageError(fmt::format("{}: message {} carries bytes {}..{} of another message ({})", transport,
                                     header.sequence, 8 * w / kMessageStampStride * kMessageStampStride, 8 * w + 7,
                                     stamp ^ kStampSalt ^ (uint64_t{w} << 20)));
  });
  return header.sequence;
}

void expect_sequence(uint64_t got, uint64_t expected, std::string_view transport) {
  if (got == expected) return;
  if (got == kAbortSequence) throw MessageError(fmt::format("{}: the other side failed and said so", transport));
  const char* what = got < expected ? "an old message was repeated or a newer one was lost"
                                    : "a message was lost or they arrived out of order";
  throw MessageError(fmt::format("{}: expected message {}, received {}: {}", transport, expected, got, what));
}

namespace {
uint64_t check_byte(uint64_t sequence) noexcept {
  uint64_t state = sequence;
  return (splitmix(state) & 0x7f) | 0x80;  // never 0
}
}  // namespace

uint64_t pack_word(uint64_t sequence) {
  if (sequence >= (uint64_t{1} << 56) - 1) throw std::invalid_argument("pack_word: sequence beyond 56 bits");
  return (sequence << 8) | check_byte(sequence);
}

uint64_t unpack_word(uint64_t word, std::string_view transport) {
  const uint64_t sequence = word >> 8;
  if ((word & 0xff) != check_byte(sequence))
    throw MessageError(
        fmt::format("{}: received the value {:#x}, which is no message (its check byte is wrong): "
                    "corrupted, or two messages added up",
                    transport, word));
  return sequence;
}

}  // namespace oslab
