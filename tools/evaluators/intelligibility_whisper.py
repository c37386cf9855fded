"""`intelligibility_whisper` evaluator: the intelligibility evaluator with a larger CTranslate2 Whisper
(`ct2-transformers-converter --model openai/whisper-small ...`, folder in $COMPOSER_WHISPER_DIR)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from tools.base import ToolError
from tools.evaluators.thresholds import thresholds


def create(model_path: Optional[Path] = None):
    """Factory: intelligibility with a larger CTranslate2 Whisper from $COMPOSER_WHISPER_DIR."""
    from tools.evaluators.intelligibility import IntelligibilityEvaluator

    raw = model_path or os.environ.get("COMPOSER_WHISPER_DIR")
    if not raw or not (Path(raw) / "model.bin").is_file():
        raise ToolError(f"no CTranslate2 Whisper model at {raw or '$COMPOSER_WHISPER_DIR (unset)'}",
                        "ct2-transformers-converter --model openai/whisper-small --output_dir DIR "
                        "--quantization int8, then set COMPOSER_WHISPER_DIR=DIR")
    return IntelligibilityEvaluator(thresholds()["wer"], model_dir=Path(raw))
