#include "oslab/handles.hpp"

#include <fcntl.h>
#include <unistd.h>

#include "oslab/error.hpp"

namespace oslab {

void UniqueFd::reset(int fd) noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

Pipe Pipe::create(int flags) {
  int fds[2];
  check_errno("pipe2", ::pipe2(fds, flags | O_CLOEXEC));
  return Pipe{UniqueFd(fds[0]), UniqueFd(fds[1])};
}

Mapping Mapping::anonymous(size_t bytes, int flags, int prot) {
  if (bytes == 0) throw std::invalid_argument("Mapping::anonymous: zero bytes");
  void* addr = ::mmap(nullptr, bytes, prot, flags | MAP_ANONYMOUS, -1, 0);
  check_errno_ptr("mmap", addr, MAP_FAILED);
  return Mapping(addr, bytes);
}

Mapping& Mapping::operator=(Mapping&& other) noexcept {
  if (this != &other) {
    reset();
    addr_ = std::exchange(other.addr_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

void Mapping::reset() noexcept {
  if (addr_ != nullptr) ::munmap(addr_, size_);
  addr_ = nullptr;
  size_ = 0;
}

Stack Stack::create(size_t bytes) {
  const size_t page = page_size();
  const size_t usable = (bytes + page - 1) / page * page;
  Stack stack;
  stack.mapping_ = Mapping::anonymous(usable + page, MAP_PRIVATE | MAP_STACK);
  check_errno("mprotect(guard page)", ::mprotect(stack.mapping_.data(), page, PROT_NONE));
  return stack;
}

size_t Stack::usable_bytes() const noexcept {
  return mapping_.size() == 0 ? 0 : mapping_.size() - page_size();
}

size_t page_size() noexcept {
  static const size_t size = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  return size;
}

void touch_pages(std::span<std::byte> region) noexcept {
  const size_t step = page_size();
  for (size_t offset = 0; offset < region.size(); offset += step)
    *static_cast<volatile std::byte*>(&region[offset]) = std::byte{1};
}

}  // namespace oslab
