"""Decoupled singular-value dynamics: deep linear vs fixed-gates ReLU networks, measured against predictions.

Usage: python scripts/reproduce_dynamics.py [--out DIR] [--full]  (same as ``jaxspec figures dynamics``).
A few minutes on a CPU; ``--full`` runs longer with half the learning rate.
"""

from __future__ import annotations

import argparse

from jaxspec.reproduce import EXPERIMENTS, run

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="figures/dynamics", help="output directory")
    parser.add_argument("--full", action="store_true", help="longer runs, smaller step, all of digits")
    parser.add_argument("--experiment", action="append", choices=list(EXPERIMENTS), help="run only these")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args()
    summary = run(args.out, full=args.full, experiments=args.experiment, progress=not args.quiet)
    for name, entry in summary.items():
        print(name, {k: [round(e, 4) for e in v] for k, v in entry["max_relative_error"].items()})
