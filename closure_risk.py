"""The ``closure-risk`` command line's entry point (``python -m closure_risk``, ``spark-submit closure_risk.py``);
the subcommands live in ``cli/``."""

from __future__ import annotations

import sys

from cli import CLI, EXIT_INPUT, EXIT_PARTIAL, EXIT_USAGE, build_parser, main

__all__ = ["CLI", "EXIT_INPUT", "EXIT_PARTIAL", "EXIT_USAGE", "build_parser", "main"]

if __name__ == "__main__":
    sys.exit(main())
