#include "schedule.hpp"

#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <climits>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string_view>

#include <fmt/format.h>

#include "locks.hpp"
#include "oslab/error.hpp"
#include "oslab/futex.hpp"

namespace oslab::sync {

namespace {

std::string read_small_file(const std::string& path) {
  std::ifstream in(path);
  std::string text;
  std::getline(in, text);
  return text;
}

std::string task_path(pid_t tid, const char* file) {
  return fmt::format("/proc/self/task/{}/{}", tid, file);
}

void sleep_us(long microseconds) {
  timespec pause{0, microseconds * 1000};
  ::nanosleep(&pause, nullptr);
}

}  // namespace

bool thread_asleep(pid_t tid) {
  const std::string stat = read_small_file(task_path(tid, "stat"));
  const auto paren = stat.rfind(')');
  if (paren == std::string::npos || paren + 2 >= stat.size()) return false;
  const char state = stat[paren + 2];
  return state == 'S' || state == 'D';
}

bool thread_in_futex_on(pid_t tid, const void* address) {
  // "202 0x7f12345678 0x80 0x2 ...": the system call number and its arguments, or "running".
  std::istringstream fields(read_small_file(task_path(tid, "syscall")));
  long number = -1;
  std::string first_argument;
  if (!(fields >> number >> first_argument) || number != SYS_futex) return false;
  return address == nullptr ||
         std::strtoull(first_argument.c_str(), nullptr, 16) == reinterpret_cast<uintptr_t>(address);
}

std::string futex_observation_unavailable() {
  std::ifstream in(task_path(static_cast<pid_t>(::gettid()), "syscall"));
  if (!in) return "/proc/self/task/TID/syscall cannot be read: " + describe_errno(errno);
  std::string text;
  std::getline(in, text);
  if (text.empty()) return "/proc/self/task/TID/syscall is empty here";
  return "";
}

// ---- Schedule ----------------------------------------------------------------------------

Schedule::Schedule(std::vector<Step> script, uint64_t seed)
    : script_(std::move(script)), tids_(64), waiting_at_(64), seed_(seed) {}

void Schedule::enroll(int thread) {
  tids_.at(static_cast<size_t>(thread)).store(static_cast<pid_t>(::gettid()));
}

pid_t Schedule::tid_of(int thread) const {
  return tids_.at(static_cast<size_t>(thread)).load();
}

void Schedule::release(std::string why) {
  {
    std::lock_guard lock(why_mutex_);
    released_why_ = std::move(why);
  }
  released_.store(true);
  futex_wake(&cursor_, INT_MAX, FutexScope::process_private);
}

std::string Schedule::released_why() const {
  std::lock_guard lock(why_mutex_);
  return released_why_;
}

std::string Schedule::describe_next() const {
  const uint32_t at = cursor_.load();
  if (at >= script_.size()) return "the script is done";
  const Step& step = script_[at];
  std::string text = fmt::format("step {} of {}: thread {} at '{}'", at + 1, script_.size(), step.thread, step.point);
  if (!step.asleep.empty()) text += ", once another thread sleeps on the lock's futex";
  return text;
}

void Schedule::point(int thread, const char* point) {
  if (board_ && board_->aborted()) return;
  if (script_.empty()) {
    // A random run: perturb the timing at every marked point, reproducibly from the seed.
    thread_local std::mt19937_64 random;
    thread_local bool seeded = false;
    if (!seeded) {
      random.seed(seed_ * 1'000'003 + static_cast<uint64_t>(thread));
      seeded = true;
    }
    const uint64_t draw = random() % 64;
    if (draw < 2)
      std::this_thread::yield();  // rarely: on a busy machine a yield waits behind every other task
    else if (draw < 12)
      for (uint64_t i = 0, n = random() % 2000; i < n; ++i) cpu_relax();
    else if (draw == 12)
      sleep_us(static_cast<long>(random() % 50));
    return;
  }
  for (;;) {
    const uint32_t at = cursor_.load();
    if (at >= script_.size() || released_.load() || (board_ && board_->aborted())) break;
    // Only the points that matter are scripted: a point this thread does not pass again in
    // the rest of the script is free.
    bool scripted = false;
    for (size_t i = at; i < script_.size() && !scripted; ++i)
      scripted = script_[i].thread == thread && script_[i].point == point;
    if (!scripted) break;
    const Step& step = script_[at];
    if (step.thread == thread && step.point == point) {
      if (step.waiting >= 0) {
        // Another thread must have reached its point (not merely been let through the one before).
        if (board_) board_->at_point(thread, point);
        const auto& where = waiting_at_.at(static_cast<size_t>(step.waiting));
        while (!(where.load() != nullptr && std::string_view(where.load()) == step.waiting_at) && !released_.load() &&
               !(board_ && board_->aborted()))
          sleep_us(100);
      }
      if (!step.asleep.empty()) {
        // Wait until one of the named threads sleeps in futex() on the given word, seen twice
        // a little apart (it must be queued in the kernel, not just entering the call).
        if (board_) board_->at_point(thread, point);
        int seen = 0;
        while (seen < 2 && !released_.load() && !(board_ && board_->aborted())) {
          bool now = false;
          for (int other : step.asleep) {
            const pid_t tid = tid_of(other);
            now = now || (tid > 0 && thread_in_futex_on(tid, step.on) && thread_asleep(tid));
          }
          seen = now ? seen + 1 : 0;
          sleep_us(500);
        }
      }
      cursor_.store(at + 1);
      futex_wake(&cursor_, INT_MAX, FutexScope::process_private);
      break;
    }
    if (board_) board_->at_point(thread, point);
    waiting_at_.at(static_cast<size_t>(thread)).store(point);
    futex_wait(&cursor_, at, std::chrono::milliseconds(20), FutexScope::process_private);
    waiting_at_.at(static_cast<size_t>(thread)).store(nullptr);
  }
  if (board_) board_->running(thread);
}

// ---- WaitBoard ---------------------------------------------------------------------------

WaitBoard::WaitBoard(std::vector<std::string> names) : names_(std::move(names)), entries_(names_.size()) {}

WaitBoard::~WaitBoard() {
  stop();
}

void WaitBoard::enroll(int thread) {
  entries_.at(static_cast<size_t>(thread)).tid.store(static_cast<pid_t>(::gettid()));
}

void WaitBoard::waiting(int thread, const char* object, const char* why) noexcept {
  Entry& e = entries_[static_cast<size_t>(thread)];
  e.object.store(object);
  e.why.store(why);
  e.kind.store(1);
}

void WaitBoard::at_point(int thread, const char* point) noexcept {
  Entry& e = entries_[static_cast<size_t>(thread)];
  e.object.store(point);
  e.kind.store(2);
}

void WaitBoard::running(int thread) noexcept {
  entries_[static_cast<size_t>(thread)].kind.store(0);
}

void WaitBoard::done(int thread) noexcept {
  entries_[static_cast<size_t>(thread)].kind.store(3);
}

void WaitBoard::holds(int thread, const char* object) noexcept {
  entries_[static_cast<size_t>(thread)].holding.store(object);
}

void WaitBoard::releases(int thread, const char* object) noexcept {
  const char* expected = object;
  entries_[static_cast<size_t>(thread)].holding.compare_exchange_strong(expected, nullptr);
}

bool WaitBoard::everyone_blocked(bool& any_at_point) const {
  any_at_point = false;
  bool anyone = false;
  for (const Entry& e : entries_) {
    const int kind = e.kind.load();
    if (kind == 3) continue;
    anyone = true;
    if (kind == 0) return false;
    if (kind == 2) {  // waiting for the schedule (it may poll /proc meanwhile: not always asleep)
      any_at_point = true;
      continue;
    }
    const pid_t tid = e.tid.load();
    if (tid <= 0 || !thread_asleep(tid)) return false;
  }
  return anyone;
}

std::string WaitBoard::describe(const Schedule* schedule, const std::string& state) const {
  std::string text;
  for (size_t i = 0; i < entries_.size(); ++i) {
    const Entry& e = entries_[i];
    const int kind = e.kind.load();
    if (kind == 3) continue;
    std::string line = names_[i];
    if (kind == 1) {
      const char* object = e.object.load();
      line += fmt::format(" waits on {} ({})", object, e.why.load());
      for (size_t j = 0; j < entries_.size(); ++j)
        if (j != i && entries_[j].holding.load() == object) line += fmt::format(", held by {}", names_[j]);
    } else if (kind == 2) {
      line += fmt::format(" waits for its turn at '{}' in the forced schedule", e.object.load());
    } else {
      line += " runs";
    }
    if (const char* held = e.holding.load(); held != nullptr && kind == 1) line += fmt::format(", holding {}", held);
    text += (text.empty() ? "" : "; ") + line;
  }
  if (schedule && schedule->forced() && !schedule->finished())
    text += fmt::format("; the schedule expects {}", schedule->describe_next());
  if (!state.empty()) text += "; " + state;
  return text;
}

void WaitBoard::watch(Schedule* schedule, std::function<std::string()> state, std::function<void()> unblock,
                      std::chrono::milliseconds quiet) {
  watcher_ = std::thread([this, schedule, state = std::move(state), unblock = std::move(unblock), quiet] {
    using clock = std::chrono::steady_clock;
    auto since = clock::now();
    uint64_t last_progress = progress_.load();
    while (!stop_.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      bool any_at_point = false;
      const uint64_t progress = progress_.load();
      if (!everyone_blocked(any_at_point) || progress != last_progress) {
        since = clock::now();
        last_progress = progress;
        continue;
      }
      if (clock::now() - since < quiet) continue;
      if (schedule && any_at_point && !schedule->finished()) {
        // The code under test cannot take the scripted order (a mutex forbids it, say): say
        // so, and let the threads run freely from here.
        schedule->release(describe(schedule, state ? state() : ""));
        since = clock::now();
        continue;
      }
      deadlock_ = describe(schedule, state ? state() : "");
      aborted_.store(true, std::memory_order_release);
      if (schedule) schedule->release("the run deadlocked");
      // Wake the sleepers (more than once: a thread may go back to sleep before it sees the flag).
      for (int i = 0; i < 50 && !stop_.load(); ++i) {
        unblock();
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
      return;
    }
  });
}

void WaitBoard::stop() {
  stop_.store(true);
  if (watcher_.joinable()) watcher_.join();
}

// ---- Ledger ------------------------------------------------------------------------------

void Ledger::produced(uint64_t id) noexcept {
  if (id < produced_.size()) produced_[id].store(1, std::memory_order_relaxed);
  produced_count_.fetch_add(1, std::memory_order_relaxed);
}

void Ledger::consumed(uint64_t id) noexcept {
  consumed_.fetch_add(1, std::memory_order_relaxed);
  if (id == kEmpty)
    empty_slots_.fetch_add(1, std::memory_order_relaxed);
  else if (id >= seen_.size())
    unknown_.fetch_add(1, std::memory_order_relaxed);
  else if (seen_[id].load(std::memory_order_relaxed) < 250)
    seen_[id].fetch_add(1, std::memory_order_relaxed);
}

Ledger::Tally Ledger::tally() const {
  Tally t;
  t.produced = produced_count_.load();
  t.consumed = consumed_.load();
  t.empty_slots = empty_slots_.load();
  t.unknown = unknown_.load();
  for (size_t id = 0; id < seen_.size(); ++id) {
    const uint8_t seen = seen_[id].load(std::memory_order_relaxed);
    if (seen == 0 && produced_[id].load(std::memory_order_relaxed)) ++t.lost;
    if (seen > 1) ++t.duplicated;
  }
  return t;
}

std::string Ledger::Tally::describe() const {
  return fmt::format("{} item(s) produced, {} taken out: {} lost, {} duplicated, {} empty slot(s) taken{}", produced,
                     consumed, lost, duplicated, empty_slots,
                     unknown ? fmt::format(", {} unknown id(s)", unknown) : "");
}

}  // namespace oslab::sync
