"""`python bench/profile_summary.py FILE [PATTERN]`: summarise py-spy's collapsed stacks
(`py-spy record --format raw`, as bench/register.py `profiled` writes them): the share of
samples in which each function is on the stack, and the functions that were running."""

from __future__ import annotations

import collections
import sys
from pathlib import Path


def _name(frame: str) -> str:
    where = frame.split("(")[1].split(":")[0].rsplit("/", 1)[-1] if "(" in frame else ""
    return f"{frame.split(' (')[0]} {where}"


def main(path: str, pattern: str = "") -> None:
    inclusive: collections.Counter[str] = collections.Counter()
    running: collections.Counter[str] = collections.Counter()
    total = 0
    for line in Path(path).read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        total += n
        frames = [_name(f) for f in stack.split(";")]
        for name in set(frames):
            inclusive[name] += n
        running[frames[-1]] += n
    print("samples", total)
    for name, n in inclusive.most_common(80):
        if pattern in name:
            print(f"{n / total:6.1%} {name}")
    print("--- running")
    for name, n in running.most_common(15):
        print(f"{n / total:6.1%} {name}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
