#!/usr/bin/env python3
"""Sums an Nsight Compute CSV (`ncu --csv --print-units base --metrics gpu__time_duration.sum`)
by kernel: the GPU time of every profiled kernel (ncu runs them one at a time, so the sum is
the GPU's work without the gaps between launches), then the kernels grouped by name, largest
first. Usage: ncu_summary.py ncu.csv [label] [top]
"""
import csv
import re
import sys
from collections import defaultdict

SCALE = {"ns": 1e-6, "nsecond": 1e-6, "us": 1e-3, "usecond": 1e-3, "ms": 1.0, "msecond": 1.0, "s": 1e3, "second": 1e3}


def short(name):
    """The kernel's name without its template arguments and parameter list."""
    name = re.sub(r"\(.*$", "", name.strip())
    depth, out = 0, []
    for ch in name:
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth -= 1
        elif depth == 0:
            out.append(ch)
    name = "".join(out).strip()
    return name.split(" ")[-1][:90] or "?"


def main():
    path = sys.argv[1]
    label = sys.argv[2] if len(sys.argv) > 2 else path
    top = int(sys.argv[3]) if len(sys.argv) > 3 else 25
    with open(path, newline="") as f:
        lines = [l for l in f if l.startswith('"')]  # ncu's own messages start with ==PROF==
    rows = [r for r in csv.DictReader(lines) if r.get("Metric Name") == "gpu__time_duration.sum"]
    if not rows:
        print(f"{label}: no kernels in {path}")
        return 1
    groups = defaultdict(lambda: [0, 0.0])
    total = 0.0
    for r in rows:
        ms = float(r["Metric Value"].replace(",", "")) * SCALE.get(r["Metric Unit"], 1e-6)
        g = groups[short(r["Kernel Name"])]
        g[0] += 1
        g[1] += ms
        total += ms
    print(f"### {label}: {len(rows)} kernels, {total:.2f} ms of GPU time (sum of kernel durations)")
    print("| kernel | launches | total (ms) | share |")
    print("|---|---|---|---|")
    for name, (n, ms) in sorted(groups.items(), key=lambda kv: -kv[1][1])[:top]:
        print(f"| `{name}` | {n} | {ms:.3f} | {ms / total * 100:.1f} % |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
