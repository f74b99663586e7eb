#include "c2c.hpp"

#include <atomic>
#include <cstdint>

#include "oslab/parties.hpp"
#include "oslab/placement.hpp"
#include "oslab/shared.hpp"

namespace oslab::ipc {
namespace {

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// Each line alone in 128 bytes: adjacent-line prefetchers pair 64-byte lines.
struct alignas(128) Line {
  std::atomic<uint64_t> value{0};
};
struct Lines {
  Line one, a, b;
};

constexpr uint64_t kStop = ~uint64_t{0};

// Spins until `done()`; every 64k spins looks whether the run is over.
template <typename Done>
bool spin(const Party& party, Done done) {
  uint32_t spins = 0;
  while (!done()) {
    cpu_relax();
    if ((++spins & 0xffff) == 0 && party.stop_requested()) return false;
  }
  return true;
}

}  // namespace

const char* to_string(C2cTest test) {
  return test == C2cTest::cas ? "cas" : "two-lines";
}

Measurement measure_c2c(C2cTest test, int cpu_a, int cpu_b, const SamplingPlan& plan) {
  Shared<Lines> lines;
  SharedMeasurement measured(static_cast<size_t>(plan.max_samples), static_cast<size_t>(plan.max_samples));
  Assignment assignment{Placement::two_cpus, {{cpu_a}, {cpu_b}}, false};
  SamplingPlan timed = plan;
  timed.usage = Usage::thread;
  auto stopped = [] { return std::runtime_error("the other side stopped"); };
  run_parties({.threads = true, .assignment = assignment, .deadline = std::chrono::seconds(30)},
              {[&](Party& party) {
                 party.ready();
                 uint64_t round = 0;
                 auto op = [&](int64_t batch) {
                   for (int64_t i = 0; i < batch; ++i) {
                     ++round;
                     if (test == C2cTest::cas) {
                       // Side 0 turns 2r-2 into 2r-1; side 1 turns 2r-1 into 2r.
                       const uint64_t from = 2 * round - 2;
                       if (!spin(party, [&] {
                             uint64_t expected = from;
                             return lines->one.value.compare_exchange_weak(expected, from + 1,
                                                                           std::memory_order_acq_rel);
                           }))
                         throw stopped();
                     } else {
                       lines->a.value.store(round, std::memory_order_release);
                       if (!spin(party, [&] { return lines->b.value.load(std::memory_order_acquire) == round; }))
                         throw stopped();
                     }
                   }
                 };
                 try {
                   measured.store(measure(timed, op));
                 } catch (...) {
                   lines->a.value.store(kStop);
                   lines->one.value.store(kStop);
                   throw;
                 }
                 lines->a.value.store(kStop);
                 lines->one.value.store(kStop);
               },
               [&](Party& party) {
                 party.ready();
                 for (uint64_t round = 1;; ++round) {
                   if (test == C2cTest::cas) {
                     const uint64_t from = 2 * round - 1;
                     bool over = false;
                     if (!spin(party, [&] {
                           uint64_t expected = from;
                           if (lines->one.value.compare_exchange_weak(expected, from + 1, std::memory_order_acq_rel))
                             return true;
                           over = expected == kStop;
                           return over;
                         }))
                       throw stopped();
                     if (over) return;
                   } else {
                     uint64_t seen = 0;
                     if (!spin(party, [&] {
                           seen = lines->a.value.load(std::memory_order_acquire);
                           return seen == round || seen == kStop;
                         }))
                       throw stopped();
                     if (seen == kStop) return;
                     lines->b.value.store(round, std::memory_order_release);
                   }
                 }
               }});
  return measured.load();
}

}  // namespace oslab::ipc
