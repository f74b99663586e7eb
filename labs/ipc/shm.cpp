// oslab-shm: shared memory between two processes, System V and POSIX, seen from the outside
// (what ipcs and /dev/shm show) and from the inside (a counter two processes increment),
// including why it needs a semaphore.
//
// Try:     oslab-shm
//          oslab-shm --increments 1000000 --placement two-cpus
// Expect:  a forked child shares the parent's attachment (ipcs: nattch 2); IPC_RMID while
//          attached marks the segment 'dest' and it lives on until the last detach; shm_unlink
//          removes the name from /dev/shm while both processes keep using the memory. Two
//          processes that increment one counter without a lock lose updates on two CPUs; with a
//          semaphore they lose none, at a price: semop() is a system call every time.
// Compare: oslab-ipc (shared memory as a transport, against pipes and sockets), oslab-cow
//          (private memory after fork: copied on write, not shared).

#include <fcntl.h>
#include <semaphore.h>
#include <sys/mman.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <optional>
#include <sstream>

#include <fmt/format.h>

#include "oslab/error.hpp"
#include "oslab/format.hpp"
#include "oslab/ipc.hpp"
#include "oslab/lab.hpp"
#include "oslab/parties.hpp"
#include "oslab/process.hpp"
#include "oslab/shared.hpp"

namespace {

using oslab::check_errno;
using oslab::check_errno_ptr;
using oslab::Placement;

constexpr uint64_t kFromChild = 0xC41D'0001, kAfterRemove = 0xC41D'0002;

// The line /proc/sysvipc/shm has for a segment: what `ipcs -m` reads.
struct IpcsLine {
  std::string key, perms;
  long size = 0, nattch = -1;
  bool found = false;
};

IpcsLine ipcs_line(int id) {
  std::ifstream table("/proc/sysvipc/shm");
  std::string line;
  std::getline(table, line);
  while (std::getline(table, line)) {
    std::istringstream fields(line);
    IpcsLine entry;
    long shmid = -1, cpid, lpid;
    fields >> entry.key >> shmid >> entry.perms >> entry.size >> cpid >> lpid >> entry.nattch;
    if (shmid == id) {
      entry.found = true;
      return entry;
    }
  }
  return {};
}

// As ipcs -m writes it: key in hex, perms in octal, "dest" when marked for destruction.
std::vector<std::string> ipcs_row(const std::string& moment, int id) {
  const IpcsLine e = ipcs_line(id);
  if (!e.found) return {moment, "(gone)", "", "", "", "", ""};
  const long perms = std::stol(e.perms, nullptr, 8);
  return {moment,
          fmt::format("{:#010x}", std::stoul(e.key)),
          std::to_string(id),
          fmt::format("{:o}", perms & 0777),
          std::to_string(e.size),
          std::to_string(e.nattch),
          (perms & SHM_DEST) ? "dest" : ""};
}

// A child that does one thing when told (over a pipe) and reports when done.
class Helper {
 public:
  explicit Helper(const std::function<void(int step)>& act) : go_(oslab::Pipe::create()), done_(oslab::Pipe::create()) {
    child_ = oslab::Child::fork([this, act] {
      go_.write_end.reset();  // so that the parent's close is an end of file here
      done_.read_end.reset();
      for (int step = 0;; ++step) {
        char byte;
        if (::read(go_.read_end.get(), &byte, 1) != 1) return 0;
        act(step);
        if (::write(done_.write_end.get(), &byte, 1) != 1) return 1;
      }
    });
  }
  void step() {
    char byte = 's';
    check_errno("write", ::write(go_.write_end.get(), &byte, 1));
    if (check_errno("read", ::read(done_.read_end.get(), &byte, 1)) != 1)
      throw std::runtime_error("the helper child ended early");
  }
  void finish() {
    go_.write_end.reset();
    child_.wait_success(std::chrono::seconds(10), "helper child");
  }

 private:
  oslab::Pipe go_, done_;
  oslab::Child child_;
};

// Whether an unprivileged user (nobody) may open what mode 0600 protects.
std::optional<int> errno_as_nobody(const std::function<int()>& attempt) {
  if (::geteuid() != 0) return std::nullopt;
  oslab::Pipe result = oslab::Pipe::create();
  oslab::Child child = oslab::Child::fork([&] {
    int error = 0;
    if (::setresgid(65534, 65534, 65534) == -1 || ::setresuid(65534, 65534, 65534) == -1)
      error = -1;
    else
      error = attempt() == -1 ? errno : 0;
    return ::write(result.write_end.get(), &error, sizeof error) == sizeof error ? 0 : 1;
  });
  child.wait_success(std::chrono::seconds(10), "unprivileged child");
  int error = 0;
  if (::read(result.read_end.get(), &error, sizeof error) != sizeof error || error == -1) return std::nullopt;
  return error;
}

struct Experiment {
  const oslab::Lab& lab;
  long plain_increments, locked_increments;

  // ---- System V ----

  void system_v(oslab::Report& report) {
    const size_t bytes = oslab::page_size();
    std::optional<oslab::SysvShm> segment(oslab::SysvShm::create(bytes));
    const int id = segment->id();
    auto* word = static_cast<volatile uint64_t*>(segment->data());
    *word = 0;
    oslab::Table ipcs{"What ipcs -m shows for the System V segment (from /proc/sysvipc/shm)",
                      {"moment", "key", "shmid", "perms", "bytes", "nattch", "status"},
                      {},
                      "",
                      1};
    ipcs.rows.push_back(ipcs_row("after shmget + shmat", id));
    shmid_ds state{};
    check_errno("shmctl(IPC_STAT)", ::shmctl(id, IPC_STAT, &state));
    const bool private_0600 = (state.shm_perm.mode & 0777) == 0600 && state.shm_perm.__key == IPC_PRIVATE &&
                              state.shm_cpid == ::getpid() && state.shm_segsz == bytes && state.shm_nattch == 1;
    report.fact("sysv-private-0600",
                "shmget(IPC_PRIVATE, ..., 0600) makes a segment with key 0, mode 0600, this "
                "process as creator, attached once",
                private_0600,
                fmt::format("IPC_STAT: key {:#x}, mode {:o}, size {}, creator pid {} (this process {}), nattch {}",
                            state.shm_perm.__key, state.shm_perm.mode & 0777, state.shm_segsz, state.shm_cpid,
                            ::getpid(), state.shm_nattch));
    if (auto error = errno_as_nobody([&] { return ::shmat(id, nullptr, 0) == reinterpret_cast<void*>(-1) ? -1 : 0; }))
      report.fact("sysv-permissions", "another user cannot attach a 0600 segment", *error == EACCES,
                  fmt::format("shmat as uid 65534: {}", *error ? oslab::describe_errno(*error) : "succeeded"));
    else
      report.skip("another user cannot attach a 0600 segment", "needs root, to switch to an unprivileged user");

    // A forked child inherits the attachment; it writes, the parent reads.
    Helper child([&](int step) { *word = step == 0 ? kFromChild : kAfterRemove; });
    check_errno("shmctl(IPC_STAT)", ::shmctl(id, IPC_STAT, &state));
    ipcs.rows.push_back(ipcs_row("a forked child attached too", id));
    report.fact("sysv-fork-shares-attachment", "a forked child shares the segment: ipcs counts two attachments",
                state.shm_nattch == 2, fmt::format("shm_nattch {} with the child alive", state.shm_nattch));
    child.step();
    const uint64_t seen = *word;
    report.fact("sysv-shared", "what the child writes, the parent reads: the same physical page", seen == kFromChild,
                fmt::format("the child wrote {:#x}; the parent read {:#x}", kFromChild, seen));

    // IPC_RMID while attached: marked, still usable, gone after the last detach.
    segment->remove();
    ipcs.rows.push_back(ipcs_row("after IPC_RMID, still attached", id));
    const IpcsLine marked = ipcs_line(id);
    child.step();
    const uint64_t after = *word;
    const bool dest = marked.found && (std::stol(marked.perms, nullptr, 8) & SHM_DEST) != 0;
    report.fact("sysv-rmid-while-attached",
                "IPC_RMID while attached marks the segment for destruction ('dest'), and it keeps working",
                dest && after == kAfterRemove,
                fmt::format("after IPC_RMID: listed {}, status {}; the child wrote {:#x} and the parent read {:#x}",
                            marked.found ? "yes" : "no", dest ? "dest" : "not dest", kAfterRemove, after));
    child.finish();
    ipcs.rows.push_back(ipcs_row("the child exited (detached)", id));
    segment.reset();  // shmdt: the last attachment
    ipcs.rows.push_back(ipcs_row("the parent detached (shmdt)", id));
    const bool gone = ::shmctl(id, IPC_STAT, &state) == -1 && (errno == EINVAL || errno == EIDRM);
    report.fact("sysv-gone-after-last-detach", "after the last detach a removed segment is gone", gone,
                fmt::format("shmctl(IPC_STAT) after the last shmdt: {}",
                            gone ? oslab::describe_errno(errno) : "it still answers"));
    ipcs.footnote = "key 0 is IPC_PRIVATE. perms are the mode bits; 'dest': removed (IPC_RMID) but still attached.";
    report.table(ipcs);
  }

  // ---- POSIX ----

  void posix(oslab::Report& report) {
    const size_t bytes = oslab::page_size();
    oslab::PosixShm shm = oslab::PosixShm::create("shm", bytes);
    const std::string path = "/dev/shm" + shm.name.name();
    void* address = check_errno_ptr("mmap", ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, shm.fd.get(), 0),
                                    MAP_FAILED);
    struct Unmap {
      void* address;
      size_t bytes;
      ~Unmap() { ::munmap(address, bytes); }
    } unmap{address, bytes};
    auto* word = static_cast<volatile uint64_t*>(address);
    *word = 0;
    oslab::Table listing{"What /dev/shm shows for the POSIX object", {"moment", "entry", "mode", "bytes"}, {}, "", 1};
    auto list = [&](const std::string& moment) {
      struct stat st {};
      if (::stat(path.c_str(), &st) == 0)
        listing.rows.push_back({moment, path, fmt::format("{:o}", st.st_mode & 0777), std::to_string(st.st_size)});
      else
        listing.rows.push_back({moment, path + " (absent)", "", ""});
      return st;
    };
    const struct stat created = list("after shm_open + ftruncate");
    report.fact("posix-named-0600", "shm_open(O_CREAT | O_EXCL, 0600) + ftruncate makes a file in /dev/shm, mode 0600",
                (created.st_mode & 0777) == 0600 && created.st_size == static_cast<off_t>(bytes),
                fmt::format("{}: mode {:o}, {} bytes", path, created.st_mode & 0777, created.st_size));
    if (auto error = errno_as_nobody([&] { return ::shm_open(shm.name.name().c_str(), O_RDWR, 0); }))
      report.fact("posix-permissions", "another user cannot open a 0600 object", *error == EACCES,
                  fmt::format("shm_open as uid 65534: {}", *error ? oslab::describe_errno(*error) : "succeeded"));
    else
      report.skip("another user cannot open a 0600 object", "needs root, to switch to an unprivileged user");

    // The child opens the object by its name, as an unrelated process would, and maps it.
    const std::string name = shm.name.name();
    Helper child([&, mapped = static_cast<volatile uint64_t*>(nullptr)](int step) mutable {
      if (mapped == nullptr) {
        const int fd = ::shm_open(name.c_str(), O_RDWR, 0);
        if (fd == -1) oslab::child_fail("shm_open", errno, 1);
        void* its = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (its == MAP_FAILED) oslab::child_fail("mmap", errno, 1);
        ::close(fd);
        mapped = static_cast<volatile uint64_t*>(its);
      }
      *mapped = step == 0 ? kFromChild : kAfterRemove;
    });
    child.step();
    const uint64_t seen = *word;
    report.fact("posix-shared", "a process that opens the name and maps it shares the memory", seen == kFromChild,
                fmt::format("the child (shm_open by name, mmap) wrote {:#x}; the parent read {:#x}", kFromChild, seen));
    shm.name.unlink();
    list("after shm_unlink, both still mapped");
    child.step();
    const uint64_t after = *word;
    const bool reopen_fails = ::shm_open(name.c_str(), O_RDWR, 0) == -1 && errno == ENOENT;
    struct stat st {};
    report.fact("posix-unlink-while-mapped",
                "shm_unlink removes the name at once; the memory lives on while mapped, and nobody new can open it",
                ::stat(path.c_str(), &st) == -1 && after == kAfterRemove && reopen_fails,
                fmt::format("after shm_unlink: {} {}; the child wrote {:#x}, the parent read {:#x}; shm_open of the "
                            "name: {}",
                            path, ::stat(path.c_str(), &st) == -1 ? "is gone" : "still exists", kAfterRemove, after,
                            reopen_fails ? "ENOENT" : "succeeded"));
    child.finish();
    listing.footnote = "A POSIX shared memory object is a file in a tmpfs (/dev/shm); its name is the file's name.";
    report.table(listing);
  }

  // ---- A shared counter ----

  enum class Lock { none, posix_semaphore, sysv_semaphore };

  struct Counter {
    std::atomic<uint32_t> arrived{0};
    alignas(64) volatile uint64_t value = 0;
    alignas(64) sem_t semaphore;
  };

  // Two processes add `increments` each to one counter; returns the final value and the time.
  std::pair<uint64_t, double> count(Counter& counter, Lock lock, long increments, int semaphores, Placement placement) {
    counter.value = 0;
    counter.arrived = 0;
    oslab::Shared<double> elapsed_ns;
    auto side = [&](oslab::Party& party) {
      party.ready();
      // Both start within nanoseconds of each other: a barrier's wake-up would let one side
      // finish before the other begins.
      counter.arrived.fetch_add(1);
      while (counter.arrived.load() < 2) {
      }
      const auto start = std::chrono::steady_clock::now();
      sembuf down{0, -1, 0}, up{0, +1, 0};
      for (long i = 0; i < increments; ++i) {
        switch (lock) {
          case Lock::none: counter.value = counter.value + 1; break;
          case Lock::posix_semaphore:
            while (::sem_wait(&counter.semaphore) == -1)
              if (errno != EINTR) throw oslab::SysError("sem_wait", errno);
            counter.value = counter.value + 1;
            check_errno("sem_post", ::sem_post(&counter.semaphore));
            break;
          case Lock::sysv_semaphore:
            while (::semop(semaphores, &down, 1) == -1)
              if (errno != EINTR) throw oslab::SysError("semop", errno);
            counter.value = counter.value + 1;
            check_errno("semop", ::semop(semaphores, &up, 1));
            break;
        }
      }
      const double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count();
      if (party.index() == 0) *elapsed_ns = ns;
    };
    oslab::run_parties({.threads = false,
                        .assignment = oslab::assign_cpus(placement, 2, lab.options().cpus),
                        .deadline = std::chrono::seconds(60)},
                       {side, side});
    return {counter.value, *elapsed_ns / static_cast<double>(increments)};
  }

  void counters(oslab::Report& report) {
    const Placement placement = lab.options().cpus.size() >= 2 ? Placement::two_cpus : Placement::same_cpu;
    const int runs = lab.iterations(10, 5);
    // The counter in System V shared memory, and again in POSIX shared memory.
    oslab::SysvShm sysv = oslab::SysvShm::create(oslab::page_size());
    sysv.remove();  // attached here and, after fork, in both children: removed when they are done
    oslab::PosixShm posix_object = oslab::PosixShm::create("shm", oslab::page_size());
    void* posix_address = check_errno_ptr(
        "mmap", ::mmap(nullptr, oslab::page_size(), PROT_READ | PROT_WRITE, MAP_SHARED, posix_object.fd.get(), 0),
        MAP_FAILED);
    posix_object.name.unlink();
    struct Unmap {
      void* address;
      ~Unmap() { ::munmap(address, oslab::page_size()); }
    } unmap{posix_address};
    oslab::SysvId semaphores = oslab::SysvId::semaphores(1);
    check_errno("semctl(SETVAL)", ::semctl(semaphores.id(), 0, SETVAL, 1));
    Counter* in_sysv = new (sysv.data()) Counter();
    Counter* in_posix = new (posix_address) Counter();
    check_errno("sem_init", ::sem_init(&in_posix->semaphore, 1, 1));

    struct Row {
      std::string memory, short_name, lock, id;
      Counter* counter;
      Lock how;
      long increments;
    };
    const std::vector<Row> rows = {
        {"System V (shmget)", "System V", "none", "sysv-none", in_sysv, Lock::none, plain_increments},
        {"System V (shmget)", "System V", "System V semaphore (semop)", "sysv-semop", in_sysv, Lock::sysv_semaphore,
         locked_increments},
        {"POSIX (shm_open)", "POSIX", "none", "posix-none", in_posix, Lock::none, plain_increments},
        {"POSIX (shm_open)", "POSIX", "POSIX semaphore (sem_wait/sem_post)", "posix-sem", in_posix,
         Lock::posix_semaphore, locked_increments},
    };
    oslab::Table table{
        fmt::format("Two processes increment one counter in shared memory ({}, {} runs)",
                    oslab::assign_cpus(placement, 2, lab.options().cpus).describe(), runs),
        {"memory", "lock", "increments", "expected", "final (min .. max)", "lost, worst run", "time per increment"},
        {},
        "counter = counter + 1 is a load and a store: between them the other process's increments "
        "are overwritten. A semaphore makes the two one critical section; under contention a wait "
        "that finds it taken sleeps and the release wakes the sleeper (a System V semaphore is a "
        "system call every time, a POSIX one only to sleep or to wake).",
        2};
    for (const Row& row : rows) {
      const long increments = row.increments;
      const uint64_t expected = 2 * static_cast<uint64_t>(increments);
      std::vector<double> per_increment;
      uint64_t lowest = UINT64_MAX, highest = 0;
      for (int run = 0; run < runs; ++run) {
        auto [value, ns] = count(*row.counter, row.how, row.increments, semaphores.id(), placement);
        lowest = std::min(lowest, value);
        highest = std::max(highest, value);
        per_increment.push_back(ns);
      }
      const auto& result = report.add_samples(
          "increment", {{"memory", row.memory}, {"lock", row.lock}, {"increments", increments}}, per_increment,
          {.what = fmt::format("time of {} increments by one of two processes ({}), divided by {}; one sample per "
                               "run",
                               increments, row.lock == "none" ? "no lock" : row.lock, increments),
           .counters = {{"lowest_final", static_cast<double>(lowest)},
                        {"lost_worst", static_cast<double>(expected - lowest)}}});
      table.rows.push_back({row.memory, row.lock, fmt::format("2 x {}", increments), std::to_string(expected),
                            fmt::format("{} .. {}", lowest, highest), std::to_string(expected - lowest),
                            oslab::format_duration(result.summary.p50)});
      if (row.how == Lock::none) {
        const std::string claim = fmt::format(
            "without a lock, two processes incrementing one counter in {} shared memory lose updates", row.short_name);
        const std::string evidence = fmt::format("{} runs of 2 x {} increments: final value {} .. {}, expected {}",
                                                 runs, increments, lowest, highest, expected);
        // One lost update shows the race, whatever the load; none does not disprove it (the
        // two may not have overlapped).
        if (lowest < expected)
          report.fact(fmt::format("lost-updates-{}", row.id), claim, true, evidence);
        else
          report.verdict(fmt::format("lost-updates-{}", row.id), claim, oslab::VerdictState::inconclusive,
                         evidence + (placement == Placement::same_cpu
                                         ? " (one CPU: the race needs a preemption between load and store)"
                                         : " (no run lost one: try more --increments)"));
      } else {
        report.fact(fmt::format("no-lost-updates-{}", row.id), fmt::format("with a {}, no update is lost", row.lock),
                    lowest == expected && highest == expected,
                    fmt::format("{} runs of 2 x {} increments: final value {} .. {}, expected {}", runs, increments,
                                lowest, highest, expected));
      }
    }
    ::sem_destroy(&in_posix->semaphore);
    report.table(table);
  }
};

}  // namespace

int main(int argc, char** argv) {
  oslab::Lab lab({
      .name = "shm",
      .purpose = "System V and POSIX shared memory between processes: ipcs, /dev/shm, removal, lost updates",
      .claim = "The notes: the OS can create a shared memory buffer that two processes map into their\n"
               "address spaces: shmget() creates it, shmat() attaches it ('binding'), shmctl() changes its\n"
               "permissions or removes it; then reads and writes just use the pointer. 'Problem: shared\n"
               "access introduces complexity. Need to synchronize access.'",
      .explain = "System V: shmget(IPC_PRIVATE, one page, 0600) and shmat(). IPC_STAT shows the key (0 for\n"
                 "IPC_PRIVATE), the mode, the creator and the attach count; /proc/sysvipc/shm is what `ipcs\n"
                 "-m` prints. A forked child inherits the attachment (nattch 2) and what it writes the parent\n"
                 "reads. IPC_RMID while attached only marks the segment ('dest'): it keeps working until the\n"
                 "last process detaches, then it is gone. That is how oslab removes every segment as soon as\n"
                 "both sides hold it, so that even kill -9 leaves nothing in ipcs.\n\n"
                 "POSIX: shm_open(name, O_CREAT | O_EXCL, 0600) makes a file in /dev/shm (a tmpfs),\n"
                 "ftruncate() sizes it, mmap(MAP_SHARED) maps it; an unrelated process opens the same name.\n"
                 "shm_unlink() removes the name at once, as unlink() does for a file: the memory lives on\n"
                 "while mapped, but nobody new can open it. As root, the lab also shows that another user\n"
                 "cannot attach or open a 0600 object.\n\n"
                 "The counter: two processes, pinned to two CPUs, started together, each run 'counter =\n"
                 "counter + 1' --increments times on one counter in shared memory. The load and the store\n"
                 "are separate instructions, so increments of the other process that land between them are\n"
                 "overwritten: the final value falls short of 2 x increments. With a semaphore around each\n"
                 "increment (a process-shared POSIX semaphore in the POSIX memory; a System V semaphore\n"
                 "for the System V memory; --locked-increments each) none is lost, and each increment costs\n"
                 "more: semop() is a system call every time, a POSIX semaphore only to sleep or to wake.\n"
                 "On one CPU the race needs a preemption between load and store, and may not show at all.\n\n"
                 "Questions: why does ipcs still list a segment after IPC_RMID? What would be left behind if\n"
                 "the lab did not remove the segment before being killed? Why does the POSIX semaphore cost\n"
                 "less than the System V one when the other process rarely holds it?",
      .placements = {},
  });
  const long& increments = lab.integer_option("--increments", "Increments per process in the counter experiment",
                                              {.full = 200'000, .quick = 50'000}, 1000, 100'000'000);
  const long& locked_increments =
      lab.integer_option("--locked-increments", "Increments per process under a semaphore (each may be a system call)",
                         {.full = 20'000, .quick = 2'000}, 100, 100'000'000);
  std::optional<Experiment> experiment;
  return lab.run(argc, argv, [&](oslab::Report& report) {
    experiment.emplace(Experiment{lab, increments, locked_increments});
    report.run_case("System V shared memory", [&] { experiment->system_v(report); });
    report.run_case("POSIX shared memory", [&] { experiment->posix(report); });
    report.run_case("a shared counter", [&] { experiment->counters(report); });
    report.show_results_table = false;
  });
}
