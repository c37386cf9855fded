"""Limits on what a YAML input may ask of the loader, checked before anything is built.

A script or cast is a few kilobytes of text, lists and mappings. A hostile or broken file can ask
for much more: aliases that expand exponentially (a 1 kB "billion laughs"), nesting deep enough to
exhaust the stack, tags that name Python objects. `limit_problem` reads the file's parse events
once (linear in its size, nothing constructed) and reports the first limit broken, located.
"""
from __future__ import annotations

from typing import Optional

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    CollectionEndEvent,
    CollectionStartEvent,
    NodeEvent,
    ScalarEvent,
)

from orchestrator.inputs.problems import Problem

MAX_FILE_BYTES = 1 << 20  # 1 MiB: a feature-length script is a few hundred kB
MAX_DEPTH = 32  # a script nests about six levels (scenes, beats, a beat's keys)
MAX_ALIASES = 200
MAX_NODES = 100_000  # scalars and collections once aliases are expanded
PLAIN_TAGS = {None, "!"} | {f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "seq", "map")}


def size_problem(name: str, size: int) -> Optional[Problem]:
    """A file too large to be a script or cast."""
    if size <= MAX_FILE_BYTES:
        return None
    return Problem(name, 1, 1, f"file is {size / (1 << 20):.1f} MiB; inputs are limited to "
                               f"{MAX_FILE_BYTES >> 20} MiB", "split the screenplay into several films, "
                               "or check that this is the right file")


def limit_problem(text: str, name: str) -> Optional[Problem]:
    """The first limit `text` breaks (depth, aliases, expanded size, non-plain tags), or None.

    A syntax error also ends the scan with None: the loader reports it with its location."""
    sizes: dict[str, int] = {}  # anchor -> expanded node count of the node it names
    stack: list[list] = [[0, None]]  # open collections: [expanded node count, anchor]
    aliases = 0
    try:
        for event in YAML(typ="rt").parse(text):
            line, col = event.start_mark.line + 1, event.start_mark.column + 1
            if isinstance(event, NodeEvent) and not isinstance(event, AliasEvent) and event.tag not in PLAIN_TAGS:
                return Problem(name, line, col, f"YAML tag {event.tag!r} is not allowed",
                               "remove the tag: scripts and casts hold plain text, numbers, lists and mappings")
            if isinstance(event, AliasEvent):
                aliases += 1
                if aliases > MAX_ALIASES:
                    return Problem(name, line, col, f"more than {MAX_ALIASES} YAML aliases (*name)",
                                   "write the repeated parts out instead of aliasing them")
                stack[-1][0] += sizes.get(event.anchor, 1)
            elif isinstance(event, ScalarEvent):
                stack[-1][0] += 1
                if event.anchor:
                    sizes[event.anchor] = 1
            elif isinstance(event, CollectionStartEvent):
                stack.append([1, event.anchor])
                if len(stack) - 1 > MAX_DEPTH:
                    return Problem(name, line, col, f"nesting deeper than {MAX_DEPTH} levels",
                                   "a script nests scenes, beats and their keys: check the indentation")
            elif isinstance(event, CollectionEndEvent):
                count, anchor = stack.pop()
                if anchor:
                    sizes[anchor] = count
                stack[-1][0] += count
            if stack[-1][0] > MAX_NODES or sum(s[0] for s in stack) > MAX_NODES:
                return Problem(name, line, col, f"the document expands to more than {MAX_NODES} values "
                                                "(aliases repeated inside aliases?)",
                               "write the repeated parts out instead of aliasing them")
    except YAMLError:
        return None
    return None
