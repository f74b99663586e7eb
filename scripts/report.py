#!/usr/bin/env python3
"""oslab report: run every lab and write, into results/<host>-<date>/, results.json (an array of
the labs' documents, schema oslab/1, docs/schema/oslab-1.json), report.md (the machine, a
summary of the headline figures, every verdict, and a section per lab with its tables and
plots), a self-contained report.html, and the plots as PNG and SVG in plots/.
Labs are found in the bin directory, so a lab added later appears without editing anything.

With --repeat N every lab runs N times, round after round, and the report says how far each
headline median moved between runs: the repeatability of this machine's figures.

Usage: report.py --bin build/bin [--results results] [--out DIR] [--quick] [--labs LIST]
                 [--repeat N] [--timeout S] [--peers]
"""
import argparse
import datetime
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from oslab_format import fmt_number, fmt_params, fmt_percent, fmt_value  # noqa: E402
import oslab_html  # noqa: E402
import oslab_plots  # noqa: E402
import peers as peer_tools  # noqa: E402

SCHEMA = pathlib.Path(__file__).resolve().parent.parent / "docs" / "schema" / "oslab-1.json"
# Params that describe what was measured but move a little from run to run.
VOLATILE_PARAMS = {"parent_rss_mib"}



def schema_checker():
    """A function that lists a document's schema errors, and a note on how it checks."""
    try:
        import jsonschema  # Debian: python3-jsonschema, which scripts/oslab setup installs
    except ImportError:
        required = json.loads(SCHEMA.read_text())["required"]
        return (lambda doc: [f"missing {key}" for key in required if key not in doc],
                "top-level fields only (python3-jsonschema is not installed)")
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text()))
    return (lambda doc: [f"/{'/'.join(str(p) for p in e.absolute_path)}: {e.message}"
                         for e in list(validator.iter_errors(doc))[:5]],
            "against docs/schema/oslab-1.json")


def md_table(header, rows):
    def cell(text):
        return str(text).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(cell(h) for h in header) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def run_one(path, quick, timeout, check):
    """Runs one lab; returns (document or None, failure reason or None)."""
    lab = path.name[len("oslab-"):]
    args = [str(path), "--json"] + (["--quick"] if quick else [])
    try:
        run = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"did not finish within {timeout} s"
    if run.returncode == 77:
        return ({"schema": "oslab/1", "lab": lab, "cmdline": " ".join(args), "params": {}, "results": [],
                 "verdicts": [], "tables": [], "failed": [], "notes": [],
                 "skipped": [{"what": "the whole lab", "why": run.stderr.strip()}]}, None)
    try:
        doc = json.loads(run.stdout)
    except json.JSONDecodeError as e:
        reason = f"exit {run.returncode}; its output is not a JSON document ({e.msg} at line {e.lineno})"
        if run.stderr.strip():
            reason += f"; stderr: {run.stderr.strip()[:300]}"
        return None, reason
    errors = check(doc)
    if errors:
        return doc, "its document does not follow the schema: " + "; ".join(errors)
    if run.returncode != 0:
        return doc, f"exit {run.returncode}: {run.stderr.strip()[:500]}"
    return doc, None


def run_labs(labs, quick, timeout, repeat, check, progress):
    documents, failures = [], []
    total = len(labs) * repeat
    started = time.monotonic()
    done = 0
    for round_index in range(repeat):
        for path in labs:
            lab = path.name[len("oslab-"):]
            elapsed = time.monotonic() - started
            estimate = f", about {elapsed / done * (total - done):.0f} s left" if done else ""
            round_text = f" (run {round_index + 1} of {repeat})" if repeat > 1 else ""
            progress(f"oslab report: [{done + 1}/{total}] {lab}{round_text}; {elapsed:.0f} s so far{estimate}")
            doc, failure = run_one(path, quick, timeout, check)
            done += 1
            if doc is not None:
                if repeat > 1:
                    doc["repeat_index"] = round_index
                documents.append(doc)
            if failure:
                failures.append((lab, failure))
    return documents, failures


def headline_key(doc, result):
    params = {k: v for k, v in result.get("params", {}).items() if k not in VOLATILE_PARAMS}
    return doc["lab"], result["name"], json.dumps(params, sort_keys=True)


def varying(results):
    """The params that tell results apart (those all share are left out)."""
    keys = {}
    for r in results:
        for key, value in r.get("params", {}).items():
            keys.setdefault(key, set()).add(json.dumps(value, sort_keys=True))
    return {key for key, values in keys.items() if len(values) > 1 or any(key not in r.get("params", {}) for r in results)}


def shown_params(result, keys):
    return fmt_params({k: v for k, v in result.get("params", {}).items() if k in keys})


def machine_section(machine):
    features = machine.get("features", {})
    entry = machine.get("entry_mitigations", [])
    rows = [["CPU", f"{machine.get('cpu_model')} ({machine.get('logical_cpus')} logical CPUs, allowed {machine.get('allowed_cpus')})"],
            ["Kernel", f"{machine.get('kernel')} {machine.get('kernel_version', '')}"],
            ["Virtualisation", machine.get("virtualization")],
            ["Clock source", machine.get("clocksource")],
            ["Timer", f"CLOCK_MONOTONIC, {fmt_number(machine.get('timer_overhead_ns', 0))} ns per read"],
            ["Null system call", f"{fmt_value(machine.get('null_syscall_ns', 0))} (getppid, pinned to CPU "
                                 f"{machine.get('null_syscall_cpu', '?')}, median of ~20 ms of blocks)"],
            ["Entry/exit mitigations", ", ".join(entry) if entry else "none listed as active"],
            ["Transparent huge pages", machine.get("thp")],
            ["Memory", f"{fmt_number(machine.get('memory_total_mib', 0))} MiB"]]
    rows += [[f"feature: {name}", ("yes" if f["present"] else "no") + f" ({f['detail']})"]
             for name, f in sorted(features.items())]
    mitigations = machine.get("mitigations", {})
    vulnerable = sorted(k for k, v in mitigations.items() if v.startswith("Vulnerable"))
    rows.append(["CPU vulnerabilities", f"{len(mitigations)} listed; vulnerable: {', '.join(vulnerable) or 'none'}"])
    return md_table(["", ""], rows)


def state_of(verdict):
    return verdict.get("state", "holds" if verdict.get("holds") else "does-not-hold")


def summary_section(documents):
    rows = []
    for doc in documents:
        if doc.get("repeat_index", 0) != 0:
            continue
        results = doc.get("results", [])
        keys = varying(results)
        for r in results:
            if not r.get("headline"):
                continue
            unit = r["unit"]
            low, high = r.get("p50_ci95", [r["p50"], r["p50"]])
            rows.append([doc["lab"], r["name"], shown_params(r, keys), fmt_value(r["p50"], unit),
                         fmt_value(r["p99"], unit), f"{fmt_value(low, unit)} .. {fmt_value(high, unit)}",
                         r["n"], r.get("what", "")])
    if not rows:
        return "(no headline figures)\n"
    return md_table(["lab", "figure", "params", "p50", "p99", "p50 95% CI", "n", "one sample is"], rows)


def repeat_section(documents, repeat):
    medians = {}
    for doc in documents:
        for r in doc.get("results", []):
            if r.get("headline"):
                medians.setdefault(headline_key(doc, r), []).append((r["p50"], r["unit"]))
    rows, flagged = [], 0
    for (lab, name, params), values in medians.items():
        if len(values) < 2:
            continue
        p50s = [v for v, _ in values]
        middle = sorted(p50s)[len(p50s) // 2]
        spread = (max(p50s) - min(p50s)) / middle if middle else 0
        flag = spread > 0.05
        flagged += flag
        rows.append([lab, name, fmt_params(json.loads(params)), " / ".join(fmt_value(v, values[0][1]) for v in p50s),
                     fmt_percent(spread) + (" **over 5%**" if flag else "")])
    if not rows:
        return ""
    text = (f"\n## Repeatability ({repeat} runs back to back)\n\n"
            f"The headline medians of each run, and their spread: (max - min) / median. {flagged} of {len(rows)} "
            f"moved more than 5%.\n\n")
    return text + md_table(["lab", "figure", "params", "medians, run by run", "spread"], rows)


def verdict_section(documents):
    rows = []
    for doc in documents:
        if doc.get("repeat_index", 0) != 0:
            continue
        verdicts = doc.get("verdicts", [])
        states = [state_of(v) for v in verdicts]
        not_holding = [f"{v['claim']} ({state_of(v)})" for v in verdicts if state_of(v) != "holds"]
        rows.append([doc["lab"], f"{states.count('holds')} of {len(verdicts)}", states.count("inconclusive"),
                     "; ".join(not_holding) or "-"])
    return md_table(["lab", "hold", "inconclusive", "do not hold or undecided"], rows)


def lab_section(doc, plots):
    out = [f"## {doc['lab']}\n", f"`{doc.get('cmdline', '')}`\n"]
    for plot, png, _ in plots.get(doc["lab"], []):
        out.append(f"![{plot['title']}](plots/{png.name})\n")
    params = {k: v for k, v in doc.get("params", {}).items()}
    if params:
        out.append("Parameters: " + fmt_params(params) + "\n")
    for table in doc.get("tables", []):
        out.append(f"**{table['title']}**\n")
        out.append(md_table(table["header"], table["rows"]))
        if table.get("footnote"):
            out.append(f"*{table['footnote']}*\n")
    results = doc.get("results", [])
    if results:
        keys = varying(results)
        rows = []
        for r in results:
            unit = r["unit"]
            counters = r.get("counters", {})
            low, high = r.get("p50_ci95", [r["p50"], r["p50"]])
            modes = r.get("modes")
            rows.append([r["name"], shown_params(r, keys), r["n"], fmt_value(r["p50"], unit), fmt_value(r["p90"], unit),
                         fmt_value(r["p99"], unit), fmt_value(r["min"], unit), fmt_value(r["max"], unit),
                         f"{fmt_value(low, unit)} .. {fmt_value(high, unit)}",
                         fmt_number(counters["minor_faults"]) if "minor_faults" in counters else "-",
                         (f"{fmt_value(modes['low_p50'], unit)} / {fmt_value(modes['high_p50'], unit)}"
                          if modes else "-")])
        out.append(f"**Every result** (n samples each; the interval of the median from {results[0].get('ci_basis', 'samples')}"
                   f" or as its JSON says)\n")
        out.append(md_table(["result", "params", "n", "p50", "p90", "p99", "min", "max", "p50 95% CI",
                             "minor faults/op", "two modes"], rows))
        whats = {}
        for r in results:
            whats.setdefault(r["name"], r.get("what", ""))
        out.append("\n".join(f"- *{name}*: {what}" for name, what in whats.items() if what) + "\n")
    if doc.get("verdicts"):
        out.append(md_table(["claim", "state", "evidence"],
                            [[v["claim"], state_of(v) if state_of(v) == "holds" else f"**{state_of(v)}**", v["evidence"]]
                             for v in doc["verdicts"]]))
    for skip in doc.get("skipped", []):
        out.append(f"- skipped: {skip['what']}: {skip['why']}\n")
    for failed in doc.get("failed", []):
        out.append(f"- **failed**: {failed['what']}: {failed['why']}\n")
    for note in doc.get("notes", []):
        out.append(f"> {note}\n")
    return "\n".join(out)


def peers_section(rows):
    if not rows:
        return ""
    table = []
    for r in rows:
        table.append([r["peer"], r["what"], fmt_value(r["peer_ns"]) if r["peer_ns"] is not None else "-",
                      r["oslab_figure"] or "-", fmt_value(r["oslab_ns"]) if r["oslab_ns"] is not None else "-",
                      f"{r['ratio']:.2f}" if r["ratio"] is not None else "-",
                      r["units"] + ("; " + "; ".join(r["problems"]) if r["problems"] else "")])
    return ("\n## Peers: the same figures by the established tools\n\nRun in this session, alternating with the "
            "oslab lab that measures the same thing, pinned alike; the ratio is oslab / peer.\n\n" +
            md_table(["peer", "what", "peer", "oslab figure", "oslab", "oslab/peer", "how the units match"], table))


def write_report(documents, failures, out_dir, host, when, args, seconds, check_note, peer_rows=None):
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(documents, indent=1) + "\n")
    first = [d for d in documents if d.get("repeat_index", 0) == 0]
    plots, plot_note = oslab_plots.draw_all(first, out_dir)
    machine = next((d["machine"] for d in first if "machine" in d), {})
    version = next((d["version"] for d in first if "version" in d), "?")
    md = [f"# oslab report: {host}, {when}{' (--quick)' if args.quick else ''}\n",
          f"oslab {version}; {len(first)} labs; took {seconds:.0f} s. Each figure is the median of its samples "
          "(n in each row), with a 95% interval of that median; compare ratios within one run, not absolute "
          f"times across machines. Documents checked {check_note}. `results.json` beside this file has every sample"
          f"{'; ' + plot_note if plot_note else ''}.\n",
          "## Machine\n", machine_section(machine) if machine else "(no lab ran)\n",
          "## Summary: the headline figures\n", summary_section(documents)]
    if args.repeat > 1:
        md.append(repeat_section(documents, args.repeat))
    md.append(peers_section(peer_rows or []))
    md += ["\n## Verdicts\n", verdict_section(documents)]
    if failures:
        md.append("\n## Labs that failed\n")
        md.append("\n".join(f"- {lab}: {why}" for lab, why in failures) + "\n")
    md.append("")
    md += [lab_section(doc, plots) for doc in first]
    (out_dir / "report.md").write_text("\n".join(md))
    oslab_html.write(out_dir / "report.md", f"oslab report: {host}, {when}")
    return out_dir / "report.md"


def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number")
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not at least 1")
    return value


def main():
    parser = argparse.ArgumentParser(prog="oslab report", description=__doc__.splitlines()[0])
    parser.add_argument("--bin", required=True, help="directory with the oslab-* lab binaries")
    parser.add_argument("--results", default="results", help="where results/<host>-<date>/ goes")
    parser.add_argument("--out", help="write here instead of results/<host>-<date>/")
    parser.add_argument("--quick", action="store_true", help="run every lab with --quick")
    parser.add_argument("--labs", help="only these labs, comma-separated (default: all)")
    parser.add_argument("--repeat", type=positive_int, default=1, help="run every lab N times and report the spread")
    parser.add_argument("--timeout", type=positive_int, default=900, help="seconds allowed to one lab")
    parser.add_argument("--peers", action="store_true", help="also run the peer tools (scripts/peers.py)")
    args = parser.parse_args()

    labs = sorted(p for p in pathlib.Path(args.bin).glob("oslab-*") if os.access(p, os.X_OK))
    if not labs:
        print(f"oslab report: no labs in {args.bin}; run scripts/oslab build", file=sys.stderr)
        return 1
    if args.labs:
        wanted = [name for name in args.labs.split(",") if name]
        unknown = [name for name in wanted if not any(p.name == f"oslab-{name}" for p in labs)]
        if unknown or not wanted:
            print(f"oslab report: --labs: unknown lab(s) {', '.join(unknown) or '(none given)'} "
                  f"(known: {', '.join(p.name[6:] for p in labs)})", file=sys.stderr)
            return 2
        labs = [p for p in labs if p.name[6:] in wanted]

    host = os.uname().nodename
    now = datetime.datetime.now(datetime.timezone.utc)
    out_dir = pathlib.Path(args.out) if args.out else pathlib.Path(args.results) / f"{host}-{now:%Y%m%d-%H%M%S}"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / ".oslab-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        print(f"oslab report: cannot write to {out_dir}: {e.strerror}", file=sys.stderr)
        return 2

    check, check_note = schema_checker()
    tty = sys.stderr.isatty()

    def progress(line):
        if tty:
            print("\r\033[K" + line, end="", file=sys.stderr, flush=True)
        else:
            print(line, file=sys.stderr, flush=True)

    started = time.monotonic()
    documents, failures = run_labs(labs, args.quick, args.timeout, args.repeat, check, progress)
    peer_rows = peer_tools.compare_all(args.bin, 1, 0, progress=progress) if args.peers else None
    if tty:
        print(file=sys.stderr)
    report = write_report(documents, failures, out_dir, host, f"{now:%Y-%m-%d %H:%M} UTC", args,
                          time.monotonic() - started, check_note, peer_rows)
    sys.stdout.write(report.read_text())
    print(f"\noslab report: wrote {report}, {report.with_suffix('.html')} and {out_dir / 'results.json'} in "
          f"{time.monotonic() - started:.0f} s", file=sys.stderr)
    for lab, why in failures:
        print(f"oslab report: {lab} failed: {why}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\noslab report: interrupted; the lab that was running has been stopped", file=sys.stderr)
        sys.exit(128 + signal.SIGINT)
    except BrokenPipeError:
        sys.exit(1)
