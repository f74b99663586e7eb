#include "oslab/transports.hpp"

#include <fcntl.h>
#include <mqueue.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/msg.h>
#include <sys/resource.h>
#include <sys/sem.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>

#include <fmt/format.h>

#include "oslab/clock.hpp"
#include "oslab/error.hpp"
#include "oslab/fdpass.hpp"
#include "oslab/format.hpp"
#include "oslab/futex.hpp"
#include "oslab/guardian.hpp"
#include "oslab/handles.hpp"
#include "oslab/ipc.hpp"
#include "oslab/shared.hpp"

namespace oslab {

// ---- Waiting without waiting forever ------------------------------------------------------

namespace {

// How often a blocked side looks whether the run is over (a timeout on the blocking call; in
// the normal case the call returns long before, so the system-call count is unchanged).
constexpr auto kRecheck = std::chrono::milliseconds(250);

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

long read_long(const char* path, long fallback) {
  std::ifstream in(path);
  long value = fallback;
  if (!(in >> value)) return fallback;
  return value;
}

timespec realtime_in(std::chrono::milliseconds delay) {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_nsec += static_cast<long>(delay.count() % 1000) * 1'000'000;
  ts.tv_sec += static_cast<time_t>(delay.count() / 1000) + ts.tv_nsec / 1'000'000'000;
  ts.tv_nsec %= 1'000'000'000;
  return ts;
}

void set_receive_timeout(int fd) {
  timeval tv{0, static_cast<suseconds_t>(std::chrono::microseconds(kRecheck).count())};
  check_errno("setsockopt(SO_RCVTIMEO)", ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv));
}

std::atomic<uint32_t>* low_half(std::atomic<uint64_t>* word) noexcept {
  static_assert(sizeof(std::atomic<uint64_t>) == 8 && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__);
  return reinterpret_cast<std::atomic<uint32_t>*>(word);
}

}  // namespace

void Channel::attach(Party& party) {
  parties_[party.index()] = &party;
  // A peer process that has gone makes a write fail with EPIPE, not kill this one.
  if (!party.in_thread()) (void)::signal(SIGPIPE, SIG_IGN);
}

void Channel::check_stop(size_t side) const {
  if (parties_[side] != nullptr && parties_[side]->stop_requested())
    throw std::runtime_error(
        fmt::format("{}: the other side failed, or the deadline passed, while side {} waited", name_, side));
}

// ---- The ping-pong and the stream over a channel ------------------------------------------

ChannelExchange::ChannelExchange(std::unique_ptr<Channel> channel, uint64_t seed) : channel_(std::move(channel)) {
  makers_.emplace_back(channel_->message_bytes(), seed);
  makers_.emplace_back(channel_->message_bytes(), seed ^ 0xA5A5A5A5A5A5A5A5ull);
}

void ChannelExchange::attach(Party& party) {
  channel_->attach(party);
  expected_[party.index()] = 1;
}

void ChannelExchange::ping(uint64_t sequence) {
  channel_->send(0, makers_[0].make(sequence));
  const auto answer = channel_->receive(0);
  const uint64_t got = check_message(answer, channel_->message_bytes(), channel_->name());
  channel_->release(0);
  expect_sequence(got, sequence | kReplyBit, channel_->name());
}

bool ChannelExchange::pong() {
  try {
    const auto message = channel_->receive(1);
    if (sequence_of(message) == kStopSequence) {
      channel_->release(1);
      return false;
    }
    const uint64_t got = check_message(message, channel_->message_bytes(), channel_->name());
    expect_sequence(got, expected_[1]++, channel_->name());
    channel_->send(1, makers_[1].make(got | kReplyBit));
    channel_->release(1);
    return true;
  } catch (...) {
    // Tell side 0, which waits for this answer, that none is coming.
    try {
      channel_->send(1, makers_[1].make(kAbortSequence));
    } catch (...) {
    }
    throw;
  }
}

void ChannelExchange::stop() {
  channel_->send(0, makers_[0].make(kStopSequence));
}

SyscallExpectation ChannelExchange::expected_syscalls() const {
  SyscallExpectation one = channel_->per_message();
  return {2 * one.count, one.exact,
          fmt::format("per message {} {}: {}; two messages per round trip", one.exact ? "exactly" : "at least",
                      one.count, one.why)};
}

ChannelStream::ChannelStream(std::unique_ptr<Channel> channel, uint64_t seed)
    : channel_(std::move(channel)), maker_(channel_->message_bytes(), seed) {}

void ChannelStream::send(uint64_t sequence) {
  channel_->send(0, maker_.make(sequence));
}

uint64_t ChannelStream::receive() {
  const auto message = channel_->receive(1);
  if (sequence_of(message) == kStopSequence) {
    channel_->release(1);
    return kStopSequence;
  }
  const uint64_t got = check_message(message, channel_->message_bytes(), channel_->name());
  channel_->release(1);
  return got;
}

void ChannelStream::drain(const std::function<void(uint64_t)>& seen) {
  for (;;) {
    const uint64_t sequence = sequence_of(channel_->receive(1));
    channel_->release(1);
    if (sequence == kStopSequence) return;
    seen(sequence);
  }
}

namespace {

// A sleeper says exactly what it waits for (not merely that it waits): a waker that acts on
// an older flag would otherwise wake nobody and leave the sleeper to its timeout.
struct StreamShared {
  alignas(128) std::atomic<uint32_t> checked{0};  // low half of the last sequence side 1 checked
  alignas(128) std::atomic<uint32_t> wanted{0};   // side 0 sleeps on `checked` until it holds this
  Counters receiver;
  uint64_t received = 0;
};

void wait_checked(StreamShared& shared, uint64_t sequence, const Party& party) {
  const auto target = static_cast<uint32_t>(sequence);
  shared.wanted.store(target);
  for (;;) {
    const uint32_t seen = shared.checked.load();
    if (seen == target) return;
    futex_wait(&shared.checked, seen, kRecheck);
    if (party.stop_requested()) throw std::runtime_error("the receiving side failed, or the deadline passed");
  }
}

void say_checked(StreamShared& shared, uint64_t sequence) {
  shared.checked.store(static_cast<uint32_t>(sequence));
  if (shared.wanted.load() == static_cast<uint32_t>(sequence)) futex_wake(&shared.checked, 1);
}

}  // namespace

StreamResult run_stream(Stream& stream, const PartyOptions& options, const SamplingPlan& plan) {
  SamplingPlan on_side = plan;
  on_side.usage = Usage::thread;
  const size_t capacity = static_cast<size_t>(std::max(plan.max_samples, 1));
  SharedMeasurement measured(capacity, capacity);
  Shared<StreamShared> shared;
  run_parties(options, {[&](Party& party) {
                          stream.attach(party);
                          party.ready();
                          uint64_t sequence = 0;
                          try {
                            measured.store(measure(on_side, [&](int64_t batch) {
                              for (int64_t i = 0; i < batch; ++i) stream.send(++sequence);
                              wait_checked(*shared, sequence, party);
                            }));
                          } catch (...) {
                            try {
                              stream.finish();
                            } catch (...) {
                            }
                            throw;
                          }
                          stream.finish();
                        },
                        [&](Party& party) {
                          stream.attach(party);
                          party.ready();
                          const Counters before = read_counters(RUSAGE_THREAD);
                          uint64_t expected = 1;
                          try {
                            for (;;) {
                              const uint64_t got = stream.receive();
                              if (got == kStopSequence) break;
                              expect_sequence(got, expected++, stream.name());
                              say_checked(*shared, got);
                            }
                          } catch (...) {
                            try {
                              stream.drain([&](uint64_t seen) { say_checked(*shared, seen); });
                            } catch (...) {
                            }
                            throw;
                          }
                          shared->receiver = read_counters(RUSAGE_THREAD) - before;
                          shared->received = expected - 1;
                        }});
  StreamResult result;
  result.per_message = measured.load();
  result.received = shared->received;
  result.receiver_per_message = shared->receiver.per(static_cast<double>(std::max<uint64_t>(result.received, 1)));
  return result;
}

// ---- File descriptors: pipes, FIFOs, sockets ----------------------------------------------

size_t pipe_capacity() {
  static const size_t capacity = [] {
    Pipe pipe = Pipe::create();
    return static_cast<size_t>(check_errno("fcntl(F_GETPIPE_SZ)", ::fcntl(pipe.write_end.get(), F_GETPIPE_SZ)));
  }();
  return capacity;
}

namespace {

enum class Framing { stream, datagram };

class FdChannel : public Channel {
 public:
  FdChannel(std::string name, size_t bytes, Framing framing, bool sockets, SyscallExpectation per_message)
      : Channel(std::move(name), bytes), framing_(framing), sockets_(sockets), per_message_(std::move(per_message)) {
    buffers_.emplace_back(bytes);
    buffers_.emplace_back(bytes);
  }
  // Side s writes to write_fd[s] and reads from read_fd[s]; `owned` holds every descriptor.
  void wire(std::vector<UniqueFd> owned, int write0, int read0, int write1, int read1) {
    owned_ = std::move(owned);
    write_[0] = write0;
    read_[0] = read0;
    write_[1] = write1;
    read_[1] = read1;
    if (sockets_)
      for (const auto& fd : owned_) set_receive_timeout(fd.get());
  }

  void attach(Party& party) override {
    Channel::attach(party);
    if (party.in_thread()) return;
    const size_t side = party.index();
    for (auto& fd : owned_)
      if (fd.get() != write_[side] && fd.get() != read_[side]) fd.reset();
  }

  void send(size_t side, std::span<std::byte> message) override {
    const std::byte* data = message.data();
    size_t left = message.size();
    while (left > 0) {
      const ssize_t n = sockets_ ? ::send(write_[side], data, left, MSG_NOSIGNAL) : ::write(write_[side], data, left);
      if (n == -1 && errno == EINTR) continue;
      if (n == -1) throw SysError(fmt::format("{}: {}", name(), sockets_ ? "send" : "write"), errno);
      if (framing_ == Framing::datagram && static_cast<size_t>(n) != left)
        throw std::runtime_error(fmt::format("{}: sent {} of {} bytes of a datagram", name(), n, left));
      data += n;
      left -= static_cast<size_t>(n);
    }
  }

  std::span<const std::byte> receive(size_t side) override {
    MessageBuffer& buffer = buffers_[side];
    if (framing_ == Framing::datagram) {
      for (;;) {
        // MSG_TRUNC: the datagram's real length, so that a longer one is not cut silently.
        const ssize_t n = ::recv(read_[side], buffer.data(), buffer.size(), MSG_TRUNC);
        if (n > static_cast<ssize_t>(buffer.size()))
          throw MessageError(fmt::format("{}: received a datagram of {} bytes, expected {}", name(), n, buffer.size()));
        if (n >= 0) return {buffer.data(), static_cast<size_t>(n)};
        wait_again(side, "recv");
      }
    }
    size_t got = 0;
    while (got < buffer.size()) {
      const ssize_t n = sockets_ ? ::recv(read_[side], buffer.data() + got, buffer.size() - got, 0)
                                 : ::read(read_[side], buffer.data() + got, buffer.size() - got);
      if (n == 0)
        throw std::runtime_error(
            fmt::format("{}: the other side closed its end after {} of {} bytes", name(), got, buffer.size()));
      if (n > 0) {
        got += static_cast<size_t>(n);
        continue;
      }
      wait_again(side, sockets_ ? "recv" : "read");
    }
    return buffer.span();
  }

  SyscallExpectation per_message() const override { return per_message_; }

 private:
  void wait_again(size_t side, const char* call) {
    if (errno == EINTR) return;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      check_stop(side);
      return;
    }
    throw SysError(fmt::format("{}: {}", name(), call), errno);
  }

  Framing framing_;
  bool sockets_;
  SyscallExpectation per_message_;
  std::vector<UniqueFd> owned_;
  int write_[2] = {-1, -1}, read_[2] = {-1, -1};
  std::vector<MessageBuffer> buffers_;
};

// A byte stream: one write sends all of a message (a blocking write waits for room), and a
// read returns what has arrived, at most what the buffer holds.
SyscallExpectation stream_expectation(size_t bytes, size_t buffer, const std::string& buffer_name) {
  if (bytes <= 4096)
    return {2, true, fmt::format("one write of {} bytes and one read (it arrives whole: at most 4096 bytes)", bytes)};
  const size_t reads = buffer > 0 ? (bytes + buffer - 1) / buffer : 1;
  if (reads <= 1) return {2, false, "one write and at least one read: a read returns what has arrived"};
  return {1 + reads, false,
          fmt::format("one write and at least {} reads: the {} holds {} bytes at a time", reads, buffer_name, buffer)};
}

std::unique_ptr<Channel> pipe_channel(size_t bytes) {
  auto channel = std::make_unique<FdChannel>("pipe", bytes, Framing::stream, false,
                                             stream_expectation(bytes, pipe_capacity(), "pipe"));
  Pipe there = Pipe::create(), back = Pipe::create();
  const int w0 = there.write_end.get(), r1 = there.read_end.get(), w1 = back.write_end.get(), r0 = back.read_end.get();
  std::vector<UniqueFd> owned;
  owned.push_back(std::move(there.write_end));
  owned.push_back(std::move(there.read_end));
  owned.push_back(std::move(back.write_end));
  owned.push_back(std::move(back.read_end));
  channel->wire(std::move(owned), w0, r0, w1, r1);
  return channel;
}

// A FIFO is a pipe with a name: made with mkfifo, opened at both ends by this process (the
// parties inherit them), and unlinked at once; the guardian removes the name if the lab is
// killed in between.
std::pair<UniqueFd, UniqueFd> open_fifo() {
  const char* tmp = std::getenv("TMPDIR");
  std::string path = fmt::format("{}{}.fifo", tmp && *tmp ? tmp : "/tmp", unique_ipc_name("ipc"));
  guardian::watch(guardian::Object::file, -1, path.c_str());
  struct Unlink {
    const std::string& path;
    ~Unlink() {
      ::unlink(path.c_str());
      guardian::forget(guardian::Object::file, -1, path.c_str());
    }
  } unlink_at_end{path};
  check_errno("mkfifo", ::mkfifo(path.c_str(), 0600));
  // The read end first, non-blocking (no writer yet); then the write end finds a reader.
  UniqueFd read_end(check_errno("open(FIFO, O_RDONLY)", ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC)));
  UniqueFd write_end(check_errno("open(FIFO, O_WRONLY)", ::open(path.c_str(), O_WRONLY | O_CLOEXEC)));
  check_errno("fcntl(F_SETFL)", ::fcntl(read_end.get(), F_SETFL, O_RDONLY));
  return {std::move(read_end), std::move(write_end)};
}

std::unique_ptr<Channel> fifo_channel(size_t bytes) {
  auto channel = std::make_unique<FdChannel>("fifo", bytes, Framing::stream, false,
                                             stream_expectation(bytes, pipe_capacity(), "FIFO"));
  auto [there_read, there_write] = open_fifo();
  auto [back_read, back_write] = open_fifo();
  const int w0 = there_write.get(), r1 = there_read.get(), w1 = back_write.get(), r0 = back_read.get();
  std::vector<UniqueFd> owned;
  owned.push_back(std::move(there_write));
  owned.push_back(std::move(there_read));
  owned.push_back(std::move(back_write));
  owned.push_back(std::move(back_read));
  channel->wire(std::move(owned), w0, r0, w1, r1);
  return channel;
}

size_t unix_datagram_limit() {
  // A UNIX datagram must fit the sender's buffer less 32 bytes (EMSGSIZE otherwise);
  // SO_SNDBUF is raised to net.core.wmem_max, which the kernel doubles.
  int sv[2];
  check_errno("socketpair", ::socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv));
  UniqueFd a(sv[0]), b(sv[1]);
  int requested = static_cast<int>(read_long("/proc/sys/net/core/wmem_max", 212992));
  ::setsockopt(a.get(), SOL_SOCKET, SO_SNDBUF, &requested, sizeof requested);
  int effective = 0;
  socklen_t length = sizeof effective;
  check_errno("getsockopt(SO_SNDBUF)", ::getsockopt(a.get(), SOL_SOCKET, SO_SNDBUF, &effective, &length));
  return static_cast<size_t>(effective) - 32;
}

constexpr size_t kUdpLimit = 65535 - 20 - 8;  // an IPv4 datagram less the IP and UDP headers

void raise_send_buffer(int fd) {
  int requested = static_cast<int>(read_long("/proc/sys/net/core/wmem_max", 212992));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &requested, sizeof requested);
}

std::unique_ptr<Channel> unix_channel(const std::string& key, int type, size_t bytes) {
  const bool datagram = type != SOCK_STREAM;
  SyscallExpectation expectation = datagram
                                       ? SyscallExpectation{2, true, "one send and one recv: a datagram arrives whole"}
                                       : stream_expectation(bytes, 0, "socket");
  auto channel = std::make_unique<FdChannel>(key, bytes, datagram ? Framing::datagram : Framing::stream, true,
                                             std::move(expectation));
  int sv[2];
  check_errno("socketpair", ::socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, sv));
  std::vector<UniqueFd> owned;
  owned.emplace_back(sv[0]);
  owned.emplace_back(sv[1]);
  if (datagram)
    for (int fd : sv) raise_send_buffer(fd);
  channel->wire(std::move(owned), sv[0], sv[0], sv[1], sv[1]);
  return channel;
}

sockaddr_in loopback(uint16_t port) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return address;
}

sockaddr_in bound_address(int fd) {
  sockaddr_in address{};
  socklen_t length = sizeof address;
  check_errno("getsockname", ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length));
  return address;
}

std::unique_ptr<Channel> tcp_channel(size_t bytes) {
  auto channel = std::make_unique<FdChannel>("tcp", bytes, Framing::stream, true, stream_expectation(bytes, 0, ""));
  UniqueFd listener(check_errno("socket", ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)));
  sockaddr_in address = loopback(0);
  check_errno("bind(127.0.0.1)", ::bind(listener.get(), reinterpret_cast<sockaddr*>(&address), sizeof address));
  check_errno("listen", ::listen(listener.get(), 1));
  address = bound_address(listener.get());
  UniqueFd client(check_errno("socket", ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)));
  check_errno("connect(127.0.0.1)", ::connect(client.get(), reinterpret_cast<sockaddr*>(&address), sizeof address));
  UniqueFd server(check_errno("accept", ::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC)));
  const int one = 1;
  for (int fd : {client.get(), server.get()})
    check_errno("setsockopt(TCP_NODELAY)", ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one));
  const int c = client.get(), s = server.get();
  std::vector<UniqueFd> owned;
  owned.push_back(std::move(client));
  owned.push_back(std::move(server));
  channel->wire(std::move(owned), c, c, s, s);
  return channel;
}

std::unique_ptr<Channel> udp_channel(size_t bytes) {
  auto channel = std::make_unique<FdChannel>("udp", bytes, Framing::datagram, true,
                                             SyscallExpectation{2, true, "one send and one recv: a datagram"});
  UniqueFd a(check_errno("socket", ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)));
  UniqueFd b(check_errno("socket", ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)));
  for (int fd : {a.get(), b.get()}) {
    sockaddr_in address = loopback(0);
    check_errno("bind(127.0.0.1)", ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address));
    raise_send_buffer(fd);
  }
  sockaddr_in address_a = bound_address(a.get()), address_b = bound_address(b.get());
  check_errno("connect", ::connect(a.get(), reinterpret_cast<sockaddr*>(&address_b), sizeof address_b));
  check_errno("connect", ::connect(b.get(), reinterpret_cast<sockaddr*>(&address_a), sizeof address_a));
  const int x = a.get(), y = b.get();
  std::vector<UniqueFd> owned;
  owned.push_back(std::move(a));
  owned.push_back(std::move(b));
  channel->wire(std::move(owned), x, x, y, y);
  return channel;
}

// ---- Message queues ------------------------------------------------------------------------

size_t sysv_msg_limit() {
  // msgsnd fails with EINVAL above kernel.msgmax, and waits forever for room when a message
  // is larger than the queue (msg_qbytes, from kernel.msgmnb): the smaller one is the cap.
  return static_cast<size_t>(
      std::min(read_long("/proc/sys/kernel/msgmax", 8192), read_long("/proc/sys/kernel/msgmnb", 16384)));
}

class SysvMsgChannel : public Channel {
 public:
  explicit SysvMsgChannel(size_t bytes) : Channel("sysv-msg", bytes), queue_(SysvId::message_queue()) {
    buffers_.emplace_back(bytes);
    buffers_.emplace_back(bytes);
  }
  void send(size_t side, std::span<std::byte> message) override {
    // The message type says the direction: 1 from side 0, 2 from side 1. It sits in the
    // headroom just before the message, as struct msgbuf wants it.
    long* type = reinterpret_cast<long*>(message.data() - sizeof(long));
    *type = static_cast<long>(side) + 1;
    while (::msgsnd(queue_.id(), type, message.size(), 0) == -1)
      if (errno != EINTR) throw SysError("sysv-msg: msgsnd", errno);
  }
  std::span<const std::byte> receive(size_t side) override {
    MessageBuffer& buffer = buffers_[side];
    long* type = reinterpret_cast<long*>(buffer.data() - sizeof(long));
    for (;;) {
      const ssize_t n = ::msgrcv(queue_.id(), type, buffer.size(), static_cast<long>(1 - side) + 1, 0);
      if (n >= 0) return {buffer.data(), static_cast<size_t>(n)};
      if (errno != EINTR) throw SysError("sysv-msg: msgrcv", errno);
      check_stop(side);
    }
  }
  SyscallExpectation per_message() const override { return {2, true, "one msgsnd and one msgrcv"}; }

 private:
  SysvId queue_;
  std::vector<MessageBuffer> buffers_;
};

class PosixMqChannel : public Channel {
 public:
  explicit PosixMqChannel(size_t bytes) : Channel("posix-mq", bytes) {
    buffers_.emplace_back(bytes);
    buffers_.emplace_back(bytes);
    const long msg_max = read_long("/proc/sys/fs/mqueue/msg_max", 10);
    mq_attr attributes{};
    attributes.mq_msgsize = static_cast<long>(bytes);
    // Room for a few messages (a stream), within RLIMIT_MSGQUEUE for both queues.
    rlimit limit{};
    ::getrlimit(RLIMIT_MSGQUEUE, &limit);
    const long fit =
        limit.rlim_cur == RLIM_INFINITY ? msg_max : static_cast<long>(limit.rlim_cur / (2 * (bytes + 128)));
    attributes.mq_maxmsg = std::clamp<long>(std::min(fit, msg_max), 1, 8);
    for (mqd_t& slot : queues_) {
      // Watched before it exists: a SIGKILL between mq_open and a later watch would leak it.
      PosixName name(PosixName::Type::mq, unique_ipc_name("ipc"));
      const mqd_t queue = ::mq_open(name.name().c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600, &attributes);
      if (queue == static_cast<mqd_t>(-1)) {
        const int error = errno;
        if (error == EINVAL)
          throw SkipError(fmt::format(
              "mq_open with mq_msgsize {} fails with EINVAL: fs.mqueue.msgsize_max is {} (and a larger size needs "
              "CAP_SYS_RESOURCE)",
              bytes, read_long("/proc/sys/fs/mqueue/msgsize_max", 8192)));
        if (error == EMFILE || error == ENOMEM)
          throw SkipError(
              fmt::format("mq_open: {}: two queues of {} messages of {} bytes exceed RLIMIT_MSGQUEUE ({} "
                          "bytes)",
                          errno_name(error), attributes.mq_maxmsg, bytes,
                          limit.rlim_cur == RLIM_INFINITY ? -1 : static_cast<long>(limit.rlim_cur)));
        throw SysError("mq_open", error);
      }
      slot = queue;
      name.unlink();  // both sides hold it once forked
    }
  }
  ~PosixMqChannel() override {
    for (mqd_t queue : queues_)
      if (queue != static_cast<mqd_t>(-1)) ::mq_close(queue);
  }
  void send(size_t side, std::span<std::byte> message) override {
    while (::mq_send(queues_[side], reinterpret_cast<const char*>(message.data()), message.size(), 0) == -1)
      if (errno != EINTR) throw SysError("posix-mq: mq_send", errno);
  }
  std::span<const std::byte> receive(size_t side) override {
    MessageBuffer& buffer = buffers_[side];
    for (;;) {
      const timespec until = realtime_in(kRecheck);
      const ssize_t n =
          ::mq_timedreceive(queues_[1 - side], reinterpret_cast<char*>(buffer.data()), buffer.size(), nullptr, &until);
      if (n >= 0) return {buffer.data(), static_cast<size_t>(n)};
      if (errno != EINTR && errno != ETIMEDOUT) throw SysError("posix-mq: mq_timedreceive", errno);
      check_stop(side);
    }
  }
  SyscallExpectation per_message() const override {
    return {2, true, "one mq_timedsend and one mq_timedreceive (glibc's mq_send and mq_receive)"};
  }

 private:
  mqd_t queues_[2] = {static_cast<mqd_t>(-1), static_cast<mqd_t>(-1)};
  std::vector<MessageBuffer> buffers_;
};

// ---- Shared memory -------------------------------------------------------------------------

enum class ShmSignal { spin, futex, posix_semaphore, sysv_semaphore };

struct alignas(128) SharedWord {
  std::atomic<uint64_t> value{0};
};
struct alignas(128) SharedSemaphore {
  sem_t semaphore;
};
// The first page of the region; the slots follow.
struct ShmControl {
  SharedWord consumed[2];  // per direction: messages the receiver is done with (streams)
  // futex: the sleeper says what it waits for (1 + the index of the message; the count of
  // consumed messages), so that a waker acting on an old wait cannot leave the new one asleep.
  SharedWord data_waiting[2];
  SharedWord space_waiting[2];
  SharedSemaphore items[2], spaces[2];  // POSIX semaphores
};

constexpr uint64_t kEmptySlot = 0xFFFF'FFF0'FFFF'FFF0ull;  // no message was ever there

// The shared region, wherever it comes from.
class ShmRegion {
 public:
  enum class Kind { anonymous, sysv, posix };
  ShmRegion(Kind kind, size_t bytes) : kind_(kind), bytes_(bytes) {
    switch (kind) {
      case Kind::anonymous:
        anonymous_ = Mapping::anonymous(bytes, MAP_SHARED);
        data_ = anonymous_.data();
        break;
      case Kind::sysv:
        sysv_.emplace(SysvShm::create(bytes));
        sysv_->remove();  // IPC_RMID now: it lives while attached, and fork keeps it attached
        data_ = static_cast<std::byte*>(sysv_->data());
        break;
      case Kind::posix: {
        PosixShm shm = PosixShm::create("ipc", bytes);
        void* address = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, shm.fd.get(), 0);
        check_errno_ptr("mmap(POSIX shm)", address, MAP_FAILED);
        shm.name.unlink();  // both sides hold it once forked
        data_ = static_cast<std::byte*>(address);
        break;
      }
    }
    touch_pages({data_, bytes_});
  }
  ~ShmRegion() {
    if (kind_ == Kind::posix && data_ != nullptr) ::munmap(data_, bytes_);
  }
  ShmRegion(const ShmRegion&) = delete;
  ShmRegion& operator=(const ShmRegion&) = delete;
  std::byte* data() const noexcept { return data_; }

 private:
  Kind kind_;
  size_t bytes_;
  Mapping anonymous_;
  std::optional<SysvShm> sysv_;
  std::byte* data_ = nullptr;
};

ShmRegion::Kind region_for(ShmSignal signal) {
  switch (signal) {
    case ShmSignal::sysv_semaphore: return ShmRegion::Kind::sysv;
    case ShmSignal::posix_semaphore: return ShmRegion::Kind::posix;
    default: return ShmRegion::Kind::anonymous;
  }
}

size_t round_up(size_t value, size_t to) {
  return (value + to - 1) / to * to;
}

// One slot of `bytes` per direction for a ping-pong (the answer proves the slot is free
// again), or a ring of `slots` per direction with flow control for a stream. Spin and futex
// publish a message by storing its sequence number last (release), in its own slot: the
// receiver waits on the message itself, one cache line for a small one. The semaphores count
// messages (items) and free slots (spaces).
class ShmChannel : public Channel {
 public:
  ShmChannel(std::string name, ShmSignal signal, size_t bytes, size_t slots)
      : Channel(std::move(name), bytes),
        signal_(signal),
        slots_(slots),
        flow_(slots > 1),
        stride_(round_up(bytes, 128)),
        region_(region_for(signal), round_up(sizeof(ShmControl), 4096) + 2 * slots * round_up(bytes, 128)) {
    control_ = new (region_.data()) ShmControl();
    for (size_t d = 0; d < 2; ++d) {
      for (size_t k = 0; k < slots_; ++k) sequence_word(d, k).store(kEmptySlot);
      last_[d].assign(slots_, kEmptySlot);
    }
    if (signal_ == ShmSignal::posix_semaphore)
      for (size_t d = 0; d < 2; ++d) {
        check_errno("sem_init", ::sem_init(&control_->items[d].semaphore, 1, 0));
        check_errno("sem_init", ::sem_init(&control_->spaces[d].semaphore, 1, static_cast<unsigned>(slots_)));
      }
    if (signal_ == ShmSignal::sysv_semaphore) {
      semaphores_.emplace(SysvId::semaphores(4));  // items 0, items 1, spaces 0, spaces 1
      for (int d = 0; d < 2; ++d)
        check_errno("semctl(SETVAL)", ::semctl(semaphores_->id(), 2 + d, SETVAL, static_cast<int>(slots_)));
    }
  }
  ~ShmChannel() override {
    if (signal_ == ShmSignal::posix_semaphore)
      for (size_t d = 0; d < 2; ++d) {
        ::sem_destroy(&control_->items[d].semaphore);
        ::sem_destroy(&control_->spaces[d].semaphore);
      }
  }

  void attach(Party& party) override {
    Channel::attach(party);
    // What is in the slots now (the last run's messages) is old: only a change is news.
    const size_t d = 1 - party.index();
    for (size_t k = 0; k < slots_; ++k) last_[d][k] = sequence_word(d, k).load();
  }

  void send(size_t side, std::span<std::byte> message) override {
    const size_t d = side;
    const uint64_t index = sent_[d]++;
    std::byte* slot = slot_of(d, index % slots_);
    if (flow_) wait_space(d, index);
    switch (signal_) {
      case ShmSignal::spin:
      case ShmSignal::futex: {
        std::memcpy(slot + 8, message.data() + 8, message.size() - 8);
        uint64_t sequence;
        std::memcpy(&sequence, message.data(), sizeof sequence);
        std::atomic<uint64_t>& word = sequence_word(d, index % slots_);
        if (signal_ == ShmSignal::spin) {
          word.store(sequence, std::memory_order_release);
        } else {
          word.store(sequence);  // sequentially consistent: ordered before the waiter check
          if (control_->data_waiting[d].value.load() == index + 1) futex_wake(low_half(&word), 1);
        }
        break;
      }
      case ShmSignal::posix_semaphore:
        std::memcpy(slot, message.data(), message.size());
        check_errno("sem_post", ::sem_post(&control_->items[d].semaphore));
        break;
      case ShmSignal::sysv_semaphore:
        std::memcpy(slot, message.data(), message.size());
        semaphore_op(static_cast<unsigned short>(d), +1, side);
        break;
    }
  }

  std::span<const std::byte> receive(size_t side) override {
    const size_t d = 1 - side;
    const uint64_t index = received_[d];
    const size_t k = index % slots_;
    switch (signal_) {
      case ShmSignal::spin:
      case ShmSignal::futex: {
        std::atomic<uint64_t>& word = sequence_word(d, k);
        const uint64_t previous = last_[d][k];
        if (signal_ == ShmSignal::spin)
          spin_until([&] { return word.load(std::memory_order_acquire) != previous; }, side);
        else
          futex_until(word, previous, control_->data_waiting[d].value, index + 1, side);
        last_[d][k] = word.load(std::memory_order_acquire);
        break;
      }
      case ShmSignal::posix_semaphore: semaphore_wait(control_->items[d].semaphore, side); break;
      case ShmSignal::sysv_semaphore: semaphore_op(static_cast<unsigned short>(d), -1, side); break;
    }
    return {slot_of(d, k), message_bytes()};
  }

  void release(size_t side) override {
    const size_t d = 1 - side;
    const uint64_t done = ++received_[d];
    if (!flow_) return;
    switch (signal_) {
      case ShmSignal::spin: control_->consumed[d].value.store(done, std::memory_order_release); break;
      case ShmSignal::futex:
        control_->consumed[d].value.store(done);
        if (control_->space_waiting[d].value.load() == done) futex_wake(low_half(&control_->consumed[d].value), 1);
        break;
      case ShmSignal::posix_semaphore: check_errno("sem_post", ::sem_post(&control_->spaces[d].semaphore)); break;
      case ShmSignal::sysv_semaphore: semaphore_op(static_cast<unsigned short>(2 + d), +1, side); break;
    }
  }

  SyscallExpectation per_message() const override {
    switch (signal_) {
      case ShmSignal::spin:
        return {0, false,
                "busy polling makes no system call while the other side runs on another CPU (after 20 us without "
                "a message it calls sched_yield)"};
      case ShmSignal::futex:
        return {1, false,
                "the receiver finds the message not yet there and sleeps in futex(FUTEX_WAIT), and the sender "
                "wakes it with futex(FUTEX_WAKE): a wake only when someone sleeps, so at least one side sleeps per "
                "round trip, or it would be spinning"};
      case ShmSignal::posix_semaphore:
        return {1, false,
                "sem_post makes a futex wake only when someone waits, sem_wait a futex wait only when the count is "
                "0: at least one side sleeps per round trip"};
      case ShmSignal::sysv_semaphore: break;
    }
    return {2, true, "semop() to post and semtimedop() to wait: a System V semaphore is always a system call"};
  }

 private:
  std::byte* slot_of(size_t direction, size_t k) const {
    return region_.data() + round_up(sizeof(ShmControl), 4096) + (direction * slots_ + k) * stride_;
  }
  std::atomic<uint64_t>& sequence_word(size_t direction, size_t k) const {
    return *reinterpret_cast<std::atomic<uint64_t>*>(slot_of(direction, k));
  }

  template <typename Ready>
  void spin_until(Ready ready, size_t side) const {
    uint32_t spins = 0;
    int64_t since = 0;
    while (!ready()) {
      cpu_relax();
      if ((++spins & 255) != 0) continue;
      const int64_t now = now_ns();
      if (since == 0) since = now;
      if (now - since > 20'000) ::sched_yield();  // the other side may need this CPU
      if ((spins & 0xffff) == 0) check_stop(side);
    }
  }

  // Sleeps on the low half of `word` while it holds `previous`, having told the other side
  // through `waiting` which message it waits for.
  void futex_until(std::atomic<uint64_t>& word, uint64_t previous, std::atomic<uint64_t>& waiting, uint64_t wanted,
                   size_t side) const {
    if (word.load(std::memory_order_acquire) != previous) return;
    waiting.store(wanted);  // sequentially consistent, before the second look
    while (word.load() == previous) {
      futex_wait(low_half(&word), static_cast<uint32_t>(previous), kRecheck);
      check_stop(side);
    }
  }

  void wait_space(size_t d, uint64_t index) {
    const uint64_t needed = index + 1 > slots_ ? index + 1 - slots_ : 0;  // messages consumed before slot is free
    switch (signal_) {
      case ShmSignal::spin:
      case ShmSignal::futex: {
        if (known_consumed_[d] >= needed) return;
        std::atomic<uint64_t>& consumed = control_->consumed[d].value;
        if (signal_ == ShmSignal::spin) {
          spin_until([&] { return consumed.load(std::memory_order_acquire) >= needed; }, d);
        } else {
          control_->space_waiting[d].value.store(needed);
          uint64_t seen;
          while ((seen = consumed.load()) < needed) {
            futex_wait(low_half(&consumed), static_cast<uint32_t>(seen), kRecheck);
            check_stop(d);
          }
        }
        known_consumed_[d] = consumed.load(std::memory_order_acquire);
        break;
      }
      case ShmSignal::posix_semaphore: semaphore_wait(control_->spaces[d].semaphore, d); break;
      case ShmSignal::sysv_semaphore: semaphore_op(static_cast<unsigned short>(2 + d), -1, d); break;
    }
  }

  void semaphore_wait(sem_t& semaphore, size_t side) const {
    for (;;) {
      if (::sem_trywait(&semaphore) == 0) return;  // no system call: the count was not 0
      timespec until{};
      ::clock_gettime(CLOCK_MONOTONIC, &until);
      until.tv_nsec += std::chrono::nanoseconds(kRecheck).count();
      until.tv_sec += until.tv_nsec / 1'000'000'000;
      until.tv_nsec %= 1'000'000'000;
      if (::sem_clockwait(&semaphore, CLOCK_MONOTONIC, &until) == 0) return;
      if (errno != EINTR && errno != ETIMEDOUT) throw SysError(fmt::format("{}: sem_clockwait", name()), errno);
      check_stop(side);
    }
  }

  void semaphore_op(unsigned short number, short delta, size_t side) const {
    sembuf op{number, delta, 0};
    if (delta > 0) {
      while (::semop(semaphores_->id(), &op, 1) == -1)
        if (errno != EINTR) throw SysError(fmt::format("{}: semop", name()), errno);
      return;
    }
    const timespec timeout{0, std::chrono::nanoseconds(kRecheck).count()};
    while (::semtimedop(semaphores_->id(), &op, 1, &timeout) == -1) {
      if (errno != EINTR && errno != EAGAIN) throw SysError(fmt::format("{}: semtimedop", name()), errno);
      check_stop(side);
    }
  }

  ShmSignal signal_;
  size_t slots_;
  bool flow_;
  size_t stride_;
  ShmRegion region_;
  ShmControl* control_ = nullptr;
  std::optional<SysvId> semaphores_;
  // Private to each side (each side touches only its own direction's entries).
  uint64_t sent_[2] = {0, 0}, received_[2] = {0, 0}, known_consumed_[2] = {0, 0};
  std::vector<uint64_t> last_[2];
};

// ---- Eight bytes: eventfd and signals ------------------------------------------------------

class WordExchange : public Exchange {
 public:
  explicit WordExchange(std::string name) : name_(std::move(name)) {}
  void attach(Party& party) override {
    parties_[party.index()] = &party;
    expected_[party.index()] = 1;
  }
  void ping(uint64_t sequence) override {
    send_word(0, pack_word(sequence));
    expect_sequence(unpack_word(receive_word(0), name_), sequence | kReplyBit, name_);
  }
  bool pong() override {
    try {
      const uint64_t got = unpack_word(receive_word(1), name_);
      if (got == kStopSequence) return false;
      expect_sequence(got, expected_[1]++, name_);
      send_word(1, pack_word(got | kReplyBit));
      return true;
    } catch (...) {
      try {
        send_word(1, pack_word(kAbortSequence));
      } catch (...) {
      }
      throw;
    }
  }
  void stop() override { send_word(0, pack_word(kStopSequence)); }

 protected:
  virtual void send_word(size_t side, uint64_t word) = 0;
  virtual uint64_t receive_word(size_t side) = 0;
  void check_stop(size_t side) const {
    if (parties_[side] != nullptr && parties_[side]->stop_requested())
      throw std::runtime_error(fmt::format("{}: the other side failed, or the deadline passed", name_));
  }
  const std::string& name() const { return name_; }
  Party* parties_[2] = {nullptr, nullptr};

 private:
  std::string name_;
  uint64_t expected_[2] = {1, 1};
};

class EventfdExchange : public WordExchange {
 public:
  EventfdExchange() : WordExchange("eventfd") {
    for (auto& fd : fds_) fd.reset(check_errno("eventfd", ::eventfd(0, EFD_CLOEXEC)));
  }
  SyscallExpectation expected_syscalls() const override {
    return {4, true, "a write of 8 bytes and a read of 8 bytes on each side"};
  }

 protected:
  void send_word(size_t side, uint64_t word) override {
    while (::write(fds_[side].get(), &word, sizeof word) == -1)
      if (errno != EINTR) throw SysError("eventfd: write", errno);
  }
  uint64_t receive_word(size_t side) override {
    // The counter adds what was written since the last read: two messages would add up, and
    // fail their check.
    uint64_t word = 0;
    while (::read(fds_[1 - side].get(), &word, sizeof word) == -1)
      if (errno != EINTR) throw SysError("eventfd: read", errno);
    return word;
  }

 private:
  UniqueFd fds_[2];  // fds_[d] carries from side d
};

int exchange_signal() {
  return SIGRTMIN + 3;
}

class SignalExchange : public WordExchange {
 public:
  SignalExchange() : WordExchange("signal") {}
  void attach(Party& party) override {
    WordExchange::attach(party);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, exchange_signal());
    check_errnum("pthread_sigmask", ::pthread_sigmask(SIG_BLOCK, &set, nullptr));  // waited for, never handled
    Ids& mine = ids_->side[party.index()];
    mine.pid = ::getpid();
    mine.tid = ::gettid();
    mine.uid = ::getuid();
    mine.in_thread = party.in_thread();
  }
  SyscallExpectation expected_syscalls() const override {
    return {4, true,
            "rt_sigqueueinfo (to a process) or rt_tgsigqueueinfo (to a thread), and rt_sigtimedwait, on each side"};
  }

 protected:
  // What sigqueue() and pthread_sigqueue() do, without the getpid() and getuid() that glibc
  // calls each time to fill in the siginfo: this side's ids are known.
  void send_word(size_t side, uint64_t word) override {
    const Ids& me = ids_->side[side];
    const Ids& peer = ids_->side[1 - side];
    siginfo_t info{};
    info.si_signo = exchange_signal();
    info.si_code = SI_QUEUE;
    info.si_pid = me.pid;
    info.si_uid = me.uid;
    info.si_value.sival_ptr = reinterpret_cast<void*>(word);
    const long rc = peer.in_thread ? ::syscall(SYS_rt_tgsigqueueinfo, peer.pid, peer.tid, exchange_signal(), &info)
                                   : ::syscall(SYS_rt_sigqueueinfo, peer.pid, exchange_signal(), &info);
    check_errno(peer.in_thread ? "rt_tgsigqueueinfo" : "rt_sigqueueinfo", rc);
  }
  uint64_t receive_word(size_t side) override {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, exchange_signal());
    const timespec timeout{0, std::chrono::nanoseconds(kRecheck).count()};
    siginfo_t info{};
    while (::sigtimedwait(&set, &info, &timeout) == -1) {
      if (errno != EINTR && errno != EAGAIN) throw SysError("sigtimedwait", errno);
      check_stop(side);
    }
    const pid_t from = ids_->side[1 - side].pid;
    if (info.si_code != SI_QUEUE || info.si_pid != from)
      throw MessageError(fmt::format("signal: a signal {} from pid {} (si_code {}), not the value sigqueue'd by {}",
                                     info.si_signo, info.si_pid, info.si_code, from));
    return reinterpret_cast<uint64_t>(info.si_value.sival_ptr);
  }

 private:
  struct Ids {
    pid_t pid = 0, tid = 0;
    uid_t uid = 0;
    bool in_thread = false;
  };
  struct Both {
    Ids side[2];
  };
  Shared<Both> ids_;
};

// ---- Streams only: vmsplice and a memfd shared once ----------------------------------------

// The sender vmsplice()s its pages into a pipe (no copy: the pipe refers to them), and the
// receiver read()s them (one copy). The sender must not touch a page while the pipe still
// refers to it, so it rotates through enough messages to cover what the pipe can hold.
class VmspliceStream : public Stream {
 public:
  VmspliceStream(size_t bytes, uint64_t seed) : name_("vmsplice"), bytes_(bytes), buffer_(bytes) {
    Pipe pipe = Pipe::create();
    read_ = std::move(pipe.read_end);
    write_ = std::move(pipe.write_end);
    const size_t capacity = pipe_capacity();
    const size_t ring = 2 + (capacity + bytes - 1) / bytes;
    for (size_t i = 0; i < ring; ++i) makers_.emplace_back(bytes, seed);
  }
  const std::string& name() const override { return name_; }
  size_t message_bytes() const override { return bytes_; }
  void attach(Party& party) override {
    if (party.in_thread()) return;
    (void)::signal(SIGPIPE, SIG_IGN);
    (party.index() == 0 ? read_ : write_).reset();
  }
  void send(uint64_t sequence) override {
    std::span<std::byte> message = makers_[sent_++ % makers_.size()].make(sequence);
    iovec piece{message.data(), message.size()};
    while (piece.iov_len > 0) {
      const ssize_t n = ::vmsplice(write_.get(), &piece, 1, 0);
      if (n == -1 && errno == EINTR) continue;
      if (n == -1) throw SysError("vmsplice", errno);
      piece.iov_base = static_cast<std::byte*>(piece.iov_base) + n;
      piece.iov_len -= static_cast<size_t>(n);
    }
  }
  uint64_t receive() override {
    read_message();
    if (sequence_of(buffer_.span()) == kStopSequence) return kStopSequence;
    return check_message(buffer_.span(), bytes_, name_);
  }
  void drain(const std::function<void(uint64_t)>& seen) override {
    for (;;) {
      read_message();
      const uint64_t sequence = sequence_of(buffer_.span());
      if (sequence == kStopSequence) return;
      seen(sequence);
    }
  }

 private:
  void read_message() {
    size_t got = 0;
    while (got < bytes_) {
      const ssize_t n = ::read(read_.get(), buffer_.data() + got, bytes_ - got);
      if (n == -1 && errno == EINTR) continue;
      if (n == -1) throw SysError("vmsplice: read", errno);
      if (n == 0) throw std::runtime_error("vmsplice: the sender closed the pipe");
      got += static_cast<size_t>(n);
    }
  }
  std::string name_;
  size_t bytes_;
  MessageBuffer buffer_;
  UniqueFd read_, write_;
  std::vector<MessageMaker> makers_;
  uint64_t sent_ = 0;
};

// The zero-copy end: side 0 makes a memfd ring, passes its fd once over a UNIX socket
// (SCM_RIGHTS), and both map it. Side 0 builds each message in place in a slot (stamps and
// checksum only: nothing is copied) and sends an 8-byte note over the socket; side 1 checks
// the message where it lies and hands the slot back through a counter in the mapping.
class MemfdStream : public Stream {
 public:
  MemfdStream(size_t bytes, uint64_t seed) : name_("memfd"), bytes_(bytes), seed_(seed), stride_(round_up(bytes, 128)) {
    slots_ = std::clamp<size_t>((4u << 20) / stride_, 2, 64);
    int sv[2];
    check_errno("socketpair", ::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
    socket_[0].reset(sv[0]);
    socket_[1].reset(sv[1]);
    for (auto& fd : socket_) set_receive_timeout(fd.get());
  }
  ~MemfdStream() override {
    for (void* mapped : mapped_)
      if (mapped != nullptr) ::munmap(mapped, mapped_bytes());
  }
  const std::string& name() const override { return name_; }
  size_t message_bytes() const override { return bytes_; }

  void attach(Party& party) override {
    party_ = &party;
    const size_t side = party.index();
    if (!party.in_thread()) {
      (void)::signal(SIGPIPE, SIG_IGN);
      socket_[1 - side].reset();
    }
    if (mapped_[side] != nullptr) ::munmap(mapped_[side], mapped_bytes());
    mapped_[side] = nullptr;
    if (side == 0) {
      UniqueFd memfd(check_errno("memfd_create", ::memfd_create("oslab-ipc-ring", MFD_CLOEXEC)));
      check_errno("ftruncate", ::ftruncate(memfd.get(), static_cast<off_t>(mapped_bytes())));
      map(side, memfd.get());
      new (mapped_[0]) Header();
      makers_.clear();
      for (size_t k = 0; k < slots_; ++k) makers_.emplace_back(std::span<std::byte>(slot(0, k), bytes_), seed_);
      sent_ = 0;
      pass_fd(memfd.get());
    } else {
      UniqueFd memfd = receive_fd();
      map(side, memfd.get());
      received_ = 0;
    }
  }

  void send(uint64_t sequence) override {
    const uint64_t index = sent_++;
    Header& header = *reinterpret_cast<Header*>(mapped_[0]);
    const uint64_t needed = index + 1 > slots_ ? index + 1 - slots_ : 0;
    if (header.consumed.load() < needed) header.waiting.store(needed);
    uint64_t seen;
    while ((seen = header.consumed.load()) < needed) {
      futex_wait(low_half(&header.consumed), static_cast<uint32_t>(seen), kRecheck);
      if (party_->stop_requested()) throw std::runtime_error("memfd: the receiver failed, or the deadline passed");
    }
    if (sequence != kStopSequence) makers_[index % slots_].make(sequence);
    note(sequence);
  }
  uint64_t receive() override {
    const uint64_t sequence = unpack_word(read_note(), name_);
    if (sequence == kStopSequence) return kStopSequence;
    const uint64_t got = check_message({slot(1, received_ % slots_), bytes_}, bytes_, name_);
    expect_sequence(got, sequence, name_);
    hand_back();
    return got;
  }
  void drain(const std::function<void(uint64_t)>& seen) override {
    for (;;) {
      const uint64_t word = read_note();
      const uint64_t sequence = word >> 8;
      if (sequence == kStopSequence) return;
      hand_back();
      seen(sequence);
    }
  }

 private:
  struct Header {
    alignas(128) std::atomic<uint64_t> consumed{0};
    alignas(128) std::atomic<uint64_t> waiting{0};  // the count of consumed messages side 0 sleeps for
  };
  size_t mapped_bytes() const { return 4096 + slots_ * stride_; }
  // Each side's own mapping of the ring (two mappings of one memfd when the sides are threads).
  std::byte* slot(size_t side, size_t k) const { return static_cast<std::byte*>(mapped_[side]) + 4096 + k * stride_; }
  void map(size_t side, int fd) {
    void* mapped = ::mmap(nullptr, mapped_bytes(), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    check_errno_ptr("mmap(memfd)", mapped, MAP_FAILED);
    mapped_[side] = mapped;
  }
  void hand_back() {
    Header& header = *reinterpret_cast<Header*>(mapped_[1]);
    header.consumed.store(++received_);
    if (header.waiting.load() == received_) futex_wake(low_half(&header.consumed), 1);
  }
  void pass_fd(int fd) { send_fd(socket_[0].get(), fd); }
  UniqueFd receive_fd() {
    for (;;) {
      try {
        const int fd = oslab::receive_fd(socket_[1].get());
        if (fd < 0) throw std::runtime_error("memfd: the sender closed the socket before passing the memfd");
        return UniqueFd(fd);
      } catch (const SysError& error) {
        if (error.errnum() != EINTR && error.errnum() != EAGAIN) throw;
        if (party_->stop_requested()) throw std::runtime_error("memfd: the sender failed before passing the memfd");
      }
    }
  }
  void note(uint64_t sequence) {
    const uint64_t word = pack_word(sequence);
    for (;;) {
      const ssize_t n = ::send(socket_[0].get(), &word, sizeof word, MSG_NOSIGNAL);
      if (n == sizeof word) return;
      if (n == -1 && errno == EINTR) continue;
      throw SysError("memfd: send", n == -1 ? errno : EIO);
    }
  }
  uint64_t read_note() {
    uint64_t word = 0;
    size_t got = 0;
    while (got < sizeof word) {
      const ssize_t n = ::recv(socket_[1].get(), reinterpret_cast<char*>(&word) + got, sizeof word - got, 0);
      if (n == 0) throw std::runtime_error("memfd: the sender closed the socket");
      if (n > 0) {
        got += static_cast<size_t>(n);
        continue;
      }
      if (errno != EINTR && errno != EAGAIN) throw SysError("memfd: recv", errno);
      if (party_->stop_requested()) throw std::runtime_error("memfd: the sender failed, or the deadline passed");
    }
    return word;
  }

  std::string name_;
  size_t bytes_;
  uint64_t seed_;
  size_t stride_, slots_ = 2;
  UniqueFd socket_[2];
  void* mapped_[2] = {nullptr, nullptr};
  std::vector<MessageMaker> makers_;
  uint64_t sent_ = 0, received_ = 0;
  Party* party_ = nullptr;
};

// ---- The list ------------------------------------------------------------------------------

const std::string kNoFlowControl =
    "UDP has no flow control: a sender faster than its receiver loses datagrams when the socket buffer is full, "
    "so a stream measures losses, not bandwidth";
const std::string kFixedWord =
    "carries a fixed 8 bytes: a stream of 8-byte values measures system calls, not bandwidth";

size_t stream_slots(size_t bytes) {
  return std::clamp<size_t>((4u << 20) / round_up(bytes, 128), 2, 64);
}

}  // namespace

const std::vector<TransportInfo>& transport_list() {
  auto info = [](std::string key, std::string what, bool fixed_word = false, bool latency = true,
                 std::string no_bandwidth = "") {
    return TransportInfo{std::move(key), std::move(what), fixed_word, latency, std::move(no_bandwidth)};
  };
  static const std::vector<TransportInfo> list = {
      info("pipe", "write() into one pipe, read() from it; a second pipe for the answer"),
      info("fifo", "the same through two FIFOs (mkfifo; opened by both sides, then unlinked)"),
      info("unix-stream", "send()/recv() on socketpair(AF_UNIX, SOCK_STREAM)"),
      info("unix-dgram", "send()/recv() on socketpair(AF_UNIX, SOCK_DGRAM): one datagram per message"),
      info("unix-seqpacket", "send()/recv() on socketpair(AF_UNIX, SOCK_SEQPACKET): one record per message"),
      info("tcp", "send()/recv() on a TCP connection over 127.0.0.1 with TCP_NODELAY"),
      info("udp", "send()/recv() of one UDP datagram over 127.0.0.1", false, true, kNoFlowControl),
      info("sysv-msg", "msgsnd()/msgrcv() on one System V message queue (the type says the direction)"),
      info("posix-mq", "mq_send()/mq_timedreceive() on two POSIX message queues"),
      info("sysv-shm", "memcpy into System V shared memory (shmget), a System V semaphore (semop) to say so"),
      info("posix-shm", "memcpy into POSIX shared memory (shm_open), a process-shared POSIX semaphore to say so"),
      info("shm-futex", "memcpy into shared memory; the receiver sleeps on the message's sequence number (futex)"),
      info("shm-spin", "memcpy into shared memory; the receiver busy-polls the message's sequence number"),
      info("eventfd", "write()/read() of an 8-byte value on two eventfds", true, true, kFixedWord),
      info("signal",
           "rt_sigqueueinfo() (sigqueue) of a real-time signal with an 8-byte value; sigtimedwait() to take it", true,
           true, kFixedWord),
      info("vmsplice", "vmsplice() of the sender's pages into a pipe (no copy), read() by the receiver (one copy)",
           false, false),
      info("memfd",
           "a memfd ring mapped by both (fd passed once with SCM_RIGHTS): the message is built in place and checked "
           "in place, an 8-byte note per message over a UNIX socket",
           false, false),
  };
  return list;
}

const TransportInfo& transport_info(std::string_view key) {
  for (const auto& info : transport_list())
    if (info.key == key) return info;
  throw std::invalid_argument(fmt::format("no transport '{}'", key));
}

MessageLimit message_limit(std::string_view key) {
  if (key == "unix-dgram" || key == "unix-seqpacket")
    return {unix_datagram_limit(), fmt::format("a UNIX datagram must fit the socket's send buffer less 32 bytes; "
                                               "SO_SNDBUF is raised to net.core.wmem_max ({}), doubled by the kernel",
                                               read_long("/proc/sys/net/core/wmem_max", 0))};
  if (key == "udp") return {kUdpLimit, "an IPv4 datagram is at most 65535 bytes, less 20 (IP) and 8 (UDP) of headers"};
  if (key == "sysv-msg")
    return {sysv_msg_limit(),
            fmt::format("msgsnd fails with EINVAL above kernel.msgmax ({}) and would wait forever for a message "
                        "larger than the queue, kernel.msgmnb ({})",
                        read_long("/proc/sys/kernel/msgmax", 0), read_long("/proc/sys/kernel/msgmnb", 0))};
  if (key == "posix-mq") {
    const long limit = read_long("/proc/sys/fs/mqueue/msgsize_max", 8192);
    return {static_cast<size_t>(limit),
            fmt::format("mq_open fails with EINVAL for mq_msgsize above fs.mqueue.msgsize_max ({}) without "
                        "CAP_SYS_RESOURCE",
                        limit)};
  }
  if (key == "eventfd" || key == "signal") return {8, "carries a fixed 8 bytes"};
  return {};
}

namespace {
void check_limit(std::string_view key, size_t bytes) {
  const TransportInfo& info = transport_info(key);
  if (info.fixed_word) return;
  if (bytes < kMessageHeaderBytes)
    throw SkipError(fmt::format("a checked message is at least {} bytes", kMessageHeaderBytes));
  if (key == "posix-mq" && ::geteuid() == 0) return;  // mq_open itself says (root may go beyond)
  const MessageLimit limit = message_limit(key);
  if (bytes > limit.max_bytes)
    throw SkipError(
        fmt::format("{} bytes is above the largest message here, {} bytes: {}", bytes, limit.max_bytes, limit.why));
}
}  // namespace

std::unique_ptr<Channel> make_channel(std::string_view key, size_t bytes, size_t slots) {
  check_limit(key, bytes);
  if (key == "pipe") return pipe_channel(bytes);
  if (key == "fifo") return fifo_channel(bytes);
  if (key == "unix-stream") return unix_channel("unix-stream", SOCK_STREAM, bytes);
  if (key == "unix-dgram") return unix_channel("unix-dgram", SOCK_DGRAM, bytes);
  if (key == "unix-seqpacket") return unix_channel("unix-seqpacket", SOCK_SEQPACKET, bytes);
  if (key == "tcp") return tcp_channel(bytes);
  if (key == "udp") return udp_channel(bytes);
  if (key == "sysv-msg") return std::make_unique<SysvMsgChannel>(bytes);
  if (key == "posix-mq") return std::make_unique<PosixMqChannel>(bytes);
  if (key == "sysv-shm") return std::make_unique<ShmChannel>("sysv-shm", ShmSignal::sysv_semaphore, bytes, slots);
  if (key == "posix-shm") return std::make_unique<ShmChannel>("posix-shm", ShmSignal::posix_semaphore, bytes, slots);
  if (key == "shm-futex") return std::make_unique<ShmChannel>("shm-futex", ShmSignal::futex, bytes, slots);
  if (key == "shm-spin") return std::make_unique<ShmChannel>("shm-spin", ShmSignal::spin, bytes, slots);
  throw std::invalid_argument(fmt::format("no message channel '{}'", key));
}

std::unique_ptr<Exchange> make_exchange(std::string_view key, size_t bytes, uint64_t seed) {
  const TransportInfo& info = transport_info(key);
  if (!info.latency) throw SkipError(fmt::format("{} is a stream only: it has no ping-pong", key));
  if (key == "eventfd") return std::make_unique<EventfdExchange>();
  if (key == "signal") return std::make_unique<SignalExchange>();
  return std::make_unique<ChannelExchange>(make_channel(key, bytes, 1), seed);
}

std::unique_ptr<Stream> make_stream(std::string_view key, size_t bytes, uint64_t seed) {
  const TransportInfo& info = transport_info(key);
  if (!info.no_bandwidth.empty()) throw SkipError(info.no_bandwidth);
  check_limit(key, bytes);
  if (key == "vmsplice") return std::make_unique<VmspliceStream>(bytes, seed);
  if (key == "memfd") return std::make_unique<MemfdStream>(bytes, seed);
  return std::make_unique<ChannelStream>(make_channel(key, bytes, stream_slots(bytes)), seed);
}

}  // namespace oslab
