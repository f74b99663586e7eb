// Given: the problem generator and the answer printer around your functions (as OSTEP's
// homework programs: -s SEED makes a problem, -c computes its answers). Do not change it.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "working_set.hpp"

namespace {

[[noreturn]] void usage(const char* why) {
  (void)std::fprintf(stderr, "working-set: %s\n", why);
  (void)std::fprintf(stderr,
                     "usage: working-set [-s SEED] [-n LENGTH] [-p PAGES] [-D WINDOW] [-m MAX_WINDOW] "
                     "[-r 'PAGE PAGE ...'] [-c]\n");
  std::exit(2);
}

long number(const char* text, long min, long max, const char* option) {
  char* end = nullptr;
  const long value = std::strtol(text, &end, 10);
  if (*text == '\0' || *end != '\0' || value < min || value > max) {
    char why[128];
    (void)std::snprintf(why, sizeof why, "%s: '%s' is not a whole number in [%ld, %ld]", option, text, min, max);
    usage(why);
  }
  return value;
}

// The same numbers on every machine: xorshift64, not the C library's rand().
struct Random {
  uint64_t state;
  uint64_t next() {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  }
  long below(long n) { return static_cast<long>(next() % static_cast<uint64_t>(n)); }
};

// A string with locality: phases that each reference a few pages of a small set.
std::vector<int> generate(uint64_t seed, long length, long pages) {
  Random random{seed * 2654435761u + 88172645463325252u};
  std::vector<int> refs;
  while (static_cast<long>(refs.size()) < length) {
    const long set_size = 2 + random.below(3 < pages - 1 ? 3 : pages - 1);
    std::vector<int> set;
    for (long i = 0; i < set_size; ++i) set.push_back(static_cast<int>(random.below(pages)));
    const long phase = 3 + random.below(6);
    for (long i = 0; i < phase && static_cast<long>(refs.size()) < length; ++i)
      refs.push_back(set[static_cast<size_t>(random.below(set_size))]);
  }
  return refs;
}

std::string set_text(const std::vector<int>& set) {
  std::string text = "{";
  for (size_t i = 0; i < set.size(); ++i) {
    if (i > 0) text += ',';
    text += std::to_string(set[i]);
  }
  return text + "}";
}

}  // namespace

int main(int argc, char** argv) {
  long seed = 0, length = 20, pages = 8, window = 4, max_window = 8;
  bool compute = false;
  std::string given;
  for (int i = 1; i < argc; ++i) {
    const char* arg = argv[i];
    auto value = [&] {
      if (i + 1 >= argc) usage("an option needs a value");
      return argv[++i];
    };
    if (!std::strcmp(arg, "-s"))
      seed = number(value(), 0, 1'000'000'000, "-s");
    else if (!std::strcmp(arg, "-n"))
      length = number(value(), 1, 1000, "-n");
    else if (!std::strcmp(arg, "-p"))
      pages = number(value(), 2, 100, "-p");
    else if (!std::strcmp(arg, "-D"))
      window = number(value(), 1, 1000, "-D");
    else if (!std::strcmp(arg, "-m"))
      max_window = number(value(), 1, 1000, "-m");
    else if (!std::strcmp(arg, "-r"))
      given = value();
    else if (!std::strcmp(arg, "-c"))
      compute = true;
    else
      usage("unknown option");
  }
  std::vector<int> refs;
  if (!given.empty()) {
    std::istringstream words(given);
    std::string word;
    while (words >> word) refs.push_back(static_cast<int>(number(word.c_str(), 0, 1'000'000, "-r")));
    if (refs.empty()) usage("-r: no pages");
  } else {
    refs = generate(static_cast<uint64_t>(seed), length, pages);
  }
  if (given.empty()) std::printf("ARG seed %ld\nARG length %ld\nARG pages %ld\n", seed, length, pages);
  std::printf("ARG window %ld\nARG max window %ld\n\nReference string:", window, max_window);
  for (int page : refs) std::printf(" %d", page);
  std::printf("\n\n");
  const size_t d = static_cast<size_t>(window);
  if (!compute) {
    std::printf(
        "For each time t, what is the working set W(D=%zu, t)? Which references fault under the\n"
        "working-set policy? What is the mean working-set size? What is the fault curve for\n"
        "D = 1..%ld, and where is its knee? (-c to see the answers)\n",
        d, max_window);
    return 0;
  }
  std::printf("%4s %6s  %-24s %s\n", "t", "page", "W(D,t)", "fault");
  std::vector<int> previous;
  for (size_t t = 0; t < refs.size(); ++t) {
    const std::vector<int> set = working_set(refs, t, d);
    bool in_previous = false;
    for (int page : previous) in_previous = in_previous || page == refs[t];
    std::printf("%4zu %6d  %-24s %s\n", t, refs[t], set_text(set).c_str(), t == 0 || !in_previous ? "fault" : "");
    previous = set;
  }
  std::printf("\nfaults with D=%zu: %zu\n", d, ws_faults(refs, d));
  std::printf("mean working-set size with D=%zu: %.2f\n", d, mean_working_set_size(refs, d));
  const std::vector<size_t> curve = fault_curve(refs, static_cast<size_t>(max_window));
  std::printf("fault curve:");
  for (size_t i = 0; i < curve.size(); ++i) std::printf(" D=%zu:%zu", i + 1, curve[i]);
  std::printf("\nknee: D=%zu\n", knee(curve));
  return 0;
}
