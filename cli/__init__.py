"""The ``closure-risk`` command line: one entry point, a subcommand per job, each importing its room when it runs.

Each module here registers its subcommands; a new job is a new module (or a function in one) and a line below.
"""

from __future__ import annotations

import argparse
import gc
import os
from collections.abc import Sequence

from cli import data, model, monitor, readiness, reload, rights, scoring, service
from cli.common import CLI, EXIT_INPUT, EXIT_PARTIAL, EXIT_USAGE

__all__ = [
    "CLI",
    "EXIT_INPUT",
    "EXIT_PARTIAL",
    "EXIT_USAGE",
    "GC_THRESHOLD",
    "build_parser",
    "configure_process",
    "main",
]

# The jobs build hundreds of thousands of long-lived objects (records, episodes, rows). At Python's default
# (700 allocations between young collections) the cyclic collector rescans them over and over: loading the default
# cohort's training frame took 17.7-20.2 s of CPU, 12.2-13.5 s with the collector off and 13.5-15.0 s at this
# threshold (benchmarks/README.md). Reference counting still frees everything at once; only cycles wait longer.
GC_THRESHOLD = (50_000, 20, 100)

# One thread for the numerical libraries (OpenBLAS, OpenMP), unless the environment says otherwise: the jobs' arrays
# are small, and a team of threads busy-waits when the machine is busy. At a load of 8 on 2 cores the logistic
# baseline took 3.5 s of CPU with two BLAS threads and 0.6 s with one (benchmarks/README.md). Set before any of
# them is loaded: the subcommands import them when they run.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def configure_process() -> None:
    """What every command sets before its work: the collector's threshold and one numerical thread."""
    gc.set_threshold(*GC_THRESHOLD)
    for name in THREAD_VARIABLES:
        os.environ.setdefault(name, "1")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="closure-risk",
        description="Score open child-neglect cases on the risk of re-referral within 12 months of closure.",
    )
    parser.add_argument(
        "--quiet", "-q", action="store_true", help="no progress on standard error (it is shown only at a terminal)"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (data, readiness, model, service, reload, scoring, monitor, rights):
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (also used as the process's).

    Each subcommand imports its package only when it runs, so ``closure-risk --help`` stays instant. Summaries go to
    standard output as one JSON object; errors go to standard error as one line, with a non-zero exit code. Nothing
    printed names a child.
    """
    configure_process()
    args = build_parser().parse_args(argv)
    code: int = args.handler(args)
    return code
