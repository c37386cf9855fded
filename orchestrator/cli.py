"""`compose`: screenplay + cast -> film. Subcommands: validate, plan, voices, report, contact-sheet, train, doctor.

Bad input and unusable tools end with a message naming the file and the fix and exit code 2, never a
traceback; an interrupted run resumes when the same command is run again.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import NoReturn, Optional

from pydantic import ValidationError
from rich.console import Console

from orchestrator.inputs.problems import SpecError
from orchestrator.inputs.project import Project
from orchestrator.planning import PLANNERS

SUBCOMMANDS = ("render", "validate", "plan", "voices", "report", "contact-sheet", "train", "doctor")
EXIT_INPUT = 2
EXIT_INTERNAL = 70  # EX_SOFTWARE: a bug in compose, reported without a traceback


def _workers(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if not 1 <= n <= 16:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number from 1 to 16")
    return n


def _lines(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 10:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number from 1 to 10")
    return int(text)


def _inputs(p: argparse.ArgumentParser) -> None:
    p.add_argument("script", type=Path, help="script.yaml or script.fountain")
    p.add_argument("--cast", type=Path, help="cast.yaml (required for Fountain scripts)")
    p.add_argument("--allow-outside-assets", action="store_true",
                   help="let asset paths point outside the project folder")


def _render_flags(p: argparse.ArgumentParser) -> None:
    from tools.registry import SPEECH, VIDEO

    p.add_argument("--out", type=Path, default=Path("out"), help="output root (film goes to OUT/<title>)")
    p.add_argument("--planner", choices=PLANNERS, help="override render.planner")
    p.add_argument("--speech", choices=sorted(SPEECH), help="override render.speech")
    p.add_argument("--video", choices=sorted(VIDEO), help="override render.video")
    p.add_argument("--max-attempts", type=int, help="per-shot retry cap (default 3)")
    p.add_argument("--seed", type=int)
    p.add_argument("--width", type=int)
    p.add_argument("--height", type=int)
    p.add_argument("--no-eval", action="store_true", help="skip the evaluators (no retries)")
    p.add_argument("--workers", type=_workers, help="shots rendered at the same time (1-16; default 2 where "
                   "there are two cores and no backend wants a GPU, else 1; on Ray as many as the cluster holds)")
    p.add_argument("--executor", choices=("local", "ray"), help="override render.executor: where shots run")
    p.add_argument("--ray-address", help="override render.ray.address: HOST:PORT of a running Ray cluster "
                   "(default: start a local Ray)")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    p.add_argument("--log-level", default="WARNING")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="compose", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("render", help="render the film (the default: `compose script.yaml`)")
    _inputs(r)
    _render_flags(r)
    v = sub.add_parser("validate", help="check script, cast and assets; render nothing")
    _inputs(v)
    pl = sub.add_parser("plan", help="print the shot table and write plan.json; render nothing")
    _inputs(pl)
    pl.add_argument("--planner", choices=PLANNERS)
    pl.add_argument("--out", type=Path, default=Path("out"))
    from tools.registry import SPEECH

    vo = sub.add_parser("voices", help="fit, speak and judge each character's first lines as a render would; "
                        "render no shot")
    _inputs(vo)
    vo.add_argument("--out", type=Path, default=Path("out"), help="output root (lines go to OUT/<title>/voices)")
    vo.add_argument("--speech", choices=sorted(SPEECH), help="override render.speech")
    vo.add_argument("--seed", type=int)
    vo.add_argument("--lines", type=_lines, default=2, help="lines per character (1-10; default 2)")
    vo.add_argument("--compare", action="store_true", help="also speak each character's first line from every "
                    "base voice the fit weighed, judged the same way (to choose a `voice.base` to pin)")
    vo.add_argument("--share-fits", action="store_true", help="copy each character's voice fits into voice-fits/ "
                    "beside its reference clip, so the cast's folder carries them (another machine fits nothing)")
    vo.add_argument("--character", action="append", default=[], metavar="ID",
                    help="audition only this character (id, name or cue; repeatable); voices.json keeps the others' "
                    "last audition")
    vo.add_argument("--line", action="append", default=[], metavar="ID|WORDS",
                    help="audition this line of the script only: its id as the table prints it (sc02_l04: scene 2's "
                         "fourth line) or words from it (repeatable); its speaker is heard in the lines named")
    vo.add_argument("--quiet", action="store_true", help="print nothing but errors")
    vo.add_argument("--json", action="store_true", help="print voices.json on stdout")
    rep = sub.add_parser("report", help="per-shot table of a finished run, or one shot's attempts")
    rep.add_argument("run_dir", type=Path, help="out/<title>")
    rep.add_argument("--shot", help="shot id, e.g. sc01_sh03")
    cs = sub.add_parser("contact-sheet", help="a PNG grid of frames per shot of a finished run")
    cs.add_argument("run_dir", type=Path)
    cs.add_argument("--output", type=Path, help="default: RUN_DIR/contact_sheet.png")
    cs.add_argument("--per-shot", type=int, default=6)
    sub.add_parser("train", help="train the avdit model (see models/README.md)", add_help=False)
    sub.add_parser("doctor", help="check a weights folder for a released adapter (headers only)", add_help=False)
    return ap


def load(args, store_takes: bool = True) -> Project:
    from orchestrator.inputs.loading import (
        load_project,  # imported here to keep `compose --help` fast
    )

    return load_project(args.script, args.cast, allow_outside_assets=args.allow_outside_assets,
                        store_takes=store_takes)


def apply_overrides(project, args):
    cfg = project.script.render
    updates = {k: getattr(args, a) for k, a in [("planner", "planner"), ("speech", "speech"), ("video", "video"),
               ("max_attempts", "max_attempts"), ("seed", "seed"), ("width", "width"), ("height", "height"),
               ("executor", "executor")]
               if getattr(args, a, None) is not None}
    if getattr(args, "no_eval", False):
        updates["evaluators"] = []
    if getattr(args, "ray_address", None) is not None:
        updates["ray"] = {**cfg.ray.model_dump(), "address": args.ray_address}
    try:
        return cfg.model_validate({**cfg.model_dump(), **updates})
    except ValidationError as exc:  # only the overrides can be wrong: the script was validated
        from orchestrator.inputs.checks import FIELD_FIXES, allowed_range
        from tools.base import ToolError

        err = exc.errors()[0]
        field = str(err["loc"][0])
        if field == "ray":  # the one nested override
            flag, value, fix = "--ray-address", args.ray_address, FIELD_FIXES["address"]
        else:
            flag, value, fix = "--" + field.replace("_", "-"), updates.get(field), allowed_range(type(cfg), field)
        raise ToolError(f"{flag} {value!r}: {err['msg'].removeprefix('Value error, ')}",
                        fix or "see `compose --help`") from None


def cmd_validate(args, console: Console) -> int:
    project = load(args, store_takes=False)  # validating writes nothing
    n = sum(len(s.beats) for s in project.script.scenes)
    console.print(f"[green]ok[/green] {args.script}: {len(project.script.scenes)} scenes, {n} beats, "
                  f"{len(project.cast.characters)} characters")
    inputs = _inputs_said(args)
    console.print(f"next: `compose voices {inputs}` to hear the cast, `compose {inputs}` to render",
                  highlight=False, soft_wrap=True)
    return 0


def _inputs_said(args) -> str:
    """The command's inputs as a writer would type them again."""
    return f"{args.script}" + (f" --cast {args.cast}" if args.cast else "")


def cmd_plan(args, console: Console) -> int:
    from orchestrator.planning import make_plan
    from orchestrator.store import atomic_write_json

    project = load(args)
    planner = args.planner or project.script.render.planner
    out = args.out / project.slug
    plan, _ = make_plan(project, planner, out / "cache" / "plans")
    atomic_write_json(out / "plan.json", plan.model_dump(mode="json"))
    from rich.table import Table

    t = Table(title=f"{plan.title}: {len(plan.shots)} shots ({planner} planner)")
    for col in ("shot", "framing", "camera", "characters", "lines", "seconds"):
        t.add_column(col)
    for s in plan.shots:
        lines = " / ".join(f"{seg.line_id} {seg.speaker}: {seg.text}" for seg in s.speech) or s.action[:60]
        t.add_row(s.id, s.framing, s.camera, ", ".join(s.characters), lines, f"{s.duration:.1f}")
    console.print(t)
    if planner == "llm":
        from orchestrator.planning.llm.planner import plan_diff
        from orchestrator.planning.rules import RulePlanner

        diffs = plan_diff(RulePlanner().plan(project), plan)
        console.print("differences from the rule plan:" if diffs else "same coverage as the rule plan")
        for d in diffs:
            console.print(f"  {d}")
    console.print(f"wrote {out / 'plan.json'}")
    return 0


def cmd_voices(args, console: Console) -> int:
    project = load(args)
    config = apply_overrides(project, args)
    from orchestrator.audition import next_step, run_audition  # once the inputs are known good, as cmd_render

    summary = run_audition(project, config, args.out / project.slug, console, args.lines, args.compare,
                           args.share_fits, tuple(args.character), tuple(args.line))
    if summary["characters"]:
        console.print(next_step(summary, _inputs_said(args)), highlight=False, soft_wrap=True)
    if args.json:
        print(json.dumps(summary, indent=2))
    return 0


def cmd_report(args, console: Console) -> int:
    from orchestrator.report.terminal import print_report

    print_report(args.run_dir, console, shot_id=args.shot)  # a missing log is a ToolError: exit 2
    return 0


def cmd_contact_sheet(args, console: Console) -> int:
    from orchestrator.report.records import kept_attempt, load_records
    from tools.media.contact_sheet import write_contact_sheet

    shots = load_records(args.run_dir / "retries.jsonl", console)  # a missing log: ToolError, exit 2
    # The attempt the film uses (a best-effort shot may keep an earlier attempt than its last).
    clips = [(sid, args.run_dir / kept_attempt(recs)["clip"]) for sid, recs in shots.items()]
    out = args.output or args.run_dir / "contact_sheet.png"
    write_contact_sheet(clips, out, per_shot=args.per_shot)
    console.print(f"wrote {out}")
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Read when OpenMP starts (the first torch import, which no import above makes): see WAIT_POLICY.
    from orchestrator.executors import WAIT_POLICY

    os.environ.setdefault("OMP_WAIT_POLICY", WAIT_POLICY)
    if argv and argv[0] not in SUBCOMMANDS and not argv[0].startswith("-"):
        argv.insert(0, "render")
    if argv and argv[0] == "train":
        from models.avdit.train import main as train_main

        return _guarded(lambda: train_main(argv[1:]) or 0, Console(stderr=True))
    if argv and argv[0] == "doctor":
        from models.avdit.doctor import main as doctor_main

        return _guarded(lambda: doctor_main(argv[1:]), Console(stderr=True))
    args = build_parser().parse_args(argv)
    console = Console(stderr=True, quiet=getattr(args, "quiet", False) or getattr(args, "json", False))
    err = Console(stderr=True)
    logging.basicConfig(level=getattr(args, "log_level", "WARNING").upper(), stream=sys.stderr)
    commands = {"validate": cmd_validate, "plan": cmd_plan, "voices": cmd_voices, "report": cmd_report,
                "contact-sheet": cmd_contact_sheet, "render": cmd_render}
    return _guarded(lambda: commands[args.command](args, console), err)


def _guarded(fn, err: Console) -> int:
    from orchestrator.context import RunStopped
    from tools.base import ToolError

    try:
        return fn()
    except SpecError as e:
        for p in e.problems:
            err.print(str(p), markup=False, highlight=False, soft_wrap=True)
        err.print(f"{len(e.problems)} problem(s); nothing was rendered", highlight=False)
        return EXIT_INPUT
    except ToolError as e:
        err.print(f"error: {e}", markup=False, highlight=False, soft_wrap=True)
        return EXIT_INPUT
    except RunStopped:  # the signal handler already said so, in one line
        # Exiting now: a further Ctrl-C must not turn the exit into a death by signal.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        return 130
    except KeyboardInterrupt:
        err.print("interrupted: finished shots are kept; run the same command again to resume")
        return 130
    except Exception as e:  # a bug, not the user's input: say where the details are, keep the work
        log = _crash_log(e)
        err.print(f"internal error: {type(e).__name__}: {str(e)[:300]} (details: {log}); finished shots "
                  "are kept and the same command resumes; please report this with that file",
                  markup=False, highlight=False, soft_wrap=True)
        return EXIT_INTERNAL


def _crash_log(exc: Exception) -> Path:
    """Write the traceback to a file in the user cache folder instead of onto the writer's terminal."""
    import tempfile
    import time
    import traceback

    from tools.media.files import user_cache_dir

    try:
        folder = user_cache_dir() / "crashes"
        folder.mkdir(exist_ok=True)
    except OSError:
        folder = Path(tempfile.gettempdir())
    path = folder / f"crash-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.txt"
    path.write_text("".join(traceback.format_exception(exc)))
    return path


def cmd_render(args, console: Console) -> int:
    project = load(args)
    config = apply_overrides(project, args)
    # Imported once the inputs are known good: the graph and the mixer cost about 1.8 s of imports,
    # which a writer whose file has a typo should not wait for (tests/faults/test_cli_corpus.py).
    from orchestrator.runner import run_film

    summary = run_film(project, config, args.out / project.slug, console, workers=args.workers)
    if args.json:
        print(json.dumps(summary, indent=2))
    return 0


def exit_now(code: int) -> NoReturn:
    """End the process with `code` as a normal exit would, less the interpreter's teardown of the libraries a
    command loaded (torch, numba, ONNX Runtime, CTranslate2: 1.3 s after a render here, 0.1 s this way; 0.5 s
    of it torch's alone). What must still happen does: the functions registered to run at exit (logging's
    flush, Ray's and multiprocessing's clean-up) run, and stdout and stderr are flushed. Where another
    non-daemon thread is still running (it may be writing a file), the normal exit is taken: it waits for it."""
    import atexit
    import threading

    busy = [t for t in threading.enumerate() if t is not threading.current_thread() and not t.daemon and t.is_alive()]
    if busy or not hasattr(atexit, "_run_exitfuncs"):
        sys.exit(code)
    atexit._run_exitfuncs()  # what interpreter shutdown would run; CPython's own tests call it so
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`compose --json | head`): nothing more can be written
            pass
    os._exit(code)


def run() -> NoReturn:
    """The `compose` command (pyproject's entry point, and `python -m orchestrator.cli`): `main`, then `exit_now`.
    Tests call `main`, which returns the code."""
    exit_now(main())


if __name__ == "__main__":
    run()
