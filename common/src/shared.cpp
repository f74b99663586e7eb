#include "oslab/shared.hpp"

#include <stdexcept>

namespace oslab {

SharedMeasurement::SharedMeasurement(size_t max_samples, size_t max_blocks)
    : samples_(max_samples), blocks_(max_blocks) {}

void SharedMeasurement::store(const Measurement& m) {
  if (m.samples_ns.size() > samples_.size() || m.blocks.size() > blocks_.size())
    throw std::length_error("SharedMeasurement: more samples or blocks than it was made for");
  std::copy(m.samples_ns.begin(), m.samples_ns.end(), samples_.data());
  std::copy(m.blocks.begin(), m.blocks.end(), blocks_.data());
  const double operations = static_cast<double>(m.operations);
  *header_ = {
      m.samples_ns.size(), m.blocks.size(),
      Counters{m.self_per_op.minor_faults * operations, m.self_per_op.major_faults * operations,
               m.self_per_op.voluntary_switches * operations, m.self_per_op.involuntary_switches * operations},
      Counters{m.children_per_op.minor_faults * operations, m.children_per_op.major_faults * operations,
               m.children_per_op.voluntary_switches * operations, m.children_per_op.involuntary_switches * operations},
      m.batch};
}

Measurement SharedMeasurement::load() const {
  Measurement m;
  const Header& h = *header_;
  if (h.blocks == 0) {
    m.add_block({samples_.data(), h.samples}, h.self, h.children, h.batch);
    return m;
  }
  // Counters belong to the whole; spread them over the blocks by their share of samples.
  size_t start = 0;
  for (size_t b = 0; b < h.blocks; ++b) {
    const size_t size = blocks_[b];
    const double share = h.samples ? static_cast<double>(size) / static_cast<double>(h.samples) : 0;
    auto scaled = [&](const Counters& c) {
      return Counters{c.minor_faults * share, c.major_faults * share, c.voluntary_switches * share,
                      c.involuntary_switches * share};
    };
    m.add_block({samples_.data() + start, size}, scaled(h.self), scaled(h.children), h.batch);
    start += size;
  }
  return m;
}

}  // namespace oslab
