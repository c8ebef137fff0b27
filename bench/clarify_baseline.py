#!/usr/bin/env python3
"""Baseline for the clarity-xml bench: the Python `clarify` parser (PyPI
`clarify`, openelections) on the same detail.xml, timed in-process.

    python3 -m venv /tmp/clarify && /tmp/clarify/bin/pip install clarify
    /tmp/clarify/bin/python bench/clarify_baseline.py ../shared/fixtures/clarity_enr/openelections-data-ga_raw_xml/20180522__ga__primary.xml

Prints the best of N runs and the count of results clarify produced. Compare
with `cargo bench -p votewire-transformers --bench transformers -- clarity-xml`
run in the same session (see BENCHMARKS.md).
"""
import sys
import time

from clarify import Parser


def main():
    path = sys.argv[1]
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    best = None
    count = 0
    for _ in range(runs):
        t0 = time.perf_counter()
        p = Parser()
        p.parse(path)
        count = len(p.results)
        dt = time.perf_counter() - t0
        best = dt if best is None else min(best, dt)
    print(f"clarify: best of {runs}: {best * 1000:.1f} ms, {count} results")


if __name__ == "__main__":
    main()
