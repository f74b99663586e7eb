#!/usr/bin/env python3
"""oslab doctor: what this machine offers and lacks for the labs, and how to enable each thing.

Usage: doctor.py --admin build/libexec/oslab-admin"""
import argparse
import json
import os
import pathlib
import subprocess
import sys

HOW = {
    "io_uring": "sysctl -w kernel.io_uring_disabled=0 (as root); the blocking-IO labs use it",
    "seccomp": "a kernel with CONFIG_SECCOMP_FILTER; the seccomp lab and the homework sandbox need it",
    "perf_counters": "hardware counters: bare metal, or a VM whose hypervisor exposes a PMU; labs report "
                     "what they can without them",
    "syscall_counting": "as root with tracefs (mounted when needed) the kernel counts; otherwise ptrace does",
    "cgroup_v2_memory": "a cgroup v2 hierarchy with the memory controller enabled (cgroup.subtree_control)",
    "cgroup_v1_memory": "mount -t cgroup -o memory none /sys/fs/cgroup/memory (as root)",
    "swap": "swapon a device or file; oslab-thrash can make one with --make-swap (as root)",
    "mqueue_mounted": "mkdir -p /dev/mqueue && mount -t mqueue none /dev/mqueue (as root): lets the leak "
                      "checks see POSIX message queues",
    "root": "run as root for real-time policies, kernel system-call counts, cgroups and tracefs",
    "thp": "echo madvise > /sys/kernel/mm/transparent_hugepage/enabled (as root)",
    "liburing_built": "apt-get install liburing-dev, then rebuild",
    "libseccomp_built": "apt-get install libseccomp-dev, then rebuild",
}


def read(path):
    try:
        return pathlib.Path(path).read_text().strip()
    except OSError:
        return ""


def extra_checks():
    """What oslab-admin's machine description does not cover."""
    rows = []
    governor = read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
    rows.append(("cpu_governor", governor == "performance",
                 governor or "no cpufreq (typical in a VM: the host decides)",
                 "cpupower frequency-set -g performance: frequency changes add noise to every figure"))
    smt = read("/sys/devices/system/cpu/smt/active")
    rows.append(("smt", smt == "0", {"1": "SMT on: two-cpus placements avoid siblings where they can",
                                      "0": "SMT off"}.get(smt, "unknown"),
                 "echo off > /sys/devices/system/cpu/smt/control to measure without siblings"))
    quota = ""
    for path in ("/sys/fs/cgroup/cpu.max", "/sys/fs/cgroup/cpu/cpu.cfs_quota_us"):
        text = read(path)
        if text:
            quota = text
            break
    limited = quota not in ("", "max 100000", "-1") and not quota.startswith("max")
    rows.append(("cpu_quota", not limited, f"{quota or 'none found'}",
                 "a CPU quota on this cgroup throttles the labs: run outside it"))
    load = os.getloadavg()[0]
    rows.append(("idle", load < 0.5, f"load average {load:.2f}", "stop other work before measuring"))
    return rows


def main():
    parser = argparse.ArgumentParser(prog="oslab doctor", description=__doc__.splitlines()[0])
    parser.add_argument("--admin", required=True)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    run = subprocess.run([args.admin, "machine"], capture_output=True, text=True)
    if run.returncode != 0:
        print(f"oslab doctor: {run.stderr.strip()}", file=sys.stderr)
        return 1
    machine = json.loads(run.stdout)
    rows = [(name, f["present"], f["detail"], HOW.get(name, "")) for name, f in sorted(machine["features"].items())]
    rows += extra_checks()
    if args.json:
        print(json.dumps([{"what": n, "ok": ok, "detail": d, "how": h} for n, ok, d, h in rows], indent=1))
        return 0
    print(f"{machine['cpu_model']}, {machine['logical_cpus']} CPUs, kernel {machine['kernel']}, "
          f"{'virtual machine (' + machine['virtualization'] + ')' if machine['virtualization'] != 'none' else 'bare metal'}")
    print(f"null system call {machine['null_syscall_ns']:.0f} ns; entry mitigations: "
          f"{', '.join(machine.get('entry_mitigations', [])) or 'none listed as active'}\n")
    width = max(len(r[0]) for r in rows)
    for name, ok, detail, how in rows:
        print(f"  [{'ok' if ok else '--'}] {name.ljust(width)}  {detail}")
        if not ok and how:
            print(f"       {' ' * width}  to enable: {how}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
