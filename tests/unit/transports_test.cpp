// Every transport carries checked messages both ways, as processes and as threads, at several
// sizes, in a ping-pong and in a stream; caps are skips that name the limit; a transport that
// corrupts, repeats, or makes half the system calls is caught; the guardian removes what a
// SIGKILLed process could not.
#include "oslab/transports.hpp"

#include <sys/msg.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "oslab/cpu.hpp"
#include "oslab/error.hpp"
#include "oslab/guardian.hpp"
#include "oslab/handles.hpp"
#include "oslab/ipc.hpp"
#include "oslab/lab.hpp"
#include "oslab/process.hpp"

namespace oslab {
namespace {

using namespace std::chrono_literals;

PartyOptions options(bool threads, Placement placement = Placement::two_cpus) {
  const std::vector<int> cpus = get_affinity();
  if (cpus.size() < 2) placement = Placement::same_cpu;
  return {.threads = threads, .assignment = assign_cpus(placement, 2, cpus), .deadline = 20s};
}

SamplingPlan plan(int samples, int64_t batch = 1) {
  SamplingPlan p;
  p.warmup = 2;
  p.min_samples = p.max_samples = samples;
  p.budget = std::chrono::hours(1);
  p.batch = batch;
  return p;
}

// The sizes each transport is tried at: small, past a page, past a pipe's capacity; those
// above the transport's cap must be refused.
std::vector<size_t> sizes_for(const TransportInfo& info) {
  if (info.fixed_word) return {8};
  return {64, 5000, 70000};
}

struct Case {
  std::string key;
  bool threads;
};

std::string case_name(const ::testing::TestParamInfo<Case>& param) {
  std::string name = param.param.key + (param.param.threads ? "_threads" : "_processes");
  std::replace(name.begin(), name.end(), '-', '_');
  return name;
}

std::vector<Case> all_cases() {
  std::vector<Case> cases;
  for (const auto& info : transport_list())
    for (bool threads : {false, true}) cases.push_back({info.key, threads});
  return cases;
}

class EveryTransport : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    // The slot a semaphore guards is ordered by semop() (a system call) or sem_clockwait(),
    // which ThreadSanitizer does not see: it would report the memcpy as a race.
    const std::string& key = GetParam().key;
    if (kThreadSanitizer && GetParam().threads && (key == "sysv-shm" || key == "posix-shm"))
      GTEST_SKIP() << "ThreadSanitizer cannot see the ordering a System V semaphore gives";
  }
};

TEST_P(EveryTransport, PingPongsCheckedMessagesAtEverySizeItAllows) {
  const TransportInfo& info = transport_info(GetParam().key);
  if (!info.latency) {
    EXPECT_THROW(make_exchange(info.key, 64, 1), SkipError);
    return;
  }
  for (size_t bytes : sizes_for(info)) {
    SCOPED_TRACE(fmt::format("{} bytes", bytes));
    const MessageLimit limit = message_limit(info.key);
    std::unique_ptr<Exchange> exchange;
    try {
      exchange = make_exchange(info.key, bytes, 11);
    } catch (const SkipError& e) {
      EXPECT_GT(bytes, limit.max_bytes) << "refused a size below its own limit: " << e.what();
      EXPECT_NE(std::string(e.what()).find(std::to_string(bytes)), std::string::npos) << e.what();
      continue;
    }
    const PingPongResult r = run_ping_pong(*exchange, options(GetParam().threads), plan(20));
    EXPECT_EQ(r.round_trips.samples_ns.size(), 20u);
    EXPECT_EQ(r.answered, 22u);
    // Again with the same exchange: what the last run left in it is not news.
    const PingPongResult again = run_ping_pong(*exchange, options(GetParam().threads, Placement::same_cpu), plan(5));
    EXPECT_EQ(again.answered, 7u);
  }
}

TEST_P(EveryTransport, StreamsCheckedMessagesOrSaysWhyNot) {
  const TransportInfo& info = transport_info(GetParam().key);
  if (!info.no_bandwidth.empty()) {
    try {
      make_stream(info.key, 64, 1);
      FAIL() << "a stream of " << info.key;
    } catch (const SkipError& e) {
      EXPECT_EQ(std::string(e.what()), info.no_bandwidth);
    }
    return;
  }
  for (size_t bytes : sizes_for(info)) {
    SCOPED_TRACE(fmt::format("{} bytes", bytes));
    std::unique_ptr<Stream> stream;
    try {
      stream = make_stream(info.key, bytes, 13);
    } catch (const SkipError& e) {
      EXPECT_GT(bytes, message_limit(info.key).max_bytes) << e.what();
      continue;
    }
    const StreamResult r = run_stream(*stream, options(GetParam().threads), plan(6, 16));
    EXPECT_EQ(r.per_message.samples_ns.size(), 6u);
    EXPECT_EQ(r.received, (6u + 2u) * 16u);  // warm-up included
  }
}

TEST_P(EveryTransport, MakesTheSystemCallsItMust) {
  const TransportInfo& info = transport_info(GetParam().key);
  if (!info.latency) return;
  auto exchange = make_exchange(info.key, 64, 3);
  SyscallCheck check;
  try {
    check = verify_syscalls(*exchange, options(GetParam().threads), 100);
  } catch (const SkipError& e) {
    GTEST_SKIP() << e.what();
  }
  EXPECT_TRUE(check.ok) << check.describe();
  if (check.expected.exact) {
    EXPECT_DOUBLE_EQ(check.per_round_trip, static_cast<double>(check.expected.count));
  }
}

INSTANTIATE_TEST_SUITE_P(Transports, EveryTransport, ::testing::ValuesIn(all_cases()), case_name);

TEST(TransportCaps, AreSkipsThatNameTheLimit) {
  auto expect_skip = [](const char* key, size_t bytes, const char* mentions) {
    try {
      make_exchange(key, bytes, 1);
      if (std::string(key) == "posix-mq" && ::geteuid() == 0) return;  // CAP_SYS_RESOURCE may go beyond
      ADD_FAILURE() << key << " ran a message of " << bytes << " bytes";
    } catch (const SkipError& e) {
      EXPECT_NE(std::string(e.what()).find(mentions), std::string::npos) << key << ": " << e.what();
    }
  };
  expect_skip("udp", 65508, "65507");
  expect_skip("sysv-msg", 1 << 20, "msgmax");
  expect_skip("posix-mq", 1 << 20, "msgsize_max");
  expect_skip("unix-dgram", 8 << 20, "wmem_max");
  expect_skip("pipe", 8, "at least 16");
  EXPECT_EQ(message_limit("udp").max_bytes, 65507u);
  EXPECT_EQ(message_limit("pipe").max_bytes, SIZE_MAX);
}

// ---- Broken transports must fail ----------------------------------------------------------

// Wraps a real channel and flips one bit in the middle of each of side 1's answers.
class CorruptingChannel : public Channel {
 public:
  explicit CorruptingChannel(std::unique_ptr<Channel> inner)
      : Channel(inner->name(), inner->message_bytes()), inner_(std::move(inner)) {}
  void attach(Party& party) override { inner_->attach(party); }
  void send(size_t side, std::span<std::byte> message) override {
    if (side == 1 && sequence_of(message) != kAbortSequence) message[message.size() / 2] ^= std::byte{0x10};
    inner_->send(side, message);
  }
  std::span<const std::byte> receive(size_t side) override { return inner_->receive(side); }
  void release(size_t side) override { inner_->release(side); }
  SyscallExpectation per_message() const override { return inner_->per_message(); }

 private:
  std::unique_ptr<Channel> inner_;
};

class Broken : public ::testing::TestWithParam<bool> {};

TEST_P(Broken, ACorruptingTransportFailsLoudly) {
  for (const char* key : {"pipe", "shm-spin", "sysv-msg"}) {
    ChannelExchange exchange(std::make_unique<CorruptingChannel>(make_channel(key, 300)), 5);
    try {
      run_ping_pong(exchange, options(GetParam()), plan(10));
      ADD_FAILURE() << key << ": a corrupted answer went unnoticed";
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find("checksum"), std::string::npos) << key << ": " << e.what();
    }
  }
}

// Answers with a copy of an older answer's header: the sequence check must see it.
class RepeatingChannel : public Channel {
 public:
  explicit RepeatingChannel(std::unique_ptr<Channel> inner)
      : Channel(inner->name(), inner->message_bytes()), inner_(std::move(inner)), old_(inner_->message_bytes(), 5) {}
  void attach(Party& party) override { inner_->attach(party); }
  void send(size_t side, std::span<std::byte> message) override {
    // From the fourth answer on, side 1 sends answer 3 again (a well-formed but stale message).
    if (side == 1 && ++answers_ >= 4 && sequence_of(message) != kAbortSequence)
      return inner_->send(side, old_.make(3 | kReplyBit));
    inner_->send(side, message);
  }
  std::span<const std::byte> receive(size_t side) override { return inner_->receive(side); }
  void release(size_t side) override { inner_->release(side); }
  SyscallExpectation per_message() const override { return inner_->per_message(); }

 private:
  std::unique_ptr<Channel> inner_;
  MessageMaker old_;
  int answers_ = 0;
};

TEST_P(Broken, ARepeatingTransportFailsLoudly) {
  ChannelExchange exchange(std::make_unique<RepeatingChannel>(make_channel("unix-seqpacket", 128)), 5);
  try {
    run_ping_pong(exchange, options(GetParam()), plan(10));
    ADD_FAILURE() << "a repeated answer went unnoticed";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("repeated"), std::string::npos) << e.what();
  }
}

// The lazy one: side 1 reads each question but never answers; side 0 makes the answer up
// itself instead of waiting for it. Every message checks out, and a round trip is half the
// system calls it must be.
class LazyChannel : public Channel {
 public:
  explicit LazyChannel(size_t bytes)
      : Channel("lazy", bytes), pipe_(Pipe::create()), answer_(bytes, 5), buffer_(bytes) {}
  void send(size_t side, std::span<std::byte> message) override {
    if (side == 1) return;
    last_ = sequence_of(message);
    check_errno("write", ::write(pipe_.write_end.get(), message.data(), message.size()));
  }
  std::span<const std::byte> receive(size_t side) override {
    if (side == 0) return answer_.make(last_ | kReplyBit);
    const ssize_t n = check_errno("read", ::read(pipe_.read_end.get(), buffer_.data(), buffer_.size()));
    return {buffer_.data(), static_cast<size_t>(n)};
  }
  SyscallExpectation per_message() const override { return {2, true, "a write and a read"}; }

 private:
  Pipe pipe_;
  MessageMaker answer_;
  MessageBuffer buffer_;
  uint64_t last_ = 0;
};

TEST_P(Broken, ALazyTransportIsCaughtByItsSystemCalls) {
  ChannelExchange lazy(std::make_unique<LazyChannel>(64), 5);
  // Its messages all check out...
  const PingPongResult r = run_ping_pong(lazy, options(GetParam()), plan(10));
  EXPECT_EQ(r.round_trips.samples_ns.size(), 10u);
  // ...but the kernel counts half the calls a round trip must make.
  try {
    verify_syscalls(lazy, options(GetParam()), 50);
    ADD_FAILURE() << "the lazy transport passed the system-call check";
  } catch (const SkipError& e) {
    GTEST_SKIP() << e.what();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("exactly 4"), std::string::npos) << e.what();
  }
}

// Side 1 dies (as a process) or throws (as a thread) in the middle of the exchange: side 0,
// waiting for an answer, must hear of it within the harness's grace period, never wait forever.
class DyingChannel : public Channel {
 public:
  explicit DyingChannel(std::unique_ptr<Channel> inner)
      : Channel(inner->name(), inner->message_bytes()), inner_(std::move(inner)) {}
  void attach(Party& party) override {
    inner_->attach(party);
    in_thread_ = party.in_thread();
  }
  void send(size_t side, std::span<std::byte> message) override { inner_->send(side, message); }
  std::span<const std::byte> receive(size_t side) override {
    auto message = inner_->receive(side);
    if (side == 1 && ++received_ == 5) {
      if (!in_thread_) _exit(3);
      throw std::runtime_error("side 1 gives up");
    }
    return message;
  }
  void release(size_t side) override { inner_->release(side); }
  SyscallExpectation per_message() const override { return inner_->per_message(); }

 private:
  std::unique_ptr<Channel> inner_;
  bool in_thread_ = false;
  int received_ = 0;
};

TEST_P(Broken, APeerThatDiesIsNoticedWithinTheDeadline) {
  for (const char* key : {"pipe", "shm-futex", "sysv-msg", "posix-mq"}) {
    ChannelExchange exchange(std::make_unique<DyingChannel>(make_channel(key, 64)), 5);
    const auto start = std::chrono::steady_clock::now();
    EXPECT_THROW(run_ping_pong(exchange, options(GetParam()), plan(50)), std::runtime_error) << key;
    EXPECT_LT(std::chrono::steady_clock::now() - start, 10s) << key << ": waited for a dead peer";
  }
}

INSTANTIATE_TEST_SUITE_P(ThreadsAndProcesses, Broken, ::testing::Values(false, true),
                         [](const auto& param) { return param.param ? "threads" : "processes"; });

// ---- Nothing left behind -------------------------------------------------------------------

TEST(Guardian, RemovesWhatAKilledProcessLeft) {
  Pipe report = Pipe::create();
  flush_stdio();
  const pid_t child = check_errno("fork", ::fork());
  if (child == 0) {
    // A message queue cannot be removed while in use: only the guardian can, after SIGKILL.
    SysvId queue = SysvId::message_queue();
    const int id = queue.id();
    if (::write(report.write_end.get(), &id, sizeof id) != sizeof id) _exit(1);
    ::pause();
    _exit(0);
  }
  report.write_end.reset();
  int id = -1;
  ASSERT_EQ(::read(report.read_end.get(), &id, sizeof id), static_cast<ssize_t>(sizeof id));
  msqid_ds state{};
  ASSERT_EQ(::msgctl(id, IPC_STAT, &state), 0) << "the queue exists while its process runs";
  ::kill(child, SIGKILL);
  ASSERT_EQ(::waitpid(child, nullptr, 0), child);
  bool gone = false;
  for (int i = 0; i < 200 && !gone; ++i) {
    gone = ::msgctl(id, IPC_STAT, &state) == -1;
    if (!gone) ::usleep(10'000);
  }
  EXPECT_TRUE(gone) << "message queue " << id << " outlived its SIGKILLed owner";
  if (!gone) ::msgctl(id, IPC_RMID, nullptr);
}

}  // namespace
}  // namespace oslab
