"""Prompt templates from `prompts/`, rendered strictly, with a digest that joins cache keys.

Templates use `{{ name }}` placeholders. Rendering is strict both ways: a placeholder with no value
and a value with no placeholder are errors, so a renamed variable can never silently send an empty
prompt. Nothing else in a template is special, so JSON braces and `$` signs need no escaping.
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

PROMPTS_DIR = Path(__file__).resolve().parents[3] / "prompts"
PLACEHOLDER_RE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


class TemplateError(ValueError):
    """A template is missing, or its variables do not match the values given."""


def template_path(name: str, prompts_dir: Path = PROMPTS_DIR) -> Path:
    """Path of the template `name` (e.g. "plan.system"), which must exist."""
    path = prompts_dir / f"{name}.md"
    if not path.is_file():
        raise TemplateError(f"{path}: prompt template not found (fix: restore it from the repository)")
    return path


def template_variables(text: str) -> set[str]:
    """The placeholder names a template uses."""
    return set(PLACEHOLDER_RE.findall(text))


def render_text(text: str, values: dict[str, str], source: str = "<template>") -> str:
    """Fill every `{{ name }}` in `text`; missing or unused values raise TemplateError."""
    wanted = template_variables(text)
    missing = sorted(wanted - set(values))
    unused = sorted(set(values) - wanted)
    if missing:
        raise TemplateError(f"{source}: no value for template variable(s) {', '.join(missing)}")
    if unused:
        raise TemplateError(f"{source}: value(s) given for unknown template variable(s) {', '.join(unused)}")
    # One pass with a function replacement, so a value containing "{{ x }}" is never re-expanded.
    return PLACEHOLDER_RE.sub(lambda m: str(values[m.group(1)]), text)


def render(name: str, values: dict[str, str], prompts_dir: Path = PROMPTS_DIR) -> str:
    """Render the template file `prompts/<name>.md` strictly."""
    path = template_path(name, prompts_dir)
    return render_text(path.read_text(encoding="utf-8"), values, source=str(path))


def templates_digest(names: list[str], prompts_dir: Path = PROMPTS_DIR) -> str:
    """sha256 over the named templates' names and bytes, for cache keys."""
    h = hashlib.sha256()
    for name in names:
        h.update(name.encode() + b"\0")
        h.update(template_path(name, prompts_dir).read_bytes() + b"\0")
    return h.hexdigest()
