// Blocking IO for green threads without blocking the kernel thread: the calling green thread
// parks, the others run, and the scheduler wakes it when the IO can proceed (epoll: the fd is
// ready) or has completed (io_uring). Both run on one worker (Options::io needs workers == 1).
//
// epoll (readiness): the fd is made O_NONBLOCK (on its open file description, so every
// holder of it sees that), the call is tried, and on EAGAIN the thread registers the fd with
// EPOLLONESHOT and parks until epoll_wait reports it; then it tries again.
// io_uring (completion): the operation goes into the submission queue with the address of
// the parked thread's wait record as user_data; the scheduler submits queued operations in
// one io_uring_enter when it polls, and each completion wakes its thread with the result.

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <stdexcept>
#include <unordered_map>

#include <fmt/format.h>

#include "internal.hpp"
#include "oslab/error.hpp"

#ifdef OSLAB_HAVE_LIBURING
#include <liburing.h>
#endif

namespace oslab::uthread {
namespace {

// Parks the calling green thread on `wait` (lock held by the caller: none on one worker).
void park(Worker& worker, IoWait& wait, Poller& poller) {
  wait.thread = worker.current;
  ++poller.waiting;
  ++worker.state->stats.io_waits;
  switch_away(worker, Worker::After::park);
}

// Called by a poller for a finished wait.
void complete(State& state, Poller& poller, IoWait& wait, int64_t result) {
  wait.result = result;
  wait.done = true;
  --poller.waiting;
  state.make_runnable(wait.thread);
}

Poller& poller_of(Worker& worker) {
  if (!worker.state->poller) throw std::logic_error("oslab::uthread: IO needs Options::io (epoll or io_uring)");
  return *worker.state->poller;
}

// ---- epoll -------------------------------------------------------------------------------

class EpollPoller : public Poller {
 public:
  explicit EpollPoller(State& state)
      : state_(state), epoll_(check_errno("epoll_create1", ::epoll_create1(EPOLL_CLOEXEC))) {}
  Io kind() const override { return Io::epoll; }

  ssize_t read(int fd, void* buffer, size_t bytes) override {
    return retry(fd, EPOLLIN, [&] { return ::read(fd, buffer, bytes); });
  }
  ssize_t write(int fd, const void* buffer, size_t bytes) override {
    return retry(fd, EPOLLOUT, [&] { return ::write(fd, buffer, bytes); });
  }
  int accept(int listen_fd) override {
    return static_cast<int>(retry(
        listen_fd, EPOLLIN, [&] { return ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK); }));
  }
  void forget(int fd) override {
    auto it = fds_.find(fd);
    if (it == fds_.end()) return;
    if (it->second.wait != nullptr)
      throw std::logic_error(fmt::format("uthread::close: a green thread waits on fd {}", fd));
    if (it->second.registered) ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
    fds_.erase(it);
  }

  void poll(int64_t timeout_ns) override {
    epoll_event events[256];
    int ready;
    if (timeout_ns < 0) {
      ready = ::epoll_pwait2(epoll_.get(), events, 256, nullptr, nullptr);
    } else {
      const timespec timeout{static_cast<time_t>(timeout_ns / 1'000'000'000),
                             static_cast<long>(timeout_ns % 1'000'000'000)};
      ready = ::epoll_pwait2(epoll_.get(), events, 256, &timeout, nullptr);
    }
    if (ready < 0 && errno == EINTR) return;
    check_errno("epoll_pwait2", ready);
    for (int i = 0; i < ready; ++i) {
      auto* wait = static_cast<IoWait*>(events[i].data.ptr);
      fds_[wait->fd].wait = nullptr;
      complete(state_, *this, *wait, 0);
    }
  }

 private:
  struct FdState {
    bool nonblocking = false;
    bool registered = false;
    IoWait* wait = nullptr;
  };

  template <typename Call>
  ssize_t retry(int fd, uint32_t events, Call call) {
    Worker& worker = enter_library();
    FdState& fd_state = fds_[fd];
    if (!fd_state.nonblocking) {
      const int flags = check_errno("fcntl F_GETFL", ::fcntl(fd, F_GETFL));
      if ((flags & O_NONBLOCK) == 0) check_errno("fcntl F_SETFL", ::fcntl(fd, F_SETFL, flags | O_NONBLOCK));
      fd_state.nonblocking = true;
    }
    for (;;) {
      const ssize_t result = call();
      if (result >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
        const int saved = errno;
        leave_library();
        errno = saved;
        return result;
      }
      IoWait wait;
      wait.fd = fd;
      if (fd_state.wait != nullptr)
        throw std::logic_error(fmt::format("uthread: two green threads wait on fd {} at once", fd));
      epoll_event event{};
      event.events = events | EPOLLONESHOT | EPOLLRDHUP;
      event.data.ptr = &wait;
      if (fd_state.registered && ::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, fd, &event) == 0) {
      } else if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &event) == 0) {
        fd_state.registered = true;
      } else if (errno == EEXIST) {
        check_errno("epoll_ctl MOD", ::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, fd, &event));
        fd_state.registered = true;
      } else {
        const int saved = errno;
        leave_library();
        errno = saved;
        return -1;  // EPERM: a regular file, always ready; the call above would not have said EAGAIN
      }
      fd_state.wait = &wait;
      worker.state->lock();
      park(worker, wait, *this);
      // Ready (or hung up): try again.
    }
  }

  State& state_;
  UniqueFd epoll_;
  std::unordered_map<int, FdState> fds_;
};

// ---- io_uring ------------------------------------------------------------------------------

#ifdef OSLAB_HAVE_LIBURING
class UringPoller : public Poller {
 public:
  explicit UringPoller(State& state) : state_(state) {
    io_uring_params params{};
    params.flags = IORING_SETUP_CQSIZE;
    params.cq_entries = 16384;  // one completion per parked thread must always fit
    check_neg("io_uring_queue_init_params", ::io_uring_queue_init_params(1024, &ring_, &params));
  }
  ~UringPoller() override { ::io_uring_queue_exit(&ring_); }
  UringPoller(const UringPoller&) = delete;
  UringPoller& operator=(const UringPoller&) = delete;
  Io kind() const override { return Io::io_uring; }

  ssize_t read(int fd, void* buffer, size_t bytes) override {
    return submit_and_park(
        [&](io_uring_sqe* sqe) { ::io_uring_prep_read(sqe, fd, buffer, static_cast<unsigned>(bytes), ~0ull); });
  }
  ssize_t write(int fd, const void* buffer, size_t bytes) override {
    return submit_and_park(
        [&](io_uring_sqe* sqe) { ::io_uring_prep_write(sqe, fd, buffer, static_cast<unsigned>(bytes), ~0ull); });
  }
  int accept(int listen_fd) override {
    return static_cast<int>(submit_and_park(
        [&](io_uring_sqe* sqe) { ::io_uring_prep_accept(sqe, listen_fd, nullptr, nullptr, SOCK_CLOEXEC); }));
  }
  void forget(int) override {}

  void poll(int64_t timeout_ns) override {
    io_uring_cqe* cqe = nullptr;
    int rc;
    if (timeout_ns == 0) {
      rc = queued_ > 0 ? ::io_uring_submit(&ring_) : 0;
    } else if (timeout_ns < 0) {
      rc = ::io_uring_submit_and_wait(&ring_, 1);
    } else {
      __kernel_timespec timeout{timeout_ns / 1'000'000'000, timeout_ns % 1'000'000'000};
      rc = ::io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &timeout, nullptr);
    }
    if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) check_neg("io_uring_submit", rc);
    queued_ = 0;
    unsigned head;
    unsigned seen = 0;
    io_uring_for_each_cqe(&ring_, head, cqe) {
      complete(state_, *this, *reinterpret_cast<IoWait*>(::io_uring_cqe_get_data(cqe)), cqe->res);
      ++seen;
    }
    ::io_uring_cq_advance(&ring_, seen);
  }

 private:
  template <typename Prepare>
  ssize_t submit_and_park(Prepare prepare) {
    Worker& worker = enter_library();
    io_uring_sqe* sqe = ::io_uring_get_sqe(&ring_);
    if (sqe == nullptr) {  // the submission queue is full: hand it to the kernel first
      check_neg("io_uring_submit", ::io_uring_submit(&ring_));
      queued_ = 0;
      sqe = ::io_uring_get_sqe(&ring_);
    }
    IoWait wait;
    prepare(sqe);
    ::io_uring_sqe_set_data(sqe, &wait);
    ++queued_;
    worker.state->lock();
    park(worker, wait, *this);
    leave_library();
    if (wait.result < 0) {
      errno = static_cast<int>(-wait.result);
      return -1;
    }
    return static_cast<ssize_t>(wait.result);
  }

  State& state_;
  io_uring ring_{};
  unsigned queued_ = 0;
};
#endif

}  // namespace

std::unique_ptr<Poller> make_epoll_poller(State& state) {
  return std::make_unique<EpollPoller>(state);
}

std::unique_ptr<Poller> make_io_uring_poller(State& state) {
#ifdef OSLAB_HAVE_LIBURING
  return std::make_unique<UringPoller>(state);
#else
  (void)state;
  throw SkipError("built without liburing");
#endif
}

ssize_t read(int fd, void* buffer, size_t bytes) {
  Worker* worker = current_worker();
  if (worker == nullptr || worker->current == nullptr) throw std::logic_error("uthread::read outside a green thread");
  return poller_of(*worker).read(fd, buffer, bytes);
}

ssize_t write(int fd, const void* buffer, size_t bytes) {
  Worker* worker = current_worker();
  if (worker == nullptr || worker->current == nullptr) throw std::logic_error("uthread::write outside a green thread");
  return poller_of(*worker).write(fd, buffer, bytes);
}

int accept(int listen_fd) {
  Worker* worker = current_worker();
  if (worker == nullptr || worker->current == nullptr) throw std::logic_error("uthread::accept outside a green thread");
  return poller_of(*worker).accept(listen_fd);
}

int close(int fd) {
  Worker* worker = current_worker();
  if (worker != nullptr && worker->state->poller) worker->state->poller->forget(fd);
  return ::close(fd);
}

}  // namespace oslab::uthread
