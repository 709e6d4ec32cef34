"""python -m bench [--quick]: measure the service on the shared org history.

Every figure is printed beside its target; nothing here is a pass/fail test.
"""

from __future__ import annotations

import argparse

from bench import core


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="about a minute: fewer samples, PostgreSQL apply on a prefix")
    args = parser.parse_args()
    core.print_table(core.run(args.quick))


if __name__ == "__main__":
    main()
