"""The one error type of `models/`: a model cannot be built, loaded or trained as configured.

`models/` imports nothing from `tools/` or `orchestrator/`; the video backend and the `compose train`
command turn a `ModelError` into the user-facing error (exit 2, the message and its fix).
"""
from __future__ import annotations


class ModelError(ValueError):
    """A configuration or weights problem; `fix` says what the user should change."""

    def __init__(self, message: str, fix: str = ""):
        self.message = message
        self.fix = fix
        super().__init__(f"{message} (fix: {fix})" if fix else message)
