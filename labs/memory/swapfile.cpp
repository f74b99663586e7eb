#include "swapfile.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/swap.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <vector>

#include <fmt/format.h>

#include "oslab/error.hpp"
#include "oslab/handles.hpp"
#include "oslab/ipc.hpp"

namespace oslab::memory {

void write_swap_header(unsigned char* first_page, size_t page_size, uint64_t pages) {
  std::memset(first_page, 0, page_size);
  // union swap_header (linux/swap.h): after 1024 boot bytes, version, last_page, nr_badpages.
  const uint32_t version = 1, last_page = static_cast<uint32_t>(pages - 1), bad_pages = 0;
  std::memcpy(first_page + 1024, &version, 4);
  std::memcpy(first_page + 1028, &last_page, 4);
  std::memcpy(first_page + 1032, &bad_pages, 4);
  constexpr std::string_view kMagic = "SWAPSPACE2";  // not NUL-terminated on disk
  std::copy(kMagic.begin(), kMagic.end(), first_page + page_size - kMagic.size());
}

SwapFile::SwapFile(std::string path, uint64_t bytes, Guardian guardian)
    : path_(std::move(path)), bytes_(bytes), guardian_(std::move(guardian)) {}

SwapFile::SwapFile(SwapFile&& other) noexcept
    : path_(std::move(other.path_)), bytes_(other.bytes_), guardian_(std::move(other.guardian_)) {
  other.path_.clear();
}

SwapFile SwapFile::create(const std::string& dir, std::string_view lab, uint64_t bytes) {
  reap_stale_swap_files(dir);
  const std::string path = dir + "/" + unique_ipc_name(fmt::format("{}-swap", lab)).substr(1);
  const size_t page = page_size();
  const uint64_t pages = bytes / page;
  {
    UniqueFd fd(::open(path.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600));
    if (!fd.valid()) throw SysError("create " + path, errno);
    // No holes: the kernel swaps only to blocks the file really has.
    std::vector<unsigned char> block(1 << 20, 0);
    for (uint64_t at = 0; at < pages * page; at += block.size()) {
      const size_t size = static_cast<size_t>(std::min<uint64_t>(block.size(), pages * page - at));
      if (::pwrite(fd.get(), block.data(), size, static_cast<off_t>(at)) != static_cast<ssize_t>(size)) {
        const int saved = errno;
        ::unlink(path.c_str());
        throw SysError("write " + path, saved);
      }
    }
    write_swap_header(block.data(), page, pages);
    if (::pwrite(fd.get(), block.data(), page, 0) != static_cast<ssize_t>(page) || ::fsync(fd.get()) != 0) {
      const int saved = errno;
      ::unlink(path.c_str());
      throw SysError("write " + path, saved);
    }
  }
  Guardian guardian = Guardian::start([path] {
    ::swapoff(path.c_str());
    ::unlink(path.c_str());
  });
  if (::swapon(path.c_str(), 0) != 0) {
    const int saved = errno;
    ::unlink(path.c_str());
    guardian.dismiss();
    throw SkipError(fmt::format("swapon {}: {}", path, describe_errno(saved)));
  }
  return SwapFile(path, pages * page, std::move(guardian));
}

SwapFile::~SwapFile() {
  if (path_.empty()) return;
  const bool off = ::swapoff(path_.c_str()) == 0;
  const bool gone = ::unlink(path_.c_str()) == 0;
  if (off && gone) guardian_.dismiss();  // otherwise it tries again once we are gone
}

long SwapFile::used_kib() const {
  std::ifstream swaps("/proc/swaps");
  std::string name, type;
  long size = 0, used = 0, priority = 0;
  std::string header;
  std::getline(swaps, header);
  while (swaps >> name >> type >> size >> used >> priority)
    if (name == path_) return used;
  return -1;
}

int reap_stale_swap_files(const std::string& dir) {
  int removed = 0;
  DIR* listing = ::opendir(dir.c_str());
  if (listing == nullptr) return 0;
  while (const dirent* entry = ::readdir(listing)) {
    const std::string_view name = entry->d_name;
    if (!name.starts_with("oslab.") || name.find("-swap.") == std::string_view::npos) continue;
    const pid_t owner = owner_of_ipc_name(name);
    if (owner <= 0 || ::kill(owner, 0) == 0 || errno != ESRCH) continue;
    const std::string path = fmt::format("{}/{}", dir, name);
    ::swapoff(path.c_str());
    removed += ::unlink(path.c_str()) == 0 ? 1 : 0;
  }
  ::closedir(listing);
  return removed;
}

}  // namespace oslab::memory
