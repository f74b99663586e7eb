#!/usr/bin/env python3
"""oslab peers: the established tools Debian ships, run in the same session as oslab's labs,
pinned the same way and interleaved with them, each figure printed next to oslab's figure for
the same thing with the ratio oslab / peer.

Units are converted honestly and every row says how: perf bench's "usecs/op" of sched pipe is
one round trip; rt-tests print one-way latencies in whole microseconds (so a figure under 1 us
reads 0 or 1); a stress-ng bogo-op of --fork is fork + _exit + setpgid + kill + waitpid; the
oslab counterpart of a one-way figure is the round trip / 2; sockperf's ping-pong with
--full-rtt gives round-trip percentiles in us. A peer that is missing or fails
is listed with the reason, never fatal.

Usage: peers.py --bin build/bin [--rounds N] [--cpu N] [--json] [--out FILE]
"""
import argparse
import json
import pathlib
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from oslab_format import fmt_value  # noqa: E402


# ---- Parsers: each takes a tool's output and returns {figure: value in ns} -----------------

def parse_perf_usecs_per_op(text):
    m = re.search(r"([0-9.]+)\s+usecs/op", text)
    if not m:
        raise ValueError("no 'usecs/op' line")
    return {"per_op_ns": float(m.group(1)) * 1000}


def parse_perf_total(text):
    m = re.search(r"Total time:\s+([0-9.]+)\s+\[sec\]", text)
    if not m:
        raise ValueError("no 'Total time' line")
    return {"total_ns": float(m.group(1)) * 1e9}


def parse_rt_tests(text):
    """rt-tests' last lines: '#1 -> #0, Min    1, Cur    1, Avg    2, Max  746' per pair, in us.
    The first pair is the one on the first CPU."""
    pairs = re.findall(r"#\d+ -> #\d+, Min\s+(\d+), Cur\s+(\d+), Avg\s+(\d+), Max\s+(\d+)", text)
    if not pairs:
        raise ValueError("no 'Min .. Avg .. Max' line")
    minimum, _, average, maximum = (int(v) for v in pairs[0])
    return {"min_ns": minimum * 1000.0, "avg_ns": average * 1000.0, "max_ns": maximum * 1000.0}


def parse_stress_ng(text, stressor):
    """stress-ng --metrics-brief: 'stressor  bogo-ops  real  usr  sys  bogo-ops/s(real) ...'."""
    m = re.search(rf"\]\s+{stressor}\s+(\d+)\s+([0-9.]+)\s+[0-9.]+\s+[0-9.]+\s+([0-9.]+)", text)
    if not m:
        raise ValueError(f"no metrics line for {stressor}")
    rate = float(m.group(3))
    figures = {"per_bogo_op_ns": 1e9 / rate if rate else float("nan")}
    switch = re.search(r"([0-9.]+) nanosecs per context switch", text)
    if switch:
        figures["per_switch_ns"] = float(switch.group(1))
    return figures


def parse_sockperf(text):
    """sockperf ping-pong --full-rtt: '---> percentile 50.000 =    6.931' in us, round trips."""
    m = re.search(r"percentile 50\.000 =\s+([0-9.]+)", text)
    if not m:
        raise ValueError("no 'percentile 50.000' line")
    avg = re.search(r"avg-rtt=([0-9.]+)", text)
    figures = {"p50_ns": float(m.group(1)) * 1000}
    if avg:
        figures["mean_ns"] = float(avg.group(1)) * 1000
    return figures


def parse_hyperfine(text):
    result = json.loads(text)["results"][0]
    return {"median_ns": result["median"] * 1e9, "mean_ns": result["mean"] * 1e9}


# ---- What to run, and what to compare it with -----------------------------------------

def ctxswitch_pipe(placement, tasks):
    """oslab-ctxswitch's pipe ping-pong, nothing read between hand-offs."""
    return ["--quick", "--placement", placement, "--methods", "pipe", "--ws", "0", "--tasks", tasks]


def sched_pipe(tasks, pinned):
    """perf bench sched pipe (-T: threads) beside oslab-ctxswitch's pipe ping-pong between the
    same tasks: both on one CPU, or neither pinned."""
    placement = "same-cpu" if pinned else "unpinned"
    return {"id": "perf-sched-pipe" + ("-threads" if tasks == "threads" else "") + ("" if pinned else "-unpinned"),
            "tool": "perf", "pinned": pinned,
            "argv": ["perf", "bench", "sched", "pipe", *(["-T"] if tasks == "threads" else []), "-l", "100000"],
            "parse": parse_perf_usecs_per_op, "figure": "per_op_ns",
            "what": f"pipe ping-pong between two {tasks}, "
                    f"{'on one CPU' if pinned else 'wherever the scheduler puts them'}, per round trip",
            "oslab": {"lab": "ctxswitch",
                      "args": ctxswitch_pipe(placement, tasks),
                      "name": "round trip",
                      "where": {"placement": placement, "tasks": tasks, "method": "pipe", "ws_kib": 0},
                      "stat": "p50", "all_cpus": not pinned},
            "units": "both: one round trip (a write and a read on each side)" + ("" if pinned else ", neither "
                     "side pinned") + " (perf: mean; oslab: median)"}


def peers(exec_target):
    """Each peer: the command, its parser, the figure compared, the oslab counterpart (a lab,
    its arguments, the result and the statistic), and how the units were matched."""
    return [
        {"id": "perf-syscall-basic", "tool": "perf", "pinned": True,
         "argv": ["perf", "bench", "syscall", "basic", "-l", "1000000"], "parse": parse_perf_usecs_per_op,
         "figure": "per_op_ns", "what": "getppid() through syscall(), per call",
         "oslab": {"lab": "syscall", "args": ["--quick", "--methods", "null"], "name": "null system call",
                   "where": {}, "stat": "p50"},
         "fallback_machine": "null_syscall_ns",
         "units": "both: one getppid() per operation, ns per call (perf: mean; oslab: median)"},
        *(sched_pipe(tasks, pinned) for pinned in (True, False) for tasks in ("processes", "threads")),
        {"id": "sockperf-tcp", "tool": "sockperf", "pinned": True,
         "server": ["sockperf", "server", "--tcp", "-i", "127.0.0.1", "-p", "{port}"],
         "argv": ["sockperf", "ping-pong", "--tcp", "-i", "127.0.0.1", "-p", "{port}", "-m", "64", "-t", "2",
                  "--full-rtt"],
         "parse": parse_sockperf, "figure": "p50_ns",
         "what": "TCP ping-pong of 64 bytes over loopback, client and server on one CPU, per round trip",
         "oslab": {"lab": "ipc", "args": ["--quick", "--transport", "tcp", "--placement", "same-cpu", "--mode",
                                          "latency", "--sizes", "64"],
                   "name": "round trip", "where": {"placement": "same-cpu", "transport": "tcp", "bytes": 64},
                   "stat": "p50"},
         "units": "both: median round trip of 64 bytes between two processes on one CPU (sockperf: its server "
                  "waits in epoll, its client in recvfrom; oslab: both in read)"},
        {"id": "sockperf-udp", "tool": "sockperf", "pinned": True,
         "server": ["sockperf", "server", "-i", "127.0.0.1", "-p", "{port}"],
         "argv": ["sockperf", "ping-pong", "-i", "127.0.0.1", "-p", "{port}", "-m", "64", "-t", "2", "--full-rtt"],
         "parse": parse_sockperf, "figure": "p50_ns",
         "what": "UDP ping-pong of 64 bytes over loopback, on one CPU, per round trip",
         "oslab": {"lab": "ipc", "args": ["--quick", "--transport", "udp", "--placement", "same-cpu", "--mode",
                                          "latency", "--sizes", "64"],
                   "name": "round trip", "where": {"placement": "same-cpu", "transport": "udp", "bytes": 64},
                   "stat": "p50"},
         "units": "both: median round trip of 64 bytes between two processes on one CPU"},
        {"id": "perf-sched-messaging", "tool": "perf", "pinned": False,
         "argv": ["perf", "bench", "sched", "messaging", "-l", "20"], "parse": parse_perf_total,
         "figure": "total_ns", "what": "10 groups of 20 senders and receivers over sockets, total",
         "oslab": None, "units": "no oslab counterpart: a throughput of 400 processes, listed for the record"},
        {"id": "pmqtest", "tool": "pmqtest", "pinned": False,
         "argv": ["pmqtest", "-S", "-l", "5000", "-i", "100", "-q"], "parse": parse_rt_tests, "figure": "avg_ns",
         "what": "POSIX message queue, one way, sender and receiver on one CPU (its first pair)",
         "oslab": {"lab": "ipc", "args": ["--quick", "--transport", "posix-mq", "--placement", "same-cpu", "--mode",
                                          "latency", "--sizes", "64"],
                   "name": "round trip", "where": {"placement": "same-cpu", "transport": "posix-mq", "bytes": 64},
                   "stat": "p50", "one_way": True},
         "units": "pmqtest: average one-way latency in whole us; oslab: median round trip / 2"},
        {"id": "svsematest", "tool": "svsematest", "pinned": False,
         "argv": ["svsematest", "-S", "-l", "5000", "-i", "100", "-q"], "parse": parse_rt_tests, "figure": "avg_ns",
         "what": "System V semaphore hand-off, one way, on one CPU",
         "oslab": {"lab": "condvar", "args": ["--quick", "--methods", "sysv-sem", "--as", "threads", "--placement",
                                              "same-cpu"],
                   "name": "round trip", "where": {"placement": "same-cpu", "method": "sysv-sem", "as": "threads"},
                   "stat": "p50", "one_way": True},
         "units": "svsematest: average one-way latency in whole us; oslab: System V semaphore hand-off between "
                  "threads, median round trip / 2"},
        {"id": "ptsematest", "tool": "ptsematest", "pinned": False,
         "argv": ["ptsematest", "-S", "-l", "5000", "-i", "100", "-q"], "parse": parse_rt_tests, "figure": "avg_ns",
         "what": "a pthread mutex unlocked by another thread (its 'semaphore'), one way, on one CPU",
         "oslab": {"lab": "condvar", "args": ["--quick", "--methods", "semaphore", "--as", "threads", "--placement",
                                              "same-cpu"],
                   "name": "round trip", "where": {"placement": "same-cpu", "method": "semaphore", "as": "threads"},
                   "stat": "p50", "one_way": True},
         "units": "ptsematest: average one-way in whole us; oslab: semaphore hand-off median round trip / 2"},
        {"id": "sigwaittest", "tool": "sigwaittest", "pinned": True,
         "argv": ["sigwaittest", "-l", "5000", "-i", "100", "-q"], "parse": parse_rt_tests, "figure": "avg_ns",
         "what": "a signal from one thread to another, received with sigwait, one way",
         "oslab": {"lab": "signals", "args": ["--quick", "--placement", "same-cpu"], "name": "delivery",
                   "where": {"placement": "same-cpu", "receiver": "sigwaitinfo"}, "stat": "p50"},
         "units": "sigwaittest: average one-way in whole us, between two threads; oslab: median one way, "
                  "between two processes (kill to sigwaitinfo), both on one CPU"},
        {"id": "stress-ng-switch", "tool": "stress-ng", "pinned": True,
         "argv": ["stress-ng", "--switch", "1", "--metrics-brief", "--timeout", "3s"],
         "parse": lambda text: parse_stress_ng(text, "switch"), "figure": "per_switch_ns",
         "what": "context switches between two processes through a pipe",
         "oslab": {"lab": "ctxswitch", "args": ctxswitch_pipe("same-cpu", "processes"), "name": "round trip",
                   "where": {"placement": "same-cpu", "tasks": "processes", "method": "pipe", "ws_kib": 0},
                   "stat": "p50", "one_way": True},
         "units": "stress-ng: ns per switch (one message); oslab: pipe round trip / 2"},
        {"id": "stress-ng-fork", "tool": "stress-ng", "pinned": True,
         "argv": ["stress-ng", "--fork", "1", "--metrics-brief", "--timeout", "3s"],
         "parse": lambda text: parse_stress_ng(text, "fork"), "figure": "per_bogo_op_ns",
         "what": "fork, child exits, parent reaps",
         "oslab": {"lab": "fork", "args": ["--methods", "fork", "--rss", "0", "--placement", "same-cpu",
                                           "--parents", "lean", "--budget", "2"],
                   "name": "fork+exit+wait", "where": {"parent": "lean", "placement": "same-cpu"}, "stat": "mean"},
         "units": "stress-ng: 1 / bogo-ops per second, a bogo-op being fork + _exit + setpgid + kill + waitpid, "
                  "from stress-ng's own (larger) process; oslab: mean fork+exit+wait from the lean parent"},
        {"id": "stress-ng-vfork", "tool": "stress-ng", "pinned": True,
         "argv": ["stress-ng", "--vfork", "1", "--metrics-brief", "--timeout", "3s"],
         "parse": lambda text: parse_stress_ng(text, "vfork"), "figure": "per_bogo_op_ns",
         "what": "vfork, child exits, parent reaps",
         "oslab": {"lab": "fork", "args": ["--methods", "vfork", "--rss", "0", "--placement", "same-cpu",
                                           "--parents", "lean", "--budget", "2"],
                   "name": "vfork+exit+wait", "where": {"parent": "lean", "placement": "same-cpu"}, "stat": "mean"},
         "units": "stress-ng: 1 / bogo-ops per second; oslab: mean vfork+exit+wait from the lean parent"},
        {"id": "hyperfine-exec", "tool": "hyperfine", "pinned": True,
         "argv": ["hyperfine", "-N", "--warmup", "20", "--runs", "1000", "--export-json", "{out}", "--style",
                  "none", exec_target],
         "parse": parse_hyperfine, "figure": "median_ns", "what": "start a static program that exits at once, and wait",
         "oslab": {"lab": "fork", "args": ["--methods", "posix_spawn", "--rss", "0", "--placement", "same-cpu",
                                           "--parents", "lean", "--exec-target", "static", "--budget", "2"],
                   "name": "posix_spawn+wait", "where": {"parent": "lean", "placement": "same-cpu"}, "stat": "p50"},
         "units": "both: median wall time of spawn + exec + exit + wait of the same program (hyperfine spawns "
                  "from its own process)"},
    ]


def free_port():
    """A TCP and UDP port nobody listens on now (the kernel's choice for port 0)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(peer, cpu, port):
    """The peer's server, pinned like its client, once it accepts; or (None, why not)."""
    argv = [shutil.which(peer["server"][0])] + [a.replace("{port}", str(port)) for a in peer["server"][1:]]
    server = subprocess.Popen((["taskset", "-c", str(cpu)] if peer["pinned"] else []) + argv,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if "--tcp" not in peer["server"]:
        time.sleep(0.2)  # UDP: nothing to connect to; the time to bind
        return (server, None) if server.poll() is None else (None, f"its server exited {server.returncode}")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if server.poll() is not None:
            return None, f"its server exited {server.returncode}"
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return server, None
        time.sleep(0.05)
    stop(server)
    return None, "its server did not accept within 5 s"


def stop(process):
    process.kill()
    process.wait()


def run_peer(peer, cpu, timeout=120):
    if shutil.which(peer["tool"]) is None:
        return None, f"{peer['tool']} is not installed (scripts/oslab setup --peers installs it)"
    port = free_port()
    server = None
    if "server" in peer:
        server, problem = start_server(peer, cpu, port)
        if problem:
            return None, problem
    with tempfile.TemporaryDirectory() as tmp:
        out = pathlib.Path(tmp) / "out"  # for tools that write their results to a file
        # The tool by its full path: svsematest calls ftok(argv[0]), which fails on a bare name.
        command = [shutil.which(peer["argv"][0])] + [a.replace("{out}", str(out)).replace("{port}", str(port))
                                                     for a in peer["argv"][1:]]
        argv = (["taskset", "-c", str(cpu)] if peer["pinned"] else []) + command
        try:
            run = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return None, f"did not finish within {timeout} s"
        finally:
            if server:
                stop(server)
        output = out.read_text() if out.exists() else run.stdout + run.stderr
    if run.returncode != 0:
        return None, f"exit {run.returncode}: {(run.stderr or run.stdout).strip()[-300:]}"
    try:
        return peer["parse"](output)[peer["figure"]], None
    except (ValueError, KeyError, json.JSONDecodeError) as e:
        return None, f"could not read its output: {e}"


def run_oslab(spec, bin_dir, cpu, timeout=300):
    lab = pathlib.Path(bin_dir) / f"oslab-{spec['lab']}"
    if not lab.exists():
        return None, None, f"oslab-{spec['lab']} is not built"
    argv = [str(lab), "--json", *([] if spec.get("all_cpus") else ["--cpus", str(cpu)]), *spec["args"]]
    try:
        run = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, None, f"oslab-{spec['lab']} did not finish within {timeout} s"
    if run.returncode not in (0,):
        return None, None, f"oslab-{spec['lab']} exit {run.returncode}: {run.stderr.strip()[-300:]}"
    doc = json.loads(run.stdout)
    for result in doc.get("results", []):
        if result["name"] != spec["name"]:
            continue
        if any(result.get("params", {}).get(k) != v for k, v in spec["where"].items()):
            continue
        value = result[spec["stat"]]
        return (value / 2 if spec.get("one_way") else value), doc, None
    return None, doc, f"no result '{spec['name']}' with {spec['where']} in oslab-{spec['lab']}"


def compare_all(bin_dir, rounds, cpu, only=None, progress=print):
    exec_target = str(pathlib.Path(bin_dir).parent / "libexec" / "oslab-exec-target")
    if not pathlib.Path(exec_target).exists():
        exec_target = str(pathlib.Path(bin_dir).parent / "libexec" / "oslab" / "oslab-exec-target")
    rows = []
    for peer in peers(exec_target):
        if only and peer["id"] not in only:
            continue
        peer_values, oslab_values, problems = [], [], []
        label = None if peer["oslab"] is None else f"oslab-{peer['oslab']['lab']}: {peer['oslab']['name']}"
        for round_index in range(rounds):
            progress(f"oslab peers: {peer['id']} (round {round_index + 1} of {rounds})")
            value, problem = run_peer(peer, cpu)
            if problem:
                problems.append(problem)
                break
            peer_values.append(value)
            spec = peer["oslab"]
            if spec is None:
                continue
            mine, doc, problem = run_oslab(spec, bin_dir, cpu)
            if problem and peer.get("fallback_machine") and doc is None:
                machine = machine_figure(bin_dir, peer["fallback_machine"])
                if machine is not None:
                    mine, problem = machine, None
                    label = f"the labs' machine description: {peer['fallback_machine']}"
            if problem:
                problems.append(problem)
            else:
                oslab_values.append(mine)
        peer_value = statistics.median(peer_values) if peer_values else None
        oslab_value = statistics.median(oslab_values) if oslab_values else None
        ratios = [m / p for m, p in zip(oslab_values, peer_values) if p]
        rows.append({"peer": peer["id"], "what": peer["what"], "peer_ns": peer_value, "oslab_ns": oslab_value,
                     "oslab_figure": label,
                     "ratio": statistics.median(ratios) if ratios else None, "ratios": ratios,
                     "units": peer["units"], "problems": sorted(set(problems)), "pinned_cpu": cpu if peer["pinned"] else None})
    return rows


def machine_figure(bin_dir, field):
    labs = sorted(pathlib.Path(bin_dir).glob("oslab-*"))
    for lab in labs:
        run = subprocess.run([str(lab), "--json", "--quick", "--iterations", "1"], capture_output=True, text=True)
        if run.returncode == 0:
            return json.loads(run.stdout)["machine"].get(field)
    return None


def print_rows(rows):
    width = max([len("peer")] + [len(r["peer"]) for r in rows])
    print(f"{'peer':{width}} {'peer figure':>12} {'oslab figure':>12} {'oslab/peer':>10}  what")
    for r in rows:
        peer = fmt_value(r["peer_ns"]) if r["peer_ns"] is not None else "-"
        mine = fmt_value(r["oslab_ns"]) if r["oslab_ns"] is not None else "-"
        ratio = f"{r['ratio']:.2f}" if r["ratio"] is not None else "-"
        print(f"{r['peer']:{width}} {peer:>12} {mine:>12} {ratio:>10}  {r['what']}")
        print(f"{'':{width}} units: {r['units']}")
        for problem in r["problems"]:
            print(f"{'':{width}} note: {problem}")


def main():
    parser = argparse.ArgumentParser(prog="oslab peers", description=__doc__.splitlines()[0])
    parser.add_argument("--bin", required=True)
    parser.add_argument("--rounds", type=int, default=2, help="peer and lab alternate this many times")
    parser.add_argument("--cpu", type=int, default=0, help="the CPU pinned comparisons use")
    parser.add_argument("--peers", help="only these peers, comma-separated")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--out", help="also write the rows as JSON to this file")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    only = set(args.peers.split(",")) if args.peers else None
    rows = compare_all(args.bin, args.rounds, args.cpu, only, progress=lambda line: print(line, file=sys.stderr))
    if args.out:
        pathlib.Path(args.out).write_text(json.dumps(rows, indent=1) + "\n")
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        print_rows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
