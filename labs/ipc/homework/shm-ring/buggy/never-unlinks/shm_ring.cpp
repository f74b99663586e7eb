// Buggy solution (never-unlinks): never removes the name: every run leaves an object in /dev/shm.
// Not for students: `scripts/oslab handout` leaves it out.
#include "shm_ring.hpp"

#include <fcntl.h>
#include <semaphore.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <new>

namespace {

// What both processes map. One producer writes tail, one consumer writes head; the semaphores
// order every access (sem_post and sem_wait are full barriers).
struct Header {
  sem_t free_slots;  // pshared = 1: in shared memory, waited on from two processes
  sem_t items;
  uint32_t capacity;
  uint32_t head;
  uint32_t tail;
};

uint64_t* slots_of(Header* header) {
  return reinterpret_cast<uint64_t*>(header + 1);
}

void wait_for(sem_t* semaphore) {
  while (sem_wait(semaphore) != 0 && errno == EINTR) {
  }
}

}  // namespace

struct Ring {
  Header* header;
  size_t bytes;
};

static Ring* map(int fd, size_t bytes) {
  void* address = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (address == MAP_FAILED) return nullptr;
  return new (std::nothrow) Ring{static_cast<Header*>(address), bytes};
}

Ring* ring_create(const char* name, uint32_t capacity) {
  if (capacity == 0) return nullptr;
  const size_t bytes = sizeof(Header) + size_t{capacity} * sizeof(uint64_t);
  const int fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR, 0600);
  if (fd == -1) return nullptr;
  if (ftruncate(fd, static_cast<off_t>(bytes)) != 0) {
    close(fd);
    shm_unlink(name);
    return nullptr;
  }
  Ring* ring = map(fd, bytes);
  if (ring == nullptr) {
    shm_unlink(name);
    return nullptr;
  }
  Header* header = ring->header;
  header->capacity = capacity;
  header->head = header->tail = 0;
  sem_init(&header->free_slots, 1, capacity);
  sem_init(&header->items, 1, 0);
  return ring;
}

Ring* ring_open(const char* name) {
  const int fd = shm_open(name, O_RDWR, 0);
  if (fd == -1) return nullptr;
  struct stat st {};
  if (fstat(fd, &st) != 0 || static_cast<size_t>(st.st_size) < sizeof(Header)) {
    close(fd);
    return nullptr;
  }
  return map(fd, static_cast<size_t>(st.st_size));
}

void ring_put(Ring* ring, uint64_t item) {
  Header* header = ring->header;
  wait_for(&header->free_slots);
  slots_of(header)[header->tail] = item;
  header->tail = (header->tail + 1) % header->capacity;
  sem_post(&header->items);
}

uint64_t ring_get(Ring* ring) {
  Header* header = ring->header;
  wait_for(&header->items);
  const uint64_t item = slots_of(header)[header->head];
  header->head = (header->head + 1) % header->capacity;
  sem_post(&header->free_slots);
  return item;
}

void ring_close(Ring* ring) {
  munmap(ring->header, ring->bytes);
  delete ring;
}

int ring_unlink(const char* name) {
  (void)name;
  return 0;
}
