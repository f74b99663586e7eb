// oslab-mmap: mapping files. Two processes share a file through MAP_SHARED and see each other's
// writes; MAP_PRIVATE copies a page when it is written; permissions are the mapping's (mprotect,
// the file's open mode, PROT_EXEC for code at an offset of a file, as the dynamic loader maps a
// library); msync writes dirty pages back; and what mmap costs against read().
//
// Try:     oslab-mmap                        every part, files of 4 KiB .. 64 MiB for the cost
//          oslab-mmap --sizes 4,4096,262144 --iterations 20
// Expect:  MAP_SHARED writes are seen at once by the other process and by read(), without msync;
//          a MAP_PRIVATE mapping sees the file until it writes a page, and its writes never reach
//          the file. A write to a PROT_READ page is SIGSEGV (SEGV_ACCERR); a file opened read-only
//          cannot be mapped shared and writable; code runs only from a PROT_EXEC mapping. msync
//          leaves no dirty page. For a small file read() is cheaper than mmap+munmap.
// Compare: oslab-faults (the faults a mapping takes), oslab-cow (MAP_PRIVATE after fork).

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "memprobe.hpp"
#include "oslab/clock.hpp"
#include "oslab/error.hpp"
#include "oslab/format.hpp"
#include "oslab/handles.hpp"
#include "oslab/lab.hpp"
#include "oslab/machine.hpp"
#include "oslab/measure.hpp"
#include "oslab/process.hpp"
#include "oslab/shared.hpp"

namespace {

using oslab::check_errno;
using oslab::check_errno_ptr;

constexpr size_t kKiB = 1024;

size_t page() {
  return oslab::page_size();
}

// A mapping of a file (or of nothing), unmapped when it goes.
class Map {
 public:
  Map(size_t bytes, int prot, int flags, int fd, off_t offset = 0)
      : bytes_(bytes),
        data_(static_cast<unsigned char*>(
            check_errno_ptr("mmap", ::mmap(nullptr, bytes, prot, flags, fd, offset), MAP_FAILED))) {}
  Map(const Map&) = delete;
  Map& operator=(const Map&) = delete;
  ~Map() { ::munmap(data_, bytes_); }
  unsigned char* data() const { return data_; }
  uint64_t& word(size_t page_index) const { return *reinterpret_cast<uint64_t*>(data_ + page_index * page()); }

 private:
  size_t bytes_;
  unsigned char* data_;
};

uint64_t file_word(int fd, size_t page_index) {
  uint64_t value = 0;
  check_errno("pread", ::pread(fd, &value, sizeof value, static_cast<off_t>(page_index * page())));
  return value;
}

// ---- Two processes and a file ------------------------------------------------------------

// The child's half of a conversation over two pipes: it waits for its turn, does one step,
// and hands the turn back. Async-signal-safe (the lab has threads when it forks).
struct Turns {
  oslab::Pipe to_child = oslab::Pipe::create(), to_parent = oslab::Pipe::create();
  static void give(int fd) noexcept {
    const char token = 1;
    if (::write(fd, &token, 1) != 1) oslab::child_fail("write (turn)", errno);
  }
  static void take_in_child(int fd) noexcept {
    char token = 0;
    ssize_t got;
    do got = ::read(fd, &token, 1);
    while (got < 0 && errno == EINTR);
    if (got != 1) _exit(3);  // the lab is gone
  }
  void child_done() const noexcept { give(to_parent.write_end.get()); }
  void child_waits() const noexcept { take_in_child(to_child.read_end.get()); }
  void parent_done() const { give(to_child.write_end.get()); }
  void parent_waits() const {
    pollfd ready{to_parent.read_end.get(), POLLIN, 0};
    if (check_errno("poll", ::poll(&ready, 1, 10'000)) == 0) throw std::runtime_error("the child did not answer");
    char token = 0;
    if (check_errno("read", ::read(to_parent.read_end.get(), &token, 1)) != 1)
      throw std::runtime_error("the child ended early");
  }
};

constexpr uint64_t kChildWrote = 0xC41D'0000'0000'0001, kParentWrote = 0xFA7E'0000'0000'0002,
                   kParentAgain = 0xFA7E'0000'0000'0003;

struct SharingSeen {
  uint64_t child_saw = 0;           // what the child read where the parent wrote
  uint64_t private_saw_before = 0;  // a MAP_PRIVATE page read before writing it
  uint64_t private_saw_after = 0;   // the same page after the child wrote it and the parent wrote again
  long private_write_faults = 0;    // the child's faults for its first write to that page
};

struct Facts {
  uint64_t parent_saw = 0, file_had = 0, child_saw = 0;
  uint64_t private_saw_before = 0, private_saw_after = 0, file_after_private = 0, shared_after_private = 0;
  long private_write_faults = 0;
};

// Parent and child map the same file (each with its own mmap): page 0 shared both ways; page 1
// mapped MAP_PRIVATE by the child.
Facts two_processes(int fd) {
  const size_t bytes = 4 * page();
  Map shared(bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd);
  Turns turns;
  oslab::Shared<SharingSeen> seen;
  SharingSeen* out = seen.get();
  const Turns& t = turns;
  oslab::Child child = oslab::Child::fork([fd, bytes, out, &t] {
    void* a = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    void* b = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (a == MAP_FAILED || b == MAP_FAILED) oslab::child_fail("mmap", errno);
    auto* mine = static_cast<volatile uint64_t*>(a);
    auto* priv = static_cast<volatile uint64_t*>(b);
    const size_t words = page() / sizeof(uint64_t);
    mine[0] = kChildWrote;  // page 0, through MAP_SHARED
    t.child_done();
    t.child_waits();
    out->child_saw = mine[1 * words];           // page 1: the parent wrote it
    out->private_saw_before = priv[2 * words];  // page 2: the parent wrote it; not yet copied here
    rusage before{}, after{};
    ::getrusage(RUSAGE_SELF, &before);
    priv[2 * words] = kChildWrote;  // the copy
    ::getrusage(RUSAGE_SELF, &after);
    out->private_write_faults = after.ru_minflt - before.ru_minflt;
    t.child_done();
    t.child_waits();
    out->private_saw_after = priv[2 * words];  // the parent has written page 2 again
    t.child_done();
    return 0;
  });
  Facts facts;
  turns.parent_waits();
  facts.parent_saw = shared.word(0);
  facts.file_had = file_word(fd, 0);
  shared.word(1) = kParentWrote;
  shared.word(2) = kParentWrote;
  turns.parent_done();
  turns.parent_waits();
  facts.file_after_private = file_word(fd, 2);
  facts.shared_after_private = shared.word(2);
  shared.word(2) = kParentAgain;
  turns.parent_done();
  turns.parent_waits();
  child.wait_success(std::chrono::seconds(10), "the child mapping the file");
  facts.child_saw = seen->child_saw;
  facts.private_saw_before = seen->private_saw_before;
  facts.private_saw_after = seen->private_saw_after;
  facts.private_write_faults = seen->private_write_faults;
  return facts;
}

// ---- Permissions -------------------------------------------------------------------------

// A function that returns 42, as machine code.
#if defined(__x86_64__)
const unsigned char kReturn42[] = {0xb8, 0x2a, 0x00, 0x00, 0x00, 0xc3};  // mov eax, 42; ret
#elif defined(__aarch64__)
const unsigned char kReturn42[] = {0x40, 0x05, 0x80, 0x52, 0xc0, 0x03, 0x5f, 0xd6};  // mov w0, #42; ret
#endif

struct Permissions {
  oslab::memory::Access write_read_only, read_none, read_unmapped;
  int shared_writable_of_read_only_errno = 0;  // mmap(PROT_WRITE, MAP_SHARED) of an O_RDONLY fd
  bool private_writable_of_read_only = false;  // the same with MAP_PRIVATE
  int mprotect_write_errno = 0;                // mprotect(PROT_WRITE) of a shared read-only-file mapping
  bool exec_tried = false;
  std::string exec_why_not;
  oslab::memory::Access call_exec, call_no_exec;
  int returned = 0;
};

Permissions permissions(int fd) {
  Permissions p;
  {
    Map region(2 * page(), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
    region.data()[0] = 1;
    check_errno("mprotect", ::mprotect(region.data(), page(), PROT_READ));
    p.write_read_only = oslab::memory::try_write(region.data(), 2);
    check_errno("mprotect", ::mprotect(region.data(), page(), PROT_NONE));
    unsigned char value = 0;
    p.read_none = oslab::memory::try_read(region.data(), &value);
    check_errno("munmap", ::munmap(region.data() + page(), page()));  // a hole the kernel knows nothing of
    p.read_unmapped = oslab::memory::try_read(region.data() + page(), &value);
  }  // munmap of the two pages, hole included, is fine
  // The same file, opened again read-only.
  oslab::UniqueFd read_only(check_errno("open /proc/self/fd/N O_RDONLY",
                                        ::open(fmt::format("/proc/self/fd/{}", fd).c_str(), O_RDONLY | O_CLOEXEC)));
  void* attempt = ::mmap(nullptr, page(), PROT_READ | PROT_WRITE, MAP_SHARED, read_only.get(), 0);
  if (attempt == MAP_FAILED)
    p.shared_writable_of_read_only_errno = errno;
  else
    ::munmap(attempt, page());
  attempt = ::mmap(nullptr, page(), PROT_READ | PROT_WRITE, MAP_PRIVATE, read_only.get(), 0);
  p.private_writable_of_read_only = attempt != MAP_FAILED;
  if (attempt != MAP_FAILED) ::munmap(attempt, page());
  {
    Map shared(page(), PROT_READ, MAP_SHARED, read_only.get());
    if (::mprotect(shared.data(), page(), PROT_READ | PROT_WRITE) != 0) p.mprotect_write_errno = errno;
  }
#if defined(__x86_64__) || defined(__aarch64__)
  // Code at an offset of a file, mapped executable there: how the loader maps a library's text.
  oslab::UniqueFd code(static_cast<int>(::memfd_create("oslab-mmap-code", MFD_CLOEXEC)));
  if (!code.valid()) {
    p.exec_why_not = "memfd_create: " + oslab::describe_errno(errno);
    return p;
  }
  check_errno("ftruncate", ::ftruncate(code.get(), static_cast<off_t>(2 * page())));
  check_errno("pwrite", ::pwrite(code.get(), kReturn42, sizeof kReturn42, static_cast<off_t>(page())));
  void* text = ::mmap(nullptr, page(), PROT_READ | PROT_EXEC, MAP_PRIVATE, code.get(), static_cast<off_t>(page()));
  if (text == MAP_FAILED) {
    p.exec_why_not = "mmap(PROT_EXEC) of a memfd: " + oslab::describe_errno(errno);
    return p;
  }
  __builtin___clear_cache(static_cast<char*>(text), static_cast<char*>(text) + sizeof kReturn42);
  p.exec_tried = true;
  p.call_exec = oslab::memory::try_call(text, &p.returned);
  ::munmap(text, page());
  Map data(page(), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
  std::memcpy(data.data(), kReturn42, sizeof kReturn42);
  int ignored = 0;
  p.call_no_exec = oslab::memory::try_call(data.data(), &ignored);
#else
  p.exec_why_not = "no machine code for this architecture in the lab";
#endif
  return p;
}

// ---- msync ---------------------------------------------------------------------------------

long dirty_kib(const void* address) {
  const auto entry = oslab::memory::smaps_of(::getpid(), address);
  return entry.field("Shared_Dirty") + entry.field("Private_Dirty");
}

struct Msync {
  long pages = 0;
  long dirty_before_kib = 0, dirty_after_kib = 0;
  bool visible_before = true;  // pread saw every write before msync
  std::vector<double> dirty_ns, clean_ns;
};

Msync msync_pages(int fd, long pages, int rounds) {
  Msync m;
  m.pages = pages;
  const size_t bytes = static_cast<size_t>(pages) * page();
  check_errno("ftruncate", ::ftruncate(fd, static_cast<off_t>(bytes)));
  Map map(bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd);
  for (int round = 0; round < rounds; ++round) {
    for (long i = 0; i < pages; ++i) map.word(static_cast<size_t>(i)) = static_cast<uint64_t>(round * pages + i);
    for (long i = 0; i < pages; ++i)
      m.visible_before =
          m.visible_before && file_word(fd, static_cast<size_t>(i)) == static_cast<uint64_t>(round * pages + i);
    if (round == 0) m.dirty_before_kib = dirty_kib(map.data());
    int64_t t0 = oslab::now_ns();
    check_errno("msync(MS_SYNC)", ::msync(map.data(), bytes, MS_SYNC));
    m.dirty_ns.push_back(static_cast<double>(oslab::now_ns() - t0));
    if (round == 0) m.dirty_after_kib = dirty_kib(map.data());
    t0 = oslab::now_ns();
    check_errno("msync(MS_SYNC)", ::msync(map.data(), bytes, MS_SYNC));
    m.clean_ns.push_back(static_cast<double>(oslab::now_ns() - t0));
  }
  return m;
}

// ---- mmap against read() -------------------------------------------------------------------

uint64_t sum_words(const unsigned char* data, size_t bytes) {
  uint64_t sum = 0;
  for (size_t at = 0; at < bytes; at += sizeof(uint64_t)) sum += *reinterpret_cast<const uint64_t*>(data + at);
  return sum;
}

enum class Method { read, mmap, mmap_populate };
const char* name_of(Method method) {
  switch (method) {
    case Method::read: return "read()";
    case Method::mmap: return "mmap+munmap";
    case Method::mmap_populate: return "mmap(MAP_POPULATE)+munmap";
  }
  return "?";
}
const char* what_of(Method method) {
  switch (method) {
    case Method::read:
      return "pread() of the whole file (in the page cache) into a buffer, then a sum of its 8-byte words";
    case Method::mmap:
      return "mmap(MAP_SHARED, PROT_READ) of the whole file (in the page cache), a sum of its 8-byte words "
             "(faulting the pages in), munmap()";
    case Method::mmap_populate: return "the same with MAP_POPULATE: mmap maps every page before returning";
  }
  return "?";
}

struct Experiment {
  const oslab::Lab& lab;
  std::string dir;
  std::vector<long> sizes_kib;
  std::optional<Facts> facts = {};
  std::optional<Permissions> perms = {};
  std::optional<Msync> synced = {};
  std::vector<std::string> libc_maps = {};

  void sharing() {
    oslab::UniqueFd file = oslab::memory::temporary_file(dir, 4 * page());
    facts = two_processes(file.get());
  }

  void protection() {
    oslab::UniqueFd file = oslab::memory::temporary_file(dir, 4 * page());
    perms = permissions(file.get());
    for (const char* name : {"/libc.so", "/libc-"}) {
      libc_maps = oslab::memory::mappings_of_file(name);
      if (!libc_maps.empty()) break;
    }
  }

  void sync(oslab::Report& report) {
    oslab::UniqueFd file = oslab::memory::temporary_file(dir, page());
    if (const std::string fs = oslab::memory::memory_file_system(file.get()); !fs.empty())
      throw oslab::SkipError(fmt::format("--dir {} is {}: there is no disk to write back to", dir, fs));
    synced = msync_pages(file.get(), 256, lab.iterations(10, 3));
    report.add_samples("msync(MS_SYNC), dirty", {{"pages", synced->pages}}, synced->dirty_ns,
                       {.what = "msync(MS_SYNC) of a 1 MiB MAP_SHARED mapping whose 256 pages were all just written: "
                                "they are written to the disk before it returns"});
    report.add_samples("msync(MS_SYNC), clean", {{"pages", synced->pages}}, synced->clean_ns,
                       {.what = "the same right after, with nothing dirty: what is left is the file system's sync of "
                                "the range (a journal commit, a flush of the disk's cache, as it decides)"});
  }

  void cost(oslab::Report& report) {
    const size_t largest = static_cast<size_t>(*std::max_element(sizes_kib.begin(), sizes_kib.end())) * kKiB;
    oslab::UniqueFd file = oslab::memory::temporary_file(dir, largest);
    std::vector<uint64_t> pattern(kKiB * kKiB / sizeof(uint64_t));
    for (size_t i = 0; i < pattern.size(); ++i) pattern[i] = i * 2654435761u;
    for (size_t at = 0; at < largest; at += kKiB * kKiB)
      check_errno("pwrite",
                  ::pwrite(file.get(), pattern.data(), std::min(kKiB * kKiB, largest - at), static_cast<off_t>(at)));
    std::vector<unsigned char> buffer(largest);
    std::fill(buffer.begin(), buffer.end(), 0);  // faulted in before it is timed
    struct Case {
      size_t bytes;
      Method method;
      uint64_t expected;
      int64_t batch;
    };
    std::vector<Case> cases;
    for (long kib : sizes_kib) {
      const size_t bytes = static_cast<size_t>(kib) * kKiB;
      std::vector<unsigned char> head(bytes);
      check_errno("pread", ::pread(file.get(), head.data(), bytes, 0));
      const uint64_t expected = sum_words(head.data(), bytes);
      const int64_t batch = std::max<int64_t>(1, static_cast<int64_t>((kKiB * kKiB) / bytes));
      for (Method method : {Method::read, Method::mmap, Method::mmap_populate})
        cases.push_back({bytes, method, expected, batch});
    }
    const int fd = file.get();
    uint64_t wrong = 0;
    auto once = [&](const Case& c) {
      uint64_t sum = 0;
      if (c.method == Method::read) {
        check_errno("pread", ::pread(fd, buffer.data(), c.bytes, 0));
        sum = sum_words(buffer.data(), c.bytes);
      } else {
        Map map(c.bytes, PROT_READ, MAP_SHARED | (c.method == Method::mmap_populate ? MAP_POPULATE : 0), fd);
        sum = sum_words(map.data(), c.bytes);
      }
      wrong += sum != c.expected;
    };
    oslab::Interleaver interleaver(lab.plan(), cases.size());
    interleaver.run([&](size_t index, int samples, oslab::Measurement& into) {
      const Case& c = cases[index];
      std::vector<double> per_op;
      const oslab::Counters before = oslab::read_counters(RUSAGE_SELF);
      for (int s = 0; s < samples; ++s) {
        const int64_t t0 = oslab::now_ns();
        for (int64_t b = 0; b < c.batch; ++b) once(c);
        per_op.push_back(static_cast<double>(oslab::now_ns() - t0) / static_cast<double>(c.batch));
      }
      into.add_block(per_op, oslab::read_counters(RUSAGE_SELF) - before, {}, c.batch);
    });
    if (wrong != 0) throw std::runtime_error(fmt::format("{} passes summed the file wrongly", wrong));
    for (size_t i = 0; i < cases.size(); ++i)
      report.add(
          name_of(cases[i].method), {{"size_kib", cases[i].bytes / kKiB}}, interleaver.measurements()[i],
          {.what = std::string(what_of(cases[i].method)) +
                   (cases[i].batch > 1 ? fmt::format("; a sample is the mean of {} in a row", cases[i].batch) : ""),
           .headline = cases[i].bytes == static_cast<size_t>(sizes_kib.front()) * kKiB});
  }

  void tables(oslab::Report& report) const {
    oslab::Table table{"mmap against read(): a whole file in the page cache, used once (medians)",
                       {"size", "read()", "mmap+munmap", "faults", "MAP_POPULATE", "mmap / read"},
                       {},
                       "each: get the file's bytes and sum them as 8-byte words; faults: minor faults per mmap pass "
                       "(fault-around or whole folios map several pages per fault)",
                       1};
    for (long kib : sizes_kib) {
      const nlohmann::json at = {{"size_kib", kib}};
      const oslab::Result *read = report.find("read()", at), *mapped = report.find("mmap+munmap", at),
                          *populated = report.find("mmap(MAP_POPULATE)+munmap", at);
      if (!read || !mapped || !populated) continue;
      table.rows.push_back({kib >= 1024 ? fmt::format("{} MiB", kib / 1024) : fmt::format("{} KiB", kib),
                            oslab::format_duration(read->summary.p50), oslab::format_duration(mapped->summary.p50),
                            oslab::format_number(mapped->counters.at("minor_faults")),
                            oslab::format_duration(populated->summary.p50),
                            fmt::format("{:.2f}x", mapped->summary.p50 / read->summary.p50)});
    }
    if (!table.rows.empty()) report.table(table);
    if (!libc_maps.empty()) {
      oslab::Table maps{"How the C library is mapped into this process (/proc/self/maps)", {"mapping"}, {}, "", 1};
      for (const auto& line : libc_maps) maps.rows.push_back({line});
      maps.footnote = "address range, permissions (r/w/x, p = private), offset in the file, device, inode, path";
      report.table(maps);
    }
  }

  void verdicts(oslab::Report& report) const {
    if (facts) {
      const Facts& f = *facts;
      report.fact("map-shared-is-shared",
                  "two processes that map one file MAP_SHARED see each other's writes at once, and so does read()",
                  f.parent_saw == kChildWrote && f.file_had == kChildWrote && f.child_saw == kParentWrote,
                  fmt::format("the child's write: the parent's mapping read {:#x}, pread() {:#x}; the parent's write: "
                              "the child read {:#x} (written {:#x} and {:#x}; no msync anywhere)",
                              f.parent_saw, f.file_had, f.child_saw, kChildWrote, kParentWrote));
      report.fact("map-private-copies-on-write",
                  "a MAP_PRIVATE mapping sees the file until it writes a page; the write copies that page (one "
                  "fault) and reaches neither the file nor the other mappings, and later changes to the file no "
                  "longer show in it",
                  f.private_saw_before == kParentWrote && f.file_after_private == kParentWrote &&
                      f.shared_after_private == kParentWrote && f.private_saw_after == kChildWrote &&
                      f.private_write_faults == 1,
                  fmt::format("before writing, the child's private page read {:#x} (the parent's write); after its "
                              "write of {:#x} ({} fault), the file held {:#x} and the parent's mapping {:#x}; after "
                              "the parent wrote {:#x}, the private page still read {:#x}",
                              f.private_saw_before, kChildWrote, f.private_write_faults, f.file_after_private,
                              f.shared_after_private, kParentAgain, f.private_saw_after));
    }
    if (perms) {
      const Permissions& p = *perms;
      const auto is = [](const oslab::memory::Access& a, int code) {
        return a.faulted && a.signal == SIGSEGV && a.code == code;
      };
      report.fact(
          "protection-is-per-page",
          "an access the page's protection does not allow is SIGSEGV with SEGV_ACCERR; an address with "
          "nothing mapped is SEGV_MAPERR",
          is(p.write_read_only, SEGV_ACCERR) && is(p.read_none, SEGV_ACCERR) && is(p.read_unmapped, SEGV_MAPERR),
          fmt::format("write to PROT_READ: {}; read of PROT_NONE: {}; read of an unmapped page: {}",
                      p.write_read_only.describe(), p.read_none.describe(), p.read_unmapped.describe()));
      report.fact(
          "open-mode-limits-the-mapping",
          "a file opened read-only cannot be mapped shared and writable (nor made so by mprotect); a private "
          "writable mapping is allowed, since its writes never reach the file",
          p.shared_writable_of_read_only_errno == EACCES && p.mprotect_write_errno == EACCES &&
              p.private_writable_of_read_only,
          fmt::format("mmap(PROT_WRITE, MAP_SHARED): {}; mprotect(PROT_WRITE) of a shared read-only "
                      "mapping: {}; mmap(PROT_WRITE, MAP_PRIVATE): {}",
                      p.shared_writable_of_read_only_errno ? oslab::describe_errno(p.shared_writable_of_read_only_errno)
                                                           : "allowed",
                      p.mprotect_write_errno ? oslab::describe_errno(p.mprotect_write_errno) : "allowed",
                      p.private_writable_of_read_only ? "allowed" : "refused"));
      if (p.exec_tried) {
        report.fact("execute-through-a-mapping",
                    "code runs from a page only if it is mapped PROT_EXEC: the same bytes at an offset of a file "
                    "mapped PROT_READ|PROT_EXEC there run, and in a PROT_READ|PROT_WRITE page they fault",
                    !p.call_exec.faulted && p.returned == 42 && is(p.call_no_exec, SEGV_ACCERR),
                    fmt::format("a call into page 1 of a memfd mapped at offset {} with PROT_EXEC returned {} ({}); "
                                "into an anonymous PROT_READ|PROT_WRITE copy: {}",
                                page(), p.returned, p.call_exec.describe(), p.call_no_exec.describe()));
      } else {
        report.skip("execute-through-a-mapping", p.exec_why_not);
      }
      if (!libc_maps.empty()) {
        std::set<std::string> offsets;
        bool code = false, data = false;
        for (const auto& line : libc_maps) {
          std::istringstream fields(line);
          std::string range, perms_field, offset;
          fields >> range >> perms_field >> offset;
          offsets.insert(offset);
          code = code || perms_field.find('x') != std::string::npos;
          data = data || perms_field.find('x') == std::string::npos;
        }
        report.fact("library-mapped-by-offset",
                    "a shared library is one file mapped several times, each part at its offset with its own "
                    "permissions: code executable, data not",
                    code && data && offsets.size() >= 2,
                    fmt::format("the C library: {} mappings at {} offsets, {} executable, {} not (table above)",
                                libc_maps.size(), offsets.size(), code ? "some" : "none", data ? "some" : "none"));
      }
    }
    if (synced) {
      const Msync& m = *synced;
      report.fact("msync-writes-back",
                  "writes through MAP_SHARED are visible to read() at once, msync or not; msync(MS_SYNC) is for the "
                  "disk: it writes the dirty pages back, and none is dirty after it",
                  m.visible_before && m.dirty_before_kib >= m.pages * static_cast<long>(page() / 1024) &&
                      m.dirty_after_kib == 0,
                  fmt::format("pread() saw every write before msync: {}; dirty before msync {} KiB (smaps), after {} "
                              "KiB",
                              m.visible_before ? "yes" : "no", m.dirty_before_kib, m.dirty_after_kib));
    }
    const nlohmann::json smallest = {{"size_kib", sizes_kib.front()}};
    const oslab::Result *read = report.find("read()", smallest), *mapped = report.find("mmap+munmap", smallest);
    if (read && mapped)
      report.verdict(
          "read-beats-mmap-for-small-files",
          "for a small file, read() costs less than mmap+munmap: mapping has a fixed cost (a VMA to "
          "create and tear down, a fault, a TLB flush) that copying a few KiB does not",
          oslab::ratio_of(mapped->summary, read->summary), oslab::Compare::above, 1,
          fmt::format("{} KiB: mmap+munmap {}, read() {}", sizes_kib.front(),
                      oslab::format_duration(mapped->summary.p50), oslab::format_duration(read->summary.p50)));
  }
};

}  // namespace

int main(int argc, char** argv) {
  oslab::Lab lab({
      .name = "mmap",
      .purpose = "mapping files: MAP_SHARED between processes, MAP_PRIVATE copies, permissions and PROT_EXEC, msync, "
                 "and mmap against read()",
      .claim = "The notes: \"The kernel can use mapping to organize file permissions, such as allowing\n"
               "execute permissions through an offset. This also works for sharing if the kernel maps two\n"
               "processes to the same location that maps back to one file on disk.\"",
      .explain = "mmap makes part of a file part of the address space: its pages are the page cache's pages.\n"
                 "With MAP_SHARED, two processes that map one file map the same physical pages, so a write by\n"
                 "one is seen by the other at once, and by read(), which copies from the same page cache; the\n"
                 "lab shows it with a parent and a child that each mmap the file. With MAP_PRIVATE a process\n"
                 "sees the file's pages until it writes one; the write faults and the kernel gives it a copy\n"
                 "of that page (copy on write), which nobody else sees and which no longer follows the file.\n\n"
                 "Permissions belong to the mapping, page by page: PROT_READ, PROT_WRITE, PROT_EXEC, changed\n"
                 "with mprotect. An access they do not allow is SIGSEGV with si_code SEGV_ACCERR (SEGV_MAPERR\n"
                 "when nothing is mapped there). They are bounded by the file's open mode: a file opened\n"
                 "read-only cannot be mapped MAP_SHARED and writable, while MAP_PRIVATE writable is fine\n"
                 "(the writes stay private). Execute permission too is the mapping's: the dynamic loader\n"
                 "maps a library's code at its offset in the file with PROT_READ|PROT_EXEC and its data at\n"
                 "another offset without it; the lab does the same with six bytes of machine code at offset\n"
                 "4096 of a memfd, calls them, and shows the table of the C library's own mappings.\n\n"
                 "msync(MS_SYNC) writes a shared mapping's dirty pages to the disk; it is not needed for\n"
                 "other processes to see the writes. /proc/self/smaps counts the dirty pages before and after.\n\n"
                 "Last, the cost of getting a whole file that is in the page cache: read() into a buffer,\n"
                 "against mmap, touching every page (faults, each mapping several pages), and munmap (which\n"
                 "also flushes the TLB), and MAP_POPULATE, which maps all pages inside mmap.\n\n"
                 "Questions: why does a MAP_PRIVATE page stop following the file once written? Why is mmap\n"
                 "dearer than read() for 4 KiB? What does a JIT compiler need from mmap and mprotect?",
  });
  const auto& sizes = lab.list_option("--sizes", "File sizes for mmap against read(), KiB",
                                      {.full = {4, 64, 1024, 16384, 65536}, .quick = {4, 64, 1024}}, 4, 1L << 20);
  lab.sampling(
      {.samples = {.full = 50, .quick = 8}, .budget_s = {.full = 0.4, .quick = 0.05}, .warmup = 2, .min_samples = 5});
  std::string dir = ::access("/var/tmp", W_OK) == 0 ? "/var/tmp" : "/tmp";
  lab.cli().add_option("--dir", dir, "Directory for the files")->capture_default_str();

  std::optional<Experiment> experiment;
  auto prepare = [&](oslab::Report& report) {
    if (::access(dir.c_str(), W_OK) != 0)
      throw oslab::UsageError(fmt::format("--dir {}: {}", dir, oslab::describe_errno(errno)));
    for (long kib : sizes)
      if (kib % static_cast<long>(page() / kKiB) != 0)
        throw oslab::UsageError(fmt::format("--sizes: {} KiB is not a whole number of pages", kib));
    const double largest_mib = static_cast<double>(*std::max_element(sizes.begin(), sizes.end())) / 1024;
    oslab::require_memory_mib(3 * largest_mib, "--sizes");  // the file's cache, the buffer, a mapping
    std::vector<long> ascending = sizes;
    std::sort(ascending.begin(), ascending.end());
    ascending.erase(std::unique(ascending.begin(), ascending.end()), ascending.end());
    experiment.emplace(Experiment{lab, dir, ascending});
    report.params["dir"] = dir;
  };
  return lab.run(
      argc, argv,
      [&](oslab::Report& report) {
        Experiment& e = *experiment;
        report.run_case("MAP_SHARED and MAP_PRIVATE between two processes", [&] { e.sharing(); });
        report.run_case("permissions", [&] { e.protection(); });
        report.run_case("msync", [&] { e.sync(report); });
        report.run_case("mmap against read()", [&] { e.cost(report); });
        e.tables(report);
        e.verdicts(report);
        report.show_results_table = false;
      },
      prepare);
}
