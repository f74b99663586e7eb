#!/usr/bin/env python3
"""oslab handout DIR: writes what students get, and nothing else.

For each exercise, DIR/<name>/ holds the README, the given files (headers, main.cpp), the
starter files to edit, and tests/ (the grader's tests, cases and helpers); DIR/grade.py is
the grader, which builds and tests a student's files with g++ (under oslab-sandbox when it is
installed). Never the reference solution, never the buggy ones: the repository holds those,
so students get this folder, not the repository. Checked before it returns: no file of the
handout is, or has the content of, a reference or buggy solution.
"""

import argparse
import hashlib
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))


def exercises():
    return sorted(p.parent.name for p in (ROOT / "tests" / "homework").glob("*/exercise.json"))


def solution_digests(names):
    """The content of every reference and buggy file: none may reach a handout."""
    digests = {}
    for name in names:
        spec = json.loads((ROOT / "tests" / "homework" / name / "exercise.json").read_text())
        ex_dir = ROOT / spec["dir"]
        for sub in ["reference", "buggy"]:
            for path in (ex_dir / sub).rglob("*"):
                if path.is_file():
                    digests[hashlib.sha256(path.read_bytes()).hexdigest()] = path.relative_to(ROOT)
    return digests


def write(out, names):
    out.mkdir(parents=True, exist_ok=True)
    index = []
    for name in names:
        spec = json.loads((ROOT / "tests" / "homework" / name / "exercise.json").read_text())
        ex_dir = ROOT / spec["dir"]
        target = out / name
        target.mkdir()
        for path in ex_dir.iterdir():
            if path.name in ("reference", "buggy", "starter", "CMakeLists.txt"):
                continue
            (shutil.copytree if path.is_dir() else shutil.copy2)(path, target / path.name)
        for path in (ex_dir / "starter").iterdir():
            (shutil.copytree if path.is_dir() else shutil.copy2)(path, target / path.name)
        shutil.copytree(ROOT / "tests" / "homework" / name, target / "tests",
                        ignore=shutil.ignore_patterns("__pycache__"))
        index.append((name, spec.get("title", ""), spec.get("student_files", [])))
    shutil.copy2(ROOT / "scripts" / "grade.py", out / "grade.py")
    (out / "handout.json").write_text(json.dumps({"exercises": names}, indent=2) + "\n")
    lines = ["# oslab homework", "",
             "Each folder is one exercise: read its README.md, edit the files it names, then test:", "",
             "```sh", "python3 grade.py NAME            # builds your files and runs every test, with points",
             "python3 grade.py NAME --json     # the same as JSON", "python3 grade.py --list", "```", "",
             "The grader needs g++, GoogleTest (Debian: libgtest-dev) and, for the seccomp exercise, "
             "libseccomp-dev. With oslab installed it runs your code under oslab-sandbox, as your "
             "instructor's grader will. Performance is scored against the reference solution, "
             "which only the instructor's grader has: here those tests say \"not graded here\".", "",
             "| exercise | what | you edit |", "| --- | --- | --- |"]
    lines += [f"| [{n}]({n}/README.md) | {t} | {', '.join(f)} |" for n, t, f in index]
    (out / "README.md").write_text("\n".join(lines) + "\n")


def check(out, names):
    digests = solution_digests(names)
    problems = []
    for path in out.rglob("*"):
        if not path.is_file():
            continue
        rel = path.relative_to(out)
        if any(part in ("reference", "buggy") for part in rel.parts):
            problems.append(f"{rel}: a solution folder")
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest in digests:
            problems.append(f"{rel}: the same as {digests[digest]}")
    return problems


def main(argv=None):
    parser = argparse.ArgumentParser(prog="oslab handout", description=__doc__.split("\n")[0])
    parser.add_argument("dir")
    parser.add_argument("--exercises", help="comma-separated (default: all)")
    parser.add_argument("--force", action="store_true", help="write into a folder that is not empty")
    args = parser.parse_args(argv)
    known = exercises()
    names = args.exercises.split(",") if args.exercises else known
    for name in names:
        if name not in known:
            print(f"oslab handout: no exercise '{name}' ({', '.join(known)})", file=sys.stderr)
            return 2
    out = Path(args.dir)
    if out.exists() and any(out.iterdir()) and not args.force:
        print(f"oslab handout: {out} is not empty (--force to write into it)", file=sys.stderr)
        return 2
    write(out, names)
    problems = check(out, names)
    if problems:
        for problem in problems:
            print(f"oslab handout: {problem}", file=sys.stderr)
        shutil.rmtree(out)
        return 1
    print(f"oslab handout: wrote {out} ({len(names)} exercises; no reference or buggy solution)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
