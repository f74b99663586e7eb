#!/bin/sh
# Installed like a real tool: install into a temporary prefix, run the driver and a lab from
# there (no source tree, no build), then build the .deb and look inside it.
# Usage: test_install.sh BUILD_DIR
set -eu
build=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "test_install: $*" >&2; exit 1; }

cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
oslab="$tmp/prefix/bin/oslab"
"$oslab" --version | grep -q '^oslab (oslab) [0-9]' || fail "oslab --version"
"$oslab" list | grep -q '^fork ' || fail "oslab list does not list fork"
(cd "$tmp" && "$oslab" run fork --quick --json --methods fork,posix_spawn --rss 0 >"$tmp/fork.json") ||
  fail "an installed oslab-fork did not run (its helpers are in libexec/oslab)"
grep -q '"schema": "oslab/1"' "$tmp/fork.json" || fail "no oslab/1 document"
"$oslab" test >/dev/null 2>&1 && fail "an installed oslab must refuse to build or test"
[ -f "$tmp/prefix/share/man/man1/oslab-fork.1" ] || [ -z "$(command -v help2man)" ] || fail "no man page"
[ -f "$tmp/prefix/share/oslab/docs/schema/oslab-1.json" ] || fail "no schema"

if command -v cpack >/dev/null && command -v dpkg-deb >/dev/null; then
  (cd "$build" && cpack -G DEB -B "$tmp/package" >"$tmp/cpack.log" 2>&1) || { cat "$tmp/cpack.log"; fail "cpack"; }
  deb=$(ls "$tmp"/package/oslab_*.deb)
  dpkg-deb -c "$deb" >"$tmp/contents"
  grep -q '\./usr/bin/oslab-fork$' "$tmp/contents" || fail "the .deb has no /usr/bin/oslab-fork"
  grep -q '\./usr/libexec/oslab/oslab-fork-driver$' "$tmp/contents" || fail "the .deb has no helper"
  dpkg-deb -f "$deb" Depends | grep -q python3 || fail "the .deb does not depend on python3"
fi
echo "test_install: ok"
