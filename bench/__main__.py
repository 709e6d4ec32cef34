"""python -m bench [--quick]: measure the service on the shared org history.

Every figure is printed beside its target; nothing here is a pass/fail test.
The peers suite runs last and prints its comparison table last.
"""

from __future__ import annotations

import argparse
import sys
import time

from bench import audit, core, fanout, peers

SUITES = {
    "core": core.run,
    "audit": audit.run,
    "fanout": fanout.run,
    "peers": peers.run,
}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="about a minute: fewer samples, smaller stores",
    )
    parser.add_argument(
        "--only",
        choices=sorted(SUITES),
        action="append",
        help="run only this suite (may be given twice)",
    )
    args = parser.parse_args()
    figures = []
    chosen = args.only or list(SUITES)
    for name in chosen:
        started = time.monotonic()
        figures += SUITES[name](args.quick)
        took = time.monotonic() - started
        print(f"bench: {name} took {took:.0f} s", file=sys.stderr, flush=True)
    if figures:
        core.print_table(figures)
    if "peers" in chosen:
        peers.print_comparison()


if __name__ == "__main__":
    main()
