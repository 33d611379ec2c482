"""The ``closure-risk`` command line."""


def main() -> None:
    """Entry point."""
