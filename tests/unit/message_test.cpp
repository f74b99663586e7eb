// Messages that prove their own integrity: every corruption the transports could commit
// (a flipped bit, a lost tail, a page of another message, a repeat) must fail the check.
#include "oslab/message.hpp"

#include <cstring>
#include <vector>

#include <gtest/gtest.h>

namespace oslab {
namespace {

std::vector<std::byte> copy(std::span<const std::byte> message) {
  return {message.begin(), message.end()};
}

class MessageSizes : public ::testing::TestWithParam<size_t> {};

TEST_P(MessageSizes, AWholeMessagePassesAndSaysItsSequence) {
  const size_t size = GetParam();
  MessageMaker maker(size, 42);
  for (uint64_t sequence : {uint64_t{1}, uint64_t{2}, uint64_t{77} | kReplyBit, kStopSequence, kAbortSequence}) {
    const auto message = copy(maker.make(sequence));
    EXPECT_EQ(check_message(message, size, "test"), sequence);
    EXPECT_EQ(sequence_of(message), sequence);
  }
}

TEST_P(MessageSizes, EveryFlippedBitIsCaught) {
  const size_t size = GetParam();
  MessageMaker maker(size, 7);
  const auto good = copy(maker.make(5));
  for (size_t at = 0; at < size; at += std::max<size_t>(1, size / 97)) {
    for (int bit : {0, 5}) {
      auto bad = good;
      bad[at] ^= static_cast<std::byte>(1 << bit);
      EXPECT_THROW(check_message(bad, size, "test"), MessageError) << "byte " << at << " bit " << bit;
    }
  }
}

TEST_P(MessageSizes, ALostTailIsCaught) {
  const size_t size = GetParam();
  MessageMaker maker(size, 7);
  const auto good = copy(maker.make(5));
  EXPECT_THROW(check_message(std::span(good).first(size - 1), size, "test"), MessageError);
  EXPECT_THROW(check_message(good, size + 1, "test"), MessageError);
}

INSTANTIATE_TEST_SUITE_P(Sizes, MessageSizes, ::testing::Values(16, 17, 24, 100, 4096, 4097, 12289, 65536 + 3));

TEST(Message, APageOfAnotherMessageIsCaught) {
  const size_t size = 3 * 4096 + 100;
  MessageMaker maker(size, 9);
  const auto first = copy(maker.make(10));
  auto second = copy(maker.make(11));
  // The second page of message 11 replaced by message 10's: a reader that raced its writer.
  std::memcpy(second.data() + 4096, first.data() + 4096, 4096);
  try {
    check_message(second, size, "test");
    FAIL() << "not caught";
  } catch (const MessageError& e) {
    EXPECT_NE(std::string(e.what()).find("test:"), std::string::npos) << e.what();
  }
}

TEST(Message, TwoMakersWithOneSeedMakeTheSameMessage) {
  MessageMaker a(5000, 3), b(5000, 3), c(5000, 4);
  EXPECT_EQ(copy(a.make(8)), copy(b.make(8)));
  EXPECT_NE(copy(a.make(8)), copy(c.make(8)));
}

TEST(Message, AMakerCanBuildInPlace) {
  std::vector<std::byte> memory(8192);
  MessageMaker maker(std::span<std::byte>(memory), 5);
  maker.make(12);
  EXPECT_EQ(check_message(memory, memory.size(), "in place"), 12u);
  EXPECT_THROW(MessageMaker(std::span<std::byte>(memory).first(15), 5), std::invalid_argument);
}

TEST(Message, SequencesAreCheckedInOrder) {
  EXPECT_NO_THROW(expect_sequence(4, 4, "t"));
  EXPECT_THROW(expect_sequence(3, 4, "t"), MessageError);
  EXPECT_THROW(expect_sequence(5, 4, "t"), MessageError);
  try {
    expect_sequence(kAbortSequence, 4, "pipe");
    FAIL();
  } catch (const MessageError& e) {
    EXPECT_NE(std::string(e.what()).find("the other side failed"), std::string::npos);
  }
}

TEST(Message, WordsCarrySequenceAndCheck) {
  for (uint64_t sequence : {uint64_t{0}, uint64_t{1}, uint64_t{123456} | kReplyBit, kAbortSequence}) {
    const uint64_t word = pack_word(sequence);
    EXPECT_NE(word, 0u);
    EXPECT_NE(word, ~uint64_t{0});
    EXPECT_EQ(unpack_word(word, "t"), sequence);
  }
  // An eventfd adds values that were written twice before a read: the sum fails its check.
  int caught = 0;
  for (uint64_t s = 1; s < 200; ++s) {
    try {
      unpack_word(pack_word(s) + pack_word(s + 1), "t");
    } catch (const MessageError&) {
      ++caught;
    }
  }
  EXPECT_GE(caught, 195);
  EXPECT_THROW(unpack_word(pack_word(9) ^ 0x100, "t"), MessageError);
}

}  // namespace
}  // namespace oslab
