"""Toy-scale fidelity study of the avdit method on CPU (the study itself: tests/fixtures/fidelity.py).

    .venv/bin/python -m bench.fidelity            # full study (about 14 minutes on 2 cores)
    .venv/bin/python -m bench.fidelity --fast     # the slice the test suite runs
"""
from __future__ import annotations

import argparse
import sys

from tests.fixtures.fidelity import study, table


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fast", action="store_true", help="the few-dozen-step slice the tests run")
    args = p.parse_args(argv)
    print(table(study(args.fast, log=lambda m: print(m, file=sys.stderr, flush=True))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
