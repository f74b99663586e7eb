#include "guardian.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include "oslab/error.hpp"
#include "oslab/process.hpp"

namespace oslab::memory {

Guardian Guardian::start(const std::function<void()>& on_death) {
  int ends[2];
  check_errno("pipe2", ::pipe2(ends, O_CLOEXEC));
  flush_stdio();
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::setpgid(0, 0);  // out of the lab's process group: a terminal's ^C is the lab's, not ours
    for (int signo : {SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGQUIT}) (void)::signal(signo, SIG_IGN);
    const int null = ::open("/dev/null", O_RDWR);
    if (null >= 0)
      for (int fd : {0, 1, 2}) ::dup2(null, fd);  // never hold the lab's output open
    ::dup2(ends[0], 3);
    if (::syscall(SYS_close_range, 4U, ~0U, 0U) != 0)
      for (int fd = 4; fd < 1024; ++fd) ::close(fd);
    char dismissed = 0;
    ssize_t got;
    do got = ::read(3, &dismissed, 1);
    while (got < 0 && errno == EINTR);
    if (got != 1) on_death();  // end of file: the lab is gone (or gave up on cleaning up)
    _exit(0);
  }
  const int saved = errno;
  ::close(ends[0]);
  if (pid < 0) {
    ::close(ends[1]);
    throw SysError("fork (guardian)", saved);
  }
  Guardian guardian;
  guardian.pid_ = pid;
  guardian.pipe_ = ends[1];
  return guardian;
}

Guardian::Guardian(Guardian&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)), pipe_(std::exchange(other.pipe_, -1)) {}

Guardian& Guardian::operator=(Guardian&& other) noexcept {
  if (this != &other) {
    this->~Guardian();
    pid_ = std::exchange(other.pid_, -1);
    pipe_ = std::exchange(other.pipe_, -1);
  }
  return *this;
}

Guardian::~Guardian() {
  if (pipe_ >= 0) ::close(pipe_);  // the guardian runs on_death; it is reaped by whoever reaps orphans
  pipe_ = -1;
  pid_ = -1;
}

void Guardian::dismiss() noexcept {
  if (pid_ < 0) return;
  const char token = 1;
  const bool told = ::write(pipe_, &token, 1) == 1;
  ::close(pipe_);
  pipe_ = -1;
  try {
    if (!told || !wait_for(pid_, std::chrono::seconds(2))) kill_and_reap(pid_);
  } catch (...) {
  }
  pid_ = -1;
}

}  // namespace oslab::memory
