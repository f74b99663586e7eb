#include "oslab/pingpong.hpp"

#include <unistd.h>

#include <stdexcept>

#include <fmt/format.h>

#include "oslab/error.hpp"
#include "oslab/format.hpp"
#include "oslab/shared.hpp"

namespace oslab {

namespace {

// Side 0 ends side 1 whatever happened, so that a failure never leaves it waiting.
template <typename Body>
void then_stop(Exchange& exchange, Body body) {
  try {
    body();
  } catch (...) {
    try {
      exchange.stop();
    } catch (...) {
    }
    throw;
  }
  exchange.stop();
}

struct PongSide {
  Counters counters;
  std::atomic<uint64_t> answered{0};
};

}  // namespace

PingPongResult run_ping_pong(Exchange& exchange, const PartyOptions& options, const SamplingPlan& plan) {
  SamplingPlan on_side = plan;
  on_side.usage = Usage::thread;
  const size_t capacity = static_cast<size_t>(std::max(plan.max_samples, 1));
  SharedMeasurement measured(capacity, capacity);
  Shared<PongSide> pong_side;
  run_parties(options, {[&](Party& party) {
                          exchange.attach(party);
                          party.ready();
                          uint64_t sequence = 0;
                          then_stop(exchange, [&] {
                            measured.store(measure(on_side, [&](int64_t batch) {
                              for (int64_t i = 0; i < batch; ++i) exchange.ping(++sequence);
                            }));
                          });
                        },
                        [&](Party& party) {
                          exchange.attach(party);
                          party.ready();
                          const Counters before = read_counters(RUSAGE_THREAD);
                          uint64_t answered = 0;
                          while (exchange.pong()) ++answered;
                          pong_side->counters = read_counters(RUSAGE_THREAD) - before;
                          pong_side->answered = answered;
                        }});
  PingPongResult result;
  result.round_trips = measured.load();
  result.answered = pong_side->answered;
  result.pong_counters = pong_side->counters.per(static_cast<double>(std::max<uint64_t>(result.answered, 1)));
  return result;
}

namespace {

constexpr size_t kSyscallNumbers = 1024;

struct SideCounts {
  uint64_t total = 0;
  uint64_t lost = 0;
  uint64_t by_number[kSyscallNumbers] = {};
  char method[48] = {};
  void store(const SyscallCounts& counts) {
    total = counts.total;
    lost = counts.lost;
    for (const auto& [number, count] : counts.by_number)
      if (number >= 0 && static_cast<size_t>(number) < kSyscallNumbers) by_number[number] = count;
    counts.method.copy(method, sizeof method - 1);
  }
};

}  // namespace

std::string SyscallCheck::describe() const {
  std::string names;
  for (const auto& [name, count] : by_name)
    names += fmt::format("{}{} {}", names.empty() ? "" : ", ", name, format_number(count));
  return fmt::format("{} system calls per round trip ({}), {} {} expected: {} (counted by {})",
                     format_number(per_round_trip), names.empty() ? "none" : names,
                     expected.exact ? "exactly" : "at least", expected.count, expected.why, method);
}

SyscallCheck verify_syscalls(Exchange& exchange, const PartyOptions& options, int round_trips) {
  constexpr int kWarmup = 20;
  // A counter that cannot be opened here cannot be opened in a party either: say so as a skip,
  // before a party turns it into that party's failure.
  { SyscallCounter probe; }
  Shared<SideCounts> sides[2];
  run_parties(options, {[&](Party& party) {
                          exchange.attach(party);
                          SyscallCounter counter;  // before the barrier: opening it is not counted
                          party.ready();
                          uint64_t sequence = 0;
                          then_stop(exchange, [&] {
                            for (int i = 0; i < kWarmup; ++i) exchange.ping(++sequence);
                            counter.start();
                            for (int i = 0; i < round_trips; ++i) exchange.ping(++sequence);
                            sides[0]->store(counter.stop());
                          });
                        },
                        [&](Party& party) {
                          exchange.attach(party);
                          SyscallCounter counter;
                          party.ready();
                          for (int i = 0; i < kWarmup; ++i)
                            if (!exchange.pong()) throw std::runtime_error("side 0 stopped during the warm-up");
                          counter.start();
                          int answered = 0;
                          while (answered < round_trips && exchange.pong()) ++answered;
                          sides[1]->store(counter.stop());
                          while (exchange.pong()) {
                          }
                        }});
  SyscallCheck check;
  check.method = sides[0]->method;
  check.expected = exchange.expected_syscalls();
  const double n = round_trips;
  check.per_round_trip = static_cast<double>(sides[0]->total + sides[1]->total) / n;
  for (size_t number = 0; number < kSyscallNumbers; ++number) {
    const uint64_t count = sides[0]->by_number[number] + sides[1]->by_number[number];
    if (count) check.by_name[syscall_name(static_cast<long>(number))] = static_cast<double>(count) / n;
  }
  const double expected = static_cast<double>(check.expected.count);
  check.ok =
      check.expected.exact ? std::abs(check.per_round_trip - expected) < 0.01 : check.per_round_trip >= expected - 0.01;
  if (!check.ok) throw std::runtime_error("the system-call check failed: " + check.describe());
  return check;
}

PipeExchange::PipeExchange() : there_(Pipe::create()), back_(Pipe::create()) {}

void PipeExchange::attach(Party&) {}

void PipeExchange::ping(uint64_t sequence) {
  const auto sent = static_cast<uint32_t>(sequence);
  if (check_errno("write(pipe)", ::write(there_.write_end.get(), &sent, sizeof sent)) != sizeof sent)
    throw std::runtime_error("write(pipe): short write");
  uint32_t answer = 0;
  const ssize_t n = check_errno("read(pipe)", ::read(back_.read_end.get(), &answer, sizeof answer));
  if (n != sizeof answer)
    throw std::runtime_error(n == 0 ? "read(pipe): the other side closed" : "read(pipe): short read");
  if (answer != sent + 1)
    throw std::runtime_error(fmt::format("pipe: sent {}, the answer was {}, not {}", sent, answer, sent + 1));
}

bool PipeExchange::pong() {
  uint32_t message = 0;
  const ssize_t n = check_errno("read(pipe)", ::read(there_.read_end.get(), &message, sizeof message));
  if (n == 0) return false;
  if (n != sizeof message) throw std::runtime_error("read(pipe): short read");
  if (message == 0) return false;  // stop
  ++message;
  if (check_errno("write(pipe)", ::write(back_.write_end.get(), &message, sizeof message)) != sizeof message)
    throw std::runtime_error("write(pipe): short write");
  return true;
}

void PipeExchange::stop() {
  const uint32_t zero = 0;
  check_errno("write(pipe)", ::write(there_.write_end.get(), &zero, sizeof zero));
}

}  // namespace oslab
