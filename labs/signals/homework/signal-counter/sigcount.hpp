// Homework: a server that counts real-time signals and their payloads exactly. Implement
// serve_until_sigterm in sigcount.cpp; main.cpp (given) prints the counts. README.md has the task.
#pragma once

#include <array>
#include <cstdint>

// The real-time signals counted: SIGRTMIN+0 .. SIGRTMIN+7.
constexpr int kKinds = 8;

struct SignalCount {
  int64_t count = 0;  // signals received
  int64_t sum = 0;    // the sum of their payloads (si_value.sival_int)
};

// Blocks SIGRTMIN+0..7 and SIGTERM, prints "ready" on stdout (and flushes it), then counts
// every one of those real-time signals with its payload until SIGTERM comes; then counts the
// real-time signals still pending (they were sent before SIGTERM), and returns the counts:
// element k for SIGRTMIN+k.
std::array<SignalCount, kKinds> serve_until_sigterm();
