// Page replacement on a reference string, the textbook way: a fixed number of frames and a
// policy that picks the victim (LRU, FIFO, Clock, and OPT, which knows the future), and the
// working-set policy, which keeps exactly the pages referenced in the last D references
// (W(D, t)) and so has no fixed number of frames at all.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace oslab::memory {

enum class Policy { lru, fifo, clock, opt };
std::string to_string(Policy policy);  // "LRU", "FIFO", "Clock", "OPT"

struct Replay {
  uint64_t references = 0;  // counted (after the warm-up)
  uint64_t faults = 0;      // counted references whose page was not resident
  double fault_rate() const {
    return references == 0 ? 0 : static_cast<double>(faults) / static_cast<double>(references);
  }
};

// Replays `pages` (page numbers, any values) through `frames` frames under `policy`. The first
// `warmup` references are replayed but not counted, so that the rate is the steady state's
// rather than the cold start's.
Replay replay(Policy policy, std::span<const uint32_t> pages, size_t frames, size_t warmup = 0);

struct WorkingSetReplay {
  Replay replay;
  double mean_resident = 0;  // pages resident on average (|W(D, t)| over t, after the warm-up)
  size_t max_resident = 0;
};

// The working-set policy with window `window` references: a page stays resident while it was
// referenced within the last `window` references, and is dropped as soon as it was not.
WorkingSetReplay replay_working_set(std::span<const uint32_t> pages, size_t window, size_t warmup = 0);

}  // namespace oslab::memory
