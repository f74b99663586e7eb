// The knee of a curve: where the page-fault rate stops falling as a process gets more memory
// (the notes' "point of inflection" of the fault-rate vs frames curve, which approximates the
// working set), or where throughput stops rising.
//
// The rule: scale x and y each to [0, 1], draw the straight line (the chord) from the first
// point to the last, and take the point farthest from it. On a curve that is flat on one side
// of a bend and steep on the other, that is the bend; it needs no smoothing parameter and does
// not care whether the curve rises or falls, bends up or down. (This is the "L-method" /
// "triangle" rule; Kneedle (Satopää et al., 2011) is the same rule on a rotated curve.)
#pragma once

#include <cstddef>
#include <optional>
#include <span>

namespace oslab::memory {

struct CurvePoint {
  double x = 0, y = 0;
};

struct Knee {
  size_t index = 0;     // in the points as given
  double x = 0, y = 0;  // the point
  double distance = 0;  // from the chord, in the scaled units (0 .. ~0.71)
};

// The knee of the points (any order; sorted by x inside). None when there are fewer than three
// distinct x values, when y does not vary, or when no point lies at least `min_distance` from
// the chord (a straight line has no knee).
std::optional<Knee> find_knee(std::span<const CurvePoint> points, double min_distance = 0.05);

}  // namespace oslab::memory
