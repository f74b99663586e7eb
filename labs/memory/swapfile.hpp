// A swap file of the lab's own, for a machine without swap (root only, --make-swap): made in a
// directory on a disk, enabled with swapon, and disabled and deleted when the lab ends; by its
// guardian if the lab is killed; by the next run's reaper if even that was.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "guardian.hpp"

namespace oslab::memory {

class SwapFile {
 public:
  // Creates `bytes` of swap in `dir` and enables it. Throws SkipError, saying why, when the
  // kernel or the file system will not swap to it.
  static SwapFile create(const std::string& dir, std::string_view lab, uint64_t bytes);
  SwapFile(SwapFile&& other) noexcept;
  SwapFile& operator=(SwapFile&&) = delete;
  SwapFile(const SwapFile&) = delete;
  SwapFile& operator=(const SwapFile&) = delete;
  ~SwapFile();  // swapoff and unlink

  const std::string& path() const noexcept { return path_; }
  uint64_t bytes() const noexcept { return bytes_; }
  // Its line of /proc/swaps: "Filename Type Size Used Priority", Used in KiB.
  long used_kib() const;

 private:
  SwapFile(std::string path, uint64_t bytes, Guardian guardian);
  std::string path_;
  uint64_t bytes_ = 0;
  Guardian guardian_;
};

// The first page of a swap area as mkswap writes it (version 1, no bad pages), for `pages` pages.
void write_swap_header(unsigned char* first_page, size_t page_size, uint64_t pages);

// Disables and deletes the oslab swap files in `dir` whose owner pid has ended.
int reap_stale_swap_files(const std::string& dir);

}  // namespace oslab::memory
