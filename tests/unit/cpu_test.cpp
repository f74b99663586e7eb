#include "oslab/cpu.hpp"

#include <gtest/gtest.h>

#include "oslab/error.hpp"

namespace oslab {
namespace {

TEST(CpuList, ParsesTheKernelSyntax) {
  EXPECT_EQ(parse_cpu_list("0"), (std::vector<int>{0}));
  EXPECT_EQ(parse_cpu_list("0-3"), (std::vector<int>{0, 1, 2, 3}));
  EXPECT_EQ(parse_cpu_list("4,0-1,1"), (std::vector<int>{0, 1, 4}));
}

TEST(CpuList, RejectsBadInput) {
  for (const char* bad : {"", "a", "1-", "-1", "3-1", "1,,2", "1.5", "99999", "0-99999"})
    EXPECT_THROW(parse_cpu_list(bad), UsageError) << bad;
}

TEST(CpuList, FormatsRanges) {
  EXPECT_EQ(format_cpu_list({0, 1, 2, 5, 7, 8}), "0-2,5,7-8");
  EXPECT_EQ(format_cpu_list({}), "");
  EXPECT_EQ(format_cpu_list(parse_cpu_list("0-3,6")), "0-3,6");
}

TEST(Affinity, PinsAndRestores) {
  std::vector<int> inherited = get_affinity();
  ASSERT_FALSE(inherited.empty());
  {
    ScopedAffinity pinned({inherited.front()});
    EXPECT_EQ(get_affinity(), std::vector<int>{inherited.front()});
    EXPECT_EQ(pinned.inherited(), inherited);
  }
  EXPECT_EQ(get_affinity(), inherited);
}

TEST(Affinity, RequireAllowedNamesTheMissingCpu) {
  try {
    require_allowed({CPU_SETSIZE - 1});
    FAIL() << "CPU " << CPU_SETSIZE - 1 << " should not be allowed";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find(std::to_string(CPU_SETSIZE - 1)), std::string::npos);
  }
}

}  // namespace
}  // namespace oslab
