#!/usr/bin/env python3
"""Compares two run directories file by file: every file byte for byte, except summary.json,
whose wall-clock `timing` object is dropped first. Exit 0 when they are the same, 1 otherwise,
naming each file that differs.

    scripts/same-run-dirs.py target/demo-before/regress target/demo/regress
"""
import json
import os
import sys


def files(root):
    out = set()
    for d, _, names in os.walk(root):
        for n in names:
            out.add(os.path.relpath(os.path.join(d, n), root))
    return out


def load(path):
    with open(path, "rb") as f:
        data = f.read()
    if os.path.basename(path) == "summary.json":
        v = json.loads(data)
        v.pop("timing", None)
        return json.dumps(v, sort_keys=True).encode()
    return data


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    a, b = sys.argv[1:]
    fa, fb = files(a), files(b)
    bad = [f"only in {a}: {f}" for f in sorted(fa - fb)]
    bad += [f"only in {b}: {f}" for f in sorted(fb - fa)]
    same = 0
    for f in sorted(fa & fb):
        if load(os.path.join(a, f)) == load(os.path.join(b, f)):
            same += 1
        else:
            bad.append(f"differs: {f}")
    for line in bad:
        print(line)
    print(f"{same} files identical, {len(bad)} differences")
    sys.exit(1 if bad else 0)


main()
