// Counters that show whether threads are running: each counting thread increments its own
// counter and remembers the longest pause between two of its increments. A watcher on
// another kernel thread reads them (relaxed atomics) before and after a window.
#pragma once

#include <atomic>
#include <cstdint>
#include <vector>

#include "oslab/clock.hpp"

namespace oslab::uthread {

class ProgressCounters {
 public:
  explicit ProgressCounters(size_t counters) : slots_(counters) {}

  // One step of counter i; returns false once stop() was called.
  bool step(size_t i) noexcept {
    Slot& slot = slots_[i];
    const int64_t now = now_ns();
    const int64_t last = slot.last_ns.load(std::memory_order_relaxed);
    if (last != 0 && now - last > slot.longest_pause_ns.load(std::memory_order_relaxed))
      slot.longest_pause_ns.store(now - last, std::memory_order_relaxed);
    slot.last_ns.store(now, std::memory_order_relaxed);
    slot.count.fetch_add(1, std::memory_order_relaxed);
    return !stop_.load(std::memory_order_relaxed);
  }
  void stop() noexcept { stop_.store(true); }
  bool stopped() const noexcept { return stop_.load(); }

  uint64_t total() const noexcept {
    uint64_t sum = 0;
    for (const Slot& slot : slots_) sum += slot.count.load(std::memory_order_relaxed);
    return sum;
  }
  int64_t longest_pause_ns() const noexcept {
    int64_t longest = 0;
    for (const Slot& slot : slots_) longest = std::max(longest, slot.longest_pause_ns.load(std::memory_order_relaxed));
    return longest;
  }
  size_t size() const noexcept { return slots_.size(); }

 private:
  struct alignas(64) Slot {  // one cache line each: counters on two cores do not share one
    std::atomic<uint64_t> count{0};
    std::atomic<int64_t> last_ns{0};
    std::atomic<int64_t> longest_pause_ns{0};
  };
  std::vector<Slot> slots_;
  std::atomic<bool> stop_{false};
};

}  // namespace oslab::uthread
