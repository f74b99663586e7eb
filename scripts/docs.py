#!/usr/bin/env python3
"""oslab docs: put each lab's --explain text into docs/, between its markers.

The teaching text of a lab lives in one place, the lab itself (LabInfo::explain), and is
printed by `oslab-NAME --explain`. A page of docs/ that wants it carries the markers

    <!-- explain:NAME -->
    <!-- /explain:NAME -->

and this script writes the text between them. `--check` changes nothing and exits 1 when a
page is out of date or a lab has no marker anywhere (the tests run it).

Usage: docs.py --bin build/bin --docs docs [--check]
"""
import argparse
import json
import pathlib
import re
import subprocess
import sys


def explain_of(binary):
    run = subprocess.run([str(binary), "--explain", "--json"], capture_output=True, text=True, timeout=60)
    if run.returncode != 0:
        raise RuntimeError(f"{binary.name} --explain --json exited {run.returncode}: {run.stderr.strip()}")
    return json.loads(run.stdout)


def block(name, explain):
    return (f"<!-- explain:{name} -->\n"
            f"<!-- written by scripts/oslab docs from `oslab-{name} --explain`: edit the lab, not this -->\n"
            f"```text\n{explain['explain'].rstrip()}\n```\n"
            f"<!-- /explain:{name} -->")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", required=True)
    parser.add_argument("--docs", required=True)
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if out of date")
    args = parser.parse_args()

    labs = {p.name[len("oslab-"):]: p for p in sorted(pathlib.Path(args.bin).glob("oslab-*"))}
    pages = sorted(pathlib.Path(args.docs).glob("*.md"))
    texts = {page: page.read_text() for page in pages}
    problems, found = [], set()
    for name, binary in labs.items():
        pattern = re.compile(rf"<!-- explain:{re.escape(name)} -->.*?<!-- /explain:{re.escape(name)} -->", re.S)
        explain = None
        for page in pages:
            if not pattern.search(texts[page]):
                continue
            found.add(name)
            explain = explain or explain_of(binary)
            updated = pattern.sub(lambda _: block(name, explain), texts[page])
            if updated != texts[page]:
                problems.append(f"{page}: the --explain text of oslab-{name} is out of date")
                texts[page] = updated
        if name not in found:
            problems.append(f"oslab-{name}: no page of {args.docs} has <!-- explain:{name} --> markers")
    if args.check:
        for problem in problems:
            print(f"oslab docs: {problem}", file=sys.stderr)
        if problems:
            print("oslab docs: run scripts/oslab docs to bring the pages up to date", file=sys.stderr)
        return 1 if problems else 0
    for page in pages:
        if texts[page] != page.read_text():
            page.write_text(texts[page])
            print(f"oslab docs: updated {page}", file=sys.stderr)
    missing = [p for p in problems if "no page" in p]
    for problem in missing:
        print(f"oslab docs: {problem}", file=sys.stderr)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
