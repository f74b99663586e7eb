// oslab-cow: copy-on-write seen page by page. After fork, the child reads and then writes
// k of the N pages of a mapping the parent filled; the child counts its own page faults.
//
// Try:     oslab-cow                        64 MiB, 10% and 100% of the pages, private and shared
//          oslab-cow --size 256 --percent 1,50,100 --iterations 20
// Expect:  MAP_PRIVATE: reads take no fault (the child maps the parent's pages, read-only);
//          each first write takes one fault that copies that 4 KiB page, and the parent never
//          sees the child's writes. MAP_SHARED: no copy, and the parent sees every write.
//          The child's first read of a page costs more than its second though neither faults:
//          fork hands the child page-table entries marked "not yet accessed".
// Compare: oslab-fork (fork's own cost grows with the pages it must mark copy-on-write).

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <numeric>
#include <random>
#include <sstream>

#include <fmt/format.h>

#include "oslab/clock.hpp"
#include "oslab/error.hpp"
#include "oslab/handles.hpp"
#include "oslab/lab.hpp"
#include "oslab/machine.hpp"
#include "oslab/measure.hpp"
#include "oslab/process.hpp"
#include "oslab/shared.hpp"

namespace {

using oslab::check_errno;

constexpr uint64_t kChildMark = 0xC0C0'0000'0000'0000ull;

// What the child measured, passed back through shared memory.
struct ChildReport {
  int64_t read_ns, reread_ns, write_ns;
  long read_faults, reread_faults, write_faults;
  long read_mismatches;  // pages whose content was not the parent's
};

struct Case {
  bool shared;      // MAP_SHARED instead of MAP_PRIVATE
  bool huge_pages;  // madvise(MADV_HUGEPAGE) instead of MADV_NOHUGEPAGE
  std::string mapping() const { return shared ? "MAP_SHARED" : "MAP_PRIVATE"; }
  std::string pages() const { return huge_pages ? "THP" : "4 KiB"; }
};

uint64_t* word_of(const oslab::Mapping& region, size_t page) {
  return reinterpret_cast<uint64_t*>(region.data() + page * oslab::page_size());
}

void fill_with_page_numbers(const oslab::Mapping& region) {
  const size_t pages = region.size() / oslab::page_size();
  for (size_t page = 0; page < pages; ++page) *word_of(region, page) = page;
}

// Resident huge-page KiB of the mapping at `addr`, from /proc/self/smaps.
long huge_kib_of(const void* addr) {
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  const auto target = reinterpret_cast<uintptr_t>(addr);
  bool inside = false;
  long kib = 0;
  while (std::getline(smaps, line)) {
    uintptr_t start = 0, end = 0;
    char dash = 0;
    std::istringstream header(line);
    if (header >> std::hex >> start >> dash >> end && dash == '-') {
      inside = start <= target && target < end;
      continue;
    }
    if (!inside) continue;
    std::istringstream field(line);
    std::string name;
    long value = 0;
    field >> name >> value;
    if (name == "AnonHugePages:" || name == "ShmemPmdMapped:") kib += value;
  }
  return kib;
}

long minor_faults() {
  return static_cast<long>(oslab::read_counters(RUSAGE_SELF).minor_faults);
}

// Reads one word of each chosen page; returns the pages whose content was not the parent's.
long read_pages(const oslab::Mapping& region, const std::vector<size_t>& chosen) {
  long mismatches = 0;
  for (size_t page : chosen) mismatches += *static_cast<volatile uint64_t*>(word_of(region, page)) != page;
  return mismatches;
}

// The child: read the chosen pages, read them again, then write them; time and faults of each phase.
int child_reads_then_writes(const oslab::Mapping& region, const std::vector<size_t>& chosen, ChildReport* out) {
  const long f0 = minor_faults();
  const int64_t t0 = oslab::now_ns();
  const long mismatches = read_pages(region, chosen);
  const int64_t t1 = oslab::now_ns();
  const long f1 = minor_faults();
  read_pages(region, chosen);
  const int64_t t2 = oslab::now_ns();
  const long f2 = minor_faults();
  for (size_t page : chosen) *static_cast<volatile uint64_t*>(word_of(region, page)) = kChildMark | page;
  const int64_t t3 = oslab::now_ns();
  const long f3 = minor_faults();
  *out = {t1 - t0, t2 - t1, t3 - t2, f1 - f0, f2 - f1, f3 - f2, mismatches};
  return 0;
}

// The parent alone, no fork: write `what` to /proc/self/clear_refs, then read the pages twice.
// "1" marks every page of this process not accessed (current kernels do not flush the TLB for
// it: the pages read outnumber a TLB's entries); "4" clears the soft-dirty bits instead, which
// flushes the TLB and leaves the Accessed bits set: the control that tells the Accessed bit's
// cost from a TLB miss's.
struct ClearRefsReads {
  double first_ns_per_page, second_ns_per_page;
};
ClearRefsReads reads_after_clear_refs(const oslab::Mapping& region, const std::vector<size_t>& chosen,
                                      const char* what) {
  oslab::UniqueFd clear_refs(check_errno("open /proc/self/clear_refs", ::open("/proc/self/clear_refs", O_WRONLY)));
  check_errno(fmt::format("write {} to /proc/self/clear_refs", what), ::write(clear_refs.get(), what, 1));
  const int64_t t0 = oslab::now_ns();
  read_pages(region, chosen);
  const int64_t t1 = oslab::now_ns();
  read_pages(region, chosen);
  const int64_t t2 = oslab::now_ns();
  const auto pages = static_cast<double>(chosen.size());
  return {static_cast<double>(t1 - t0) / pages, static_cast<double>(t2 - t1) / pages};
}

struct Observation {
  std::vector<double> read_ns_per_page, reread_ns_per_page, write_ns_per_page;
  std::vector<double> clear_refs_read_ns_per_page, clear_refs_reread_ns_per_page, tlb_flush_read_ns_per_page;
  double read_faults_per_page = 0, reread_faults_per_page = 0, write_faults_per_page = 0;
  long read_mismatches = 0;
  long parent_saw_child_writes = 0;  // over all iterations
  long pages_touched = 0;
  long huge_kib = 0;
  int forks = 0;
};

struct Experiment {
  const oslab::Lab& lab;
  long size_mib;
  std::vector<long> percents;
  int iterations;
  std::vector<Case> cases;
  std::map<std::string, Observation> observed;  // key: mapping/pages/percent
  bool clear_refs_works = false;

  static std::string key(const Case& c, long percent) {
    return c.mapping() + "/" + c.pages() + "/" + std::to_string(percent);
  }

  void choose_cases(oslab::Report& report) {
    const auto& machine = oslab::machine();
    cases = {{false, false}};
    if (machine.has("thp"))
      cases.push_back({false, true});
    else
      report.skip("MAP_PRIVATE with transparent huge pages",
                  "transparent_hugepage/enabled is '" + machine.thp_mode + "' on this machine");
    cases.push_back({true, false});
    // Shared anonymous memory is shmem: its huge pages have a switch of their own.
    const std::string shmem_mode = oslab::shmem_thp_mode();
    if (shmem_mode == "always" || shmem_mode == "within_size" || shmem_mode == "advise" || shmem_mode == "force")
      cases.push_back({true, true});
    else
      report.skip("MAP_SHARED with transparent huge pages",
                  "transparent_hugepage/shmem_enabled is '" + shmem_mode + "' on this machine");
    clear_refs_works = ::access("/proc/self/clear_refs", W_OK) == 0;
    if (!clear_refs_works)
      report.skip("reads after clear_refs (the Accessed-bit check)",
                  fmt::format("/proc/self/clear_refs is not writable: {}", oslab::describe_errno(errno)));
  }

  void measure(oslab::Report& report) {
    const size_t bytes = static_cast<size_t>(size_mib) << 20;
    const size_t pages = bytes / oslab::page_size();
    report.params["pages"] = pages;
    std::mt19937_64 random(lab.options().seed);
    oslab::Shared<ChildReport> child_report;

    for (const Case& c : cases) {
      report.run_case(fmt::format("{}, {} pages", c.mapping(), c.pages()), [&] {
        auto region = oslab::Mapping::anonymous(bytes, c.shared ? MAP_SHARED : MAP_PRIVATE);
        check_errno("madvise", ::madvise(region.data(), bytes, c.huge_pages ? MADV_HUGEPAGE : MADV_NOHUGEPAGE));
        fill_with_page_numbers(region);
        const long huge_kib = huge_kib_of(region.data());
        if (c.huge_pages && huge_kib == 0)
          report.note("THP was requested for the " + c.mapping() +
                      " mapping but the kernel backed it with 4 KiB pages");
        for (long percent : percents) {
          Observation& obs = observed[key(c, percent)];
          obs = observe(region, c, pages, percent, huge_kib, random, *child_report);
          add_results(report, c, percent, obs);
        }
      });
    }
  }

  Observation observe(const oslab::Mapping& region, const Case& c, size_t pages, long percent, long huge_kib,
                      std::mt19937_64& random, ChildReport& child_report) const {
    const size_t touched = std::max<size_t>(1, pages * static_cast<size_t>(percent) / 100);
    Observation obs;
    obs.pages_touched = static_cast<long>(touched);
    obs.huge_kib = huge_kib;
    long read_faults = 0, reread_faults = 0, write_faults = 0;
    const auto per_page = [&](int64_t ns) { return static_cast<double>(ns) / static_cast<double>(touched); };
    for (int iteration = 0; iteration < iterations; ++iteration) {
      std::vector<size_t> chosen(pages);
      std::iota(chosen.begin(), chosen.end(), 0);
      std::shuffle(chosen.begin(), chosen.end(), random);
      chosen.resize(touched);
      child_report = {};
      oslab::Child child = oslab::Child::fork([&] { return child_reads_then_writes(region, chosen, &child_report); });
      child.wait_success(std::chrono::seconds(120), "cow child");
      ++obs.forks;
      obs.read_ns_per_page.push_back(per_page(child_report.read_ns));
      obs.reread_ns_per_page.push_back(per_page(child_report.reread_ns));
      obs.write_ns_per_page.push_back(per_page(child_report.write_ns));
      read_faults += child_report.read_faults;
      reread_faults += child_report.reread_faults;
      write_faults += child_report.write_faults;
      obs.read_mismatches += child_report.read_mismatches;
      for (size_t page : chosen) obs.parent_saw_child_writes += *word_of(region, page) == (kChildMark | page);
      if (c.shared) fill_with_page_numbers(region);  // undo the child's writes for the next fork
      if (clear_refs_works && !c.shared && !c.huge_pages) {
        const ClearRefsReads reads = reads_after_clear_refs(region, chosen, "1");
        obs.clear_refs_read_ns_per_page.push_back(reads.first_ns_per_page);
        obs.clear_refs_reread_ns_per_page.push_back(reads.second_ns_per_page);
        obs.tlb_flush_read_ns_per_page.push_back(reads_after_clear_refs(region, chosen, "4").first_ns_per_page);
      }
    }
    const double page_visits = static_cast<double>(touched) * iterations;
    obs.read_faults_per_page = static_cast<double>(read_faults) / page_visits;
    obs.reread_faults_per_page = static_cast<double>(reread_faults) / page_visits;
    obs.write_faults_per_page = static_cast<double>(write_faults) / page_visits;
    if (obs.read_mismatches != 0)
      throw std::runtime_error(
          fmt::format("the child read {} pages whose content was not the parent's", obs.read_mismatches));
    return obs;
  }

  void add_results(oslab::Report& report, const Case& c, long percent, const Observation& obs) const {
    const nlohmann::json params = {
        {"mapping", c.mapping()}, {"huge_pages", c.huge_pages},         {"huge_kib", obs.huge_kib},
        {"percent", percent},     {"pages_touched", obs.pages_touched}, {"size_mib", size_mib}};
    const double visits = static_cast<double>(obs.pages_touched) * obs.forks;
    const bool headline = !c.shared && !c.huge_pages && percent == percents.back();
    report.add_samples("read after fork", params, obs.read_ns_per_page,
                       {.what = "the child's first 8-byte read of a page the parent wrote before fork, per page",
                        .counters = {{"child_minor_faults_per_page", obs.read_faults_per_page}},
                        .headline = headline});
    report.add_samples("read again after fork", params, obs.reread_ns_per_page,
                       {.what = "the child's second read of the same page, per page",
                        .counters = {{"child_minor_faults_per_page", obs.reread_faults_per_page}}});
    report.add_samples(
        "write after fork", params, obs.write_ns_per_page,
        {.what = "the child's first 8-byte write to a page it had only read, per page",
         .counters = {{"child_minor_faults_per_page", obs.write_faults_per_page},
                      {"parent_sees_child_writes", static_cast<double>(obs.parent_saw_child_writes) / visits}},
         .headline = headline});
    if (!obs.clear_refs_read_ns_per_page.empty()) {
      report.add_samples("read after clear_refs", params, obs.clear_refs_read_ns_per_page,
                         {.what = "no fork: the parent writes 1 to /proc/self/clear_refs (every page marked not "
                                  "accessed), then reads one word of each page, per page"});
      report.add_samples("read again after clear_refs", params, obs.clear_refs_reread_ns_per_page,
                         {.what = "no fork: the parent's second read of the same pages, per page"});
      report.add_samples("read after a TLB flush", params, obs.tlb_flush_read_ns_per_page,
                         {.what = "no fork: the parent writes 4 to /proc/self/clear_refs (soft-dirty bits cleared, "
                                  "TLB flushed, Accessed bits kept), then reads one word of each page, per page"});
    }
  }

  void tables(oslab::Report& report) const {
    oslab::Table table{
        "Per page, in the child after fork (median of " + std::to_string(iterations) + " forks)",
        {"mapping", "pages", "touched", "read", "faults", "read again", "write", "faults", "parent sees writes"},
        {},
        "faults = the child's minor faults in that phase / pages touched in it "
        "(getrusage RUSAGE_SELF in the child); a second read takes none.",
        2};
    for (const Case& c : cases)
      for (long percent : percents) {
        auto it = observed.find(key(c, percent));
        if (it == observed.end()) continue;
        const Observation& obs = it->second;
        auto median = [](const std::vector<double>& v) { return oslab::format_duration(oslab::summarize(v).p50); };
        table.rows.push_back({c.mapping(),
                              c.pages() + (c.huge_pages ? fmt::format(" ({} MiB huge)", obs.huge_kib / 1024) : ""),
                              fmt::format("{} ({}%)", obs.pages_touched, percent), median(obs.read_ns_per_page),
                              oslab::format_number(obs.read_faults_per_page), median(obs.reread_ns_per_page),
                              median(obs.write_ns_per_page), oslab::format_number(obs.write_faults_per_page),
                              oslab::format_percent(static_cast<double>(obs.parent_saw_child_writes) /
                                                    (static_cast<double>(obs.pages_touched) * obs.forks))});
      }
    report.table(table);
  }

  void verdicts(oslab::Report& report) const {
    bool reads_free = true, one_fault_per_write = true, private_stays_private = true, shared_is_shared = true;
    std::string read_evidence, write_evidence, sharing_evidence;
    auto append = [](std::string& text, const std::string& more) { text += (text.empty() ? "" : "; ") + more; };
    for (long percent : percents) {
      auto priv_it = observed.find("MAP_PRIVATE/4 KiB/" + std::to_string(percent));
      auto shared_it = observed.find("MAP_SHARED/4 KiB/" + std::to_string(percent));
      if (priv_it == observed.end() || shared_it == observed.end()) return;  // a case failed: no verdict
      const Observation &priv = priv_it->second, &shared = shared_it->second;
      reads_free = reads_free && priv.read_faults_per_page < 0.05;
      one_fault_per_write =
          one_fault_per_write && priv.write_faults_per_page >= 0.9 && priv.write_faults_per_page <= 1.2;
      private_stays_private = private_stays_private && priv.parent_saw_child_writes == 0;
      shared_is_shared = shared_is_shared && shared.parent_saw_child_writes == shared.pages_touched * shared.forks;
      append(read_evidence,
             fmt::format("{}%: {} faults per page read", percent, oslab::format_number(priv.read_faults_per_page)));
      append(write_evidence,
             fmt::format("{}%: {} faults per page written", percent, oslab::format_number(priv.write_faults_per_page)));
      append(sharing_evidence, fmt::format("{}%: the parent saw {} of {} private and {} of {} shared writes", percent,
                                           priv.parent_saw_child_writes, priv.pages_touched * priv.forks,
                                           shared.parent_saw_child_writes, shared.pages_touched * shared.forks));
    }
    report.fact("private-reads-copy-nothing",
                "after fork, MAP_PRIVATE pages are shared until written: the child's reads copy nothing", reads_free,
                "MAP_PRIVATE, 4 KiB pages: " + read_evidence +
                    " (holds below 0.05), and every page read held the parent's data");
    report.fact("one-fault-per-page-written",
                "a write to a page shared copy-on-write costs one page fault (one 4 KiB copy) per page",
                one_fault_per_write, "MAP_PRIVATE, 4 KiB pages: " + write_evidence + " (holds within 0.9-1.2)");
    report.fact("private-writes-stay-private",
                "the child's writes to MAP_PRIVATE stay in the child; to MAP_SHARED they reach the parent",
                private_stays_private && shared_is_shared, sharing_evidence);
    accessed_bit_verdict(report);
    if (oslab::machine().has("thp")) {
      auto thp = observed.find("MAP_PRIVATE/THP/" + std::to_string(percents.back()));
      if (thp != observed.end())
        report.note(fmt::format(
            "with transparent huge pages ({} KiB of the mapping huge), the child took {} faults per 4 KiB page "
            "written: {}",
            thp->second.huge_kib, oslab::format_number(thp->second.write_faults_per_page),
            thp->second.write_faults_per_page < 0.1 ? "a fault copied (or split) a whole 2 MiB page at a time"
                                                    : "the kernel split the huge pages and copied 4 KiB at a time"));
    }
  }

  // The first read after fork is dearer than the second although neither faults. fork gives
  // the child page-table entries marked old (not accessed): the first touch of each page makes
  // the CPU's page walker set the Accessed bit in memory. clear_refs 1 marks them old too;
  // clear_refs 4 flushes the TLB as well but keeps them accessed, and costs little.
  void accessed_bit_verdict(oslab::Report& report) const {
    const std::string claim =
        "the child's first read of a page costs more than its second, though neither faults: fork gives the child "
        "page-table entries marked not accessed; clearing the Accessed bits without a fork costs the same, and a "
        "TLB flush alone does not";
    const nlohmann::json small_pages = {{"mapping", "MAP_PRIVATE"}, {"huge_pages", false}};
    const oslab::Result* first = report.find("read after fork", small_pages);
    const oslab::Result* again = report.find("read again after fork", small_pages);
    const oslab::Result* cleared = report.find("read after clear_refs", small_pages);
    const oslab::Result* flushed = report.find("read after a TLB flush", small_pages);
    if (!first || !again || !cleared || !flushed) {
      report.skip(claim, "needs the MAP_PRIVATE 4 KiB case and a writable /proc/self/clear_refs");
      return;
    }
    const oslab::Estimate after_fork = oslab::ratio_of(first->summary, again->summary);
    const oslab::Estimate bit_over_flush = oslab::ratio_of(cleared->summary, flushed->summary);
    report.verdict(
        "first-read-sets-accessed-bit", claim,
        oslab::all_of({oslab::decide(after_fork, oslab::Compare::above, 1.5),
                       oslab::decide(bit_over_flush, oslab::Compare::above, 1.5)}),
        fmt::format("{}% of the pages, random order: after fork the first read costs {} per page and the second {} "
                    "({:.1f}x, interval {:.1f}x .. {:.1f}x); with no fork, a read after clearing the Accessed bits "
                    "costs {}, after a TLB flush that keeps them {} ({:.1f}x, interval {:.1f}x .. {:.1f}x) (holds "
                    "when both intervals lie above 1.5x)",
                    first->params["percent"].get<long>(), oslab::format_duration(first->summary.p50),
                    oslab::format_duration(again->summary.p50), after_fork.value, after_fork.low, after_fork.high,
                    oslab::format_duration(cleared->summary.p50), oslab::format_duration(flushed->summary.p50),
                    bit_over_flush.value, bit_over_flush.low, bit_over_flush.high));
  }
};

}  // namespace

int main(int argc, char** argv) {
  oslab::Lab lab({
      .name = "cow",
      .purpose = "copy-on-write after fork: page faults and time per page read and per page written",
      .claim = "The notes: after fork(), code and data are shared until they change (\"copy on write\"):\n"
               "the child gets its own copy of a page only when one side writes it.\n"
               "Here the parent fills --size MiB, forks, and the child reads then writes k of its pages.",
      .explain = "fork() gives the child the parent's page tables with every private page write-protected\n"
                 "in both. A read goes through without a fault: both processes map the same physical page.\n"
                 "The first write to a page traps (a minor page fault); the kernel copies that one page and\n"
                 "maps the copy writable in the writer only. A MAP_SHARED mapping is never copied: both\n"
                 "processes write the same pages (and fork does not even copy the page-table entries of a\n"
                 "shared mapping: the child faults them in on first touch; one fault maps up to 16\n"
                 "neighbouring pages that are already in memory, \"fault-around\", so there are fewer\n"
                 "faults than pages).\n\n"
                 "A read that takes no fault is not free either: fork marks the child's page-table entries\n"
                 "'old' (not accessed), and the first access to each page makes the CPU's page walker\n"
                 "set the Accessed bit in the entry, in memory (the kernel uses these bits to find pages\n"
                 "worth keeping). The second read finds it set. Writing 1 to /proc/self/clear_refs marks\n"
                 "every page of a process old without any fork: the lab does that in the parent and reads\n"
                 "the same pages twice, to show the same first-touch cost; writing 4 (clear the soft-dirty\n"
                 "bits) flushes the TLB but keeps the Accessed bits, and shows that a TLB miss alone is\n"
                 "cheap. How dear setting the bit is depends on the CPU and, in a virtual\n"
                 "machine, on the hypervisor.\n\n"
                 "What is counted: the child's minor page faults (getrusage RUSAGE_SELF in the child) during\n"
                 "each phase, divided by the pages touched in it; the time is CLOCK_MONOTONIC around each\n"
                 "phase, divided likewise. One 8-byte word per page is read or written; the pages are a\n"
                 "random sample (seeded: --seed) in random order, so fault-around and prefetching do not\n"
                 "hide the per-page cost. After the child exits, the parent checks whether it sees the\n"
                 "child's writes.\n\n"
                 "Questions: why does a read of a MAP_SHARED page fault in the child but not one of a\n"
                 "MAP_PRIVATE page? What does a write to a transparent huge page copy: 4 KiB or 2 MiB?\n"
                 "Why is the first read after fork dearer than the second?",
  });
  const long& size_mib = lab.integer_option("--size", "Mapping size, MiB", {.full = 64, .quick = 16}, 1, 1L << 20);
  const auto& percents = lab.list_option("--percent", "Percentages of the pages the child touches, comma-separated",
                                         {.full = {10, 100}, .quick = {10, 100}}, 1, 100);

  std::optional<Experiment> experiment;
  auto prepare = [&](oslab::Report& report) {
    if (oslab::kThreadSanitizer)
      throw oslab::SkipError(
          "built with ThreadSanitizer, whose shadow memory adds page faults to every count; use the release build");
    // The parent's pages and the child's copies of them.
    oslab::require_memory_mib(2.0 * static_cast<double>(size_mib), fmt::format("--size {}", size_mib));
    experiment.emplace(Experiment{lab, size_mib, percents, lab.iterations(10, 3), {}, {}, false});
    report.params["forks_per_case"] = experiment->iterations;
  };
  return lab.run(
      argc, argv,
      [&](oslab::Report& report) {
        experiment->choose_cases(report);
        experiment->measure(report);
        experiment->tables(report);
        experiment->verdicts(report);
        report.show_results_table = false;
      },
      prepare);
}
