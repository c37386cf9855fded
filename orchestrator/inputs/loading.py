"""Load a project (script in YAML or Fountain, cast in YAML) and validate all of it before rendering.

Every problem found is collected, located and raised at once as `SpecError`, each printed as
`file:line:col: message (fix: ...)`. YAML is read with ruamel's round-trip loader, which remembers
the line and column of every key and list item; pydantic's error paths are mapped back onto them.
Checks run on the raw data, not on validated models, so a schema error in one beat does not hide an
unknown speaker in another or a missing image in the cast.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from orchestrator.inputs import assets, checks
from orchestrator.inputs.fountain import fountain_script_data, parse_fountain
from orchestrator.inputs.problems import Problem, Source, SpecError, Spot
from orchestrator.inputs.project import Project, ScriptSpec
from orchestrator.inputs.yaml_limits import limit_problem, size_problem
from orchestrator.schema.cast import Cast

FOUNTAIN_SUFFIXES = (".fountain", ".spmd")





# ------------------------------------------------------------------------------------ reading


def _spots(node: Any, path: tuple, spots: dict[tuple, Spot]) -> Any:
    """Record positions of every key/item below `node` and return it as plain dicts and lists."""
    if isinstance(node, CommentedMap):
        out = {}
        for key, value in node.items():
            kl, kc = node.lc.key(key)
            vl, vc = node.lc.value(key)
            spots[path + (key,)] = (kl + 1, kc + 1, vl + 1, vc + 1)
            out[key] = _spots(value, path + (key,), spots)
        return out
    if isinstance(node, CommentedSeq):
        out = []
        for i, value in enumerate(node):
            line, col = node.lc.item(i)
            spots[path + (i,)] = (line + 1, col + 1, line + 1, col + 1)
            out.append(_spots(value, path + (i,), spots))
        return out
    if isinstance(node, bool) or node is None:
        return node
    for plain in (int, float, str):  # ruamel's ScalarFloat, ScalarInt... become plain values
        if isinstance(node, plain):
            return plain(node)
    return node


def _read_text(path: Path, problems: list[Problem], named_at: Optional[tuple[Source, tuple]]) -> Optional[str]:
    """The file's text; a missing, unreadable, oversized or binary file is a problem located where
    it was named."""
    name = os.path.normpath(str(path))
    raw = None
    try:
        too_big = size_problem(name, path.stat().st_size) if path.is_file() else None
        if too_big is not None:
            problems.append(too_big)
            return None
        raw = path.read_bytes()
    except FileNotFoundError:
        msg, fix = f"file {name} not found", "check the path (it is relative to the file that names it)"
    except IsADirectoryError:
        msg, fix = f"{name} is a folder, not a file", "name the YAML file itself"
    except ValueError:  # a NUL byte inside the path
        msg, fix = f"{name!r} is not a usable file name", "remove the control characters from the path"
    except OSError as exc:
        msg, fix = f"cannot read {name[:200]}: {exc.strerror}", "check the path and the file's permissions"
    if raw is not None:
        if b"\x00" in raw:
            msg, fix = f"{name} contains NUL bytes: it is not a text file", "give the script or cast as UTF-8 text"
        else:
            try:
                return raw.decode("utf-8-sig")
            except UnicodeDecodeError as exc:
                msg, fix = f"{name} is not UTF-8 text ({exc.reason})", "save the file as UTF-8"
    if named_at is not None:
        problems.append(named_at[0].problem(named_at[1], msg, fix))
    else:
        problems.append(Problem(name, 1, 1, msg, fix))
    return None


def read_yaml(path: Path, problems: list[Problem],
              named_at: Optional[tuple[Source, tuple]] = None) -> Optional[Source]:
    """Parse a YAML file keeping positions; syntax errors become located problems."""
    text = _read_text(path, problems, named_at)
    if text is None:
        return None
    name = os.path.normpath(str(path))
    limit = limit_problem(text, name)
    if limit is not None:
        problems.append(limit)
        return None
    try:
        node = YAML(typ="rt").load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        what = exc.problem or "invalid YAML"
        context = f" ({exc.context}" if exc.context else ""
        if context and exc.context_mark is not None and exc.context_mark.line + 1 != line:
            context += f" that starts at line {exc.context_mark.line + 1}"  # an unclosed [ or {
        context += ")" if context else ""
        fix = ("keep one of the duplicated keys" if "duplicate key" in what else
               "check indentation and quoting here; text with `: `, `#` or a leading `[`/`{` needs quotes")
        problems.append(Problem(name, line, col, f"YAML syntax error: {what}{context}", fix))
        return None
    except YAMLError as exc:
        problems.append(Problem(name, 1, 1, f"YAML error: {exc}", "check the file is valid YAML"))
        return None
    spots: dict[tuple, Spot] = {(): (1, 1, 1, 1)}
    return Source(path, _spots(node, (), spots), spots)


def read_fountain(path: Path, problems: list[Problem]) -> Optional[tuple[Source, dict]]:
    """Parse a Fountain screenplay into ScriptSpec-shaped data; returns it and its title page."""
    text = _read_text(path, problems, None)
    if text is None:
        return None
    doc = parse_fountain(text)
    data, locs, found = fountain_script_data(doc, title_default=path.stem.replace("_", " ").replace("-", " "))
    spots = {loc: (line, col, line, col) for loc, (line, col) in locs.items()}
    spots[()] = (1, 1, 1, 1)
    src = Source(path, data, spots)
    for (line, col), message, fix in found:
        problems.append(Problem(src.name, line, col, message, fix))
    if not data["scenes"]:
        problems.append(Problem(src.name, 1, 1, "the screenplay has no scene heading",
                                "start each scene with a heading such as `INT. KITCHEN - DAY`"))
    where = {key: (n, 1) for key, n in doc.title_lines.items()}
    return src, {"page": doc.title_page, "lines": where}


# ------------------------------------------------------------------------------------- schema


def validate_schema(model: type[BaseModel], src: Source, problems: list[Problem]) -> bool:
    """Validate `src.data` against `model`; every pydantic error becomes a located problem."""
    try:
        model.model_validate(src.data)
        return True
    except ValidationError as exc:
        bad_beats: set[tuple] = set()
        for err in exc.errors():
            problem = checks.schema_problem(model, src, err, bad_beats)
            if problem is not None:
                problems.append(problem)
        return False


# ---------------------------------------------------------------------------------- the project


def _cast_file(script: Source, cast_path: Optional[Path], title: Optional[dict], root: Path,
               allow_outside: bool, problems: list[Problem]) -> Optional[tuple[Path, Optional[tuple]]]:
    """Where the cast lives: the explicit path (the user's own choice), else the script's `cast`
    key (a Fountain title page's `Cast:`), resolved next to the script and kept inside the project."""
    if cast_path is not None:
        return Path(cast_path), None
    if title is not None:
        raw = title["page"].get("cast")
        if not raw:
            problems.append(Problem(script.name, 1, 1, "a Fountain screenplay needs a cast file",
                                    "pass --cast cast.yaml, or add `Cast: cast.yaml` to the title page"))
            return None
        script.spots[("cast",)] = title["lines"]["cast"] * 2
        script.data["cast"] = raw
    raw = script.get(("cast",))
    if not isinstance(raw, str) or not raw.strip():
        return None  # the schema check reports it
    path = assets.asset_path(script, ("cast",), root, allow_outside, problems)
    return (script.path.parent / raw, ("cast",)) if path is not None else None


def load_project(script_path: Path, cast_path: Optional[Path] = None, allow_outside_assets: bool = False,
                 check_assets: bool = True, store_takes: bool = True) -> Project:
    """Load and validate a script (`.yaml`/`.yml` or `.fountain`) and its cast.

    The cast comes from `cast_path` when given (the CLI's --cast), else from the script's `cast`
    key. Asset paths resolve relative to the YAML file naming them and must stay inside the
    script's folder unless `allow_outside_assets`. `check_assets=False` skips opening images and
    wavs (unit tests only); `store_takes=False` (`compose validate`) writes nothing, not even a voice's
    joined takes into the user cache. Raises `SpecError` listing every problem found; returns a `Project`
    whose paths are all absolute and whose dialogue speakers are cast ids.
    """
    script_path = Path(script_path)
    root = script_path.absolute().parent
    problems: list[Problem] = []
    title = None
    if script_path.suffix.lower() in FOUNTAIN_SUFFIXES:
        read = read_fountain(script_path, problems)
        script, title = read if read else (None, None)
    else:
        script = read_yaml(script_path, problems)
    if script is None:
        raise SpecError(problems)
    if not isinstance(script.data, dict):
        problems.append(script.problem((), "the script must be a mapping with `title`, `cast` and `scenes`",
                                       "see the script format in the README"))
        raise SpecError(problems)

    found = _cast_file(script, cast_path, title, root, allow_outside_assets, problems)
    if found is not None and found[1] is None:  # --cast overrides the script's own `cast`
        script.data["cast"] = str(found[0].absolute())
    validate_schema(ScriptSpec, script, problems)
    cast = read_yaml(found[0], problems, (script, found[1]) if found[1] else None) if found else None
    if cast is not None:
        if isinstance(cast.data, dict):
            validate_schema(Cast, cast, problems)
        else:
            problems.append(cast.problem((), "the cast must be a mapping with a `characters` list",
                                         "see the cast format in the README"))
            cast = None

    # Without a list of characters there is no roster to check speakers against: the cast's own
    # problem is the root cause, and "unknown speaker" for every cue would only bury it.
    readable = cast is not None and isinstance(cast.data.get("characters"), list)
    roster = checks.cast_problems(cast, problems) if readable else None
    checks.script_problems(script, roster, problems)
    assets.asset_problems(script, cast, root, allow_outside_assets, check_assets, problems, store_takes)
    if problems:
        unique = {str(p): p for p in problems}
        raise SpecError(sorted(unique.values(), key=lambda p: (p.file != script.name, p.file, p.line, p.col)))

    if found is not None:
        script.data["cast"] = str(found[0].resolve())
    spec = ScriptSpec.model_validate(script.data)
    locations = {}
    for si, scene in enumerate(spec.scenes):
        locations[f"scene:{si + 1}"] = (script.name, *script.at(("scenes", si), value=False))
        for bi in range(len(scene.beats)):
            where = script.at(("scenes", si, "beats", bi), value=False)
            locations[f"beat:{si + 1}:{bi + 1}"] = (script.name, *where)
    for ci, character in enumerate(cast.data["characters"]):  # `compose voices` points at a voice it doubts
        locations[f"voice:{character['id']}"] = (cast.name, *cast.at(("characters", ci, "voice", "reference")))
    return Project(script=spec, cast=Cast.model_validate(cast.data), script_path=script_path.resolve(),
                   cast_path=found[0].resolve(), root=root.resolve(), locations=locations)
