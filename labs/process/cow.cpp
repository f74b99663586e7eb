// oslab-cow: copy-on-write seen page by page. After fork, the child reads and then writes
// k of the N pages of a mapping the parent filled; the child counts its own page faults.
//
// Try:     oslab-cow                        64 MiB, 10% and 100% of the pages, private and shared
//          oslab-cow --size 256 --percent 1,50,100 --iterations 20
// Expect:  MAP_PRIVATE: reads take no fault (the child maps the parent's pages, read-only);
//          each first write takes one fault that copies that 4 KiB page, and the parent never
//          sees the child's writes. MAP_SHARED: no copy, and the parent sees every write.
//          With transparent huge pages, see what a write to a 2 MiB page costs.
// Compare: oslab-fork (fork's own cost grows with the pages it must mark copy-on-write).

#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
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

namespace {

using oslab::check_errno;

constexpr uint64_t kChildMark = 0xC0C0'0000'0000'0000ull;

// What the child measured, passed back through a MAP_SHARED page.
struct ChildReport {
  int64_t read_ns, write_ns;
  long read_faults, write_faults;
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

// The child: read, then write, the chosen pages; report time, faults and what it saw.
int child_reads_then_writes(const oslab::Mapping& region, const std::vector<size_t>& chosen, ChildReport* out) {
  long mismatches = 0;
  auto minor_faults = [] { return static_cast<long>(oslab::read_counters(RUSAGE_SELF).minor_faults); };
  long faults_before = minor_faults();
  int64_t start = oslab::now_ns();
  for (size_t page : chosen) {
    uint64_t value = *static_cast<volatile uint64_t*>(word_of(region, page));
    mismatches += value != page;
  }
  int64_t read_end = oslab::now_ns();
  long faults_after_read = minor_faults();
  for (size_t page : chosen) *static_cast<volatile uint64_t*>(word_of(region, page)) = kChildMark | page;
  int64_t write_end = oslab::now_ns();
  long faults_after_write = minor_faults();
  *out = {read_end - start, write_end - read_end, faults_after_read - faults_before,
          faults_after_write - faults_after_read, mismatches};
  return 0;
}

struct Observation {
  std::vector<double> read_ns_per_page, write_ns_per_page;
  double read_faults_per_page = 0, write_faults_per_page = 0;
  long read_mismatches = 0;
  long parent_saw_child_writes = 0;  // over all iterations
  long pages_touched = 0;
  long huge_kib = 0;
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
                 "What is counted: the child's minor page faults (getrusage RUSAGE_SELF in the child) during\n"
                 "the read phase and during the write phase, divided by the pages touched in that phase;\n"
                 "the time is CLOCK_MONOTONIC around each phase, divided likewise. One 8-byte word per page\n"
                 "is read or written; the pages are a random sample (seeded: --seed) in random order, so\n"
                 "fault-around and prefetching do not hide the per-page cost. After the child exits, the\n"
                 "parent checks whether it sees the child's writes.\n\n"
                 "Questions: why does a read of a MAP_SHARED page fault in the child but not one of a\n"
                 "MAP_PRIVATE page? What does a write to a transparent huge page copy: 4 KiB or 2 MiB?",
  });
  long size_mib = 64;
  std::string percent_text = "10,100";
  lab.cli().add_option("--size", size_mib, "Mapping size, MiB (--quick: 16)")->check(CLI::Range(1L, 1L << 20));
  lab.cli().add_option("--percent", percent_text, "Percentages of the pages the child touches, comma-separated");

  std::vector<long> percents;
  int iterations = 0;
  auto prepare = [&](oslab::Report& report) {
    if (oslab::kThreadSanitizer)
      throw oslab::SkipError(
          "built with ThreadSanitizer, whose shadow memory adds page faults to every count; "
          "use the release build");
    if (lab.options().quick && !lab.cli().count("--size")) size_mib = 16;
    percents = oslab::parse_number_list(percent_text, "--percent", 1, 100);
    // The parent's pages and the child's copies of them.
    oslab::require_memory_mib(2.0 * static_cast<double>(size_mib), fmt::format("--size {}", size_mib));
    iterations = lab.iterations(10, 3);
    report.params["size_mib"] = size_mib;
    report.params["percent"] = percents;
    report.params["iterations"] = iterations;
  };

  return lab.main(argc, argv, prepare, [&](oslab::Report& report) {
    const size_t bytes = static_cast<size_t>(size_mib) << 20;
    const size_t pages = bytes / oslab::page_size();
    report.params["pages"] = pages;

    const auto& machine = oslab::machine();
    std::vector<Case> cases = {{false, false}};
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

    std::mt19937_64 random(lab.options().seed);
    auto report_page = oslab::Mapping::anonymous(oslab::page_size(), MAP_SHARED);
    auto* child_report = report_page.as<ChildReport>();

    oslab::Table table{
        "Per page, in the child after fork (median of " + std::to_string(iterations) + " forks)",
        {"mapping", "pages", "touched", "read time", "read faults", "write time", "write faults", "parent sees writes"},
        {},
        "faults = the child's minor faults in that phase / pages touched in it "
        "(getrusage RUSAGE_SELF in the child).",
        2};
    std::map<std::string, Observation> observed;  // key: mapping/pages/percent

    for (const Case& c : cases) {
      auto region = oslab::Mapping::anonymous(bytes, c.shared ? MAP_SHARED : MAP_PRIVATE);
      check_errno("madvise", ::madvise(region.data(), bytes, c.huge_pages ? MADV_HUGEPAGE : MADV_NOHUGEPAGE));
      fill_with_page_numbers(region);
      const long huge_kib = huge_kib_of(region.data());
      if (c.huge_pages && huge_kib == 0)
        report.note("THP was requested for the " + c.mapping() + " mapping but the kernel backed it with 4 KiB pages");

      for (long percent : percents) {
        const size_t touched = std::max<size_t>(1, pages * static_cast<size_t>(percent) / 100);
        Observation obs;
        obs.pages_touched = static_cast<long>(touched);
        obs.huge_kib = huge_kib;
        long read_faults = 0, write_faults = 0;
        for (int iteration = 0; iteration < iterations; ++iteration) {
          std::vector<size_t> chosen(pages);
          std::iota(chosen.begin(), chosen.end(), 0);
          std::shuffle(chosen.begin(), chosen.end(), random);
          chosen.resize(touched);
          *child_report = {};
          oslab::Child child =
              oslab::Child::fork([&] { return child_reads_then_writes(region, chosen, child_report); });
          oslab::ExitStatus status = child.wait(std::chrono::seconds(120));
          if (!status.success()) throw std::runtime_error("cow child " + status.describe());

          obs.read_ns_per_page.push_back(static_cast<double>(child_report->read_ns) / static_cast<double>(touched));
          obs.write_ns_per_page.push_back(static_cast<double>(child_report->write_ns) / static_cast<double>(touched));
          read_faults += child_report->read_faults;
          write_faults += child_report->write_faults;
          obs.read_mismatches += child_report->read_mismatches;
          for (size_t page : chosen) obs.parent_saw_child_writes += *word_of(region, page) == (kChildMark | page);
          if (c.shared) fill_with_page_numbers(region);  // undo the child's writes for the next fork
        }
        const double page_visits = static_cast<double>(touched) * iterations;
        obs.read_faults_per_page = static_cast<double>(read_faults) / page_visits;
        obs.write_faults_per_page = static_cast<double>(write_faults) / page_visits;

        nlohmann::json params = {{"mapping", c.mapping()}, {"huge_pages", c.huge_pages}, {"huge_kib", huge_kib},
                                 {"percent", percent},     {"pages_touched", touched},   {"size_mib", size_mib}};
        for (bool write : {false, true}) {
          oslab::Result result;
          result.name = write ? "write after fork" : "read after fork";
          result.params = params;
          result.what = write ? "one 8-byte write to a page the child had only read, per page"
                              : "one 8-byte read of a page the parent wrote before fork, per page";
          result.samples = write ? obs.write_ns_per_page : obs.read_ns_per_page;
          result.summary = oslab::summarize(result.samples);
          result.counters = {{"minor_faults", write ? obs.write_faults_per_page : obs.read_faults_per_page},
                             {"parent_sees_child_writes",
                              write ? static_cast<double>(obs.parent_saw_child_writes) / page_visits : 0.0}};
          result.headline = !c.shared && !c.huge_pages && percent == percents.back();
          report.add(std::move(result));
        }
        table.rows.push_back(
            {c.mapping(), c.pages() + (c.huge_pages ? fmt::format(" ({} MiB huge)", huge_kib / 1024) : ""),
             fmt::format("{} ({}%)", touched, percent),
             oslab::format_duration(oslab::summarize(obs.read_ns_per_page).p50),
             oslab::format_number(obs.read_faults_per_page),
             oslab::format_duration(oslab::summarize(obs.write_ns_per_page).p50),
             oslab::format_number(obs.write_faults_per_page),
             fmt::format("{:.0f}%", 100.0 * static_cast<double>(obs.parent_saw_child_writes) / page_visits)});
        observed[c.mapping() + "/" + c.pages() + "/" + std::to_string(percent)] = std::move(obs);
      }
    }
    report.table(table);
    report.show_results_table = false;

    // Verdicts, from the 4 KiB cases at every percentage.
    bool reads_free = true, one_fault_per_write = true, private_stays_private = true, shared_is_shared = true;
    long mismatches = 0;
    std::string read_evidence, write_evidence, sharing_evidence;
    for (long percent : percents) {
      const Observation& priv = observed.at("MAP_PRIVATE/4 KiB/" + std::to_string(percent));
      const Observation& shared = observed.at("MAP_SHARED/4 KiB/" + std::to_string(percent));
      reads_free = reads_free && priv.read_faults_per_page < 0.05;
      one_fault_per_write =
          one_fault_per_write && priv.write_faults_per_page >= 0.9 && priv.write_faults_per_page <= 1.2;
      private_stays_private = private_stays_private && priv.parent_saw_child_writes == 0;
      shared_is_shared = shared_is_shared && shared.parent_saw_child_writes == shared.pages_touched * iterations;
      mismatches += priv.read_mismatches + shared.read_mismatches;
      const double write_over_read =
          oslab::summarize(priv.write_ns_per_page).p50 / oslab::summarize(priv.read_ns_per_page).p50;
      read_evidence += fmt::format("{}{}%: {} faults per page read", read_evidence.empty() ? "" : "; ", percent,
                                   oslab::format_number(priv.read_faults_per_page));
      write_evidence += fmt::format("{}{}%: {} faults per page written, a write costs {:.0f}x a read",
                                    write_evidence.empty() ? "" : "; ", percent,
                                    oslab::format_number(priv.write_faults_per_page), write_over_read);
      sharing_evidence += fmt::format("{}{}%: parent saw {} of {} private and {} of {} shared writes",
                                      sharing_evidence.empty() ? "" : "; ", percent, priv.parent_saw_child_writes,
                                      priv.pages_touched * iterations, shared.parent_saw_child_writes,
                                      shared.pages_touched * iterations);
    }
    if (mismatches != 0)
      throw std::runtime_error(fmt::format("the child read {} pages whose content was not the parent's", mismatches));
    report.verdict("after fork, MAP_PRIVATE pages are shared until written: the child's reads copy nothing", reads_free,
                   "MAP_PRIVATE, 4 KiB pages: " + read_evidence +
                       " (holds below 0.05) and every page read held the parent's data");
    report.verdict("a write to a page shared copy-on-write costs about one page fault (one 4 KiB copy) per page",
                   one_fault_per_write, "MAP_PRIVATE, 4 KiB pages: " + write_evidence + " (holds within 0.9-1.2)");
    report.verdict("the child's writes to MAP_PRIVATE stay in the child; to MAP_SHARED they reach the parent",
                   private_stays_private && shared_is_shared, sharing_evidence);
    if (machine.has("thp")) {
      const Observation& thp = observed.at("MAP_PRIVATE/THP/" + std::to_string(percents.back()));
      report.note(
          fmt::format("with transparent huge pages ({} KiB of the mapping huge), the child took {} faults per "
                      "4 KiB page written: {}",
                      thp.huge_kib, oslab::format_number(thp.write_faults_per_page),
                      thp.write_faults_per_page < 0.1 ? "a fault copied (or split) a whole 2 MiB page at a time"
                                                      : "the kernel split the huge pages and copied 4 KiB at a time"));
    }
  });
}
