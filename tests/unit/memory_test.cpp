// The memory labs' own machinery on inputs with known answers: the knee finder on synthetic
// curves, the replacement policies on textbook reference strings, and the parsers of
// /proc/self/cgroup, mountinfo, memory.stat, smaps and /proc/PID/stat on captured text.

#include <sys/mman.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "cgroup.hpp"
#include "knee.hpp"
#include "memprobe.hpp"
#include "replacement.hpp"
#include "swapfile.hpp"

namespace oslab::memory {
namespace {

// ---- The knee finder ----------------------------------------------------------------------

std::vector<CurvePoint> curve(double from, double to, double step, double (*y)(double)) {
  std::vector<CurvePoint> points;
  for (double x = from; x <= to + 1e-9; x += step) points.push_back({x, y(x)});
  return points;
}

TEST(Knee, FaultRateThatFallsToZeroAtTheWorkingSet) {
  // LRU on uniform references to W pages: fault rate 1 - frames/W below W, 0 above.
  auto points = curve(10, 150, 10, [](double x) { return std::max(0.0, 1 - x / 100); });
  auto knee = find_knee(points);
  ASSERT_TRUE(knee);
  EXPECT_DOUBLE_EQ(knee->x, 100);
}

TEST(Knee, ThroughputThatSaturates) {
  auto points = curve(0, 128, 8, [](double x) { return std::min(x, 64.0); });
  auto knee = find_knee(points);
  ASSERT_TRUE(knee);
  EXPECT_DOUBLE_EQ(knee->x, 64);
}

TEST(Knee, CliffIsItsFirstPointOnTheFlatSide) {
  // A loop over W pages under LRU faults on every reference below W and never above it.
  auto points = curve(50, 150, 10, [](double x) { return x < 100 ? 1.0 : 0.0; });
  auto knee = find_knee(points);
  ASSERT_TRUE(knee);
  EXPECT_DOUBLE_EQ(knee->x, 100);
}

TEST(Knee, TheOrderOfThePointsDoesNotMatter) {
  auto points = curve(10, 150, 10, [](double x) { return std::max(0.0, 1 - x / 70); });
  std::mt19937 random(3);
  std::shuffle(points.begin(), points.end(), random);
  auto knee = find_knee(points);
  ASSERT_TRUE(knee);
  EXPECT_DOUBLE_EQ(knee->x, 70);
  EXPECT_DOUBLE_EQ(points[knee->index].x, 70);
}

TEST(Knee, NoiseMovesItAtMostOneStep) {
  std::mt19937 random(11);
  std::uniform_real_distribution<double> noise(-0.02, 0.02);
  for (int trial = 0; trial < 20; ++trial) {
    auto points = curve(40, 160, 5, [](double x) { return std::max(0.0, 1 - x / 120); });
    for (auto& p : points) p.y = std::max(0.0, p.y + noise(random));
    auto knee = find_knee(points);
    ASSERT_TRUE(knee);
    EXPECT_NEAR(knee->x, 120, 5) << "trial " << trial;
  }
}

TEST(Knee, WorkingSetWithAHotAndAColdPartHasTheBendAtTheWhole) {
  // 90% of references to 20 pages, 10% to 80 more: the rate falls steeply to 20 frames, then
  // slowly to 100; the farthest point from the chord is the first bend, the hot set.
  auto points = curve(0, 200, 10, [](double x) {
    const double hot = std::max(0.0, 1 - x / 20), cold = std::max(0.0, 1 - std::max(0.0, x - 20) / 80);
    return 0.9 * hot + 0.1 * cold;
  });
  auto knee = find_knee(points);
  ASSERT_TRUE(knee);
  EXPECT_DOUBLE_EQ(knee->x, 20);
}

TEST(Knee, NoneWithoutABend) {
  EXPECT_FALSE(find_knee(curve(0, 100, 10, [](double x) { return 2 * x + 1; })));  // a straight line
  EXPECT_FALSE(find_knee(curve(0, 100, 10, [](double) { return 5.0; })));          // flat
  std::vector<CurvePoint> two = {{0, 1}, {1, 0}};
  EXPECT_FALSE(find_knee(two));
  std::vector<CurvePoint> same_x = {{1, 1}, {1, 2}, {1, 3}};
  EXPECT_FALSE(find_knee(same_x));
}

// ---- The replacement policies ---------------------------------------------------------------

const std::vector<uint32_t> kTextbook = {7, 0, 1, 2, 0, 3, 0, 4, 2, 3, 0, 3, 2, 1, 2, 0, 1, 7, 0, 1};

uint64_t faults(Policy policy, const std::vector<uint32_t>& pages, size_t frames) {
  return replay(policy, pages, frames).faults;
}

TEST(Replacement, TheTextbookReferenceString) {
  // Silberschatz, Operating System Concepts, ch. 10: 15 FIFO, 12 LRU, 9 OPT faults in 3 frames.
  EXPECT_EQ(faults(Policy::fifo, kTextbook, 3), 15u);
  EXPECT_EQ(faults(Policy::lru, kTextbook, 3), 12u);
  EXPECT_EQ(faults(Policy::opt, kTextbook, 3), 9u);
  // Second chance with the bit set when a page is loaded (an independent replay gives 14).
  EXPECT_EQ(faults(Policy::clock, kTextbook, 3), 14u);
  EXPECT_EQ(faults(Policy::fifo, kTextbook, 4), 10u);
  EXPECT_EQ(faults(Policy::lru, kTextbook, 4), 8u);
  EXPECT_EQ(faults(Policy::opt, kTextbook, 4), 8u);
  EXPECT_EQ(replay(Policy::lru, kTextbook, 3).references, 20u);
}

TEST(Replacement, BeladysAnomalyInFifoNotInLru) {
  const std::vector<uint32_t> pages = {1, 2, 3, 4, 1, 2, 5, 1, 2, 3, 4, 5};
  EXPECT_EQ(faults(Policy::fifo, pages, 3), 9u);
  EXPECT_EQ(faults(Policy::fifo, pages, 4), 10u);  // more frames, more faults
  EXPECT_EQ(faults(Policy::lru, pages, 3), 10u);
  EXPECT_EQ(faults(Policy::lru, pages, 4), 8u);  // a stack algorithm: never more
  EXPECT_EQ(faults(Policy::opt, pages, 3), 7u);
  EXPECT_EQ(faults(Policy::opt, pages, 4), 6u);
}

TEST(Replacement, ALoopOneFrameTooBigDefeatsLruButNotOpt) {
  std::vector<uint32_t> pages;
  for (int loop = 0; loop < 200; ++loop)
    for (uint32_t p = 0; p < 64; ++p) pages.push_back(1000 + p * 7);  // any page numbers
  const size_t warmup = pages.size() / 4;
  for (Policy policy : {Policy::lru, Policy::fifo, Policy::clock})
    EXPECT_EQ(replay(policy, pages, 48, warmup).fault_rate(), 1.0) << to_string(policy);
  // OPT on a loop of N pages in F frames faults on (N - F) / (N - 1) of the references.
  EXPECT_NEAR(replay(Policy::opt, pages, 48, warmup).fault_rate(), 16.0 / 63, 0.005);
  for (Policy policy : {Policy::lru, Policy::fifo, Policy::clock, Policy::opt})
    EXPECT_EQ(replay(policy, pages, 64, warmup).faults, 0u) << to_string(policy);
}

TEST(Replacement, UniformReferencesMissInProportionToWhatDoesNotFit) {
  std::mt19937 random(5);
  std::uniform_int_distribution<uint32_t> page(0, 999);
  std::vector<uint32_t> pages(200'000);
  for (auto& p : pages) p = page(random);
  for (size_t frames : {250, 500, 800}) {
    const double expected = 1 - static_cast<double>(frames) / 1000;
    for (Policy policy : {Policy::lru, Policy::fifo, Policy::clock})
      EXPECT_NEAR(replay(policy, pages, frames, 20'000).fault_rate(), expected, 0.01)
          << to_string(policy) << " " << frames;
    EXPECT_LT(replay(Policy::opt, pages, frames, 20'000).fault_rate(), expected);
  }
}

TEST(Replacement, WorkingSetPolicyKeepsThePagesOfTheLastWindow) {
  // A page faults when it was not among the previous D references (computed by hand).
  const std::vector<std::pair<size_t, uint64_t>> expected = {{1, 20}, {2, 17}, {3, 13}, {4, 10}, {5, 8}, {10, 8}};
  for (auto [window, want] : expected)
    EXPECT_EQ(replay_working_set(kTextbook, window).replay.faults, want) << "D = " << window;
  // |W(D, t)| never exceeds D, nor the pages there are.
  const auto ws = replay_working_set(kTextbook, 3);
  EXPECT_LE(ws.max_resident, 3u);
  EXPECT_GT(ws.mean_resident, 1.0);
  // Uniform references to N pages: |W(D)| = N (1 - (1 - 1/N)^D), and a fault when not in it.
  std::mt19937 random(9);
  std::uniform_int_distribution<uint32_t> page(0, 499);
  std::vector<uint32_t> pages(100'000);
  for (auto& p : pages) p = page(random);
  const auto uniform = replay_working_set(pages, 500, 5'000);
  const double kept = 1 - std::pow(1 - 1.0 / 500, 500);
  EXPECT_NEAR(uniform.mean_resident, 500 * kept, 5);
  EXPECT_NEAR(uniform.replay.fault_rate(), 1 - kept, 0.01);
}

TEST(Replacement, OptIsNeverBeaten) {
  std::mt19937 random(17);
  std::geometric_distribution<uint32_t> page(0.05);  // skewed, like real programs
  std::vector<uint32_t> pages(50'000);
  for (auto& p : pages) p = page(random);
  for (size_t frames : {2, 8, 20, 40}) {
    const auto opt = replay(Policy::opt, pages, frames).faults;
    for (Policy policy : {Policy::lru, Policy::fifo, Policy::clock})
      EXPECT_LE(opt, replay(policy, pages, frames).faults) << to_string(policy) << " " << frames;
  }
}

// ---- Parsers ------------------------------------------------------------------------------

TEST(CgroupParsers, ProcSelfCgroup) {
  const std::string v1 = "9:name=systemd:/\n8:pids:/\n4:memory:/process_api/fb79091f\n3:cpuset:/\n0::/\n";
  EXPECT_EQ(cgroup_path_of(v1, CgroupVersion::v1), "/process_api/fb79091f");
  EXPECT_EQ(cgroup_path_of(v1, CgroupVersion::v2), "/");
  const std::string v2 = "0::/user.slice/user-1000.slice/session-2.scope\n";
  EXPECT_EQ(cgroup_path_of(v2, CgroupVersion::v2), "/user.slice/user-1000.slice/session-2.scope");
  EXPECT_FALSE(cgroup_path_of(v2, CgroupVersion::v1));
  EXPECT_EQ(cgroup_path_of("5:cpu,memory:/a:b\n", CgroupVersion::v1), "/a:b");
  EXPECT_FALSE(cgroup_path_of("", CgroupVersion::v2));
}

TEST(CgroupParsers, MountinfoWithAndWithoutANamespaceRoot) {
  const std::string mountinfo =
      "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
      "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
      "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime shared:9 - cgroup cgroup rw,memory\n"
      "41 31 0:38 /lab /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
  EXPECT_EQ(cgroup_dir_of(mountinfo, CgroupVersion::v1, "/process_api/x"), "/sys/fs/cgroup/memory/process_api/x");
  EXPECT_EQ(cgroup_dir_of(mountinfo, CgroupVersion::v1, "/"), "/sys/fs/cgroup/memory");
  EXPECT_EQ(cgroup_dir_of(mountinfo, CgroupVersion::v2, "/lab/run"), "/sys/fs/cgroup/unified/run");
  EXPECT_FALSE(cgroup_dir_of(mountinfo, CgroupVersion::v2, "/elsewhere"));
  EXPECT_FALSE(cgroup_dir_of("32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n", CgroupVersion::v1, "/"));
}

TEST(CgroupParsers, KeyedFiles) {
  auto stat = parse_keyed("cache 4096\nrss 0\npgmajfault 1538\nbogus\nhalf x\n");
  EXPECT_EQ(stat["cache"], 4096u);
  EXPECT_EQ(stat["pgmajfault"], 1538u);
  EXPECT_EQ(stat.count("bogus"), 0u);
  EXPECT_EQ(stat.count("half"), 0u);
  EXPECT_EQ(parse_keyed("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n")["oom_kill"], 3u);
}

TEST(ProcParsers, Smaps) {
  const std::string text =
      "7f0000000000-7f0000400000 rw-p 00000000 00:00 0 \n"
      "Size:               4096 kB\nRss:                1024 kB\nReferenced:          512 kB\n"
      "VmFlags: rd wr mr mw me ac \n"
      "7f0000400000-7f0000401000 r-xp 00001000 08:01 42   /usr/lib/x86_64-linux-gnu/libc.so.6\n"
      "Size:                  4 kB\nReferenced:            4 kB\n";
  auto entries = parse_smaps(text);
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].start, 0x7f0000000000u);
  EXPECT_EQ(entries[0].end, 0x7f0000400000u);
  EXPECT_EQ(entries[0].field("Referenced"), 512);
  EXPECT_EQ(entries[0].field("Rss"), 1024);
  EXPECT_EQ(entries[0].field("Missing"), 0);
  EXPECT_NE(entries[1].header.find("libc.so.6"), std::string::npos);
  EXPECT_EQ(entries[1].field("Size"), 4);
}

TEST(ProcParsers, StatFaultsAfterAnAwkwardName) {
  // Fields after comm: state ppid pgrp session tty tpgid flags minflt cminflt majflt ...
  auto counts = parse_stat_faults("4242 (a) b (c)) S 1 4242 4242 0 -1 4194560 1234 99 7 0 3 1\n");
  EXPECT_EQ(counts.minor, 1234u);
  EXPECT_EQ(counts.major, 7u);
  EXPECT_THROW(parse_stat_faults("garbage"), std::runtime_error);
  EXPECT_GT(faults_of(::getpid()).minor, 0u);
}

TEST(MemoryProbes, PresentAndFaultingAccesses) {
  auto region = Mapping::anonymous(8 * page_size());
  EXPECT_EQ(present_pages(region.data(), 8), 0u);
  region.data()[0] = std::byte{1};
  region.data()[3 * page_size()] = std::byte{1};
  EXPECT_EQ(present_pages(region.data(), 8), 2u);
  EXPECT_EQ(cached_pages(region.data(), 8), 2u);
  auto* bytes = reinterpret_cast<unsigned char*>(region.data());
  EXPECT_FALSE(try_write(bytes, 5).faulted);
  ASSERT_EQ(::mprotect(region.data(), region.size(), PROT_READ), 0);
  const Access denied = try_write(bytes + 1, 6);
  EXPECT_TRUE(denied.faulted);
  EXPECT_EQ(denied.signal, SIGSEGV);
  EXPECT_EQ(denied.code, SEGV_ACCERR);
  EXPECT_EQ(denied.address, bytes + 1);
  unsigned char value = 0;
  EXPECT_FALSE(try_read(bytes, &value).faulted);
  EXPECT_EQ(value, 5);
  EXPECT_EQ(bytes[1], 0);  // the denied write changed nothing
  SmapsEntry entry = smaps_of(::getpid(), region.data());
  EXPECT_LE(entry.start, reinterpret_cast<uintptr_t>(region.data()));  // the kernel may merge neighbours
  EXPECT_GT(entry.end, reinterpret_cast<uintptr_t>(region.data()));
  EXPECT_GE(entry.field("Rss"), static_cast<long>(2 * page_size() / 1024));
}

TEST(SwapFile, HeaderIsWhatMkswapWrites) {
  std::vector<unsigned char> page(4096, 0xff);
  write_swap_header(page.data(), page.size(), 25600);  // 100 MiB
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(page.data()) + 4086, 10), "SWAPSPACE2");
  uint32_t version = 0, last_page = 0, bad_pages = 1;
  std::memcpy(&version, page.data() + 1024, 4);
  std::memcpy(&last_page, page.data() + 1028, 4);
  std::memcpy(&bad_pages, page.data() + 1032, 4);
  EXPECT_EQ(version, 1u);
  EXPECT_EQ(last_page, 25599u);
  EXPECT_EQ(bad_pages, 0u);
  EXPECT_EQ(page[0], 0);  // the boot block is zero
}

}  // namespace
}  // namespace oslab::memory
