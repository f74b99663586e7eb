#!/usr/bin/env python3
"""oslab grade: grades one homework exercise, honestly.

    grade.py EXERCISE [--impl starter|reference|buggy|PATH] [--json] [--gradescope FILE]
    grade.py EXERCISE --class DIR [--csv FILE]
    grade.py EXERCISE --meta          (the CI meta-test: the grader can fail)
    grade.py --list

An exercise is described by tests/homework/<name>/exercise.json: the programs an
implementation builds, the grader's helpers, and the tests with their points:

    case      a numbered black-box case: cases/N.run (the command line), N.rc, N.out, N.err,
              N.in (stdin), N.req / N.forbid (lines that must / must not appear, in any order)
    gtest     one GoogleTest test of a program built with the implementation
    count     a case run while the sandbox counts system calls: proof of mechanism
    perf      a figure of the implementation against the reference's, measured in the same
              run, interleaved; credit only when every correctness test passed
    accuracy  a figure the implementation measures against oslab's own, measured now

Student code is built and run under oslab-sandbox (namespaces, Landlock, limits, a seccomp
filter that names forbidden calls). Output: a table with points and a total, and last the
Autolab score line; --json one document; --gradescope a results.json.
"""

import argparse
import csv
import json
import os
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
HANDOUT = (HERE / "handout.json").exists()
ROOT = HERE if HANDOUT else HERE.parent
BUDGET_S = 60  # an exercise grades in at most this long (a hung test costs only its timeout)
CXXFLAGS = ["-std=c++20", "-O2", "-g", "-Wall", "-Wextra", "-pthread"]
CFLAGS = ["-std=gnu17", "-O2", "-g", "-Wall", "-Wextra", "-pthread"]
LIBS = {"gtest": ["-lgtest_main", "-lgtest"], "seccomp": ["-lseccomp"], "pthread": [], "static": ["-static"]}
SYSTEM_RO = ["/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/etc", "/proc", "/sys", "/dev"]
OUTPUT_CAP = 1 << 20


class UsageError(Exception):
    pass


# ---------------------------------------------------------------- exercises and implementations

class Exercise:
    def __init__(self, name):
        if HANDOUT:
            self.tests_dir = ROOT / name / "tests"
            self.dir = ROOT / name
        else:
            self.tests_dir = ROOT / "tests" / "homework" / name
        spec_path = self.tests_dir / "exercise.json"
        if not spec_path.exists():
            raise UsageError(f"no exercise '{name}' (grade.py --list)")
        self.spec = json.loads(spec_path.read_text())
        self.name = name
        if not HANDOUT:
            self.dir = ROOT / self.spec["dir"]
        self.tests = self.spec["tests"]
        self.max = sum(t["points"] for t in self.tests)

    def mutants(self):
        buggy = self.dir / "buggy"
        return sorted(p.name for p in buggy.iterdir() if p.is_dir()) if buggy.is_dir() else []


def all_exercises():
    base = ROOT if HANDOUT else ROOT / "tests" / "homework"
    pattern = "*/tests/exercise.json" if HANDOUT else "*/exercise.json"
    return sorted(p.parent.parent.name if HANDOUT else p.parent.name for p in base.glob(pattern))


class Impl:
    """Where an implementation's programs are, once built (or why they are not)."""

    def __init__(self, label, bin_dir=None, source_dir=None):
        self.label = label
        self.bin_dir = bin_dir
        self.source_dir = source_dir
        self.build_error = None

    def program(self, name):
        return self.bin_dir / name


# ---------------------------------------------------------------- the sandbox

def find_sandbox(build_dir):
    for candidate in ([build_dir / "libexec" / "oslab-sandbox"] if build_dir else []) + [
            Path("/usr/libexec/oslab/oslab-sandbox"), Path("/usr/local/libexec/oslab/oslab-sandbox")]:
        if candidate.exists():
            return candidate
    found = shutil.which("oslab-sandbox")
    return Path(found) if found else None


class Runner:
    """Runs commands under oslab-sandbox (or, when there is none, directly, and says so)."""

    def __init__(self, sandbox, work):
        self.sandbox = sandbox
        self.work = work
        self.count = 0

    def run(self, argv, *, timeout, ro=(), rw=(), stdin=None, count=(), env=None, limits=None, cwd=None,
            allow_violations=False):
        self.count += 1
        tag = f"run{self.count}"
        out_path, err_path, report_path = (self.work / f"{tag}.{s}" for s in ("out", "err", "json"))
        limits = dict(limits or {})
        cwd = cwd or self.work
        if self.sandbox:
            command = [str(self.sandbox), "--quiet", "--report", str(report_path), "--timeout", str(timeout),
                       "--chdir", str(cwd)]
            for key in ("cpu", "memory", "processes", "files", "fsize"):
                if key in limits:
                    command += [f"--{key}", str(limits[key])]
            for path in list(SYSTEM_RO) + [str(p) for p in ro]:
                if os.path.exists(path):
                    command += ["--ro", path]
            for path in [self.work] + list(rw):
                command += ["--rw", str(path)]
            if count:
                command += ["--count", ",".join(count)]
            if allow_violations:
                command += ["--allow-violations"]
            command += ["--"] + [str(a) for a in argv]
        else:
            command = [str(a) for a in argv]
        started = time.monotonic()
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            stdin_file = open(stdin, "rb") if stdin else subprocess.DEVNULL
            try:
                process = subprocess.Popen(command, stdin=stdin_file, stdout=out, stderr=err, env=env,
                                           cwd=str(cwd), start_new_session=True)
                try:
                    rc = process.wait(timeout=timeout + 10)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
                    rc = 124
            finally:
                if stdin:
                    stdin_file.close()
        seconds = time.monotonic() - started
        report = {}
        if self.sandbox and report_path.exists():
            try:
                report = json.loads(report_path.read_text())
            except ValueError:
                report = {}
        killed_by = report.get("signal", 0)
        if rc < 0:
            killed_by, rc = -rc, 128 - rc
        if not self.sandbox and seconds > timeout:
            report["timed_out"] = True
        return Run(rc, read_capped(out_path), read_capped(err_path), report, seconds, killed_by)


class Run:
    def __init__(self, rc, out, err, report, seconds, signal_number=0):
        self.rc, self.out, self.err, self.report, self.seconds = rc, out, err, report, seconds
        self.signal = signal_number  # the program was killed by this signal (0: it exited)

    def trouble(self):
        """What the sandbox stopped, in words, or None."""
        for violation in self.report.get("violations", []):
            return (f"forbidden system call: {violation['syscall']} "
                    f"({violation['class']}: {violation['why']})")
        if self.report.get("timed_out"):
            return f"time limit reached ({self.report.get('limits', {}).get('timeout_s', '?')} s): killed"
        if self.signal == signal.SIGXCPU:
            return "CPU time limit reached: killed"
        if self.signal:
            try:
                return f"killed by {signal.Signals(self.signal).name}"
            except ValueError:
                return f"killed by signal {self.signal}"
        return None


def read_capped(path):
    with open(path, "rb") as f:
        data = f.read(OUTPUT_CAP)
    return data.decode("utf-8", errors="replace")


# ---------------------------------------------------------------- building

def compile_program(runner, exercise, impl_dir, name, program, out_dir, build_dir=None):
    sources = []
    # In the repository, what every implementation shares is already built (CMake's lib<name>.a).
    shared_lib = build_dir / "homework" / exercise.name / "lib" / f"lib{name}.a" if build_dir else None
    if shared_lib is not None and not shared_lib.exists():
        shared_lib = None
    for source in program["sources"]:
        if shared_lib and not source.startswith("@"):
            continue
        if source.startswith("@"):
            sources.append(impl_dir / source[1:])
        elif source.startswith("%"):
            sources.append(exercise.dir / source[1:])
        else:
            sources.append(exercise.tests_dir / source)
    missing = [s.name for s in sources if not s.exists()]
    if missing:
        return f"missing {', '.join(missing)}"
    cxx = any(Path(x.lstrip("@%")).suffix in (".cpp", ".cc") for x in program["sources"])
    libs = []
    for lib in program.get("libs", []):
        if lib == "oslab":
            return "needs oslab's library (built only in the repository)"
        libs += LIBS.get(lib, [])
    argv = (["g++"] + CXXFLAGS if cxx else ["gcc"] + CFLAGS) + ["-I", str(exercise.dir), "-I",
                                                                 str(exercise.tests_dir)]
    argv += [str(s) for s in sources]
    if shared_lib:
        argv += ["-Wl,--whole-archive", str(shared_lib), "-Wl,--no-whole-archive"]
    argv += ["-o", str(out_dir / name)] + libs
    env = dict(os.environ, TMPDIR=str(runner.work))
    ro = [exercise.dir, exercise.tests_dir, impl_dir] + ([shared_lib.parent] if shared_lib else [])
    run = runner.run(argv, timeout=120, ro=ro, rw=[out_dir], env=env,
                     limits={"cpu": 120, "memory": 4096, "processes": 64, "fsize": 512})
    if run.rc != 0:
        trouble = run.trouble()
        return (trouble + "\n" if trouble else "") + (run.err.strip() or run.out.strip())[-3000:]
    return None


def build_from_source(runner, exercise, source_dir, label, build_dir=None):
    """Builds a submission: only its student files, copied where the sandboxed compiler may read."""
    impl = Impl(label, runner.work / "bin", runner.work / "src")
    for folder in (impl.bin_dir, impl.source_dir):
        folder.mkdir(exist_ok=True)
        os.chmod(folder, 0o777)
    for file in exercise.spec.get("student_files", []):
        if not (Path(source_dir) / file).is_file():
            impl.build_error = f"the submission has no {file}"
            return impl
        shutil.copyfile(Path(source_dir) / file, impl.source_dir / file)
        os.chmod(impl.source_dir / file, 0o644)
    for name, program in exercise.spec["programs"].items():
        error = compile_program(runner, exercise, impl.source_dir, name, program, impl.bin_dir, build_dir)
        if error:
            impl.build_error = f"{name} did not build:\n{error}"
            return impl
    return impl


def prebuilt(build_dir, exercise, impl_name):
    bin_dir = build_dir / "homework" / exercise.name / impl_name
    impl = Impl(impl_name, bin_dir, exercise.dir / impl_name)
    for name in exercise.spec["programs"]:
        if not (bin_dir / name).exists():
            raise UsageError(f"{bin_dir / name} is not built (scripts/oslab build, or cmake --build build "
                             f"--target oslab-homework)")
    return impl


def helpers(runner, exercise, build_dir):
    """The grader's helper programs: {name: path or None when unavailable here}."""
    found = {}
    for name, program in exercise.spec.get("helpers", {}).items():
        if build_dir and (build_dir / "homework" / exercise.name / "helpers" / name).exists():
            found[name] = build_dir / "homework" / exercise.name / "helpers" / name
            continue
        out_dir = runner.work / "helpers"
        out_dir.mkdir(exist_ok=True)
        os.chmod(out_dir, 0o777)
        error = compile_program(runner, exercise, exercise.tests_dir, name, program, out_dir)
        found[name] = None if error else out_dir / name
    return found


# ---------------------------------------------------------------- running tests

class Context:
    def __init__(self, exercise, impl, runner, helper_paths, reference):
        self.exercise, self.impl, self.runner, self.helpers, self.reference = (
            exercise, impl, runner, helper_paths, reference)
        self.limits = exercise.spec.get("limits", {})
        self.perf_cache = {}
        self.timeout = exercise.spec.get("timeout_s", 5)

    def expand(self, words, impl=None):
        impl = impl or self.impl
        programs = self.exercise.spec["programs"]
        expanded = []
        for word in words:
            def substitute(match):
                name = match.group(1)
                if name in programs:
                    return str(impl.program(name))
                if name in self.helpers:
                    if self.helpers[name] is None:
                        raise Unavailable(f"the helper {name} is not available here")
                    return str(self.helpers[name])
                if name == "tests":
                    return str(self.exercise.tests_dir)
                if name == "work":
                    return str(self.runner.work)
                return match.group(0)
            expanded.append(re.sub(r"\$\{?([A-Za-z][A-Za-z0-9_-]*)\}?", substitute, word))
        return expanded

    def env(self):
        helper_dirs = sorted({str(p.parent) for p in self.helpers.values() if p})
        path = ":".join(helper_dirs + ["/usr/local/bin", "/usr/bin", "/bin"])
        return {"PATH": path, "HOME": str(self.runner.work), "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
                "OSLAB_HOMEWORK_SEED": str(self.exercise.spec.get("seed", 1))}

    def run(self, argv, impl=None, stdin=None, count=(), timeout=None, trusted=False):
        """Runs under the sandbox. `trusted`: oslab's own code (a baseline), whose machine probes
        may try calls the sandbox refuses (they fail with EPERM instead of ending it) and which
        may be built with a sanitizer (no address-space limit)."""
        impl = impl or self.impl
        ro = [self.exercise.tests_dir, impl.bin_dir] + [p.parent for p in self.helpers.values() if p]
        limits = dict(self.limits, memory=0) if trusted else self.limits
        return self.runner.run(self.expand(argv, impl), timeout=timeout or self.timeout, ro=ro, stdin=stdin,
                               count=count, env=self.env(), limits=limits, allow_violations=trusted)


class Unavailable(Exception):
    """A test this copy of the grader cannot run (a handout without the reference)."""


def normalise(text, rules):
    for pattern, replacement in rules:
        text = re.sub(pattern, replacement, text, flags=re.MULTILINE)
    return "\n".join(line.rstrip() for line in text.rstrip("\n").split("\n")) if text.strip() else ""


def first_difference(expected, actual):
    e_lines, a_lines = expected.split("\n"), actual.split("\n")
    for i in range(max(len(e_lines), len(a_lines))):
        e = e_lines[i] if i < len(e_lines) else "<nothing>"
        a = a_lines[i] if i < len(a_lines) else "<nothing>"
        if e != a:
            return f"line {i + 1}: expected {e!r}, got {a!r}"
    return "differs"


def check_case(ctx, case, count=()):
    """Runs cases/<case>; returns (run, list of problems)."""
    cases = ctx.exercise.tests_dir / "cases"
    run_line = (cases / f"{case}.run").read_text().strip()
    stdin = cases / f"{case}.in"
    timeout = ctx.timeout
    if (cases / f"{case}.timeout").exists():
        timeout = float((cases / f"{case}.timeout").read_text())
    run = ctx.run(shlex.split(run_line), stdin=stdin if stdin.exists() else None, count=count, timeout=timeout)
    problems = []
    trouble = run.trouble()
    if trouble:
        problems.append(trouble)
    rules = ctx.exercise.spec.get("normalise", [])
    out, err = normalise(run.out, rules), normalise(run.err, rules)
    expect_rc = int((cases / f"{case}.rc").read_text()) if (cases / f"{case}.rc").exists() else 0
    if run.rc != expect_rc and not trouble:
        problems.append(f"exit code {run.rc}, expected {expect_rc}")
    for stream, actual in (("out", out), ("err", err)):
        path = cases / f"{case}.{stream}"
        if path.exists():
            expected = normalise(path.read_text(), rules)
            if expected != actual:
                problems.append(f"std{stream}: {first_difference(expected, actual)}")
    lines = set(out.split("\n")) | set(err.split("\n"))
    if (cases / f"{case}.req").exists():
        for line in (cases / f"{case}.req").read_text().splitlines():
            if line and normalise(line, rules) not in lines:
                problems.append(f"missing line {line!r}")
    if (cases / f"{case}.forbid").exists():
        for line in (cases / f"{case}.forbid").read_text().splitlines():
            if line and any(line in l for l in lines):
                problems.append(f"forbidden output {line!r}")
    return run, problems


def test_case(ctx, test):
    _, problems = check_case(ctx, test["case"])
    return (1.0, "ok") if not problems else (0.0, "; ".join(problems))


def count_of(counts, expression):
    """'pipe+pipe2' or 'clone-clone(CLONE_THREAD)': a sum and difference of counted calls."""
    total = 0
    for sign, name in re.findall(r"([+-]?)([^+-]+(?:\([^)]*\))?)", expression):
        total += -counts.get(name, 0) if sign == "-" else counts.get(name, 0)
    return total


def test_count(ctx, test):
    names = sorted({n for expr in test["count"] for n in re.findall(r"[a-z_0-9]+", expr) if n != "CLONE_THREAD"})
    run, problems = check_case(ctx, test["case"], count=names)
    if "counts" not in run.report:
        raise Unavailable("system calls can be counted only under oslab-sandbox built with libseccomp")
    counts = run.report["counts"]
    for expression, rule in test["count"].items():
        op, value = re.match(r"(>=|<=|==)\s*(\d+)", rule).groups()
        got = count_of(counts, expression)
        ok = {">=": got >= int(value), "<=": got <= int(value), "==": got == int(value)}[op]
        if not ok:
            problems.append(f"{expression}: {got} calls, expected {op} {value}")
    shown = ", ".join(f"{e} {count_of(counts, e)}" for e in test["count"])
    return (1.0, f"ok ({shown})") if not problems else (0.0, "; ".join(problems))


def test_gtest(ctx, test):
    program, name = test["gtest"].split(":")
    run = ctx.run([f"${program}", f"--gtest_filter={name}", "--gtest_color=no"], timeout=test.get("timeout_s"))
    if "[  PASSED  ] 1 test" in run.out and run.rc == 0:
        return 1.0, "ok"
    if "0 tests" in run.out and run.rc == 0:
        return 0.0, f"grader defect: no test {name}"
    trouble = run.trouble()
    failures = [line.strip() for line in run.out.splitlines()
                if line.strip() and not line.startswith("[") and "Running main()" not in line
                and "Note: Google Test filter" not in line]
    message = "; ".join(failures[:6])[:600]
    return 0.0, (trouble + ("; " + message if message else "")) if trouble else (message or f"exit code {run.rc}")


def metric(run, name):
    pattern = re.compile(rf"^\s*{re.escape(name)}:?\s+([-+0-9.eE]+)", re.MULTILINE)
    match = pattern.search(run.out)
    return float(match.group(1)) if match else None


def credit(ratio, full, zero):
    if ratio >= full:
        return 1.0
    if ratio <= zero:
        return 0.0
    return (ratio - zero) / (full - zero)


def perf_runs(ctx, test):
    """Runs test["run"] for the reference and this implementation, alternately, `rounds` times:
    a slow spell of the machine falls on both. Shared by the tests that read other metrics of
    the same command."""
    key = (test["run"], test.get("rounds", 5))
    if key not in ctx.perf_cache:
        runs = {"reference": [], "impl": []}
        for _ in range(key[1]):
            for who, impl in (("reference", ctx.reference), ("impl", ctx.impl)):
                runs[who].append(ctx.run(shlex.split(test["run"]), impl=impl, timeout=test.get("timeout_s")))
        ctx.perf_cache[key] = runs
    return ctx.perf_cache[key]


def test_perf(ctx, test):
    if ctx.reference is None:
        raise Unavailable("performance is scored against the reference, which only the instructor's grader has")
    runs = perf_runs(ctx, test)
    values = {}
    for who in ("reference", "impl"):
        values[who] = []
        for run in runs[who]:
            value = metric(run, test["metric"])
            if run.rc != 0 or value is None or value <= 0:
                name = "the reference" if who == "reference" else "this implementation"
                return 0.0, f"{name} printed no {test['metric']}: {run.trouble() or 'exit ' + str(run.rc)}"
            values[who].append(value)
    # The best of each: noise (other work on the machine) only ever makes a run slower.
    higher = test.get("better", "higher") == "higher"
    best = max if higher else min
    m, t = best(values["impl"]), best(values["reference"])
    ratio = m / t if higher else t / m
    full_at, zero_at = test.get("full_at", 0.25), test.get("zero_at", 0.05)
    got = credit(ratio, full_at, zero_at)
    return got, (f"{test['metric']} {m:.4g} vs the reference's {t:.4g} (best of {len(values['impl'])}, "
                 f"interleaved, this run): {ratio:.2f}x; full credit from {full_at}x")


def accuracy_runs(ctx, test):
    """The implementation's command and oslab's baseline, alternately, `rounds` times, cached
    for the tests that read other figures of the same commands. The baseline is oslab's own
    code, run under the same sandbox (its machine probes may try calls the sandbox refuses:
    those fail with EPERM instead of ending it)."""
    key = (test["run"], test["baseline"], test.get("rounds", 3))
    if key not in ctx.perf_cache:
        runs = {"impl": [], "baseline": []}
        for _ in range(key[2]):
            runs["impl"].append(ctx.run(shlex.split(test["run"]), timeout=test.get("timeout_s")))
            runs["baseline"].append(ctx.run(shlex.split(test["baseline"]), timeout=test.get("timeout_s"),
                                            trusted=True))
        ctx.perf_cache[key] = runs
    return ctx.perf_cache[key]


def test_accuracy(ctx, test):
    runs = accuracy_runs(ctx, test)
    values = [metric(run, test["metric"]) for run in runs["impl"]]
    if any(run.rc != 0 for run in runs["impl"]) or None in values:
        run = next(r for r, v in zip(runs["impl"], values) if r.rc != 0 or v is None)
        return 0.0, f"no '{test['metric']}: <number>' line in the output ({run.trouble() or 'exit ' + str(run.rc)})"
    baselines = [metric(run, test.get("baseline_metric", test["metric"])) for run in runs["baseline"]]
    if None in baselines or min(baselines) <= 0:
        raise Unavailable(f"oslab's own figure could not be measured: {runs['baseline'][0].err.strip()[:200]}")
    value, baseline = statistics.median(values), statistics.median(baselines)
    if value <= 0:
        return 0.0, f"{test['metric']} {value}: a cost cannot be zero or negative"
    ratio = value / baseline
    lo, hi = test.get("full", [0.5, 2.0])
    half_lo, half_hi = test.get("half", [0.25, 4.0])
    got = 1.0 if lo <= ratio <= hi else 0.5 if half_lo <= ratio <= half_hi else 0.0
    return got, (f"{test['metric']} {value:.4g} against oslab's {baseline:.4g} (medians of {len(values)} runs each, "
                 f"alternately, now): {ratio:.2f}x; full credit within {lo}x-{hi}x, half within {half_lo}x-{half_hi}x")


KINDS = {"case": test_case, "count": test_count, "gtest": test_gtest, "perf": test_perf, "accuracy": test_accuracy}


def kind_of(test):
    for kind in ("count", "case", "gtest", "perf", "accuracy"):
        if kind in test:
            return kind
    raise UsageError(f"test {test.get('id')}: no kind")


def grade(exercise, impl, runner, helper_paths, reference):
    started = time.monotonic()
    results = []
    ctx = Context(exercise, impl, runner, helper_paths, reference)
    perf_kinds = ("perf",)
    for test in exercise.tests:
        kind = kind_of(test)
        result = {"id": str(test["id"]), "name": test["name"], "kind": kind, "max": test["points"]}
        t0 = time.monotonic()
        if impl.build_error:
            fraction, message = 0.0, impl.build_error.split("\n")[0]
        elif kind in perf_kinds and any(r["points"] < r["max"] for r in results if r["kind"] not in perf_kinds):
            fraction, message = 0.0, "no performance credit: a correctness test failed"
        elif time.monotonic() - started > BUDGET_S:
            fraction, message = 0.0, f"not run: the grading time limit ({BUDGET_S} s) was reached"
        else:
            try:
                fraction, message = KINDS[kind](ctx, test)
            except Unavailable as why:
                fraction, message = None, f"not graded here: {why}"
        result["points"] = round(fraction * test["points"], 1) if fraction is not None else 0.0
        result["passed"] = fraction is not None and fraction >= 1.0
        result["graded"] = fraction is not None
        result["message"] = message
        result["seconds"] = round(time.monotonic() - t0, 3)
        results.append(result)
    graded_max = sum(r["max"] for r in results if r["graded"])
    return {"exercise": exercise.name, "title": exercise.spec.get("title", ""), "impl": impl.label,
            "score": round(sum(r["points"] for r in results), 1), "max": exercise.max, "graded_max": graded_max,
            "tests": results, "seconds": round(time.monotonic() - started, 2),
            "build_error": impl.build_error, "sandbox": str(runner.sandbox) if runner.sandbox else None}


# ---------------------------------------------------------------- output

def print_human(doc, out=sys.stdout):
    print(f"oslab grade: {doc['exercise']} ({doc['impl']}): {doc['title']}", file=out)
    if doc.get("build_error"):
        print(f"  build failed: {doc['build_error']}", file=out)
    width = max([len(r["name"]) for r in doc["tests"]] + [10])
    print(f"  {'#':<5} {'test':<{width}}  {'points':>9}  result", file=out)
    for r in doc["tests"]:
        points = f"{fmt(r['points'])}/{fmt(r['max'])}"
        message = r["message"].replace("\n", " ")
        print(f"  {r['id']:<5} {r['name']:<{width}}  {points:>9}  {message[:300]}", file=out)
    total = f"{fmt(doc['score'])}/{fmt(doc['max'])}"
    print(f"  {'':<5} {'total':<{width}}  {total:>9}  ({doc['seconds']} s)", file=out)
    if doc["graded_max"] != doc["max"]:
        print(f"  {fmt(doc['max'] - doc['graded_max'])} points are graded only by the instructor's grader", file=out)


def markdown_table(exercise):
    kinds = {"case": "case", "count": "case, system calls counted", "gtest": "unit test",
             "perf": "performance vs the reference", "accuracy": "accuracy vs oslab's figure"}
    lines = ["| # | test | kind | points |", "| --- | --- | --- | ---: |"]
    for test in exercise.tests:
        kind = kinds[kind_of(test)]
        if "case" in test:
            kind += f" `cases/{test['case']}`"
        lines.append(f"| {test['id']} | {test['name'].replace('|', '&#124;')} | {kind} | {fmt(test['points'])} |")
    lines.append(f"| | **total** | | **{fmt(exercise.max)}** |")
    return "\n".join(lines)


def fmt(x):
    return f"{x:g}"


def gradescope(docs):
    doc = docs[0]
    return {"score": doc["score"], "execution_time": doc["seconds"],
            "output": f"{doc['exercise']} ({doc['impl']}): {fmt(doc['score'])}/{fmt(doc['max'])}",
            "tests": [{"name": r["name"], "number": r["id"], "score": r["points"], "max_score": r["max"],
                       "status": "passed" if r["passed"] else "failed", "output": r["message"]}
                      for r in doc["tests"]]}


def autolab_line(docs):
    return json.dumps({"scores": {docs[0]["exercise"]: docs[0]["score"]}})


# ---------------------------------------------------------------- modes

def make_work():
    work = Path(tempfile.mkdtemp(prefix="oslab-grade."))
    os.chmod(work, 0o777)  # the sandboxed program runs as a user of its own
    return work


def impl_for(exercise, which, runner, build_dir):
    if which in ("starter", "reference") or which.startswith("buggy/"):
        if HANDOUT:
            if which != "starter":
                raise UsageError("a handout has no reference or buggy solutions")
            return build_from_source(runner, exercise, exercise.dir, "handout")
        return prebuilt(build_dir, exercise, which)
    path = Path(which)
    if not path.is_dir():
        raise UsageError(f"--impl: {which} is neither starter, reference, buggy nor a folder")
    return build_from_source(runner, exercise, path.resolve(), str(path), build_dir)


def grade_one(exercise, which, sandbox, build_dir, keep=False):
    work = make_work()
    try:
        runner = Runner(sandbox, work)
        helper_paths = helpers(runner, exercise, build_dir)
        impl = impl_for(exercise, which, runner, build_dir)
        reference = None
        if not HANDOUT and build_dir and (build_dir / "homework" / exercise.name / "reference").is_dir():
            reference = prebuilt(build_dir, exercise, "reference")
        return grade(exercise, impl, runner, helper_paths, reference)
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


def write_class(exercise, class_dir, csv_path, sandbox, build_dir):
    students = sorted(p for p in Path(class_dir).iterdir() if p.is_dir() and not p.name.startswith("."))
    if not students:
        raise UsageError(f"--class: {class_dir} has no submission folders")
    docs = []
    for student in students:
        doc = grade_one(exercise, str(student), sandbox, build_dir)
        doc["student"] = student.name
        docs.append(doc)
        print(f"{student.name}: {fmt(doc['score'])}/{fmt(doc['max'])}"
              + (" (build failed)" if doc["build_error"] else ""), file=sys.stderr)
    with open(csv_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["student", "score", "max", "status"] + [f"{t['id']} {t['name']}" for t in exercise.tests])
        for doc in docs:
            writer.writerow([doc["student"], doc["score"], doc["max"], "build failed" if doc["build_error"] else "graded"]
                            + [r["points"] for r in doc["tests"]])
    scores = [d["score"] for d in docs]
    lines = [f"{exercise.name}: {len(docs)} submissions, max {fmt(exercise.max)}",
             f"  mean {statistics.mean(scores):.1f}, median {fmt(statistics.median(scores))}, "
             f"min {fmt(min(scores))}, max {fmt(max(scores))}",
             f"  full marks {sum(s >= exercise.max for s in scores)}, zero {sum(s == 0 for s in scores)}, "
             f"build failed {sum(1 for d in docs if d['build_error'])}",
             "  passed, per test:"]
    for i, test in enumerate(exercise.tests):
        passed = sum(1 for d in docs if d["tests"][i]["passed"])
        lines.append(f"    {test['id']:<5} {test['name']:<50} {passed}/{len(docs)}")
    summary = "\n".join(lines) + "\n"
    Path(csv_path).with_suffix(".summary.txt").write_text(summary)
    sys.stdout.write(summary)
    print(f"wrote {csv_path} and {Path(csv_path).with_suffix('.summary.txt')}", file=sys.stderr)
    return docs


def meta(exercise, sandbox, build_dir):
    """The grader can fail: reference full, starter zero or near it, every mutant below full."""
    failures = []
    near_zero = exercise.spec.get("starter_at_most", 0.1) * exercise.max
    rows = []
    for which in ["reference", "starter"] + [f"buggy/{m}" for m in exercise.mutants()]:
        doc = grade_one(exercise, which, sandbox, build_dir)
        rows.append((which, doc))
        if which == "reference" and doc["score"] < exercise.max:
            failures.append(f"the reference scores {fmt(doc['score'])}/{fmt(exercise.max)}: "
                            + "; ".join(f"{r['id']}: {r['message']}" for r in doc["tests"] if not r["passed"]))
        if which == "starter" and doc["score"] > near_zero:
            failures.append(f"the starter scores {fmt(doc['score'])} (more than {fmt(near_zero)}): "
                            + "; ".join(f"{r['id']}" for r in doc["tests"] if r["passed"]))
        if which.startswith("buggy/") and doc["score"] >= exercise.max:
            failures.append(f"{which} scores full marks: the grader cannot tell it from the reference")
    if not exercise.mutants():
        failures.append("no buggy solution: nothing shows that the grader can fail")
    for which, doc in rows:
        print(f"{exercise.name:<18} {which:<32} {fmt(doc['score']):>6}/{fmt(doc['max'])}  ({doc['seconds']} s)")
        for r in doc["tests"]:
            if not r["passed"]:
                print(f"    {r['id']:<5} {fmt(r['points'])}/{fmt(r['max'])} {r['message'][:160]}")
    for failure in failures:
        print(f"META FAIL: {failure}")
    return 1 if failures else 0


def private_ancestor(path):
    """The first directory on the way to `path` that other users may not search (as /root,
    0700), or None."""
    path = Path(path).resolve()
    for folder in reversed(path.parents):
        try:
            if folder.is_dir() and not folder.stat().st_mode & 0o001:
                return str(folder)
        except OSError:
            return str(folder)
    return None


def main(argv=None):
    parser = argparse.ArgumentParser(prog="oslab grade", description="Grades a homework exercise.")
    parser.add_argument("exercise", nargs="?")
    parser.add_argument("--impl", default="starter" if HANDOUT else "reference",
                        help="starter, reference, buggy (every mutant), buggy/NAME or a folder")
    parser.add_argument("--json", action="store_true", help="print one JSON document (an array for buggy)")
    parser.add_argument("--gradescope", metavar="FILE", help="also write a Gradescope results.json")
    parser.add_argument("--class", dest="class_dir", metavar="DIR", help="grade every submission folder in DIR")
    parser.add_argument("--csv", metavar="FILE", help="with --class: the CSV (default DIR/<exercise>-grades.csv)")
    parser.add_argument("--meta", action="store_true", help="check that the grader can fail (CI)")
    parser.add_argument("--build-dir", default=None if HANDOUT else str(ROOT / "build"))
    parser.add_argument("--no-sandbox", action="store_true", help="run without oslab-sandbox (not for grading)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (to debug the grader)")
    parser.add_argument("--list", action="store_true", help="list the exercises")
    parser.add_argument("--table", action="store_true", help="print the grading table (Markdown, for README.md)")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return exit_.code
    try:
        if args.list:
            for name in all_exercises():
                ex = Exercise(name)
                print(f"{name:<18} {fmt(ex.max):>4} points  {ex.spec.get('title', '')}")
            return 0
        if not args.exercise:
            raise UsageError("which exercise? (grade.py --list)")
        exercise = Exercise(args.exercise)
        if args.table:
            print(markdown_table(exercise))
            return 0
        build_dir = Path(args.build_dir) if args.build_dir else None
        sandbox = None if args.no_sandbox else find_sandbox(build_dir)
        if sandbox is None and not args.no_sandbox:
            print("oslab grade: oslab-sandbox not found: running the code unsandboxed", file=sys.stderr)
        closed = private_ancestor(exercise.dir) or (private_ancestor(build_dir) if build_dir else None)
        if sandbox is not None and os.geteuid() == 0 and closed:
            # As root the sandbox runs the code as an unprivileged user, who cannot reach it.
            print(f"oslab grade: {closed} is not searchable by other users, and the sandbox runs the code as an "
                  "unprivileged user: put oslab (and the submissions) where others can read them", file=sys.stderr)
            return 77
        if args.meta:
            return meta(exercise, sandbox, build_dir)
        if args.class_dir:
            csv_path = args.csv or str(Path(args.class_dir) / f"{exercise.name}-grades.csv")
            write_class(exercise, args.class_dir, csv_path, sandbox, build_dir)
            return 0
        whichs = [f"buggy/{m}" for m in exercise.mutants()] if args.impl == "buggy" else [args.impl]
        if not whichs:
            raise UsageError(f"{exercise.name} has no buggy solutions")
        docs = [grade_one(exercise, which, sandbox, build_dir, keep=args.keep) for which in whichs]
        if args.gradescope:
            Path(args.gradescope).write_text(json.dumps(gradescope(docs), indent=2) + "\n")
        if args.json:
            print(json.dumps(docs if args.impl == "buggy" else docs[0], indent=2))
        else:
            for doc in docs:
                print_human(doc)
            print(autolab_line(docs))
        return 0
    except UsageError as error:
        print(f"oslab grade: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
