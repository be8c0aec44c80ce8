"""``nalu-bench BENCHMARK --out DIR``: the later benchmarks (Primer SMAT, Division, 10-parameter task), one
command each (``nalu_suite.benchmarks``; ``nalu-bench --help`` lists them)."""

from __future__ import annotations

from nalu_suite.benchmarks.command import main

if __name__ == "__main__":
    main()
