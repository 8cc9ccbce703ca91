"""Initialisation experiments of the paper: scaling, separation, alignment and the sandwich (figures a-d).

Usage: python scripts/reproduce_init.py [--out DIR] [--full] [--seed S] [--quiet]
(same as ``jaxspec figures init``). About a minute or two on a CPU at the default size; ``--full`` selects
paper-scale sizes meant for a GPU.
"""

from __future__ import annotations

import argparse

from jaxspec.reproduce import print_summary, run

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="figures/init", help="output directory")
    parser.add_argument("--full", action="store_true", help="paper-scale sizes (meant for a GPU)")
    parser.add_argument("--seed", type=int, default=0, help="base random seed")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args()
    summary = run(args.out, full=args.full, seed=args.seed, progress=not args.quiet)
    print_summary(summary)
    print(f"wrote {', '.join(summary['files'])} to {args.out}")
