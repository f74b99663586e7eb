#include "replacement.hpp"

#include <algorithm>
#include <limits>
#include <queue>
#include <stdexcept>
#include <vector>

namespace oslab::memory {
namespace {

constexpr uint32_t kNone = std::numeric_limits<uint32_t>::max();

// Page numbers renumbered 0 .. distinct-1, so that every policy can index arrays by page.
struct Dense {
  std::vector<uint32_t> ids;
  uint32_t distinct = 0;
};
Dense densify(std::span<const uint32_t> pages) {
  Dense dense;
  dense.ids.reserve(pages.size());
  const uint32_t largest = pages.empty() ? 0 : *std::max_element(pages.begin(), pages.end());
  if (largest < (uint32_t{1} << 26)) {  // a table indexed by page number: one pass, no sort
    std::vector<uint32_t> id(size_t{largest} + 1, kNone);
    for (uint32_t page : pages) {
      if (id[page] == kNone) id[page] = dense.distinct++;
      dense.ids.push_back(id[page]);
    }
    return dense;
  }
  std::vector<uint32_t> sorted(pages.begin(), pages.end());
  std::sort(sorted.begin(), sorted.end());
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
  dense.distinct = static_cast<uint32_t>(sorted.size());
  for (uint32_t page : pages)
    dense.ids.push_back(static_cast<uint32_t>(std::lower_bound(sorted.begin(), sorted.end(), page) - sorted.begin()));
  return dense;
}

// Counts faults after the warm-up.
struct Counter {
  size_t warmup;
  Replay result;
  void reference(size_t i, bool fault) {
    if (i < warmup) return;
    ++result.references;
    result.faults += fault ? 1 : 0;
  }
};

Replay replay_lru(const Dense& dense, size_t frames, size_t warmup) {
  // A doubly linked list of resident pages, most recent at the head.
  std::vector<uint32_t> prev(dense.distinct, kNone), next(dense.distinct, kNone);
  std::vector<char> resident(dense.distinct, 0);
  uint32_t head = kNone, tail = kNone;
  size_t used = 0;
  auto unlink = [&](uint32_t p) {
    (prev[p] == kNone ? head : next[prev[p]]) = next[p];
    (next[p] == kNone ? tail : prev[next[p]]) = prev[p];
  };
  auto push_front = [&](uint32_t p) {
    prev[p] = kNone;
    next[p] = head;
    (head == kNone ? tail : prev[head]) = p;
    head = p;
  };
  Counter count{warmup, {}};
  for (size_t i = 0; i < dense.ids.size(); ++i) {
    const uint32_t p = dense.ids[i];
    const bool fault = !resident[p];
    count.reference(i, fault);
    if (!fault) {
      unlink(p);
    } else if (used == frames) {
      const uint32_t victim = tail;
      unlink(victim);
      resident[victim] = 0;
    } else {
      ++used;
    }
    push_front(p);
    resident[p] = 1;
  }
  return count.result;
}

Replay replay_fifo(const Dense& dense, size_t frames, size_t warmup) {
  std::vector<uint32_t> ring(frames, kNone);
  std::vector<char> resident(dense.distinct, 0);
  size_t oldest = 0;
  Counter count{warmup, {}};
  for (size_t i = 0; i < dense.ids.size(); ++i) {
    const uint32_t p = dense.ids[i];
    const bool fault = !resident[p];
    count.reference(i, fault);
    if (!fault) continue;
    if (ring[oldest] != kNone) resident[ring[oldest]] = 0;
    ring[oldest] = p;
    resident[p] = 1;
    oldest = (oldest + 1) % frames;
  }
  return count.result;
}

// Second chance: a hand sweeps the frames; a referenced page loses its bit and is passed over.
Replay replay_clock(const Dense& dense, size_t frames, size_t warmup) {
  std::vector<uint32_t> frame_page(frames, kNone);
  std::vector<char> referenced(frames, 0);
  std::vector<uint32_t> frame_of(dense.distinct, kNone);
  size_t hand = 0;
  Counter count{warmup, {}};
  for (size_t i = 0; i < dense.ids.size(); ++i) {
    const uint32_t p = dense.ids[i];
    const bool fault = frame_of[p] == kNone;
    count.reference(i, fault);
    if (!fault) {
      referenced[frame_of[p]] = 1;
      continue;
    }
    while (frame_page[hand] != kNone && referenced[hand]) {
      referenced[hand] = 0;
      hand = (hand + 1) % frames;
    }
    if (frame_page[hand] != kNone) frame_of[frame_page[hand]] = kNone;
    frame_page[hand] = p;
    frame_of[p] = static_cast<uint32_t>(hand);
    referenced[hand] = 1;
    hand = (hand + 1) % frames;
  }
  return count.result;
}

// Belady's OPT: evict the resident page whose next use is farthest away (or never).
Replay replay_opt(const Dense& dense, size_t frames, size_t warmup) {
  const size_t n = dense.ids.size();
  constexpr size_t kNever = std::numeric_limits<size_t>::max();
  std::vector<size_t> next_use(n), seen(dense.distinct, kNever);
  for (size_t i = n; i-- > 0;) {
    next_use[i] = seen[dense.ids[i]];
    seen[dense.ids[i]] = i;
  }
  std::vector<size_t> resident_next(dense.distinct, 0);
  std::vector<char> resident(dense.distinct, 0);
  std::priority_queue<std::pair<size_t, uint32_t>> farthest;  // (next use, page); stale entries skipped
  size_t used = 0;
  Counter count{warmup, {}};
  for (size_t i = 0; i < n; ++i) {
    const uint32_t p = dense.ids[i];
    const bool fault = !resident[p];
    count.reference(i, fault);
    if (fault) {
      if (used == frames) {
        for (;;) {
          const auto [when, victim] = farthest.top();
          farthest.pop();
          if (resident[victim] && resident_next[victim] == when) {
            resident[victim] = 0;
            break;
          }
        }
      } else {
        ++used;
      }
      resident[p] = 1;
    }
    resident_next[p] = next_use[i];
    farthest.emplace(next_use[i], p);
  }
  return count.result;
}

}  // namespace

std::string to_string(Policy policy) {
  switch (policy) {
    case Policy::lru: return "LRU";
    case Policy::fifo: return "FIFO";
    case Policy::clock: return "Clock";
    case Policy::opt: return "OPT";
  }
  return "?";
}

Replay replay(Policy policy, std::span<const uint32_t> pages, size_t frames, size_t warmup) {
  if (frames == 0) throw std::invalid_argument("replay: no frames");
  const Dense dense = densify(pages);
  switch (policy) {
    case Policy::lru: return replay_lru(dense, frames, warmup);
    case Policy::fifo: return replay_fifo(dense, frames, warmup);
    case Policy::clock: return replay_clock(dense, frames, warmup);
    case Policy::opt: return replay_opt(dense, frames, warmup);
  }
  return {};
}

WorkingSetReplay replay_working_set(std::span<const uint32_t> pages, size_t window, size_t warmup) {
  if (window == 0) throw std::invalid_argument("replay_working_set: empty window");
  const Dense dense = densify(pages);
  std::vector<uint32_t> in_window(dense.distinct, 0);  // references to the page in the window
  size_t resident = 0;
  double resident_sum = 0;
  WorkingSetReplay result;
  Counter count{warmup, {}};
  for (size_t i = 0; i < dense.ids.size(); ++i) {
    // A fault when the page is not in W(D, i - 1), the pages of the last D references.
    const uint32_t p = dense.ids[i];
    count.reference(i, in_window[p] == 0);
    if (in_window[p]++ == 0) ++resident;
    if (i >= window) {  // the reference that leaves the window
      const uint32_t old = dense.ids[i - window];
      if (--in_window[old] == 0) --resident;
    }
    if (i >= warmup) {
      resident_sum += static_cast<double>(resident);
      result.max_resident = std::max(result.max_resident, resident);
    }
  }
  result.replay = count.result;
  if (result.replay.references > 0) result.mean_resident = resident_sum / static_cast<double>(result.replay.references);
  return result;
}

}  // namespace oslab::memory
