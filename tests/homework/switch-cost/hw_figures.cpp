// hw-figures: oslab's own figures, measured at grading time, that the grader compares a
// student's with: the machine's null system call (getppid, pinned: machine.hpp) and a
// context switch, half a same-CPU pipe round trip (pingpong.hpp's PipeExchange).
#include <algorithm>
#include <cstdio>
#include <exception>
#include <vector>

#include "oslab/cpu.hpp"
#include "oslab/machine.hpp"
#include "oslab/parties.hpp"
#include "oslab/pingpong.hpp"
#include "oslab/placement.hpp"

int main() {
  try {
    std::printf("syscall: %.1f ns\n", oslab::machine().null_syscall_ns);
    oslab::PipeExchange pipe;
    const oslab::PartyOptions options{
        .threads = false, .assignment = oslab::assign_cpus(oslab::Placement::same_cpu, 2, oslab::get_affinity())};
    oslab::SamplingPlan plan;
    plan.max_samples = 20'000;
    plan.budget = std::chrono::milliseconds(400);
    plan.warmup = 100;
    const oslab::PingPongResult result = oslab::run_ping_pong(pipe, options, plan);
    std::vector<double> samples = result.round_trips.samples_ns;
    std::sort(samples.begin(), samples.end());
    std::printf("switch: %.1f ns\n", samples[samples.size() / 2] / 2);
    return 0;
  } catch (const std::exception& error) {
    (void)std::fprintf(stderr, "hw-figures: %s\n", error.what());
    return 1;
  }
}
