#!/usr/bin/env python3
"""Counts the lines of every Rust function in the repository's own code.

A function runs from its `fn` line to the line of its closing brace; the
count takes its doc comments and attributes out. Prints the summary (how
many over 70 and over 100 lines) and, with --list N, the N longest.
Usage: scripts/fn-lengths.py [--list N] [--tests] [dir...]
"""
import re
import subprocess
import sys

FN = re.compile(r"^\s*(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?(extern\s+\"[^\"]*\"\s+)?fn\s+(\w+)")


def strip(line):
    """The line without strings, chars and `//` comments (enough to match braces)."""
    out, i, n = [], 0, len(line)
    while i < n:
        c = line[i]
        if c == "/" and line.startswith("//", i):
            break
        if c == '"':
            i += 1
            while i < n and line[i] != '"':
                i += 2 if line[i] == "\\" else 1
            i += 1
            continue
        if c == "'" and i + 2 < n and (line[i + 2] == "'" or (line[i + 1] == "\\" and "'" in line[i + 2:i + 5])):
            j = line.index("'", i + 2 if line[i + 1] != "\\" else i + 3)
            i = j + 1
            continue
        out.append(c)
        i += 1
    return "".join(out)


def functions(path):
    lines = open(path, encoding="utf-8").read().split("\n")
    found = []
    for start, line in enumerate(lines):
        m = FN.match(line)
        if not m:
            continue
        depth, opened = 0, False
        for end in range(start, len(lines)):
            s = strip(lines[end])
            if not opened and ";" in s and "{" not in s:
                break  # a declaration without a body
            depth += s.count("{") - s.count("}")
            opened = opened or "{" in s
            if opened and depth <= 0:
                found.append((end - start + 1, path, start + 1, m.group(7)))
                break
    return found


def main():
    args = sys.argv[1:]
    listing = 0
    if "--list" in args:
        i = args.index("--list")
        listing = int(args[i + 1])
        del args[i:i + 2]
    with_tests = "--tests" in args
    args = [a for a in args if a != "--tests"]
    files = subprocess.run(["git", "ls-files", "*.rs"], capture_output=True, text=True, check=True).stdout.split()
    if args:
        files = [f for f in files if any(f.startswith(a) for a in args)]
    if not with_tests:
        files = [f for f in files if not f.startswith(("tests/", "benches/", "fuzz/")) and "/tests/" not in f]
    found = sorted((f for path in files for f in functions(path)), reverse=True)
    over70 = [f for f in found if f[0] > 70]
    over100 = [f for f in found if f[0] > 100]
    print(f"{len(found)} functions in {len(files)} files; {len(over70)} over 70 lines, {len(over100)} over 100")
    for n, path, line, name in found[:listing]:
        print(f"{n:5}  {path}:{line}  {name}")


if __name__ == "__main__":
    main()
