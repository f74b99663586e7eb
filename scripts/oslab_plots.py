"""The report's plots, drawn from what each lab's document asks for (its "plots" array, see
docs/schema/oslab-1.json): a line of each result's median against a parameter, or the
distribution (CDF) of each result's samples. Written as PNG and SVG with matplotlib
(Debian's python3-matplotlib); without it, the report says the plots were left out."""
import json
import pathlib

from oslab_format import fmt_value


def available():
    try:
        import matplotlib  # noqa: F401
        return True
    except ImportError:
        return False


def _selected(doc, plot):
    where = plot.get("where", {})
    names = set(plot.get("names", []))
    for result in doc.get("results", []):
        params = result.get("params", {})
        if names and result["name"] not in names:
            continue
        if any(params.get(key) != value for key, value in where.items()):
            continue
        yield result


def _series_label(result, series):
    if series == "name":
        return result["name"]
    value = result.get("params", {}).get(series, "?")
    return f"{series}={value}" if not isinstance(value, str) else value


def _duration_axis(axis, values):
    """Label a time axis in the unit that suits the values (ns, us, ms, s)."""
    top = max(values) if values else 1
    for scale, unit in ((1e9, "s"), (1e6, "ms"), (1e3, "us"), (1, "ns")):
        if top >= scale:
            return scale, unit
    return 1, "ns"


def draw(doc, plot, out_dir):
    """Draws one plot; returns (png path, svg path), or None when no result matches."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = list(_selected(doc, plot))
    if not results:
        return None
    unit = results[0].get("unit", "ns")
    figure, axis = plt.subplots(figsize=(7.5, 4.5), dpi=100)
    lines = {}
    if plot["kind"] == "line":
        for result in results:
            x = result.get("params", {}).get(plot["x_param"])
            if x is None:
                continue
            lines.setdefault(_series_label(result, plot["series"]), []).append(
                (x, result["p50"], result["p50_ci95"][0], result["p50_ci95"][1]))
        every = [p for points in lines.values() for (_, p, _, _) in points]
        scale, unit_name = _duration_axis(axis, every) if unit == "ns" else (1, unit)
        for label, points in sorted(lines.items()):
            points.sort()
            xs = [p[0] for p in points]
            ys = [p[1] / scale for p in points]
            low = [(p[1] - p[2]) / scale for p in points]
            high = [(p[3] - p[1]) / scale for p in points]
            axis.errorbar(xs, ys, yerr=[low, high], marker="o", capsize=3, label=label)
        axis.set_xlabel(plot["x_label"] or plot["x_param"])
        axis.set_ylabel(f"{plot['y_label'] or 'median'} ({unit_name})")
    else:
        every = [s for r in results for s in r.get("samples", [])]
        every += [b[0] for r in results for b in r.get("histogram", [])]
        scale, unit_name = _duration_axis(axis, every) if unit == "ns" else (1, unit)
        for result in results:
            samples = sorted(result.get("samples", []))
            label = f"{_series_label(result, plot['series'])} (median {fmt_value(result['p50'], unit)})"
            if not samples and result.get("histogram"):
                # Bucketed (millions of samples): the CDF at each bucket's lower bound.
                buckets = result["histogram"]
                total = sum(count for _, count in buckets) or 1
                xs, ys, seen = [], [], 0
                for lower, count in buckets:
                    seen += count
                    xs.append(lower / scale)
                    ys.append(seen / total)
                axis.step(xs, ys, where="post", label=label)
                continue
            if not samples:
                continue
            n = len(samples)
            axis.step([s / scale for s in samples], [(i + 1) / n for i in range(n)], where="post", label=label)
        axis.set_xlabel(f"{plot['x_label'] or 'value'} ({unit_name})")
        axis.set_ylabel(plot["y_label"] or "fraction of samples")
        axis.set_ylim(0, 1)
    if plot.get("log_x"):
        axis.set_xscale("log")
    if plot.get("log_y"):
        axis.set_yscale("log")
    axis.set_title(plot["title"], fontsize=10)
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / f"{doc['lab']}-{plot['id']}"
    png, svg = stem.with_suffix(".png"), stem.with_suffix(".svg")
    figure.savefig(png)
    figure.savefig(svg)
    plt.close(figure)
    return png, svg


def draw_all(documents, out_dir):
    """Every plot of every document; returns {lab: [(plot, png, svg), ...]} and a note."""
    if not available():
        return {}, "plots left out: python3-matplotlib is not installed (scripts/oslab setup installs it)"
    drawn = {}
    for doc in documents:
        for plot in doc.get("plots", []):
            paths = draw(doc, plot, pathlib.Path(out_dir) / "plots")
            if paths:
                drawn.setdefault(doc["lab"], []).append((plot, paths[0], paths[1]))
    return drawn, ""


if __name__ == "__main__":
    import sys
    docs = json.load(open(sys.argv[1]))
    print(draw_all(docs if isinstance(docs, list) else [docs], pathlib.Path(sys.argv[2])))
