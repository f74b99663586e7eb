#!/usr/bin/env python3
"""oslab report: run every lab, write results.json (an array of lab documents, schema
oslab/1) and report.md (the machine, a summary of headline figures, every verdict, and a
section per lab) into results/<host>-<date>/. Labs are found in the bin directory, so a lab
added later appears without editing anything here.

Usage: report.py --bin build/bin --results results [--quick] [--out DIR] [--timeout S]
"""
import argparse
import datetime
import json
import os
import pathlib
import subprocess
import sys


def fmt_number(value):
    magnitude = abs(value)
    if magnitude >= 100 or value == int(value):
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    if magnitude >= 0.01:
        return f"{value:.3f}"
    return f"{value:.2g}"


def fmt_value(value, unit):
    if unit != "ns":
        return f"{fmt_number(value)} {unit}"
    for scale, name in ((1e9, "s"), (1e6, "ms"), (1e3, "us")):
        if abs(value) >= scale:
            return f"{fmt_number(value / scale)} {name}"
    return f"{fmt_number(value)} ns"


def fmt_params(params):
    return ", ".join(f"{k}={v}" for k, v in params.items())


def md_table(header, rows):
    def cell(text):
        return str(text).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(cell(h) for h in header) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def run_labs(bin_dir, quick, timeout):
    documents, failures = [], []
    labs = sorted(p for p in pathlib.Path(bin_dir).glob("oslab-*") if os.access(p, os.X_OK))
    if not labs:
        sys.exit(f"oslab report: no labs in {bin_dir}; run scripts/oslab build")
    for path in labs:
        lab = path.name[len("oslab-"):]
        args = [str(path), "--json"] + (["--quick"] if quick else [])
        print(f"oslab report: running {lab}...", file=sys.stderr, flush=True)
        try:
            run = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            failures.append((lab, f"did not finish within {timeout} s"))
            continue
        if run.returncode == 0:
            documents.append(json.loads(run.stdout))
        elif run.returncode == 77:
            documents.append({"schema": "oslab/1", "lab": lab, "cmdline": " ".join(args), "results": [],
                              "verdicts": [], "skipped": [{"what": "the whole lab", "why": run.stderr.strip()}]})
        else:
            failures.append((lab, f"exit {run.returncode}: {run.stderr.strip()}"))
    return documents, failures


def machine_section(machine):
    features = machine.get("features", {})
    rows = [["CPU", f"{machine.get('cpu_model')} ({machine.get('logical_cpus')} logical CPUs, allowed {machine.get('allowed_cpus')})"],
            ["Kernel", f"{machine.get('kernel')} {machine.get('kernel_version', '')}"],
            ["Virtualisation", machine.get("virtualization")],
            ["Clock source", machine.get("clocksource")],
            ["Timer", f"CLOCK_MONOTONIC, {fmt_number(machine.get('timer_overhead_ns', 0))} ns per read"],
            ["Null system call", fmt_value(machine.get("null_syscall_ns", 0), "ns")],
            ["Transparent huge pages", machine.get("thp")],
            ["Memory", f"{fmt_number(machine.get('memory_total_mib', 0))} MiB"]]
    rows += [[f"feature: {name}", ("yes" if f["present"] else "no") + f" ({f['detail']})"]
             for name, f in sorted(features.items())]
    mitigations = machine.get("mitigations", {})
    vulnerable = sorted(k for k, v in mitigations.items() if v.startswith("Vulnerable"))
    rows.append(["CPU vulnerabilities", f"{len(mitigations)} listed; vulnerable: {', '.join(vulnerable) or 'none'}"])
    return md_table(["", ""], rows)


def lab_section(doc):
    out = [f"## {doc['lab']}\n", f"`{doc.get('cmdline', '')}`\n"]
    if doc.get("params"):
        out.append("Parameters: " + fmt_params(doc["params"]) + "\n")
    results = doc.get("results", [])
    if results:
        rows = []
        for r in results:
            unit = r["unit"]
            counters = r.get("counters", {})
            rows.append([r["name"], fmt_params(r.get("params", {})), r["n"], fmt_value(r["p50"], unit),
                         fmt_value(r["p90"], unit), fmt_value(r["p99"], unit), fmt_value(r["min"], unit),
                         fmt_value(r["max"], unit),
                         f"{fmt_value(r['p50_ci95'][0], unit)} .. {fmt_value(r['p50_ci95'][1], unit)}",
                         fmt_number(counters["minor_faults"]) if "minor_faults" in counters else "-",
                         fmt_number(counters["child_minor_faults"]) if "child_minor_faults" in counters else "-"])
        out.append(md_table(["result", "params", "n", "p50", "p90", "p99", "min", "max", "p50 95% CI",
                             "minor faults/op", "child minor faults/op"], rows))
        whats = {r["name"]: r.get("what", "") for r in results if r.get("what")}
        out.append("\n".join(f"- *{name}*: {what}" for name, what in whats.items()) + "\n")
    if doc.get("verdicts"):
        out.append(md_table(["claim", "holds", "evidence"],
                            [[v["claim"], "yes" if v["holds"] else "**no**", v["evidence"]] for v in doc["verdicts"]]))
    for skip in doc.get("skipped", []):
        out.append(f"- skipped: {skip['what']}: {skip['why']}\n")
    for note in doc.get("notes", []):
        out.append(f"> {note}\n")
    return "\n".join(out)


def write_report(documents, failures, out_dir, host, when, quick):
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(documents, indent=1) + "\n")
    machine = next((d["machine"] for d in documents if "machine" in d), {})
    md = [f"# oslab report: {host}, {when}{' (--quick)' if quick else ''}\n",
          "Every figure is a median of many samples taken in this one run; compare ratios within it, "
          "not absolute times across machines. `results.json` beside this file has every sample.\n",
          "## Machine\n", machine_section(machine) if machine else "(no lab ran)\n", "## Summary\n"]
    rows = []
    for doc in documents:
        for r in doc.get("results", []):
            if r.get("headline"):
                rows.append([doc["lab"], r["name"], fmt_params(r.get("params", {})), fmt_value(r["p50"], r["unit"]),
                             fmt_value(r["p90"], r["unit"]), r["n"]])
    md.append(md_table(["lab", "figure", "params", "p50", "p90", "n"], rows) if rows else "(no headline figures)\n")
    md.append("\n### Verdicts\n")
    verdict_rows = []
    for doc in documents:
        verdicts = doc.get("verdicts", [])
        held = sum(v["holds"] for v in verdicts)
        failing = [v["claim"] for v in verdicts if not v["holds"]]
        verdict_rows.append([doc["lab"], f"{held} of {len(verdicts)}", "; ".join(failing) or "-"])
    md.append(md_table(["lab", "hold", "do not hold"], verdict_rows))
    if failures:
        md.append("\n### Labs that failed\n")
        md.append("\n".join(f"- {lab}: {why}" for lab, why in failures) + "\n")
    md.append("")
    md += [lab_section(doc) for doc in documents]
    (out_dir / "report.md").write_text("\n".join(md))
    return out_dir / "report.md"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", required=True, help="directory with the oslab-* lab binaries")
    parser.add_argument("--results", default="results", help="where results/<host>-<date>/ goes")
    parser.add_argument("--out", help="write here instead of results/<host>-<date>/")
    parser.add_argument("--quick", action="store_true", help="run every lab with --quick")
    parser.add_argument("--timeout", type=int, default=900, help="seconds allowed to one lab")
    args = parser.parse_args()

    host = os.uname().nodename
    now = datetime.datetime.now(datetime.timezone.utc)
    out_dir = pathlib.Path(args.out) if args.out else pathlib.Path(args.results) / f"{host}-{now:%Y%m%d-%H%M%S}"
    documents, failures = run_labs(args.bin, args.quick, args.timeout)
    report = write_report(documents, failures, out_dir, host, f"{now:%Y-%m-%d %H:%M} UTC", args.quick)
    sys.stdout.write(report.read_text())
    print(f"\noslab report: wrote {report} and {out_dir / 'results.json'}", file=sys.stderr)
    for lab, why in failures:
        print(f"oslab report: {lab} failed: {why}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
