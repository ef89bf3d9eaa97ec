"""``python -m orchestrator.sandbox --port 8900``."""

from __future__ import annotations

import argparse
import sys

from orchestrator.sandbox.cli import add_arguments, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m orchestrator.sandbox",
        description="A local imitation of the Suno-style music API, with faults on demand.",
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
