// Memory that two processes (or threads) share: a typed object or an array in an anonymous
// MAP_SHARED mapping, made before fork so that both sides see the same pages.
#pragma once

#include <atomic>
#include <cstddef>
#include <new>
#include <span>
#include <type_traits>
#include <utility>

#include "oslab/handles.hpp"
#include "oslab/measure.hpp"

namespace oslab {

// One T in shared memory, constructed in place. T must be usable from two processes: no
// pointers into either process's private memory (atomics, plain numbers, fixed arrays,
// process-shared pthread objects).
template <typename T>
class Shared {
 public:
  template <typename... Args>
  explicit Shared(Args&&... args)
      : mapping_(Mapping::anonymous(round_up(sizeof(T)), MAP_SHARED)),
        object_(new (mapping_.data()) T(std::forward<Args>(args)...)) {}
  ~Shared() {
    if (object_ != nullptr) object_->~T();
  }
  Shared(Shared&& other) noexcept
      : mapping_(std::move(other.mapping_)), object_(std::exchange(other.object_, nullptr)) {}
  Shared& operator=(Shared&&) = delete;
  Shared(const Shared&) = delete;
  Shared& operator=(const Shared&) = delete;

  T* get() const noexcept { return object_; }
  T* operator->() const noexcept { return object_; }
  T& operator*() const noexcept { return *object_; }

 private:
  static size_t round_up(size_t bytes) {
    const size_t page = page_size();
    return (bytes + page - 1) / page * page;
  }
  Mapping mapping_;
  T* object_ = nullptr;
};

// `count` value-initialised Ts in shared memory (T trivially copyable).
template <typename T>
class SharedArray {
  static_assert(std::is_trivially_copyable_v<T>);

 public:
  explicit SharedArray(size_t count)
      : mapping_(Mapping::anonymous(std::max<size_t>(count * sizeof(T), 1), MAP_SHARED)), count_(count) {}
  T* data() const noexcept { return mapping_.as<T>(); }
  size_t size() const noexcept { return count_; }
  T& operator[](size_t i) const noexcept { return data()[i]; }
  std::span<T> span() const noexcept { return {data(), count_}; }

 private:
  Mapping mapping_;
  size_t count_;
};

// A Measurement that a party in another process (or thread) fills and the caller reads
// after the parties have ended: samples, blocks and counters in shared memory.
class SharedMeasurement {
 public:
  explicit SharedMeasurement(size_t max_samples, size_t max_blocks = 4096);
  // Copies `measurement` in; throws std::length_error when it does not fit.
  void store(const Measurement& measurement);
  Measurement load() const;

 private:
  struct Header {
    size_t samples = 0, blocks = 0;
    Counters self, children;
    int64_t batch = 1;
  };
  Shared<Header> header_;
  SharedArray<double> samples_;
  SharedArray<size_t> blocks_;
};

}  // namespace oslab
