// RAII handles for file descriptors, pipes and memory mappings.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <span>
#include <utility>

namespace oslab {

// Owns one file descriptor; closes it on destruction.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) noexcept : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) reset(std::exchange(other.fd_, -1));
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const noexcept { return fd_; }
  bool valid() const noexcept { return fd_ >= 0; }
  int release() noexcept { return std::exchange(fd_, -1); }
  void reset(int fd = -1) noexcept;

 private:
  int fd_ = -1;
};

// pipe2(O_CLOEXEC) as two owned ends.
struct Pipe {
  UniqueFd read_end;
  UniqueFd write_end;
  static Pipe create(int flags = 0);
};

// Owns one mmap'ed region; munmaps it on destruction.
class Mapping {
 public:
  Mapping() = default;
  // Anonymous mapping; `flags` is MAP_PRIVATE or MAP_SHARED (MAP_ANONYMOUS is added).
  static Mapping anonymous(size_t bytes, int flags = MAP_PRIVATE, int prot = PROT_READ | PROT_WRITE);
  Mapping(Mapping&& other) noexcept
      : addr_(std::exchange(other.addr_, nullptr)), size_(std::exchange(other.size_, 0)) {}
  Mapping& operator=(Mapping&& other) noexcept;
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping() { reset(); }

  std::byte* data() const noexcept { return static_cast<std::byte*>(addr_); }
  size_t size() const noexcept { return size_; }
  std::span<std::byte> bytes() const noexcept { return {data(), size_}; }
  template <typename T>
  T* as() const noexcept {
    return static_cast<T*>(addr_);
  }
  void reset() noexcept;

 private:
  Mapping(void* addr, size_t size) : addr_(addr), size_(size) {}
  void* addr_ = nullptr;
  size_t size_ = 0;
};

// A stack for a clone() child or a user-level thread: a mapping with a PROT_NONE guard page
// below it, so that an overflow is a SIGSEGV on the guard rather than silent corruption of
// whatever lies below. Stacks grow down: the child starts at top().
class Stack {
 public:
  Stack() = default;
  // `bytes` usable bytes (rounded up to whole pages) above one guard page.
  static Stack create(size_t bytes);
  std::byte* top() const noexcept { return mapping_.data() + mapping_.size(); }
  std::byte* guard() const noexcept { return mapping_.data(); }
  size_t usable_bytes() const noexcept;

 private:
  Mapping mapping_;
};

// Writes to every page of the region so that it is backed by real memory.
void touch_pages(std::span<std::byte> region) noexcept;

size_t page_size() noexcept;

}  // namespace oslab
