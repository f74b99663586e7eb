#include "oslab/exchanges.hpp"

#include <sched.h>
#include <unistd.h>

#include <cstring>
#include <stdexcept>

#include <fmt/format.h>

#include "oslab/error.hpp"
#include "oslab/parties.hpp"

namespace oslab {

namespace {

constexpr size_t kLine = 64;
// How long a wait sleeps before it looks whether the run is over.
constexpr auto kWaitSlice = std::chrono::milliseconds(100);

Mapping working_set_region(size_t bytes) {
  if (bytes == 0) return {};
  Mapping region = Mapping::anonymous((bytes + page_size() - 1) / page_size() * page_size());
  touch_pages(region.bytes());  // faulted in now, not during the first hops
  return region;
}

}  // namespace

uint64_t read_working_set(std::span<const std::byte> region) noexcept {
  uint64_t sum = 0;
  for (size_t offset = 0; offset + sizeof(uint64_t) <= region.size(); offset += kLine) {
    uint64_t word;
    std::memcpy(&word, region.data() + offset, sizeof word);
    sum += word;
  }
  return sum;
}

void TokenExchange::attach(Party& party) {
  const int side = static_cast<int>(party.index());
  if (side > 1) throw std::logic_error("a token exchange has two sides");
  parties_[side] = &party;
  regions_[side] = working_set_region(working_set_bytes_);
  attach_side(party);
}

void TokenExchange::touch(int side) noexcept {
  if (regions_[side].size()) sink_[side] += read_working_set(regions_[side].bytes());
}

void TokenExchange::ping(uint64_t sequence) {
  const uint32_t token = token_of(sequence);
  touch(0);
  send(0, token);
  const uint32_t answer = receive(0);
  if (answer != token + 1)
    throw std::runtime_error(fmt::format("sent {}, the answer was {}, not {}", token, answer, token + 1));
}

bool TokenExchange::pong() {
  const uint32_t token = receive(1);
  if (token == 0) return false;
  touch(1);
  send(1, token + 1);
  return true;
}

void TokenExchange::stop() {
  send(0, 0);
}

void TokenExchange::solo_round_trip(uint64_t sequence, bool threads) {
  for (auto& region : solo_regions_)
    if (region.size() != regions_for_solo()) region = working_set_region(working_set_bytes_);
  const uint32_t token = token_of(sequence);
  if (solo_regions_[0].size()) sink_[0] += read_working_set(solo_regions_[0].bytes());
  solo_hop(0, token, threads);
  if (solo_regions_[1].size()) sink_[1] += read_working_set(solo_regions_[1].bytes());
  solo_hop(1, token + 1, threads);
}

size_t TokenExchange::regions_for_solo() const noexcept {
  return working_set_bytes_ == 0 ? 0 : (working_set_bytes_ + page_size() - 1) / page_size() * page_size();
}

void TokenExchange::check_not_stopped(int side) const {
  if (parties_[side] != nullptr && parties_[side]->stop_requested())
    throw std::runtime_error("the other side stopped, or the deadline passed, while this side waited for the token");
}

// ---- Pipes ------------------------------------------------------------------------------

PipeTokens::PipeTokens() : pipes_{Pipe::create(), Pipe::create()} {}

namespace {

void write_token(int fd, uint32_t token) {
  if (check_errno("write(pipe)", ::write(fd, &token, sizeof token)) != sizeof token)
    throw std::runtime_error("write(pipe): short write");
}

uint32_t read_token(int fd) {
  uint32_t token = 0;
  const ssize_t n = check_errno("read(pipe)", ::read(fd, &token, sizeof token));
  if (n != sizeof token)
    throw std::runtime_error(n == 0 ? "read(pipe): the other side closed" : "read(pipe): short read");
  return token;
}

}  // namespace

void PipeTokens::send(int side, uint32_t token) {
  write_token(pipes_[side].write_end.get(), token);
}

uint32_t PipeTokens::receive(int side) {
  return read_token(pipes_[1 - side].read_end.get());
}

void PipeTokens::solo_hop(int side, uint32_t token, bool) {
  write_token(pipes_[side].write_end.get(), token);
  if (read_token(pipes_[side].read_end.get()) != token) throw std::runtime_error("pipe: a token changed on the way");
}

void LazyPipeTokens::send(int side, uint32_t token) {
  if (side == 1) return;  // never answers
  last_sent_ = token;
  PipeTokens::send(side, token);
}

uint32_t LazyPipeTokens::receive(int side) {
  if (side == 0) return last_sent_ + 1;  // never waits: pretends the answer came
  return PipeTokens::receive(side);
}

// ---- Futexes ----------------------------------------------------------------------------

void FutexTokens::attach_side(Party& party) {
  const int side = static_cast<int>(party.index());
  scope_[side] = party.in_thread() ? FutexScope::process_private : FutexScope::shared;
  words_->word[side].store(0);
  last_seen_[side] = 0;
  // A process's first FUTEX_WAIT on a shared page takes a minor fault (the kernel resolving the
  // page behind the futex key): taken here, once, not in a timed round trip. The word holds 0,
  // so this wait returns at once.
  futex_wait(&words_->word[side], 1, kWaitSlice, scope_[side]);
}

void FutexTokens::send(int side, uint32_t token) {
  words_->word[side].store(token, std::memory_order_release);
  futex_wake(&words_->word[side], 1, scope_[side]);
}

uint32_t FutexTokens::receive(int side) {
  std::atomic<uint32_t>& word = words_->word[1 - side];
  const uint32_t expected = last_seen_[side];
  uint32_t value;
  // Always one FUTEX_WAIT: it returns at once (EAGAIN) when the token is already there.
  do {
    if (!futex_wait(&word, expected, kWaitSlice, scope_[side])) check_not_stopped(side);
  } while ((value = word.load(std::memory_order_acquire)) == expected);
  last_seen_[side] = value;
  return value;
}

void FutexTokens::solo_hop(int side, uint32_t token, bool threads) {
  const FutexScope scope = threads ? FutexScope::process_private : FutexScope::shared;
  std::atomic<uint32_t>& word = words_->word[side];
  word.store(token, std::memory_order_release);
  futex_wake(&word, 1, scope);
  futex_wait(&word, token ^ 1u, kWaitSlice, scope);  // the token is there: EAGAIN at once
  if (word.load(std::memory_order_acquire) != token) throw std::runtime_error("futex: a token changed on the way");
}

// ---- sched_yield ------------------------------------------------------------------------

void YieldTokens::attach_side(Party& party) {
  const int side = static_cast<int>(party.index());
  words_->word[side].store(0);
  last_seen_[side] = 0;
}

void YieldTokens::send(int side, uint32_t token) {
  words_->word[side].store(token, std::memory_order_release);
}

uint32_t YieldTokens::receive(int side) {
  std::atomic<uint32_t>& word = words_->word[1 - side];
  const uint32_t expected = last_seen_[side];
  uint32_t value;
  uint64_t yields = 0;
  do {
    ::sched_yield();
    if (++yields % 4096 == 0) check_not_stopped(side);
  } while ((value = word.load(std::memory_order_acquire)) == expected);
  last_seen_[side] = value;
  return value;
}

void YieldTokens::solo_hop(int side, uint32_t token, bool) {
  std::atomic<uint32_t>& word = words_->word[side];
  word.store(token, std::memory_order_release);
  ::sched_yield();
  if (word.load(std::memory_order_acquire) != token) throw std::runtime_error("yield: a token changed on the way");
}

}  // namespace oslab
