"""Values made once per process and shared by threads: the first asker of a key makes the value; a second
asker of the same key waits for it rather than making it again (two shot workers reaching one character's
voice fit at once, each fit a minute of both cores), while askers of other keys go on."""
from __future__ import annotations

import threading
from typing import Callable, TypeVar

T = TypeVar("T")
_LOCK = threading.Lock()
_MAKING: dict[str, threading.Lock] = {}  # key -> held while its value is being made


def memoised(memo: dict, key: str, make: Callable[[], T]) -> T:
    """`memo[key]`, made by `make()` the first time in this process. The first asker makes it; later ones
    wait for that value (none when making failed: the next asker tries again). `make` must not ask for
    `key` itself."""
    with _LOCK:
        if key in memo:
            return memo[key]
        making = _MAKING.setdefault(key, threading.Lock())
    with making:
        with _LOCK:
            if key in memo:
                return memo[key]
        value = make()
        with _LOCK:
            memo[key] = value
    return value
