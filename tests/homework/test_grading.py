#!/usr/bin/env python3
"""The grading framework itself (scripts/grade.py, scripts/handout.py), on the quickest
exercise: the JSON document, the Autolab line, Gradescope's results.json, grading every
mutant, a class of submissions (one that does not build, one that calls ptrace), the
handout (no solution in it), and usage errors."""

import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("OSLAB_BUILD_DIR", ROOT / "build"))
GRADE = [sys.executable, str(ROOT / "scripts" / "grade.py")]
# The quickest exercise to grade: the framework is what is tested here.
NAME = "working-set"
EXERCISE = ROOT / "labs" / "memory" / "homework" / "working-set"
SOURCE = "working_set.cpp"
sys.path.insert(0, str(ROOT / "scripts"))
from grade import private_ancestor  # noqa: E402


def grade(*args, timeout=240):
    return subprocess.run(GRADE + list(args) + ["--build-dir", str(BUILD)], capture_output=True, text=True,
                          timeout=timeout)


# As root the sandbox runs code as an unprivileged user: a checkout it cannot reach (under
# /root, 0700) cannot be graded, and grade.py says so (exit 77).
CLOSED = private_ancestor(BUILD) if os.geteuid() == 0 else None


@unittest.skipIf(CLOSED, f"{CLOSED} is not searchable by other users")
class Grading(unittest.TestCase):
    def setUp(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="oslab-grading-test."))

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_json_document_of_the_reference(self):
        run = grade(NAME, "--impl", "reference", "--json")
        self.assertEqual(run.returncode, 0, run.stderr)
        doc = json.loads(run.stdout)
        for field in ("exercise", "impl", "score", "max", "tests", "seconds"):
            self.assertIn(field, doc)
        self.assertEqual(doc["exercise"], NAME)
        self.assertEqual(doc["score"], doc["max"])
        self.assertEqual(doc["score"], sum(t["points"] for t in doc["tests"]))
        for test in doc["tests"]:
            self.assertTrue({"id", "name", "points", "max", "passed", "message"} <= set(test))

    def test_buggy_grades_every_mutant(self):
        run = grade(NAME, "--impl", "buggy", "--json")
        self.assertEqual(run.returncode, 0, run.stderr)
        docs = json.loads(run.stdout)
        mutants = sorted(p.name for p in (EXERCISE / "buggy").iterdir())
        self.assertEqual([d["impl"] for d in docs], [f"buggy/{m}" for m in mutants])
        for doc in docs:
            self.assertLess(doc["score"], doc["max"], doc["impl"])

    def test_table_then_autolab_line_and_gradescope_file(self):
        results = self.tmp / "results.json"
        run = grade(NAME, "--impl", "starter", "--gradescope", str(results))
        self.assertEqual(run.returncode, 0, run.stderr)
        lines = run.stdout.rstrip("\n").split("\n")
        self.assertIn("total", lines[-2])
        self.assertEqual(json.loads(lines[-1]), {"scores": {NAME: 0.0}})
        gradescope = json.loads(results.read_text())
        self.assertEqual(gradescope["score"], 0.0)
        self.assertTrue(all({"name", "score", "max_score", "status", "output"} <= set(t)
                            for t in gradescope["tests"]))

    def test_a_class_into_a_csv_and_a_summary(self):
        students = self.tmp / "class"
        for name in ("alice", "bob", "carol", "dave"):
            (students / name).mkdir(parents=True)
        shutil.copy(EXERCISE / "reference" / SOURCE, students / "alice")
        shutil.copy(EXERCISE / "starter" / SOURCE, students / "bob")
        (students / "carol" / SOURCE).write_text("this is not C++\n")
        reference = (EXERCISE / "reference" / SOURCE).read_text()
        signature = "std::vector<int> working_set(const std::vector<int>& refs, size_t t, size_t window) {"
        self.assertIn(signature, reference)
        cheat = reference.replace(signature, "#include <sys/ptrace.h>\n" + signature +
                                  "\n  ptrace(PTRACE_TRACEME, 0, nullptr, nullptr);")
        (students / "dave" / SOURCE).write_text(cheat)
        csv_path = self.tmp / "grades.csv"
        run = grade(NAME, "--class", str(students), "--csv", str(csv_path), timeout=600)
        self.assertEqual(run.returncode, 0, run.stderr)
        with csv_path.open() as f:
            rows = list(csv.DictReader(f))
        scores = {row["student"]: float(row["score"]) for row in rows}
        self.assertEqual(scores["alice"], 100)
        self.assertEqual(scores["bob"], 0)
        self.assertEqual(scores["carol"], 0)
        self.assertEqual([r["status"] for r in rows if r["student"] == "carol"], ["build failed"])
        self.assertLess(scores["dave"], 50)
        self.assertIn("4 submissions", run.stdout)
        self.assertTrue(csv_path.with_suffix(".summary.txt").exists())
        single = grade(NAME, "--impl", str(students / "dave"), "--json")
        doc = json.loads(single.stdout)
        self.assertTrue(any("forbidden system call: ptrace" in t["message"] for t in doc["tests"]),
                        [t["message"] for t in doc["tests"]])

    def test_every_readme_has_its_grading_table(self):
        for spec_path in sorted((ROOT / "tests" / "homework").glob("*/exercise.json")):
            name = spec_path.parent.name
            table = subprocess.run(GRADE + [name, "--table"], capture_output=True, text=True, timeout=60)
            self.assertEqual(table.returncode, 0, table.stderr)
            readme = (ROOT / json.loads(spec_path.read_text())["dir"] / "README.md").read_text()
            self.assertIn(table.stdout.strip(), readme, f"{name}: README.md's grading table is not grade.py --table's")

    def test_usage_errors(self):
        for args in (["no-such-exercise"], ["pipeline", "--impl", "/no/such/folder"], []):
            run = grade(*args)
            self.assertEqual(run.returncode, 2, args)
            self.assertEqual(run.stderr.count("\n"), 1, run.stderr)


class Handout(unittest.TestCase):
    def test_the_handout_holds_no_solution(self):
        out = Path(tempfile.mkdtemp(prefix="oslab-handout-test.")) / "handout"
        try:
            run = subprocess.run([sys.executable, str(ROOT / "scripts" / "handout.py"), str(out)],
                                 capture_output=True, text=True, timeout=120)
            self.assertEqual(run.returncode, 0, run.stderr)
            handout = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
            contents = set(handout.values())
            exercises = [json.loads(p.read_text()) for p in (ROOT / "tests" / "homework").glob("*/exercise.json")]
            self.assertGreater(len(exercises), 0)
            for spec in exercises:
                ex_dir = ROOT / spec["dir"]
                for sub in ("reference", "buggy"):
                    for solution in (ex_dir / sub).rglob("*"):
                        if solution.is_file():
                            self.assertTrue(solution.read_bytes() not in contents, f"{solution} is in the handout")
                name = spec["name"]
                for path in (Path(name) / "README.md", Path(name) / "tests" / "exercise.json"):
                    self.assertTrue(path in handout, f"{path} is missing from the handout")
                for student_file in spec["student_files"]:
                    self.assertEqual(handout[Path(name) / student_file],
                                     (ex_dir / "starter" / student_file).read_bytes())
            self.assertFalse(any(part in ("reference", "buggy") for p in handout for part in p.parts))
            self.assertTrue(Path("grade.py") in handout, "grade.py is missing from the handout")
            again = subprocess.run([sys.executable, str(ROOT / "scripts" / "handout.py"), str(out)],
                                   capture_output=True, text=True, timeout=60)
            self.assertEqual(again.returncode, 2, "writing into a folder that is not empty")
        finally:
            shutil.rmtree(out.parent, ignore_errors=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
