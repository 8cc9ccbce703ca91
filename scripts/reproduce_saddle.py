"""Escape from the saddle at the origin: optimal escape directions, per-layer ratios against l^(1/4), plateaus.

Usage: python scripts/reproduce_saddle.py [--out DIR] [--full]  (same as ``jaxspec figures saddle``).
A few minutes on a CPU at the default size; ``--full`` selects GPU sizes.
"""

from __future__ import annotations

import argparse

from jaxspec.reproduce import print_summary, run

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="figures/saddle", help="output directory")
    parser.add_argument("--full", action="store_true", help="GPU sizes: deeper, wider, more restarts")
    parser.add_argument("--seed", type=int, default=0, help="base random seed")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args()
    print_summary(run(args.out, full=args.full, seed=args.seed, progress=not args.quiet))
