#!/usr/bin/env python3
"""oslab compare: put two or more oslab results side by side, figure by figure.

Each argument is a report directory (with results.json), a results.json, or one lab's --json
document. Every figure of the first (the baseline) is matched with the same lab, result name
and params in the others, and compared: the ratio of the medians, and whether the difference
is significant. Consecutive samples are not independent (a run sticks to one placement, one
cache state), so the test (Mann-Whitney U, two-sided, as Google Benchmark's compare.py) is run
on the medians of the blocks each figure was sampled in, or on repeated runs (report
--repeat), never on raw samples. A warning says when the machines differ in ways that matter.

Usage: compare.py BASELINE OTHER [OTHER...] [--json] [--plot FILE] [--alpha 0.05] [--labs LIST]
"""
import argparse
import json
import math
import pathlib
import statistics
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from oslab_format import fmt_params, fmt_value  # noqa: E402

VOLATILE_PARAMS = {"parent_rss_mib"}
MACHINE_FIELDS = ["cpu_model", "logical_cpus", "kernel", "virtualization", "clocksource", "entry_mitigations",
                  "mitigations", "thp"]


def load(path):
    path = pathlib.Path(path)
    if path.is_dir():
        path = path / "results.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise SystemExit(f"oslab compare: cannot read {path}: {e}")
    documents = data if isinstance(data, list) else [data]
    if not all(isinstance(d, dict) and d.get("schema") == "oslab/1" for d in documents):
        raise SystemExit(f"oslab compare: {path} is not an oslab/1 result (a report's results.json or a lab's --json)")
    return documents


def block_medians(result):
    samples = result.get("samples", [])
    blocks = result.get("blocks") or []
    if samples and blocks and sum(blocks) == len(samples):
        medians, start = [], 0
        for size in blocks:
            if size:
                medians.append(statistics.median(samples[start:start + size]))
            start += size
        return medians
    return []


def figures(documents):
    """{(lab, name, params): [block medians or per-run medians], result} over every run."""
    table = {}
    for doc in documents:
        for result in doc.get("results", []):
            params = {k: v for k, v in result.get("params", {}).items() if k not in VOLATILE_PARAMS}
            key = (doc["lab"], result["name"], json.dumps(params, sort_keys=True))
            entry = table.setdefault(key, {"runs": [], "blocks": [], "result": result})
            entry["runs"].append(result["p50"])
            entry["blocks"].extend(block_medians(result))
    return table


def mann_whitney(a, b):
    """Two-sided p-value of the Mann-Whitney U test: exact (no ties) for small samples, the
    normal approximation with tie correction otherwise. None when either side is empty."""
    n1, n2 = len(a), len(b)
    if n1 == 0 or n2 == 0:
        return None
    ranked = sorted([(v, 0) for v in a] + [(v, 1) for v in b])
    ranks = [0.0] * len(ranked)
    ties = []
    i = 0
    while i < len(ranked):
        j = i
        while j + 1 < len(ranked) and ranked[j + 1][0] == ranked[i][0]:
            j += 1
        for k in range(i, j + 1):
            ranks[k] = (i + j) / 2 + 1
        ties.append(j - i + 1)
        i = j + 1
    r1 = sum(rank for rank, (_, group) in zip(ranks, ranked) if group == 0)
    u1 = r1 - n1 * (n1 + 1) / 2
    u = min(u1, n1 * n2 - u1)
    if n1 * n2 <= 400 and all(t == 1 for t in ties):
        # Exact: count the arrangements with U <= u (dynamic programming over (n1, n2, U)).
        counts = _u_distribution(n1, n2)
        total = math.comb(n1 + n2, n1)
        tail = sum(counts[k] for k in range(0, int(math.floor(u)) + 1)) / total
        return min(1.0, 2 * tail)
    mean = n1 * n2 / 2
    n = n1 + n2
    variance = n1 * n2 / 12 * ((n + 1) - sum(t ** 3 - t for t in ties) / (n * (n - 1)))
    if variance <= 0:
        return 1.0
    z = (abs(u1 - mean) - 0.5) / math.sqrt(variance)
    return min(1.0, math.erfc(max(z, 0) / math.sqrt(2)))


def _u_distribution(n1, n2):
    # f[i][j][u]: arrangements of i values of one group and j of the other with statistic u.
    f = {(0, 0): [1]}
    for i in range(n1 + 1):
        for j in range(n2 + 1):
            if i == 0 and j == 0:
                continue
            size = i * j + 1
            row = [0] * size
            if i > 0:
                # the largest value is from group 1: it beats all j of group 2
                for u, c in enumerate(f[(i - 1, j)]):
                    row[u + j] += c
            if j > 0:
                for u, c in enumerate(f[(i, j - 1)]):
                    row[u] += c
            f[(i, j)] = row
    return f[(n1, n2)]


def machine_of(documents):
    return next((d["machine"] for d in documents if "machine" in d), {})


def machine_warnings(base, other):
    warnings = []
    for field in MACHINE_FIELDS:
        a, b = base.get(field), other.get(field)
        if a != b:
            if isinstance(a, dict) and isinstance(b, dict):
                changed = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
                warnings.append(f"{field} differ: {', '.join(changed[:6])}{'...' if len(changed) > 6 else ''}")
            else:
                warnings.append(f"{field}: {a} vs {b}")
    return warnings


def compare(base_docs, other_docs, alpha, labs=None):
    base, other = figures(base_docs), figures(other_docs)
    rows = []
    for key, a in base.items():
        lab, name, params = key
        if labs and lab not in labs:
            continue
        b = other.get(key)
        if b is None:
            continue
        a50, b50 = statistics.median(a["runs"]), statistics.median(b["runs"])
        ratio = b50 / a50 if a50 else float("nan")
        # Runs when both sides were repeated; otherwise the blocks of the single runs.
        if len(a["runs"]) >= 3 and len(b["runs"]) >= 3:
            basis, p = f"{len(a['runs'])} vs {len(b['runs'])} runs", mann_whitney(a["runs"], b["runs"])
        elif len(a["blocks"]) >= 3 and len(b["blocks"]) >= 3:
            basis, p = f"{len(a['blocks'])} vs {len(b['blocks'])} blocks", mann_whitney(a["blocks"], b["blocks"])
        else:
            basis, p = "too few blocks or runs", None
        if p is None:
            verdict = "cannot tell"
        elif p < alpha:
            verdict = "slower" if ratio > 1 else "faster"
        else:
            verdict = "no significant change"
        rows.append({"lab": lab, "name": name, "params": json.loads(params), "unit": a["result"].get("unit", "ns"),
                     "baseline_p50": a50, "other_p50": b50, "ratio": ratio, "p_value": p, "basis": basis,
                     "verdict": verdict, "headline": bool(a["result"].get("headline"))})
    return rows


def print_table(rows, label):
    header = ["lab", "figure", "params", "baseline", label, "ratio", "p", "verdict"]
    table = [header]
    values = {}
    for r in rows:
        for key, value in r["params"].items():
            values.setdefault(key, set()).add(json.dumps(value, sort_keys=True))
    shown = {key for key, seen in values.items() if len(seen) > 1}
    for r in rows:
        table.append([r["lab"], r["name"], fmt_params({k: v for k, v in r["params"].items() if k in shown}), fmt_value(r["baseline_p50"], r["unit"]),
                      fmt_value(r["other_p50"], r["unit"]), f"{r['ratio']:.3f}",
                      "-" if r["p_value"] is None else f"{r['p_value']:.3g}", r["verdict"]])
    widths = [min(max(len(str(row[c])) for row in table), 60) for c in range(len(header))]
    for row in table:
        print("  ".join(str(cell)[:60].ljust(width) for cell, width in zip(row, widths)).rstrip())


def plot_ratios(all_rows, labels, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("oslab compare: --plot needs python3-matplotlib", file=sys.stderr)
        return
    rows = [r for r in all_rows[0] if r["headline"]] or all_rows[0][:30]
    names = [f"{r['lab']}: {r['name']}" for r in rows]
    figure, axis = plt.subplots(figsize=(8, 0.35 * len(rows) + 1.5))
    for index, (label, compared) in enumerate(zip(labels, all_rows)):
        by_key = {(r["lab"], r["name"], json.dumps(r["params"], sort_keys=True)): r for r in compared}
        ratios = [by_key.get((r["lab"], r["name"], json.dumps(r["params"], sort_keys=True)), {}).get("ratio", math.nan)
                  for r in rows]
        axis.barh([i + index * 0.8 / len(labels) for i in range(len(rows))], ratios, height=0.8 / len(labels),
                  label=label)
    axis.axvline(1.0, color="black", linewidth=0.8)
    axis.set_yticks(range(len(rows)))
    axis.set_yticklabels(names, fontsize=7)
    axis.set_xlabel("median / baseline median")
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path)


def main():
    parser = argparse.ArgumentParser(prog="oslab compare", description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", help="report directories, results.json files or lab documents")
    parser.add_argument("--json", action="store_true", help="print the comparison as JSON")
    parser.add_argument("--plot", help="write a plot of the ratios (PNG or SVG) to this file")
    parser.add_argument("--alpha", type=float, default=0.05, help="significance level (default 0.05)")
    parser.add_argument("--labs", help="only these labs, comma-separated")
    args = parser.parse_args()
    if len(args.results) < 2:
        parser.error("give a baseline and at least one result to compare with it")
    if not 0 < args.alpha < 1:
        parser.error("--alpha must be between 0 and 1")
    labs = set(args.labs.split(",")) if args.labs else None
    base = load(args.results[0])
    comparisons = []
    for other_path in args.results[1:]:
        other = load(other_path)
        rows = compare(base, other, args.alpha, labs)
        warnings = machine_warnings(machine_of(base), machine_of(other))
        comparisons.append({"baseline": args.results[0], "other": other_path, "machine_warnings": warnings,
                            "figures": rows})
    if args.json:
        print(json.dumps(comparisons, indent=1))
    else:
        for c in comparisons:
            print(f"{c['other']} against {c['baseline']}:")
            for warning in c["machine_warnings"]:
                print(f"  warning: the machines differ: {warning}")
            if not c["figures"]:
                print("  no figure in common")
                continue
            print_table(c["figures"], "this")
            counts = {v: sum(r["verdict"] == v for r in c["figures"])
                      for v in ("faster", "slower", "no significant change", "cannot tell")}
            print("  " + ", ".join(f"{n} {v}" for v, n in counts.items() if n) + "\n")
    if args.plot:
        plot_ratios([c["figures"] for c in comparisons], [c["other"] for c in comparisons], args.plot)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:
        sys.exit(1)
