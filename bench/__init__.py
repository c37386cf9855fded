"""Benchmarks: each prints its figures (`python -m bench.<name>`); bench/RESULTS.md keeps them."""
import os

from orchestrator.executors import WAIT_POLICY

# As `compose` sets it before torch starts (orchestrator/cli.py): what a benchmark times is what a render runs.
# Unset, libgomp's threads spin after each torch or CTranslate2 call and slow the next line's WORLD analysis.
os.environ.setdefault("OMP_WAIT_POLICY", WAIT_POLICY)
