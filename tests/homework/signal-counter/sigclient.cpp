// sigclient: the grader's client for the signal-counting server. Starts SERVER, waits for its
// "ready", sends N real-time signals with payloads (sigqueue) drawn from the seed, then
// SIGTERM, and prints what the server printed, how it ended, and what it should have counted.
//   sigclient SERVER [--seed S] [--signals N] [--kinds K] [--stopped] [--big] [--negative]
// --stopped: the server is stopped (SIGSTOP) while every signal and SIGTERM are sent, then
// continued: all of them are pending at once, SIGTERM first in line.
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

[[noreturn]] void fail(const char* what) {
  std::printf("sigclient: %s: %s\n", what, std::strerror(errno));
  std::exit(1);
}

struct Random {
  uint64_t state;
  uint64_t next() {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  }
};

// Reads from fd until `until` appears or the deadline passes; returns what it read.
std::string read_until(int fd, const std::string& until, int timeout_ms) {
  std::string text;
  while (until.empty() || text.find(until) == std::string::npos) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, timeout_ms) <= 0) break;
    char buffer[4096];
    const ssize_t n = read(fd, buffer, sizeof buffer);
    if (n <= 0) break;
    text.append(buffer, static_cast<size_t>(n));
  }
  return text;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    (void)std::fprintf(
        stderr, "usage: sigclient SERVER [--seed S] [--signals N] [--kinds K] [--stopped] [--big] [--negative]\n");
    return 2;
  }
  uint64_t seed = 1;
  long signals = 100, kinds = 1;
  bool stopped = false, big = false, negative = false;
  for (int i = 2; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--seed" && i + 1 < argc)
      seed = std::strtoull(argv[++i], nullptr, 10);
    else if (arg == "--signals" && i + 1 < argc)
      signals = std::strtol(argv[++i], nullptr, 10);
    else if (arg == "--kinds" && i + 1 < argc)
      kinds = std::strtol(argv[++i], nullptr, 10);
    else if (arg == "--stopped")
      stopped = true;
    else if (arg == "--big")
      big = true;
    else if (arg == "--negative")
      negative = true;
    else
      return std::fprintf(stderr, "sigclient: bad argument %s\n", arg.c_str()), 2;
  }
  int out[2];
  if (pipe(out) != 0) fail("pipe");
  (void)std::fflush(stdout);
  const pid_t server = fork();
  if (server == -1) fail("fork");
  if (server == 0) {
    dup2(out[1], STDOUT_FILENO);
    close(out[0]);
    close(out[1]);
    execl(argv[1], argv[1], static_cast<char*>(nullptr));
    _exit(127);
  }
  close(out[1]);
  std::string output = read_until(out[0], "ready\n", 2000);
  if (output.find("ready\n") == std::string::npos) {
    kill(server, SIGKILL);
    std::printf("sigclient: the server never said ready\n");
  } else {
    output.erase(0, output.find("ready\n") + 6);
    if (stopped) {
      kill(server, SIGSTOP);
      int status = 0;
      waitpid(server, &status, WUNTRACED);
    }
    Random random{seed * 0x9E3779B97F4A7C15ull + 1};
    std::vector<int64_t> count(static_cast<size_t>(kinds)), sum(static_cast<size_t>(kinds));
    for (long i = 0; i < signals; ++i) {
      const size_t kind = static_cast<size_t>(random.next() % static_cast<uint64_t>(kinds));
      int payload = static_cast<int>(static_cast<int32_t>(random.next()));
      if (big) payload = INT_MAX - static_cast<int>(random.next() % 1000);
      if (negative) payload = -static_cast<int>(random.next() % 100000);
      sigval value{};
      value.sival_int = payload;
      while (sigqueue(server, SIGRTMIN + static_cast<int>(kind), value) != 0) {
        if (errno != EAGAIN || stopped) fail("sigqueue");
        usleep(200);  // the queue is full: let the server catch up
      }
      ++count[kind];
      sum[kind] += payload;
    }
    kill(server, SIGTERM);
    if (stopped) kill(server, SIGCONT);
    int64_t total = 0, total_sum = 0;
    for (size_t k = 0; k < count.size(); ++k) {
      total += count[k];
      total_sum += sum[k];
    }
    output += read_until(out[0], "", 3000);
    std::printf("%s", output.c_str());
    std::printf("expected total: %lld signals, payload sum %lld\n", static_cast<long long>(total),
                static_cast<long long>(total_sum));
  }
  int status = 0;
  for (int waited = 0; waitpid(server, &status, WNOHANG) == 0; ++waited) {
    if (waited == 300) kill(server, SIGKILL);
    usleep(10'000);
  }
  if (WIFEXITED(status))
    std::printf("server exited with %d\n", WEXITSTATUS(status));
  else
    std::printf("server killed by signal %d\n", WTERMSIG(status));
  return 0;
}
