"""Values made once per process and shared by threads: the first asker of a key makes the value; a second
asker of the same key waits for it rather than making it again (two shot workers reaching one character's
voice fit at once, each fit a minute of both cores; a shot's evaluators on two threads asking for its one
decode of the clip), while askers of other keys go on."""
from __future__ import annotations

import threading
from typing import Callable, Optional, TypeVar

T = TypeVar("T")
_LOCK = threading.Lock()
_MAKING: dict[str, threading.Lock] = {}  # key -> held while its value is being made


def memoised(memo: dict, key, make: Callable[[], T], keep: Optional[int] = None) -> T:
    """`memo[key]`, made by `make()` the first time in this process. The first asker makes it; later ones
    wait for that value (none when making failed: the next asker tries again). `make` must not ask for
    `key` itself. With `keep`, `memo` holds the `keep` values last asked for; an older one is made again."""
    with _LOCK:
        if key in memo:
            if keep is not None:
                memo[key] = memo.pop(key)  # the most recently asked for is the last to go
            return memo[key]
        making = _MAKING.setdefault(key, threading.Lock())
    with making:
        with _LOCK:
            if key in memo:
                return memo[key]
        value = make()
        with _LOCK:
            memo[key] = value
            if keep is not None:
                _MAKING.pop(key, None)  # askers already waiting hold the lock; a later one finds the value
                while len(memo) > keep:
                    memo.pop(next(iter(memo)))
    return value
