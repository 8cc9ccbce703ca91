"""Bottleneck rank of L2-regularised deep nets: weight spectra, representation ranks, ||theta||^2 against depth.

Usage: python scripts/reproduce_bottleneck.py [--out DIR] [--full] [--target NAME]  (same as
``jaxspec figures bottleneck``). A few minutes on a CPU at the default size; ``--full`` selects GPU sizes.
"""

from __future__ import annotations

import argparse

from jaxspec.reproduce import TARGETS, print_summary, run

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="figures/bottleneck", help="output directory")
    parser.add_argument("--full", action="store_true", help="GPU sizes: deeper, wider, longer")
    parser.add_argument("--seed", type=int, default=0, help="base random seed")
    parser.add_argument("--target", action="append", choices=list(TARGETS), help="run only these targets")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args()
    print_summary(run(args.out, full=args.full, seed=args.seed, targets=args.target, progress=not args.quiet))
