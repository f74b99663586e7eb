// oslab-echo-server: one TCP echo server, several concurrency models. oslab-echo starts it
// with the listening socket as fd 3 and stops it with SIGTERM; it can also be run by hand:
//     oslab-echo-server --model epoll-lt --port 7000
//
//   threads          a kernel thread per connection, blocking read/write (small stacks)
//   pool             a fixed pool of threads sharing one epoll set (EPOLLONESHOT): each
//                    ready connection is served by whichever thread takes it
//   epoll-lt         one thread, one event loop, level-triggered: one read per event
//   epoll-et         the same, edge-triggered: read until EAGAIN, or lose data (oslab-nonblock)
//   uring            io_uring: a recv then a send in flight per connection, one thread
//   uring-multishot  io_uring multishot recv into a ring of provided buffers
//   green            oslab's green threads (labs/uthreads), one per connection, on one kernel
//                    thread; their read/write park on io_uring (or epoll)
//
// Each model stops on SIGTERM or SIGINT: it stops accepting, shuts down every connection,
// waits for its threads, closes everything and exits 0, printing what it served. It exits 77
// when the machine lacks what the model needs (io_uring disabled, no multishot recv).

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fcntl.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "oslab/error.hpp"
#include "oslab/handles.hpp"
#include "uthread.hpp"

#ifdef OSLAB_HAVE_LIBURING
#include <liburing.h>
#endif

namespace {

using oslab::check_errno;
using oslab::check_errnum;
using oslab::check_neg;

constexpr size_t kBuffer = 16384;

struct Server {
  int listen_fd = 3;
  int stop_fd = -1;  // an eventfd: readable once a stop was asked for
  int threads = 4;   // pool size
  size_t stack_kib = 64;
  std::atomic<uint64_t> accepted{0}, echoed_bytes{0};
  // Tells oslab-echo that the model is set up and serving (its memory so far is the baseline).
  void ready() const {
    (void)std::printf("ready\n");
    (void)std::fflush(stdout);
  }
};

void make_nonblocking(int fd, bool on) {
  const int flags = check_errno("fcntl", ::fcntl(fd, F_GETFL));
  check_errno("fcntl", ::fcntl(fd, F_SETFL, on ? flags | O_NONBLOCK : flags & ~O_NONBLOCK));
}

// Writes all of it (a blocking socket, or a non-blocking one by waiting with poll).
bool write_all(int fd, const char* data, size_t bytes) {
  while (bytes > 0) {
    const ssize_t wrote = ::send(fd, data, bytes, MSG_NOSIGNAL);
    if (wrote < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        pollfd entry{fd, POLLOUT, 0};
        ::poll(&entry, 1, 1000);
        continue;
      }
      return false;
    }
    data += wrote;
    bytes -= static_cast<size_t>(wrote);
  }
  return true;
}

// ---- threads: one kernel thread per connection --------------------------------------------

void serve_threads(Server& server) {
  make_nonblocking(server.listen_fd, false);
  std::mutex mutex;
  std::set<int> open;  // connections, so that a stop can shut them down
  std::condition_variable all_done;
  size_t running = 0;
  bool stopping = false;
  pthread_attr_t attr;
  check_errnum("pthread_attr_init", ::pthread_attr_init(&attr));
  check_errnum("pthread_attr_setstacksize", ::pthread_attr_setstacksize(&attr, server.stack_kib * 1024));
  check_errnum("pthread_attr_setdetachstate", ::pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED));
  struct Job {
    Server* server;
    int fd;
    std::mutex* mutex;
    std::set<int>* open;
    size_t* running;
    std::condition_variable* done;
  };
  auto connection = [](void* arg) -> void* {
    std::unique_ptr<Job> job(static_cast<Job*>(arg));
    char buffer[kBuffer];
    for (;;) {
      const ssize_t got = ::recv(job->fd, buffer, sizeof buffer, 0);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0 || !write_all(job->fd, buffer, static_cast<size_t>(got))) break;
      job->server->echoed_bytes += static_cast<uint64_t>(got);
    }
    std::lock_guard guard(*job->mutex);
    job->open->erase(job->fd);
    ::close(job->fd);
    if (--*job->running == 0) job->done->notify_all();
    return nullptr;
  };
  server.ready();
  std::thread acceptor([&] {
    for (;;) {
      const int fd = ::accept4(server.listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (errno == EMFILE || errno == ENFILE || errno == EAGAIN) {  // out of fds or threads: wait a little
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
          continue;
        }
        return;  // shut down
      }
      const int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      std::unique_lock lock(mutex);
      if (stopping) {
        ::close(fd);
        continue;
      }
      open.insert(fd);
      ++running;
      ++server.accepted;
      pthread_t thread;
      auto* job = new Job{&server, fd, &mutex, &open, &running, &all_done};  // NOLINT: owned by the thread
      if (const int error = ::pthread_create(&thread, &attr, connection, job); error != 0) {
        delete job;  // NOLINT
        open.erase(fd);
        ::close(fd);
        --running;
        (void)std::fprintf(stderr, "oslab-echo-server: pthread_create: %s\n", oslab::describe_errno(error).c_str());
      }
    }
  });
  uint64_t value = 0;
  while (::read(server.stop_fd, &value, sizeof value) < 0 && errno == EINTR) {
  }
  {
    std::unique_lock lock(mutex);
    stopping = true;
    ::shutdown(server.listen_fd, SHUT_RDWR);        // ends the blocked accept
    for (int fd : open) ::shutdown(fd, SHUT_RDWR);  // ends each blocked recv
  }
  acceptor.join();
  std::unique_lock lock(mutex);
  all_done.wait(lock, [&] { return running == 0; });
  ::pthread_attr_destroy(&attr);
}

// ---- pool: a fixed number of threads sharing one epoll set -------------------------------

void serve_pool(Server& server) {
  make_nonblocking(server.listen_fd, true);
  oslab::UniqueFd epoll(check_errno("epoll_create1", ::epoll_create1(EPOLL_CLOEXEC)));
  auto add = [&](int fd, uint32_t events, int op) {
    epoll_event event{};
    event.events = events;
    event.data.fd = fd;
    return ::epoll_ctl(epoll.get(), op, fd, &event);
  };
  check_errno("epoll_ctl", add(server.listen_fd, EPOLLIN | EPOLLONESHOT, EPOLL_CTL_ADD));
  check_errno("epoll_ctl", add(server.stop_fd, EPOLLIN, EPOLL_CTL_ADD));  // level: every thread sees it
  std::mutex mutex;
  std::set<int> open;
  auto work = [&] {
    char buffer[kBuffer];
    for (;;) {
      epoll_event event{};
      const int ready = ::epoll_wait(epoll.get(), &event, 1, -1);
      if (ready < 0 && errno == EINTR) continue;
      if (ready <= 0) return;
      const int fd = event.data.fd;
      if (fd == server.stop_fd) return;
      if (fd == server.listen_fd) {
        for (;;) {
          const int client = ::accept4(server.listen_fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
          if (client < 0) break;
          const int one = 1;
          ::setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          ++server.accepted;
          std::lock_guard guard(mutex);
          open.insert(client);
          add(client, EPOLLIN | EPOLLRDHUP | EPOLLONESHOT, EPOLL_CTL_ADD);
        }
        add(server.listen_fd, EPOLLIN | EPOLLONESHOT, EPOLL_CTL_MOD);
        continue;
      }
      // This thread alone owns fd until it re-arms it (EPOLLONESHOT).
      bool alive = true;
      for (;;) {
        const ssize_t got = ::recv(fd, buffer, sizeof buffer, 0);
        if (got < 0 && errno == EAGAIN) break;
        if (got <= 0 || !write_all(fd, buffer, static_cast<size_t>(got))) {
          alive = false;
          break;
        }
        server.echoed_bytes += static_cast<uint64_t>(got);
      }
      if (alive) {
        add(fd, EPOLLIN | EPOLLRDHUP | EPOLLONESHOT, EPOLL_CTL_MOD);
      } else {
        std::lock_guard guard(mutex);
        open.erase(fd);
        ::close(fd);
      }
    }
  };
  std::vector<std::thread> pool;
  for (int i = 0; i < server.threads; ++i) pool.emplace_back(work);
  server.ready();
  for (auto& thread : pool) thread.join();
  for (int fd : open) ::close(fd);  // the threads are gone: nobody else holds these
}

// ---- epoll-lt / epoll-et: one thread, one event loop -------------------------------------

struct LoopConnection {
  std::string pending;  // echo bytes the socket would not take yet
};

void serve_epoll(Server& server, bool edge) {
  make_nonblocking(server.listen_fd, true);
  oslab::UniqueFd epoll(check_errno("epoll_create1", ::epoll_create1(EPOLL_CLOEXEC)));
  auto control = [&](int op, int fd, uint32_t events) {
    epoll_event event{};
    event.events = events;
    event.data.fd = fd;
    return ::epoll_ctl(epoll.get(), op, fd, &event);
  };
  check_errno("epoll_ctl", control(EPOLL_CTL_ADD, server.listen_fd, EPOLLIN));
  check_errno("epoll_ctl", control(EPOLL_CTL_ADD, server.stop_fd, EPOLLIN));
  const uint32_t mode = edge ? static_cast<uint32_t>(EPOLLET) : 0u;
  std::map<int, LoopConnection> open;
  std::vector<epoll_event> events(1024);
  char buffer[kBuffer];
  server.ready();
  auto close_connection = [&](int fd) {
    open.erase(fd);
    ::close(fd);
  };
  // Echoes what it can now; keeps the rest for EPOLLOUT. Returns false when the peer is gone.
  auto echo = [&](int fd, LoopConnection& c, const char* data, size_t bytes) {
    if (c.pending.empty()) {
      const ssize_t wrote = ::send(fd, data, bytes, MSG_NOSIGNAL);
      if (wrote < 0 && errno != EAGAIN) return false;
      const size_t done = wrote < 0 ? 0 : static_cast<size_t>(wrote);
      data += done;
      bytes -= done;
      if (bytes == 0) return true;
      control(EPOLL_CTL_MOD, fd, EPOLLIN | EPOLLOUT | EPOLLRDHUP | mode);
    }
    c.pending.append(data, bytes);
    return true;
  };
  for (;;) {
    const int ready = ::epoll_wait(epoll.get(), events.data(), static_cast<int>(events.size()), -1);
    if (ready < 0 && errno == EINTR) continue;
    check_errno("epoll_wait", ready);
    for (int e = 0; e < ready; ++e) {
      const int fd = events[static_cast<size_t>(e)].data.fd;
      const uint32_t what = events[static_cast<size_t>(e)].events;
      if (fd == server.stop_fd) {
        for (auto& [connection, state] : open) ::close(connection);
        return;
      }
      if (fd == server.listen_fd) {
        for (;;) {
          const int client = ::accept4(server.listen_fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
          if (client < 0) break;
          const int one = 1;
          ::setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          ++server.accepted;
          open[client];
          control(EPOLL_CTL_ADD, client, EPOLLIN | EPOLLRDHUP | mode);
        }
        continue;
      }
      auto it = open.find(fd);
      if (it == open.end()) continue;
      LoopConnection& c = it->second;
      if ((what & EPOLLOUT) != 0 && !c.pending.empty()) {
        const ssize_t wrote = ::send(fd, c.pending.data(), c.pending.size(), MSG_NOSIGNAL);
        if (wrote < 0 && errno != EAGAIN) {
          close_connection(fd);
          continue;
        }
        if (wrote > 0) c.pending.erase(0, static_cast<size_t>(wrote));
        if (c.pending.empty()) control(EPOLL_CTL_MOD, fd, EPOLLIN | EPOLLRDHUP | mode);
      }
      if ((what & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) == 0) continue;
      // Level-triggered: one read per event (epoll will say again if more is there).
      // Edge-triggered: until EAGAIN, or the rest waits for data that may never come.
      bool alive = true;
      do {
        const ssize_t got = ::recv(fd, buffer, sizeof buffer, 0);
        if (got < 0 && errno == EAGAIN) break;
        if (got <= 0 || !echo(fd, c, buffer, static_cast<size_t>(got))) {
          alive = false;
          break;
        }
        server.echoed_bytes += static_cast<uint64_t>(got);
      } while (edge);
      if (!alive) close_connection(fd);
    }
  }
}

// ---- uring and uring-multishot --------------------------------------------------------------

#ifdef OSLAB_HAVE_LIBURING
class UringServer {
 public:
  UringServer(Server& server, bool multishot) : server_(server), multishot_(multishot) {
    io_uring_params params{};
    params.flags = IORING_SETUP_CQSIZE;
    params.cq_entries = 65536;
    const int rc = ::io_uring_queue_init_params(4096, &ring_, &params);
    if (rc < 0) throw oslab::SkipError("io_uring_queue_init: " + oslab::describe_errno(-rc));
    if (multishot_) setup_buffers();
  }
  ~UringServer() {
    if (buffers_ring_ != nullptr) ::io_uring_unregister_buf_ring(&ring_, kGroup);
    ::io_uring_queue_exit(&ring_);
  }
  UringServer(const UringServer&) = delete;
  UringServer& operator=(const UringServer&) = delete;

  void run() {
    make_nonblocking(server_.listen_fd, false);
    post_accept();
    post(kStop, server_.stop_fd,
         [&](io_uring_sqe* sqe) { ::io_uring_prep_read(sqe, server_.stop_fd, &stop_value_, 8, 0); });
    server_.ready();
    for (;;) {
      io_uring_cqe* cqe = nullptr;
      const int rc = ::io_uring_submit_and_wait(&ring_, 1);
      if (rc < 0 && rc != -EINTR) check_neg("io_uring_submit_and_wait", rc);
      unsigned head;
      unsigned seen = 0;
      bool stop = false;
      io_uring_for_each_cqe(&ring_, head, cqe) {
        ++seen;
        stop = stop || handle(cqe);
      }
      ::io_uring_cq_advance(&ring_, seen);
      if (stop) break;
    }
    for (auto& [fd, c] : open_) ::close(fd);
  }

 private:
  static constexpr unsigned kBuffers = 4096;  // provided buffers (a power of two)
  static constexpr unsigned kBufferBytes = 4096;
  static constexpr int kGroup = 1;
  enum Kind : uint64_t { kAccept = 1, kRecv = 2, kSend = 3, kStop = 4 };
  struct Connection {
    char buffer[kBuffer];
    bool sending = false;
  };

  static uint64_t tag(Kind kind, int fd, uint32_t extra = 0) {
    return (static_cast<uint64_t>(kind) << 60) | (static_cast<uint64_t>(extra) << 32) | static_cast<uint32_t>(fd);
  }

  template <typename Prepare>
  void post(Kind kind, int fd, Prepare prepare, uint32_t extra = 0) {
    io_uring_sqe* sqe = ::io_uring_get_sqe(&ring_);
    if (sqe == nullptr) {
      check_neg("io_uring_submit", ::io_uring_submit(&ring_));
      sqe = ::io_uring_get_sqe(&ring_);
    }
    prepare(sqe);
    ::io_uring_sqe_set_data64(sqe, tag(kind, fd, extra));
  }

  void setup_buffers() {
    // The ring of buffer addresses the kernel picks from, shared with it like the queues.
    ring_memory_ = oslab::Mapping::anonymous(kBuffers * sizeof(io_uring_buf));
    auto* shared = ring_memory_.as<io_uring_buf_ring>();
    ::io_uring_buf_ring_init(shared);
    io_uring_buf_reg registration{};
    registration.ring_addr = reinterpret_cast<uint64_t>(shared);
    registration.ring_entries = kBuffers;
    registration.bgid = kGroup;
    const int rc = ::io_uring_register_buf_ring(&ring_, &registration, 0);
    if (rc < 0)
      throw oslab::SkipError("provided buffer rings (io_uring_register_buf_ring): " + oslab::describe_errno(-rc));
    buffers_ring_ = shared;
    buffers_.resize(static_cast<size_t>(kBuffers) * kBufferBytes);
    for (unsigned i = 0; i < kBuffers; ++i)
      ::io_uring_buf_ring_add(buffers_ring_, buffers_.data() + static_cast<size_t>(i) * kBufferBytes, kBufferBytes,
                              static_cast<unsigned short>(i), ::io_uring_buf_ring_mask(kBuffers), static_cast<int>(i));
    ::io_uring_buf_ring_advance(buffers_ring_, static_cast<int>(kBuffers));
  }

  void post_accept() {
    post(kAccept, server_.listen_fd, [&](io_uring_sqe* sqe) {
      if (multishot_)
        ::io_uring_prep_multishot_accept(sqe, server_.listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
      else
        ::io_uring_prep_accept(sqe, server_.listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    });
  }

  void post_recv(int fd) {
    if (multishot_) {
      post(kRecv, fd, [&](io_uring_sqe* sqe) {
        ::io_uring_prep_recv_multishot(sqe, fd, nullptr, 0, 0);
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = kGroup;
      });
    } else {
      Connection& c = open_.at(fd);
      post(kRecv, fd, [&](io_uring_sqe* sqe) { ::io_uring_prep_recv(sqe, fd, c.buffer, sizeof c.buffer, 0); });
    }
  }

  void close_connection(int fd) {
    if (open_.erase(fd) > 0) ::close(fd);
  }

  // Returns true when the server must stop.
  bool handle(io_uring_cqe* cqe) {
    const uint64_t data = ::io_uring_cqe_get_data64(cqe);
    const auto kind = static_cast<Kind>(data >> 60);
    const int fd = static_cast<int>(data & 0xffff'ffffu);
    const auto extra = static_cast<uint32_t>((data >> 32) & 0x0fff'ffffu);
    const int res = cqe->res;
    switch (kind) {
      case kStop: return true;
      case kAccept:
        if (res >= 0) {
          const int one = 1;
          ::setsockopt(res, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          ++server_.accepted;
          open_[res];
          post_recv(res);
        }
        if (!multishot_ || (cqe->flags & IORING_CQE_F_MORE) == 0) post_accept();
        return false;
      case kRecv: {
        const bool more = multishot_ && (cqe->flags & IORING_CQE_F_MORE) != 0;
        if (res <= 0) {
          if (res == -ENOBUFS && open_.count(fd) > 0) {  // all buffers in use: try again
            if (!more) post_recv(fd);
            return false;
          }
          if (!more) close_connection(fd);
          return false;
        }
        server_.echoed_bytes += static_cast<uint64_t>(res);
        if (multishot_) {
          const auto buffer_id = static_cast<uint32_t>(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
          const char* bytes = buffers_.data() + static_cast<size_t>(buffer_id) * kBufferBytes;
          post(
              kSend, fd,
              [&](io_uring_sqe* sqe) { ::io_uring_prep_send(sqe, fd, bytes, static_cast<size_t>(res), MSG_NOSIGNAL); },
              buffer_id);
          if (!more && open_.count(fd) > 0) post_recv(fd);
        } else {
          Connection& c = open_.at(fd);
          post(kSend, fd, [&](io_uring_sqe* sqe) {
            ::io_uring_prep_send(sqe, fd, c.buffer, static_cast<size_t>(res), MSG_NOSIGNAL);
          });
        }
        return false;
      }
      case kSend:
        if (multishot_) {  // the provided buffer goes back to the kernel
          ::io_uring_buf_ring_add(buffers_ring_, buffers_.data() + static_cast<size_t>(extra) * kBufferBytes,
                                  kBufferBytes, static_cast<unsigned short>(extra), ::io_uring_buf_ring_mask(kBuffers),
                                  0);
          ::io_uring_buf_ring_advance(buffers_ring_, 1);
          if (res < 0) close_connection(fd);
        } else if (res < 0) {
          close_connection(fd);
        } else {
          post_recv(fd);  // a short send on a small echo does not happen on loopback; the load generator would say
        }
        return false;
    }
    return false;
  }

  Server& server_;
  bool multishot_;
  io_uring ring_{};
  oslab::Mapping ring_memory_;
  io_uring_buf_ring* buffers_ring_ = nullptr;
  std::vector<char> buffers_;
  std::map<int, Connection> open_;
  uint64_t stop_value_ = 0;
};
#endif

void serve_uring(Server& server, bool multishot) {
#ifdef OSLAB_HAVE_LIBURING
  UringServer uring(server, multishot);
  uring.run();
#else
  (void)server;
  (void)multishot;
  throw oslab::SkipError("built without liburing");
#endif
}

// ---- green: a green thread per connection -----------------------------------------------

void serve_green(Server& server) {
  namespace ut = oslab::uthread;
  ut::Options options;
  options.io = ut::Io::automatic;
  options.stack_bytes = server.stack_kib * 1024;
  ut::Scheduler scheduler(options);
  if (!scheduler.io_note().empty()) (void)std::fprintf(stderr, "oslab-echo-server: %s\n", scheduler.io_note().c_str());
  std::set<int> open;
  bool stopping = false;
  scheduler.spawn([&] {
    uint64_t value = 0;
    ut::read(server.stop_fd, &value, sizeof value);
    stopping = true;
    ::shutdown(server.listen_fd, SHUT_RDWR);
    for (int fd : open) ::shutdown(fd, SHUT_RDWR);
  });
  scheduler.spawn([&] {
    for (;;) {
      const int fd = ut::accept(server.listen_fd);
      if (fd < 0) {
        if (stopping || (errno != EINTR && errno != ECONNABORTED && errno != EMFILE && errno != ENFILE)) return;
        continue;
      }
      const int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      ++server.accepted;
      open.insert(fd);
      ut::current_scheduler().spawn([&server, &open, fd] {
        std::vector<char> buffer(kBuffer);
        for (;;) {
          const ssize_t got = ut::read(fd, buffer.data(), buffer.size());
          if (got <= 0) break;
          size_t done = 0;
          while (done < static_cast<size_t>(got)) {
            const ssize_t wrote = ut::write(fd, buffer.data() + done, static_cast<size_t>(got) - done);
            if (wrote <= 0) break;
            done += static_cast<size_t>(wrote);
          }
          if (done < static_cast<size_t>(got)) break;
          server.echoed_bytes += static_cast<uint64_t>(got);
        }
        open.erase(fd);
        ut::close(fd);
      });
    }
  });
  server.ready();
  scheduler.run();
}

}  // namespace

int main(int argc, char** argv) {
  oslab::set_program_name("oslab-echo-server");
  CLI::App app{"oslab-echo-server: a TCP echo server with a choice of concurrency models"};
  std::string model = "epoll-lt";
  int port = -1;
  Server server;
  app.add_option("--model", model, "threads, pool, epoll-lt, epoll-et, uring, uring-multishot, green")
      ->check(CLI::IsMember({"threads", "pool", "epoll-lt", "epoll-et", "uring", "uring-multishot", "green"}));
  app.add_option("--port", port, "Listen on 127.0.0.1:PORT instead of the inherited fd 3")->check(CLI::Range(0, 65535));
  app.add_option("--threads", server.threads, "Threads of the pool model")->check(CLI::Range(1, 1024));
  app.add_option("--stack-kib", server.stack_kib, "Stack of a connection's thread or green thread, KiB")
      ->check(CLI::Range(16, 1 << 20));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    if (error.get_exit_code() == 0) return app.exit(error);
    (void)std::fprintf(stderr, "oslab-echo-server: %s\n", error.what());
    return 2;
  }
  try {
    // SIGTERM and SIGINT are taken by a thread with sigwait; every other thread has them blocked.
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    check_errnum("pthread_sigmask", ::pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr));
    (void)::signal(SIGPIPE, SIG_IGN);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the lab that started us
    if (port >= 0) {
      server.listen_fd = check_errno("socket", ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
      const int one = 1;
      check_errno("setsockopt", ::setsockopt(server.listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one));
      sockaddr_in address{};
      address.sin_family = AF_INET;
      address.sin_port = htons(static_cast<uint16_t>(port));
      address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      check_errno("bind", ::bind(server.listen_fd, reinterpret_cast<sockaddr*>(&address), sizeof address));
      check_errno("listen", ::listen(server.listen_fd, 4096));
    } else if (::fcntl(3, F_GETFD) < 0) {
      (void)std::fprintf(stderr, "oslab-echo-server: no listening socket on fd 3 (or use --port)\n");
      return 2;
    }
    server.stop_fd = check_errno("eventfd", ::eventfd(0, EFD_CLOEXEC));
    std::thread stopper([&] {
      int signo = 0;
      sigwait(&stop_signals, &signo);
      const uint64_t one = 1;
      check_errno("write eventfd", ::write(server.stop_fd, &one, sizeof one));
    });
    stopper.detach();  // it ends with the process
    if (model == "threads") serve_threads(server);
    if (model == "pool") serve_pool(server);
    if (model == "epoll-lt") serve_epoll(server, false);
    if (model == "epoll-et") serve_epoll(server, true);
    if (model == "uring") serve_uring(server, false);
    if (model == "uring-multishot") serve_uring(server, true);
    if (model == "green") serve_green(server);
    ::close(server.listen_fd);
    (void)std::printf("stopped accepted=%llu echoed_bytes=%llu\n",
                      static_cast<unsigned long long>(server.accepted.load()),
                      static_cast<unsigned long long>(server.echoed_bytes.load()));
    (void)std::fflush(stdout);
    return 0;
  } catch (const oslab::SkipError& error) {
    (void)std::fprintf(stderr, "oslab-echo-server: %s\n", error.what());
    (void)std::printf("skip %s\n", error.what());
    (void)std::fflush(stdout);
    return 77;
  } catch (const std::exception& error) {
    (void)std::fprintf(stderr, "oslab-echo-server: %s\n", error.what());
    return 1;
  }
}
