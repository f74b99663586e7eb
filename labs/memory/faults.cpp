// oslab-faults: what a page fault is and what it costs, kind by kind: the first touch of
// anonymous memory, a file page already in the page cache and one read from the disk, a copy on
// write, a write to a read-only page (SIGSEGV), and transparent huge pages against 4 KiB pages.
//
// Try:     oslab-faults                      every kind, 64 MiB regions (4 MiB read from disk)
//          oslab-faults --size 256 --disk-mib 16 --iterations 20
//          oslab-faults --dir /mnt/ssd       the file on another disk
// Expect:  one minor fault per 4 KiB page for a first write of anonymous memory; a first read maps
//          the shared zero page (one fault) and the first write after it another; a read of a
//          cached file takes one fault per 16 pages (fault-around maps 64 KiB at once); from the
//          disk, one major fault per page with MADV_RANDOM and far fewer with read-ahead; one
//          fault per 2 MiB with huge pages. A major fault costs tens of times a minor one.
// Compare: oslab-cow (copy-on-write after fork, page by page), oslab-thrash (major faults by the
//          thousand when memory is short), oslab-mmap (mmap against read()).

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <optional>

#include <fmt/format.h>

#include "memprobe.hpp"
#include "oslab/clock.hpp"
#include "oslab/error.hpp"
#include "oslab/format.hpp"
#include "oslab/handles.hpp"
#include "oslab/lab.hpp"
#include "oslab/machine.hpp"
#include "oslab/measure.hpp"

namespace {

using oslab::check_errno;
using oslab::check_errnum;
using oslab::Counters;

constexpr size_t kMiB = 1 << 20;
constexpr size_t kHuge = 2 * kMiB;

// Built with AddressSanitizer? Its checks read shadow memory, whose first touch is a fault too:
// that changes the count of a kind with few faults of its own (huge pages) beyond recognition.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kAddressSanitizer = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kAddressSanitizer = true;
#else
constexpr bool kAddressSanitizer = false;
#endif
#else
constexpr bool kAddressSanitizer = false;
#endif

size_t page() {
  return oslab::page_size();
}

// One timed pass over a region: its time and the faults counted during it (getrusage).
struct Pass {
  double ns = 0;
  Counters faults;
};

template <typename Touch>
Pass timed(Touch&& touch) {
  const Counters before = oslab::read_counters(RUSAGE_SELF);
  const int64_t t0 = oslab::now_ns();
  touch();
  const int64_t t1 = oslab::now_ns();
  return {static_cast<double>(t1 - t0), oslab::read_counters(RUSAGE_SELF) - before};
}

void read_each_page(const std::byte* base, size_t bytes) {
  for (size_t at = 0; at < bytes; at += page()) (void)*reinterpret_cast<const volatile char*>(base + at);
}
void write_each_page(std::byte* base, size_t bytes, char value = 1) {
  for (size_t at = 0; at < bytes; at += page()) *reinterpret_cast<volatile char*>(base + at) = value;
}

// A mapping of a file, unmapped when it goes.
class FileMapping {
 public:
  FileMapping(int fd, size_t bytes, int prot, int flags)
      : bytes_(bytes),
        data_(static_cast<std::byte*>(
            oslab::check_errno_ptr("mmap", ::mmap(nullptr, bytes, prot, flags, fd, 0), MAP_FAILED))) {}
  FileMapping(const FileMapping&) = delete;
  FileMapping& operator=(const FileMapping&) = delete;
  ~FileMapping() { ::munmap(data_, bytes_); }
  std::byte* data() const { return data_; }

 private:
  size_t bytes_;
  std::byte* data_;
};

// An anonymous region whose start is aligned to 2 MiB, so that it can hold huge pages.
class AlignedRegion {
 public:
  explicit AlignedRegion(size_t bytes) : bytes_(bytes), mapping_(oslab::Mapping::anonymous(bytes + kHuge)) {
    const auto start = reinterpret_cast<uintptr_t>(mapping_.data());
    data_ = mapping_.data() + ((kHuge - start % kHuge) % kHuge);
  }
  std::byte* data() const { return data_; }
  size_t size() const { return bytes_; }

 private:
  size_t bytes_;
  oslab::Mapping mapping_;
  std::byte* data_ = nullptr;
};

// ---- The kinds of fault --------------------------------------------------------------------

struct Files {
  oslab::UniqueFd cached;        // --size MiB, kept in the page cache, written 4 KiB at a time: 4 KiB folios
  oslab::UniqueFd cached_large;  // the same written with pwrite: the kernel may cache it in large folios
  size_t cached_bytes = 0;
  oslab::UniqueFd disk;  // --disk-mib MiB, dropped from the page cache before each pass
  size_t disk_bytes = 0;
  bool disk_backed = true;
};

struct Kind {
  std::string key;
  std::string name;
  std::string what;
  size_t bytes;
  std::function<Pass()> pass;             // sets up (untimed), times the touch, tears down
  std::shared_ptr<double> huge_kib = {};  // THP only: AnonHugePages of the region in the last pass
};

void drop_cache(int fd, size_t bytes) {
  check_errno("fdatasync", ::fdatasync(fd));
  check_errnum("posix_fadvise(POSIX_FADV_DONTNEED)",
               ::posix_fadvise(fd, 0, static_cast<off_t>(bytes), POSIX_FADV_DONTNEED));
}

void warm_cache(int fd, size_t bytes) {
  std::vector<char> buffer(kMiB);
  for (size_t at = 0; at < bytes; at += buffer.size())
    check_errno("pread", ::pread(fd, buffer.data(), std::min(buffer.size(), bytes - at), static_cast<off_t>(at)));
}

std::vector<Kind> make_kinds(Files& files, size_t bytes, bool with_thp, bool with_disk) {
  std::vector<Kind> kinds;
  kinds.push_back({"anon-write", "anonymous first write",
                   "first write of one byte to each 4 KiB page of a fresh MAP_PRIVATE|MAP_ANONYMOUS region "
                   "(MADV_NOHUGEPAGE), per page",
                   bytes, [bytes] {
                     auto region = oslab::Mapping::anonymous(bytes);
                     check_errno("madvise", ::madvise(region.data(), bytes, MADV_NOHUGEPAGE));
                     return timed([&] { write_each_page(region.data(), bytes); });
                   }});
  kinds.push_back({"anon-read", "anonymous first read",
                   "first read of each 4 KiB page of a fresh anonymous region (the kernel maps its shared zero "
                   "page), per page",
                   bytes, [bytes] {
                     auto region = oslab::Mapping::anonymous(bytes);
                     check_errno("madvise", ::madvise(region.data(), bytes, MADV_NOHUGEPAGE));
                     return timed([&] { read_each_page(region.data(), bytes); });
                   }});
  kinds.push_back({"anon-write-after-read", "anonymous write after a read",
                   "first write to each page of an anonymous region that was only read (zero page mapped), per "
                   "page",
                   bytes, [bytes] {
                     auto region = oslab::Mapping::anonymous(bytes);
                     check_errno("madvise", ::madvise(region.data(), bytes, MADV_NOHUGEPAGE));
                     read_each_page(region.data(), bytes);
                     return timed([&] { write_each_page(region.data(), bytes); });
                   }});
  kinds.push_back({"file-cached-read", "file read, page cache",
                   "first read of each page, in order, of a file mapped MAP_SHARED|PROT_READ whose pages are all in "
                   "the page cache, per page",
                   bytes, [&files, bytes] {
                     warm_cache(files.cached.get(), bytes);
                     FileMapping map(files.cached.get(), bytes, PROT_READ, MAP_SHARED);
                     return timed([&] { read_each_page(map.data(), bytes); });
                   }});
  kinds.push_back({"file-cached-read-large", "file read, page cache, large folios",
                   "the same for a file written with pwrite(), which the page cache may hold in large folios "
                   "(a fault maps a whole folio), per page",
                   bytes, [&files, bytes] {
                     warm_cache(files.cached_large.get(), bytes);
                     FileMapping map(files.cached_large.get(), bytes, PROT_READ, MAP_SHARED);
                     return timed([&] { read_each_page(map.data(), bytes); });
                   }});
  kinds.push_back({"file-private-write", "file write, MAP_PRIVATE (copy)",
                   "first write to each page of a cached file mapped MAP_PRIVATE: the kernel copies the page "
                   "cache page into a private one, per page",
                   bytes, [&files, bytes] {
                     warm_cache(files.cached.get(), bytes);
                     FileMapping map(files.cached.get(), bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE);
                     Pass pass = timed([&] { write_each_page(map.data(), bytes, 2); });
                     // The copies are private: the file still holds what was written to it (1s).
                     for (size_t at = 0; at < bytes; at += page()) {
                       char in_file = 0;
                       check_errno("pread", ::pread(files.cached.get(), &in_file, 1, static_cast<off_t>(at)));
                       if (in_file != 1 || *reinterpret_cast<const char*>(map.data() + at) != 2)
                         throw std::runtime_error("a write to a MAP_PRIVATE mapping reached the file");
                     }
                     return pass;
                   }});
  kinds.push_back({"write-read-only", "write to a read-only page (SIGSEGV)",
                   "a one-byte write to a resident page mapped PROT_READ: the fault, SIGSEGV delivered to a "
                   "handler, siglongjmp back; per write",
                   std::min<size_t>(bytes, 4 * kMiB), [bytes = std::min<size_t>(bytes, 4 * kMiB)] {
                     auto region = oslab::Mapping::anonymous(bytes);
                     oslab::touch_pages(region.bytes());
                     check_errno("mprotect", ::mprotect(region.data(), bytes, PROT_READ));
                     auto* base = reinterpret_cast<unsigned char*>(region.data());
                     size_t refused = 0;
                     Pass pass = timed([&] {
                       for (size_t at = 0; at < bytes; at += page()) {
                         const auto access = oslab::memory::try_write(base + at, 7);
                         refused += access.faulted && access.signal == SIGSEGV && access.code == SEGV_ACCERR &&
                                    access.address == base + at && base[at] != 7;
                       }
                     });
                     if (refused != bytes / page())
                       throw std::runtime_error(
                           fmt::format("{} of {} writes to a PROT_READ page were not refused "
                                       "with SIGSEGV (SEGV_ACCERR) at their address",
                                       bytes / page() - refused, bytes / page()));
                     return pass;
                   }});
  if (with_disk) {
    kinds.push_back({"file-disk-read-random", "file read, disk, MADV_RANDOM",
                     "first read of each page, in order, of a file dropped from the page cache "
                     "(posix_fadvise(DONTNEED)), mapped with MADV_RANDOM (no read-around), per page",
                     files.disk_bytes, [&files] {
                       drop_cache(files.disk.get(), files.disk_bytes);
                       FileMapping map(files.disk.get(), files.disk_bytes, PROT_READ, MAP_SHARED);
                       check_errno("madvise", ::madvise(map.data(), files.disk_bytes, MADV_RANDOM));
                       if (oslab::memory::cached_pages(map.data(), files.disk_bytes / page()) != 0)
                         throw std::runtime_error("posix_fadvise(DONTNEED) left pages of the file in the cache");
                       return timed([&] { read_each_page(map.data(), files.disk_bytes); });
                     }});
    kinds.push_back({"file-disk-read-ahead", "file read, disk, read-ahead",
                     "the same with the default advice: a major fault reads ahead, and later pages are found in "
                     "the cache, per page",
                     files.disk_bytes, [&files] {
                       drop_cache(files.disk.get(), files.disk_bytes);
                       FileMapping map(files.disk.get(), files.disk_bytes, PROT_READ, MAP_SHARED);
                       return timed([&] { read_each_page(map.data(), files.disk_bytes); });
                     }});
  }
  if (with_thp) {
    const size_t huge_bytes = std::max(kHuge, bytes / kHuge * kHuge);
    kinds.push_back({"thp-write",
                     "anonymous first write, huge pages",
                     "first write of one byte to each 4 KiB page of a fresh 2 MiB-aligned anonymous region with "
                     "MADV_HUGEPAGE, per 4 KiB page",
                     huge_bytes,
                     {},
                     std::make_shared<double>(0)});
    kinds.back().pass = [huge_bytes, huge_kib = kinds.back().huge_kib] {
      AlignedRegion region(huge_bytes);
      check_errno("madvise(MADV_HUGEPAGE)", ::madvise(region.data(), huge_bytes, MADV_HUGEPAGE));
      Pass pass = timed([&] { write_each_page(region.data(), huge_bytes); });
      *huge_kib = static_cast<double>(oslab::memory::smaps_of(::getpid(), region.data()).field("AnonHugePages"));
      return pass;
    };
  }
  return kinds;
}

// How many pages one read fault on a cached file maps (fault-around), seen in the page table.
size_t pages_mapped_by_one_fault(int fd, size_t bytes) {
  warm_cache(fd, bytes);
  FileMapping map(fd, bytes, PROT_READ, MAP_SHARED);
  const size_t window = std::min<size_t>(bytes / page(), 512);
  (void)*reinterpret_cast<const volatile char*>(map.data() + window / 2 * page());
  return oslab::memory::present_pages(map.data(), window);
}

struct Experiment {
  const oslab::Lab& lab;
  size_t bytes, disk_bytes;
  std::string dir;
  Files files = {};
  std::vector<Kind> kinds = {};
  std::vector<oslab::Measurement> measured = {};
  size_t fault_around_pages = 0, large_folio_pages = 0;
  std::string disk_why_not = {};

  void prepare_files(oslab::Report& report) {
    files.cached_bytes = bytes;
    // One file written with pwrite() a page at a time (4 KiB folios in the page cache: a write
    // allocates a folio no larger than itself), one with pwrite() in 1 MiB blocks (which a file
    // system with large folios caches in large ones). Not through a mapping: where the file
    // system caches in large folios (ext4 since Linux 6.16), a fault on a hole is filled by
    // read-ahead, in large folios too, and a fault then maps more than fault-around's 16 pages.
    files.cached = oslab::memory::temporary_file(dir, bytes);
    const std::vector<char> one_page(page(), 1);
    for (size_t at = 0; at < bytes; at += page())
      check_errno("pwrite", ::pwrite(files.cached.get(), one_page.data(), page(), static_cast<off_t>(at)));
    files.cached_large = oslab::memory::temporary_file(dir, bytes);
    const std::vector<char> block(kMiB, 'f');
    auto fill = [&](int fd, size_t size) {
      for (size_t at = 0; at < size; at += kMiB)
        check_errno("pwrite", ::pwrite(fd, block.data(), std::min(kMiB, size - at), static_cast<off_t>(at)));
    };
    fill(files.cached_large.get(), bytes);
    const std::string in_memory = oslab::memory::memory_file_system(files.cached.get());
    if (!in_memory.empty()) {
      disk_why_not = fmt::format("--dir {} is {}: its pages are never read from a disk", dir, in_memory);
      report.skip("file read from the disk", disk_why_not);
    } else {
      files.disk = oslab::memory::temporary_file(dir, disk_bytes);
      files.disk_bytes = disk_bytes;
      fill(files.disk.get(), disk_bytes);
    }
    fault_around_pages = pages_mapped_by_one_fault(files.cached.get(), bytes);
    large_folio_pages = pages_mapped_by_one_fault(files.cached_large.get(), bytes);
    report.params["pages_mapped_by_one_fault"] = fault_around_pages;
    report.params["pages_mapped_by_one_fault_large_folios"] = large_folio_pages;
    const std::string configured = oslab::read_first_line("/sys/kernel/debug/fault_around_bytes");
    if (!configured.empty()) report.params["fault_around_bytes"] = configured;
  }

  void measure(oslab::Report& report) {
    const bool thp = oslab::machine().has("thp");
    if (!thp) report.skip("huge pages", "transparent_hugepage/enabled is '" + oslab::machine().thp_mode + "'");
    kinds = make_kinds(files, bytes, thp, disk_why_not.empty());
    oslab::SamplingPlan plan = lab.plan();
    oslab::Interleaver interleaver(plan, kinds.size());
    interleaver.run([&](size_t c, int samples, oslab::Measurement& into) {
      std::vector<double> per_page;
      Counters faults;
      const auto pages = static_cast<double>(kinds[c].bytes) / static_cast<double>(page());
      for (int s = 0; s < samples; ++s) {
        const Pass pass = kinds[c].pass();
        per_page.push_back(pass.ns / pages);
        faults += pass.faults;
      }
      into.add_block(per_page, faults, {}, static_cast<int64_t>(kinds[c].bytes / page()));
    });
    measured = std::move(interleaver.measurements());
    for (size_t c = 0; c < kinds.size(); ++c) {
      nlohmann::json params = {{"region_kib", kinds[c].bytes / 1024}, {"kind", kinds[c].key}};
      if (kinds[c].huge_kib) params["anon_huge_kib"] = *kinds[c].huge_kib;
      report.add(kinds[c].name, params, measured[c],
                 {.what = kinds[c].what,
                  .counters = {{"ns_per_fault", ns_per_fault(c)}},
                  .headline = kinds[c].key == "anon-write" || kinds[c].key == "file-cached-read"});
    }
    if (oslab::machine().is_virtual())
      report.note("this is a virtual machine (" + oslab::machine().virtualization +
                  "): a fault may also cost the hypervisor work (its own page tables, memory it backs only when first "
                  "touched), so first-touch faults can cost far more than on bare metal; compare with a physical "
                  "machine");
  }

  const oslab::Result* result(const oslab::Report& report, const std::string& key) const {
    return report.find(name_of(key), {{"kind", key}});
  }
  std::string name_of(const std::string& key) const {
    for (const Kind& k : kinds)
      if (k.key == key) return k.name;
    return key;
  }
  double faults_per_page(size_t c) const {
    return measured[c].self_per_op.minor_faults + measured[c].self_per_op.major_faults;
  }
  double ns_per_fault(size_t c) const {
    const double faults = faults_per_page(c);
    return faults > 0 ? oslab::summarize(measured[c].samples_ns).p50 / faults : 0;
  }

  void tables(oslab::Report& report) const {
    oslab::Table table{
        "Page faults, kind by kind (medians)",
        {"kind", "per page", "minor faults/page", "major faults/page", "pages per fault", "per fault", "faults/s"},
        {},
        "per page: the time of the touch loop / pages touched (a sample is one pass over a fresh "
        "region); per fault: per page / faults per page; faults counted by getrusage around the "
        "loop",
        1};
    for (size_t c = 0; c < kinds.size(); ++c) {
      const double p50 = oslab::summarize(measured[c].samples_ns).p50, faults = faults_per_page(c);
      table.rows.push_back({kinds[c].name, oslab::format_duration(p50),
                            oslab::format_number(measured[c].self_per_op.minor_faults),
                            oslab::format_number(measured[c].self_per_op.major_faults),
                            faults > 0 ? oslab::format_number(1 / faults) : "-",
                            faults > 0 ? oslab::format_duration(ns_per_fault(c)) : "-",
                            faults > 0 ? oslab::format_number(1e9 / ns_per_fault(c)) : "-"});
    }
    report.table(table);
  }

  const oslab::Measurement* of(const std::string& key) const {
    for (size_t c = 0; c < kinds.size(); ++c)
      if (kinds[c].key == key) return &measured[c];
    return nullptr;
  }

  void verdicts(oslab::Report& report) const {
    auto minor = [&](const char* key) { return of(key)->self_per_op.minor_faults; };
    auto major = [&](const char* key) { return of(key)->self_per_op.major_faults; };
    auto near = [](double value, double target) { return std::abs(value - target) <= 0.05 * target; };
    report.fact("anonymous-first-write-one-fault-per-page",
                "the first write to a page of anonymous memory takes one (minor) page fault per 4 KiB page",
                near(minor("anon-write"), 1) && major("anon-write") == 0,
                fmt::format("{} minor and {} major faults per page (holds within 5% of 1 minor, 0 major)",
                            oslab::format_number(minor("anon-write")), oslab::format_number(major("anon-write"))));
    report.fact(
        "zero-page-then-copy",
        "a first read of anonymous memory maps the shared zero page (one fault per page); the first write "
        "after it faults again to get a page of its own",
        near(minor("anon-read"), 1) && near(minor("anon-write-after-read"), 1),
        fmt::format("read: {} faults per page; write after the read: {} (holds within 5% of 1 each)",
                    oslab::format_number(minor("anon-read")), oslab::format_number(minor("anon-write-after-read"))));
    const double around = static_cast<double>(fault_around_pages);
    report.fact("fault-around",
                "a read fault on a file page in the page cache maps its cached neighbours too (fault-around, 64 KiB "
                "by default): one fault maps 16 pages, so reading a cached file takes 1/16 of a fault per page",
                fault_around_pages > 1 && std::abs(minor("file-cached-read") * around - 1) <= 0.1,
                fmt::format("a file cached in 4 KiB folios: one read fault mapped {} pages (/proc/self/pagemap); "
                            "reading every page took {} faults per page, 1/{} (holds when that is 1/{} within 10%)",
                            fault_around_pages, oslab::format_number(minor("file-cached-read")),
                            oslab::format_number(1 / minor("file-cached-read")), fault_around_pages));
    if (large_folio_pages > fault_around_pages) {
      report.fact("large-folio-mapped-whole",
                  "a file the page cache holds in large folios is mapped a folio at a time: one fault maps more "
                  "than fault-around's 64 KiB",
                  minor("file-cached-read-large") <= minor("file-cached-read"),
                  fmt::format("the file written with pwrite(): one read fault mapped {} pages; reading every page "
                              "took {} faults per page, against {} for the file in 4 KiB folios (holds when no more)",
                              large_folio_pages, oslab::format_number(minor("file-cached-read-large")),
                              oslab::format_number(minor("file-cached-read"))));
    } else {
      report.skip("large folios",
                  fmt::format("one fault on the file written with pwrite() mapped {} pages, as many as on the other: "
                              "this kernel or file system caches it in 4 KiB folios, or this kernel maps a fault's "
                              "64 KiB window and no more",
                              large_folio_pages));
    }
    report.fact(
        "private-file-write-copies",
        "the first write to a page of a file mapped MAP_PRIVATE takes one fault, which copies the page",
        near(minor("file-private-write"), 1),
        fmt::format("{} faults per page written (holds within 5% of 1); after every pass, pread() found the file "
                    "unchanged under the written copies (a pass stops the lab otherwise)",
                    oslab::format_number(minor("file-private-write"))));
    report.fact("write-to-read-only-is-sigsegv",
                "a write to a page mapped without PROT_WRITE is refused: SIGSEGV with si_code SEGV_ACCERR and the "
                "address written, and the page is unchanged",
                true,
                fmt::format("every one of the {} writes in every pass was refused so (a pass stops the lab "
                            "otherwise); {} faults counted per write",
                            of("write-read-only")->operations, oslab::format_number(minor("write-read-only"))));
    if (of("file-disk-read-random")) {
      report.fact("major-fault-reads-the-disk",
                  "a page not in the page cache is read from the disk in a major fault: one per page with "
                  "MADV_RANDOM; with read-ahead a major fault reads many pages, and far fewer faults are major",
                  major("file-disk-read-random") >= 0.95 && major("file-disk-read-ahead") <= 0.5,
                  fmt::format("after posix_fadvise(DONTNEED) (mincore: no page cached): MADV_RANDOM {} major faults "
                              "per page; read-ahead {} (holds at 0.95 or more, and 0.5 or less)",
                              oslab::format_number(major("file-disk-read-random")),
                              oslab::format_number(major("file-disk-read-ahead"))));
      const oslab::Result& disk = *result(report, "file-disk-read-random");
      const oslab::Result& cached = *result(report, "file-cached-read");
      report.verdict("major-costs-more-than-minor",
                     "a major fault (a disk read) costs many times a minor one (memory only)",
                     oslab::ratio_of(disk.summary, cached.summary), oslab::Compare::above, 10,
                     fmt::format("per page: from the disk {} (one major fault each), from the page cache {}",
                                 oslab::format_duration(disk.summary.p50), oslab::format_duration(cached.summary.p50)));
    }
    for (const Kind& kind : kinds) {
      if (kind.key != "thp-write") continue;
      const double faults = minor("thp-write");
      const double huge_kib = *kind.huge_kib;
      if (huge_kib <= 0) {
        report.skip("huge-page-one-fault-per-2mib", "the kernel found no free 2 MiB page: the region got 4 KiB pages");
      } else if (kAddressSanitizer) {
        report.skip("huge-page-one-fault-per-2mib",
                    "built with AddressSanitizer: its shadow memory adds faults of its own (use the release build)");
      } else {
        report.fact(
            "huge-page-one-fault-per-2mib",
            "with transparent huge pages, one fault maps 2 MiB: 1/512 of a fault per 4 KiB page",
            faults > 0 && faults <= 1.0 / 256,
            fmt::format("{} faults per 4 KiB page (1/{}); {} KiB of the region in huge pages (smaps "
                        "AnonHugePages) (holds at 1/256 or fewer)",
                        oslab::format_number(faults), oslab::format_number(faults > 0 ? 1 / faults : 0), huge_kib));
      }
      const oslab::Result& small = *result(report, "anon-write");
      const oslab::Result& huge = *result(report, "thp-write");
      report.verdict("huge-pages-cheaper-to-fault-in",
                     "a huge page costs less to fault in per MiB than 512 small ones: one fault instead of 512, the "
                     "same zeroing",
                     oslab::ratio_of(small.summary, huge.summary), oslab::Compare::above, 1,
                     fmt::format("per 4 KiB page: {} with 4 KiB pages, {} with huge pages",
                                 oslab::format_duration(small.summary.p50), oslab::format_duration(huge.summary.p50)));
    }
  }
};

}  // namespace

int main(int argc, char** argv) {
  oslab::Lab lab({
      .name = "faults",
      .purpose = "page faults kind by kind: anonymous, file from cache and from disk, copy on write, a write to a "
                 "read-only page, huge pages",
      .claim = "The notes on virtual memory: a page is brought in when it is first used (a page fault); a\n"
               "page that must come from the disk costs far more than one already in memory; permissions\n"
               "are enforced page by page. Here each kind of fault is made to happen, counted by the kernel\n"
               "(getrusage) and timed.",
      .explain = "A page fault is the CPU's trap when a page-table entry does not allow an access. The kernel\n"
                 "then decides: a minor fault is resolved from memory (allocate and zero a page, map the shared\n"
                 "zero page, map a page already in the page cache, copy a page); a major fault has to wait for\n"
                 "a disk read; an access the mapping does not allow becomes SIGSEGV.\n\n"
                 "Each kind here is one pass over a fresh region, one byte per 4 KiB page, timed with\n"
                 "CLOCK_MONOTONIC and counted with getrusage; a sample is the pass's time per page:\n"
                 "- anonymous first write: allocate and zero a page, one fault per page;\n"
                 "- anonymous first read: map the shared zero page (one fault), and a write after that read\n"
                 "  faults again to get a page of its own;\n"
                 "- file read from the page cache: fault-around maps the cached neighbours of the page too, so\n"
                 "  one fault maps up to 16 pages (fault_around_bytes, 64 KiB); the lab counts the pages one\n"
                 "  fault mapped in /proc/self/pagemap. That file is written 4 KiB at a time, so the page cache\n"
                 "  holds it in 4 KiB folios; a second one is written in 1 MiB blocks, which a file system\n"
                 "  with large folios (ext4 since Linux 6.16, XFS) caches in large folios. A kernel that maps\n"
                 "  a whole file folio at a fault (recent ones; older ones stop at the 64 KiB window) then\n"
                 "  maps more than fault-around's 16 pages at once (skipped where it does not);\n"
                 "- file read from the disk: the file is dropped from the cache (fdatasync, then\n"
                 "  posix_fadvise(POSIX_FADV_DONTNEED); mincore confirms), so each fault is major. With\n"
                 "  MADV_RANDOM one per page; with the default advice the first fault reads ahead and the\n"
                 "  following pages are found in the cache (minor faults);\n"
                 "- a write to a file mapped MAP_PRIVATE: one fault copies the page (copy on write without a\n"
                 "  fork; oslab-cow shows it after fork);\n"
                 "- a write to a page mapped PROT_READ: SIGSEGV (SEGV_ACCERR, with the address), caught and\n"
                 "  returned from with siglongjmp; the page is unchanged and no fault is counted;\n"
                 "- transparent huge pages: one fault maps 2 MiB, 1/512 of a fault per 4 KiB page.\n"
                 "The table gives each kind per page and per fault, and faults per second: the same shape as\n"
                 "the figures of perf bench or stress-ng, to compare with them.\n\n"
                 "Questions: why does reading anonymous memory first and writing it later cost two faults per\n"
                 "page? Why does read-ahead turn most major faults into minor ones? What does a huge page save,\n"
                 "and what does it cost?",
  });
  const long& size_mib = lab.integer_option("--size", "Region per pass, MiB", {.full = 64, .quick = 8}, 1, 1L << 16);
  const long& disk_mib =
      lab.integer_option("--disk-mib", "File read from the disk per pass, MiB", {.full = 4, .quick = 1}, 1, 1L << 14);
  lab.sampling(
      {.samples = {.full = 30, .quick = 5}, .budget_s = {.full = 0.5, .quick = 0.04}, .warmup = 1, .min_samples = 3});
  std::string dir = ::access("/var/tmp", W_OK) == 0 ? "/var/tmp" : "/tmp";
  lab.cli().add_option("--dir", dir, "Directory (on a disk) for the files")->capture_default_str();

  std::optional<Experiment> experiment;
  auto prepare = [&](oslab::Report& report) {
    if (::access(dir.c_str(), W_OK) != 0)
      throw oslab::UsageError(fmt::format("--dir {}: {}", dir, oslab::describe_errno(errno)));
    if (oslab::kThreadSanitizer)
      throw oslab::SkipError("built with ThreadSanitizer, whose shadow memory adds page faults to every count");
    // Regions of --size and a file as large in the page cache.
    oslab::require_memory_mib(3.0 * static_cast<double>(size_mib) + static_cast<double>(disk_mib),
                              fmt::format("--size {}", size_mib));
    experiment.emplace(
        Experiment{lab, static_cast<size_t>(size_mib) * kMiB, static_cast<size_t>(disk_mib) * kMiB, dir});
    report.params["dir"] = dir;
  };
  return lab.run(
      argc, argv,
      [&](oslab::Report& report) {
        Experiment& e = *experiment;
        e.prepare_files(report);
        e.measure(report);
        e.tables(report);
        e.verdicts(report);
        report.show_results_table = false;
      },
      prepare);
}
