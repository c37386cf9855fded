"""Evaluator thresholds, calibrated by `bench/calibrate.py` and stored in `thresholds.json` beside this file."""
from __future__ import annotations

import json
from pathlib import Path

from tools.base import ToolError

THRESHOLDS_PATH = Path(__file__).with_name("thresholds.json")


# ----------------------------------------------------------------------------------- thresholds


def thresholds() -> dict[str, float]:
    """Calibrated thresholds by score family (tools/evaluators/thresholds.json, written from bench/calibrate.py)."""
    try:
        data = json.loads(THRESHOLDS_PATH.read_text(encoding="utf-8"))
        return {k: float(v) for k, v in data["thresholds"].items()}
    except (OSError, ValueError, KeyError) as exc:
        raise ToolError(f"{THRESHOLDS_PATH}: cannot read the thresholds ({exc})",
                        "restore tools/evaluators/thresholds.json or rerun `python -m bench.calibrate --write`") from exc
