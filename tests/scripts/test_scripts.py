"""Tests of scripts/: the report (on a small subset of real labs, and with a lab that fails),
the comparison and its significance test, and the formatting. Run by ctest:
python3 tests/scripts/test_scripts.py BIN_DIR"""
import html.parser
import json
import os
import pathlib
import random
import shutil
import subprocess
import sys
import tempfile
import unittest

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import compare  # noqa: E402
import peers  # noqa: E402
from oslab_format import fmt_number, fmt_param, fmt_value  # noqa: E402

BIN = pathlib.Path(os.environ.get("OSLAB_BIN", ROOT / "build" / "bin")).resolve()
PYTHON = sys.executable


def synthetic(lab, name, medians_by_block, params=None, headline=True):
    """A one-result document whose samples are given block by block."""
    samples, blocks = [], []
    for block in medians_by_block:
        samples += block
        blocks.append(len(block))
    ordered = sorted(samples)
    result = {"name": name, "params": params or {}, "unit": "ns", "what": "x", "n": len(samples),
              "p50": ordered[len(ordered) // 2], "p50_ci95": [ordered[0], ordered[-1]], "samples": samples,
              "blocks": blocks, "headline": headline}
    return {"schema": "oslab/1", "lab": lab, "machine": {"cpu_model": "test", "kernel": "6.1"}, "results": [result]}


def noisy_blocks(rng, centre, blocks=12, size=10, spread=0.03):
    return [[rng.gauss(centre, centre * spread) for _ in range(size)] for _ in range(blocks)]


class Compare(unittest.TestCase):
    def test_exact_u_test(self):
        self.assertAlmostEqual(compare.mann_whitney([1, 2, 3], [4, 5, 6]), 0.1)
        self.assertAlmostEqual(compare.mann_whitney([1, 2, 3, 4], [5, 6, 7, 8]), 2 / 70)
        self.assertEqual(compare.mann_whitney([1, 3, 5], [2, 4, 6]), 0.7)
        self.assertIsNone(compare.mann_whitney([], [1]))

    def test_a_result_against_itself_has_no_significant_change(self):
        rng = random.Random(1)
        doc = synthetic("fork", "fork+exit+wait", noisy_blocks(rng, 100_000))
        rows = compare.compare([doc], [doc], 0.05)
        self.assertEqual(len(rows), 1)
        self.assertEqual(rows[0]["verdict"], "no significant change")
        self.assertAlmostEqual(rows[0]["ratio"], 1.0)

    def test_a_known_shift_is_detected(self):
        rng = random.Random(2)
        base = synthetic("fork", "fork+exit+wait", noisy_blocks(rng, 100_000))
        slower = synthetic("fork", "fork+exit+wait", noisy_blocks(rng, 110_000))
        row = compare.compare([base], [slower], 0.05)[0]
        self.assertEqual(row["verdict"], "slower")
        self.assertAlmostEqual(row["ratio"], 1.1, delta=0.03)
        self.assertLess(row["p_value"], 0.01)
        self.assertEqual(compare.compare([slower], [base], 0.05)[0]["verdict"], "faster")

    def test_noise_alone_is_rarely_significant(self):
        rng = random.Random(3)
        significant = 0
        for _ in range(200):
            a = synthetic("x", "y", noisy_blocks(rng, 1000))
            b = synthetic("x", "y", noisy_blocks(rng, 1000))
            significant += compare.compare([a], [b], 0.05)[0]["verdict"] != "no significant change"
        self.assertLessEqual(significant, 20)  # about 5% expected

    def test_different_machines_are_warned_about(self):
        self.assertEqual(compare.machine_warnings({"kernel": "6.1"}, {"kernel": "6.1"}), [])
        warnings = compare.machine_warnings({"kernel": "6.1", "cpu_model": "a"}, {"kernel": "6.18", "cpu_model": "a"})
        self.assertEqual(warnings, ["kernel: 6.1 vs 6.18"])

    def test_the_command_line(self):
        rng = random.Random(4)
        with tempfile.TemporaryDirectory() as tmp:
            a, b = pathlib.Path(tmp) / "a.json", pathlib.Path(tmp) / "b.json"
            a.write_text(json.dumps(synthetic("fork", "fork+exit+wait", noisy_blocks(rng, 100))))
            b.write_text(json.dumps(synthetic("fork", "fork+exit+wait", noisy_blocks(rng, 130))))
            run = subprocess.run([PYTHON, ROOT / "scripts/compare.py", a, b, "--json"], capture_output=True, text=True)
            self.assertEqual(run.returncode, 0, run.stderr)
            self.assertEqual(json.loads(run.stdout)[0]["figures"][0]["verdict"], "slower")
            run = subprocess.run([PYTHON, ROOT / "scripts/compare.py", a], capture_output=True, text=True)
            self.assertEqual(run.returncode, 2)


FIXTURES = pathlib.Path(__file__).resolve().parent / "fixtures"


class PeerParsers(unittest.TestCase):
    """Each parser on output captured from the real tool (Debian 12's versions)."""

    def read(self, name):
        return (FIXTURES / name).read_text()

    def test_perf_bench(self):
        self.assertAlmostEqual(peers.parse_perf_usecs_per_op(self.read("peer-perf-pipe.txt"))["per_op_ns"], 6795.6)
        self.assertAlmostEqual(peers.parse_perf_usecs_per_op(self.read("peer-perf-pipe-T.txt"))["per_op_ns"], 6146.35)
        self.assertAlmostEqual(peers.parse_perf_usecs_per_op(self.read("peer-perf-syscall.txt"))["per_op_ns"], 226.335)
        self.assertAlmostEqual(peers.parse_perf_total(self.read("peer-perf-messaging.txt"))["total_ns"], 0.718e9)
        with self.assertRaises(ValueError):
            peers.parse_perf_usecs_per_op("nothing here")

    def test_rt_tests_take_the_first_pair_in_whole_microseconds(self):
        self.assertEqual(peers.parse_rt_tests(self.read("peer-pmqtest.txt")),
                         {"min_ns": 1000.0, "avg_ns": 2000.0, "max_ns": 746000.0})
        self.assertEqual(peers.parse_rt_tests(self.read("peer-svsematest.txt"))["avg_ns"], 2000.0)
        self.assertEqual(peers.parse_rt_tests(self.read("peer-ptsematest.txt"))["max_ns"], 6000.0)
        self.assertEqual(peers.parse_rt_tests(self.read("peer-sigwaittest.txt"))["avg_ns"], 24000.0)

    def test_stress_ng_bogo_ops(self):
        fork = peers.parse_stress_ng(self.read("peer-stressng-fork.txt"), "fork")
        self.assertAlmostEqual(fork["per_bogo_op_ns"], 1e9 / 914.82)
        switch = peers.parse_stress_ng(self.read("peer-stressng-switch.txt"), "switch")
        self.assertAlmostEqual(switch["per_switch_ns"], 4174.63)
        self.assertAlmostEqual(peers.parse_stress_ng(self.read("peer-stressng-vfork.txt"), "vfork")["per_bogo_op_ns"],
                               1e9 / 16188.0)
        with self.assertRaises(ValueError):
            peers.parse_stress_ng(self.read("peer-stressng-fork.txt"), "vfork")

    def test_sockperf(self):
        figures = peers.parse_sockperf(self.read("peer-sockperf-tcp.txt"))  # colour codes and all
        self.assertAlmostEqual(figures["p50_ns"], 6763.0)
        self.assertAlmostEqual(figures["mean_ns"], 7793.0)
        with self.assertRaises(ValueError):
            peers.parse_sockperf("sockperf: Summary: Round trip is 7.192 usec")

    @unittest.skipUnless(shutil.which("sockperf"), "sockperf is not installed")
    def test_a_peer_with_a_server_is_measured_and_its_server_stopped(self):
        peer = next(p for p in peers.peers("/bin/true") if p["id"] == "sockperf-tcp")
        peer = dict(peer, argv=[a if a != "2" else "1" for a in peer["argv"]])  # one second
        value, problem = peers.run_peer(peer, cpu=0)
        self.assertIsNone(problem)
        self.assertGreater(value, 0)
        left = subprocess.run(["pgrep", "-f", "sockperf server"], capture_output=True, text=True).stdout
        self.assertEqual(left, "", "the sockperf server was left running")

    def test_hyperfine(self):
        figures = peers.parse_hyperfine(self.read("peer-hyperfine.json"))
        self.assertAlmostEqual(figures["median_ns"], 307026.5, places=0)

    def test_every_peer_says_how_its_units_were_matched(self):
        for peer in peers.peers("/bin/true"):
            self.assertTrue(peer["units"], peer["id"])
            self.assertIn(peer["figure"], ("per_op_ns", "total_ns", "avg_ns", "per_switch_ns", "per_bogo_op_ns",
                                           "p50_ns", "median_ns"))

    @unittest.skipUnless(shutil.which("svsematest"), "rt-tests is not installed")
    def test_a_real_rt_test_runs_from_any_directory(self):
        # svsematest makes its key with ftok(argv[0]): started by its bare name from a directory
        # without that file, it printed "ftok: No such file or directory" and no figure.
        peer = next(p for p in peers.peers("/bin/true") if p["id"] == "svsematest")
        peer = dict(peer, argv=["svsematest", "-S", "-l", "200", "-i", "100", "-q"])
        here = os.getcwd()
        with tempfile.TemporaryDirectory() as tmp:
            os.chdir(tmp)
            try:
                value, problem = peers.run_peer(peer, cpu=0)
            finally:
                os.chdir(here)
        self.assertIsNone(problem)
        self.assertGreater(value, 0)


class Format(unittest.TestCase):
    def test_numbers_as_the_labs_write_them(self):
        self.assertEqual(fmt_number(1234), "1234")
        self.assertEqual(fmt_number(1.234), "1.23")
        self.assertEqual(fmt_number(0.0123), "0.012")
        self.assertEqual(fmt_value(1_290_000), "1.29 ms")
        self.assertEqual(fmt_param(False), "no")
        self.assertEqual(fmt_param(1.620413685284791), "1.62")


class Wellformed(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.open = []
        self.images = 0

    def handle_starttag(self, tag, attrs):
        if tag == "svg":
            self.images += 1
        if tag not in ("meta", "br", "hr", "img", "path", "use", "rect", "line", "circle", "polyline", "polygon",
                       "stop", "ellipse"):
            self.open.append(tag)

    def handle_endtag(self, tag):
        if self.open and self.open[-1] == tag:
            self.open.pop()


@unittest.skipUnless((BIN / "oslab-fork").exists(), "the labs are not built")
class Report(unittest.TestCase):
    def run_report(self, bin_dir, out, *extra):
        return subprocess.run([PYTHON, ROOT / "scripts/report.py", "--bin", bin_dir, "--out", out, "--quick", *extra],
                              capture_output=True, text=True, timeout=600)

    def test_a_small_report(self):
        with tempfile.TemporaryDirectory() as tmp:
            run = self.run_report(BIN, tmp, "--labs", "fork,clone-flags")
            self.assertEqual(run.returncode, 0, run.stderr)
            documents = json.loads((pathlib.Path(tmp) / "results.json").read_text())
            self.assertEqual(sorted(d["lab"] for d in documents), ["clone-flags", "fork"])
            md = (pathlib.Path(tmp) / "report.md").read_text()
            self.assertIn("## Summary: the headline figures", md)
            self.assertIn("Shared with the parent?", md)  # the clone-flags matrix
            page = Wellformed()
            page.feed((pathlib.Path(tmp) / "report.html").read_text())
            self.assertEqual(page.open, [])
            plots = list((pathlib.Path(tmp) / "plots").glob("*.png"))
            if not any("left out" in line for line in md.splitlines()[:5]):
                self.assertGreater(len(plots), 0)
                self.assertGreater(page.images, 0)
                for plot in plots:
                    self.assertGreater(plot.stat().st_size, 1000)

    def test_a_failing_lab_is_listed_not_fatal(self):
        with tempfile.TemporaryDirectory() as tmp:
            bin_dir = pathlib.Path(tmp) / "bin"
            bin_dir.mkdir()
            (bin_dir / "oslab-clone-flags").symlink_to(BIN / "oslab-clone-flags")
            broken = bin_dir / "oslab-broken"
            broken.write_text("#!/bin/sh\necho 'not json'\nexit 1\n")
            broken.chmod(0o755)
            run = self.run_report(bin_dir, pathlib.Path(tmp) / "out")
            self.assertEqual(run.returncode, 1)
            md = (pathlib.Path(tmp) / "out" / "report.md").read_text()
            self.assertIn("## Labs that failed", md)
            self.assertIn("broken: exit 1; its output is not a JSON document", md)
            self.assertIn("## clone-flags", md)

    def test_bad_arguments(self):
        self.assertEqual(self.run_report(BIN, "/proc/no-such-dir/x").returncode, 2)
        self.assertEqual(self.run_report(BIN, "/tmp/x", "--labs", "spoon").returncode, 2)
        self.assertEqual(self.run_report(BIN, "/tmp/x", "--timeout", "0").returncode, 2)


if __name__ == "__main__":
    if len(sys.argv) > 1 and not sys.argv[1].startswith("-"):
        BIN = pathlib.Path(sys.argv.pop(1)).resolve()
    unittest.main()
