#include "oslab/parties.hpp"

#include <poll.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <condition_variable>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <thread>

#include <fmt/format.h>

#include "oslab/cleanup.hpp"
#include "oslab/cpu.hpp"
#include "oslab/error.hpp"
#include "oslab/futex.hpp"
#include "oslab/handles.hpp"
#include "oslab/process.hpp"
#include "oslab/shared.hpp"

namespace oslab {

void SharedBarrier::arrive_and_wait(std::chrono::milliseconds timeout) {
  using clock = std::chrono::steady_clock;
  const auto deadline = clock::now() + timeout;
  if (broken()) throw std::runtime_error("another side failed before the start");
  const uint32_t generation = generation_.load();
  if (arrived_.fetch_add(1) + 1 == parties_) {
    arrived_.store(0);
    generation_.fetch_add(1);
    futex_wake(&generation_, INT32_MAX);
    return;
  }
  while (generation_.load() == generation) {
    if (broken()) throw std::runtime_error("another side failed");
    const auto left = deadline - clock::now();
    if (left <= clock::duration::zero() ||
        !futex_wait(&generation_, generation, std::chrono::duration_cast<std::chrono::nanoseconds>(left))) {
      if (generation_.load() != generation) return;
      arrived_.fetch_sub(1);
      throw std::runtime_error(fmt::format("the other sides did not arrive within {} ms", timeout.count()));
    }
  }
}

void SharedBarrier::break_barrier() noexcept {
  broken_.store(1);
  generation_.fetch_add(1);
  try {
    futex_wake(&generation_, INT32_MAX);
  } catch (...) {
  }
}

namespace {

using clock = std::chrono::steady_clock;

constexpr size_t kMaxParties = 64;
constexpr size_t kMessage = 240;

// Shared by the caller and every party: the barrier and each side's error message.
struct Control {
  explicit Control(uint32_t parties) : barrier(parties) {}
  SharedBarrier barrier;
  char errors[kMaxParties][kMessage] = {};
};

void store_error(Control& control, size_t index, const char* message) noexcept {
  char* slot = control.errors[index];
  std::strncpy(slot, message, kMessage - 1);
  slot[kMessage - 1] = '\0';
}

// Runs one party's body, pinned; turns its exception into a stored message.
bool run_one(Control& control, Party& party, const std::function<void(Party&)>& body) {
  try {
    if (!party.cpus().empty()) set_affinity(party.cpus());
    body(party);
    return true;
  } catch (const std::exception& e) {
    store_error(control, party.index(), e.what());
  } catch (...) {
    store_error(control, party.index(), "unknown exception");
  }
  control.barrier.break_barrier();
  return false;
}

std::string side_name(size_t index, size_t parties, const char* kind, long id, const std::vector<int>& cpus) {
  return fmt::format("side {} of {} ({} {}{})", index, parties, kind, id,
                     cpus.empty() ? "" : " on CPU " + format_cpu_list(cpus));
}

std::string join_failures(const std::vector<std::string>& failures) {
  std::string text;
  for (const auto& failure : failures) text += (text.empty() ? "" : "; ") + failure;
  return text;
}

void run_as_processes(const PartyOptions& options, const std::vector<std::function<void(Party&)>>& bodies,
                      Control& control, const std::vector<std::vector<int>>& cpus) {
  const size_t n = bodies.size();
  const auto deadline = clock::now() + options.deadline;
  std::vector<Child> children;
  children.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    children.push_back(Child::fork([&, i] {
      Party party(i, n, false, cpus[i], &control.barrier, deadline);
      return run_one(control, party, bodies[i]) ? 0 : 1;
    }));
  }
  std::vector<UniqueFd> pidfds;
  for (const Child& child : children) pidfds.emplace_back(static_cast<int>(::syscall(SYS_pidfd_open, child.pid(), 0)));

  std::vector<std::string> failures;
  std::vector<bool> done(n, false);
  auto stop_at = deadline;
  std::string why_stopped = fmt::format("did not finish within the deadline ({} ms); killed", options.deadline.count());
  size_t finished = 0;
  while (finished < n) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(stop_at - clock::now());
    std::vector<pollfd> waiting;
    for (size_t i = 0; i < n; ++i)
      if (!done[i] && pidfds[i].valid()) waiting.push_back({pidfds[i].get(), POLLIN, 0});
    if (left.count() > 0) {
      // Without a pidfd for every child (an old kernel), look again every millisecond.
      const int timeout = waiting.size() == n - finished ? static_cast<int>(left.count()) : 1;
      int rc = ::poll(waiting.data(), waiting.size(), timeout);
      if (rc == -1 && errno != EINTR) throw SysError("poll(pidfd)", errno);
    }
    const bool expired = clock::now() >= stop_at;
    for (size_t i = 0; i < n; ++i) {
      if (done[i]) continue;
      const pid_t pid = children[i].pid();
      std::optional<ExitStatus> status = wait_for(pid, std::chrono::milliseconds(0));
      if (!status && !expired) continue;
      if (!status) {
        children[i].kill();
        failures.push_back(fmt::format("{}: {}", side_name(i, n, "process", pid, cpus[i]), why_stopped));
      } else {
        cleanup::untrack_child(children[i].release());
        if (!status->success()) {
          const std::string message = control.errors[i][0] ? control.errors[i] : status->describe();
          failures.push_back(fmt::format("{}: {}", side_name(i, n, "process", pid, cpus[i]), message));
        }
      }
      done[i] = true;
      ++finished;
      if (!failures.empty() && !control.barrier.broken()) {
        // One side failed: the others are told to stop, and get the grace period to do so.
        control.barrier.break_barrier();
        stop_at = std::min(stop_at, clock::now() + options.grace);
        why_stopped = fmt::format("did not stop within {} ms after another side failed; killed", options.grace.count());
      }
    }
  }
  if (!failures.empty()) throw std::runtime_error(join_failures(failures));
}

void run_as_threads(const PartyOptions& options, const std::vector<std::function<void(Party&)>>& bodies,
                    Control& control, const std::vector<std::vector<int>>& cpus) {
  const size_t n = bodies.size();
  const auto deadline = clock::now() + options.deadline;
  struct Finish {
    std::mutex mutex;
    std::condition_variable changed;
    size_t finished = 0;
    bool failed = false;
  };
  auto finish = std::make_shared<Finish>();
  std::vector<std::thread> threads;
  std::vector<std::atomic<long>> tids(n);
  for (size_t i = 0; i < n; ++i) {
    threads.emplace_back([&, i, finish] {
      tids[i] = static_cast<long>(::gettid());
      ::pthread_setname_np(::pthread_self(), fmt::format("party-{}", i).c_str());
      Party party(i, n, true, cpus[i], &control.barrier, deadline);
      const bool ok = run_one(control, party, bodies[i]);
      std::lock_guard lock(finish->mutex);
      ++finish->finished;
      finish->failed = finish->failed || !ok;
      finish->changed.notify_all();
    });
  }
  {
    std::unique_lock lock(finish->mutex);
    bool all = finish->changed.wait_until(lock, deadline, [&] { return finish->finished == n || finish->failed; });
    if (!all || finish->finished < n) {
      // A side failed or time is up: the others are told to stop and get the grace period.
      control.barrier.break_barrier();
      all = finish->changed.wait_for(lock, options.grace, [&] { return finish->finished == n; });
    }
    if (!all) {
      std::string hung;
      for (size_t i = 0; i < n; ++i)
        if (control.errors[i][0] == '\0') hung += (hung.empty() ? "" : ", ") + std::to_string(i);
      lock.unlock();
      const std::string message = fmt::format(
          "{}: side(s) {} of {} (threads) did not finish within {} ms and a thread cannot be killed: ending the run\n",
          program_name(), hung, n, (options.deadline + options.grace).count());
      cleanup::run_now();
      write_stderr(message.c_str());
      _exit(1);
    }
  }
  for (auto& thread : threads) thread.join();
  std::vector<std::string> failures;
  for (size_t i = 0; i < n; ++i)
    if (control.errors[i][0] != '\0')
      failures.push_back(fmt::format("{}: {}", side_name(i, n, "thread", tids[i].load(), cpus[i]), control.errors[i]));
  if (!failures.empty()) throw std::runtime_error(join_failures(failures));
}

}  // namespace

void Party::ready() {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - clock::now());
  barrier_->arrive_and_wait(std::max(left, std::chrono::milliseconds(0)));
}

bool Party::stop_requested() const noexcept {
  return barrier_->broken() || clock::now() >= deadline_;
}

void run_parties(const PartyOptions& options, const std::vector<std::function<void(Party&)>>& bodies) {
  const size_t n = bodies.size();
  if (n == 0) return;
  if (n > kMaxParties) throw std::invalid_argument(fmt::format("run_parties: at most {} parties", kMaxParties));
  std::vector<std::vector<int>> cpus(n);
  for (size_t i = 0; i < n && i < options.assignment.party_cpus.size(); ++i)
    if (options.assignment.placement != Placement::unpinned) cpus[i] = options.assignment.party_cpus[i];
  Shared<Control> control(static_cast<uint32_t>(n));
  if (options.threads)
    run_as_threads(options, bodies, *control, cpus);
  else
    run_as_processes(options, bodies, *control, cpus);
}

}  // namespace oslab
