// The client side of oslab-fork-driver (fork_driver.c), the small static C program that
// oslab-fork measures process and thread creation from: start one, tell it how much memory to
// touch, ask it for blocks of timed operations. oslab-fork and oslab-threads both use it, so
// that "what fork costs" is measured one way only.
#pragma once

#include <unistd.h>

#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "fork_driver.h"
#include "oslab/error.hpp"
#include "oslab/handles.hpp"
#include "oslab/measure.hpp"
#include "oslab/process.hpp"

namespace oslab {

// One oslab-fork-driver process: it touches its memory once, then runs blocks on request.
class ForkDriver {
 public:
  ForkDriver(const std::string& path, const std::string& static_target, const std::string& dynamic_target) {
    Pipe requests = Pipe::create(), replies = Pipe::create();
    child_ = Child::fork([&]() -> int {
      ::dup2(requests.read_end.get(), STDIN_FILENO);
      ::dup2(replies.write_end.get(), STDOUT_FILENO);
      const char* argv[] = {path.c_str(), static_target.c_str(), dynamic_target.c_str(), nullptr};
      ::execve(path.c_str(), const_cast<char* const*>(argv), ::environ);
      child_fail("execve oslab-fork-driver", errno);
    });
    to_driver_ = std::move(requests.write_end);
    from_driver_ = std::move(replies.read_end);
  }
  ~ForkDriver() {
    ForkRequest quit{OP_QUIT, 0, 0, 0, 0};
    if (::write(to_driver_.get(), &quit, sizeof quit) == sizeof quit) {
      try {
        child_.wait(std::chrono::seconds(10));
      } catch (...) {
      }
    }
  }
  ForkDriver(const ForkDriver&) = delete;
  ForkDriver& operator=(const ForkDriver&) = delete;

  pid_t pid() const { return child_.pid(); }
  // Touches `mib` MiB; returns the driver's resident MiB and mapping count.
  std::pair<double, int> touch(long mib, bool huge_pages) {
    send({OP_TOUCH, 0, 0, huge_pages ? 1 : 0, mib});
    ForkReply answer = receive();
    return {answer.resident_mib, answer.mappings};
  }
  // Runs `count` operations of `method` and adds them as one block.
  void block(int method, int count, Measurement& into) {
    send({OP_BLOCK, method, count, 0, 0});
    ForkReply answer = receive();
    std::vector<double> samples(static_cast<size_t>(answer.count));
    read_exactly(samples.data(), samples.size() * sizeof(double));
    auto counters = [](const double(&c)[4]) { return Counters{c[0], c[1], c[2], c[3]}; };
    into.add_block(samples, counters(answer.self), counters(answer.children));
  }

 private:
  void send(const ForkRequest& r) {
    if (::write(to_driver_.get(), &r, sizeof r) != static_cast<ssize_t>(sizeof r))
      throw SysError("write to oslab-fork-driver", errno);
  }
  ForkReply receive() {
    ForkReply answer{};
    read_exactly(&answer, sizeof answer);
    if (answer.status != 0) throw std::runtime_error(fmt::format("oslab-fork-driver: {}", answer.message));
    return answer;
  }
  void read_exactly(void* data, size_t size) {
    auto* p = static_cast<char*>(data);
    while (size > 0) {
      ssize_t n = ::read(from_driver_.get(), p, size);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw SysError("read from oslab-fork-driver", errno);
      if (n == 0) throw std::runtime_error("oslab-fork-driver ended unexpectedly");
      p += n;
      size -= static_cast<size_t>(n);
    }
  }
  Child child_;
  UniqueFd to_driver_, from_driver_;
};

}  // namespace oslab
