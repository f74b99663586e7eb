// Unit tests of the working-set functions, on strings small enough to check by hand.
#include <gtest/gtest.h>

#include "working_set.hpp"

namespace {

const std::vector<int> kRefs = {1, 2, 3, 1, 2, 4, 1, 2, 5};

TEST(WorkingSet, TheLastDReferencesDistinctAndSorted) {
  EXPECT_EQ(working_set(kRefs, 4, 3), (std::vector<int>{1, 2, 3}));  // 3 1 2
  EXPECT_EQ(working_set(kRefs, 5, 3), (std::vector<int>{1, 2, 4}));  // 1 2 4
  EXPECT_EQ(working_set(kRefs, 8, 1), (std::vector<int>{5}));
  EXPECT_EQ(working_set({7, 7, 7, 3}, 2, 3), (std::vector<int>{7}));
}

TEST(WorkingSet, AtTheStartTheWindowIsShorter) {
  EXPECT_EQ(working_set(kRefs, 0, 4), (std::vector<int>{1}));
  EXPECT_EQ(working_set(kRefs, 1, 4), (std::vector<int>{1, 2}));
  EXPECT_EQ(working_set(kRefs, 8, 100), (std::vector<int>{1, 2, 3, 4, 5}));
}

TEST(WorkingSet, MeanSize) {
  EXPECT_NEAR(mean_working_set_size(kRefs, 3), 24.0 / 9, 1e-9);
  EXPECT_NEAR(mean_working_set_size(kRefs, 1), 1.0, 1e-9);
  EXPECT_EQ(mean_working_set_size({}, 3), 0.0);
}

TEST(Faults, TheFirstReferenceFaultsAndDOneFaultsOnEveryChange) {
  EXPECT_EQ(ws_faults({4}, 3), 1u);
  EXPECT_EQ(ws_faults({4, 4, 4, 5, 5, 4}, 1), 3u);
  EXPECT_EQ(ws_faults({}, 3), 0u);
}

TEST(Faults, AgainstTheWorkingSetJustBefore) {
  EXPECT_EQ(ws_faults(kRefs, 3), 5u);
  EXPECT_EQ(ws_faults(kRefs, 2), 9u);
  EXPECT_EQ(ws_faults({1, 2, 1, 3, 1, 2}, 2), 4u);  // 1 2 . 3 . 2
}

TEST(Faults, AWindowAsLongAsTheStringFaultsOncePerPage) {
  EXPECT_EQ(ws_faults(kRefs, kRefs.size()), 5u);
  EXPECT_EQ(ws_faults(kRefs, 1000), 5u);
}

TEST(Curve, OneCountPerWindowAndNeverRising) {
  const std::vector<size_t> curve = fault_curve(kRefs, 8);
  EXPECT_EQ(curve, (std::vector<size_t>{9, 9, 5, 5, 5, 5, 5, 5}));
  const std::vector<int> longer = {1, 2, 3, 4, 1, 2, 5, 1, 2, 3, 4, 5, 3, 3, 4, 1};
  const std::vector<size_t> curve2 = fault_curve(longer, 10);
  ASSERT_EQ(curve2.size(), 10u);
  for (size_t d = 1; d <= 10; ++d) EXPECT_EQ(curve2[d - 1], ws_faults(longer, d)) << "D=" << d;
  for (size_t i = 1; i < curve2.size(); ++i) EXPECT_LE(curve2[i], curve2[i - 1]) << "D=" << i + 1;
}

TEST(Knee, TheSmallestWindowWithinTenPercentOfTheFloor) {
  EXPECT_EQ(knee({9, 9, 5, 5, 5, 5, 5, 5}), 3u);
  EXPECT_EQ(knee({30, 20, 12, 11, 10}), 4u);  // 11 <= 11, 12 > 11
  EXPECT_EQ(knee({4, 4, 4}), 1u);
  EXPECT_EQ(knee({}), 0u);
}

}  // namespace
