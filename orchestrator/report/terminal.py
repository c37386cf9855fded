"""Reading the retry log: `compose report out/<title> [--shot ID]` for a writer in a terminal.

`retries.jsonl` holds one record per attempt (written by the decide node). The overview shows one
row per shot: attempts, verdict, and the kept attempt's scores against their thresholds. With a
shot id it shows that shot's attempts in order, each with its scores, what changed from the
attempt before (diffed from the recorded knobs, so it is true whatever the policy claimed) and why.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from orchestrator.report.records import kept_attempt, knob_changes, load_records
from tools.base import ToolError

VERDICT_STYLE = {
    "accepted": "green",
    "accepted_after_retry": "yellow",
    "best_effort": "red",
    "retry": "dim",
}


def format_score(score: dict) -> str:
    """"0.41 ≥ 0.30 ok" style text for one score record."""
    value, thr = score.get("value"), score.get("threshold")
    sign = "≥" if score.get("higher_is_better", True) else "≤"
    mark = "[green]ok[/]" if score.get("passed") else "[red]FAIL[/]"
    return f"{_num(value)} {sign} {_num(thr)} {mark}"


def _num(x) -> str:
    if x is None:
        return "-"
    if isinstance(x, float) and x != x:
        return "nan"
    return f"{x:.3g}" if isinstance(x, float) else str(x)


def _verdict(rec: dict) -> str:
    v = rec.get("verdict", "?")
    return f"[{VERDICT_STYLE.get(v, 'white')}]{v}[/]"


def _overview(shots: dict[str, list[dict]], console: Console) -> None:
    table = Table(title="shots", show_lines=False)
    # Short columns never fold (a folded "accepted_after_retry" reads as another verdict); the scores
    # column takes what width is left.
    for col in ("shot", "attempts", "verdict", "kept", "quality"):
        table.add_column(col, no_wrap=True, min_width=len("accepted_after_retry") if col == "verdict" else None)
    table.add_column("scores (kept attempt)", overflow="fold")
    for shot, recs in shots.items():
        final = recs[-1]
        kept = kept_attempt(recs)
        failing = [s for s in kept.get("scores", []) if not s.get("passed")]
        shown = failing or kept.get("scores", [])
        lines = [f"{escape(s['name'])}: {format_score(s)}" for s in shown[:6]]
        if len(shown) > 6:
            lines.append(f"... {len(shown) - 6} more")
        if not failing and shown:
            lines = [f"all {len(shown)} passed"] + lines[:3] + (["..."] if len(shown) > 3 else [])
        table.add_row(
            escape(shot),
            str(len(recs)),
            _verdict(final),
            str(kept.get("attempt", "?")),
            _num(kept.get("quality")),
            "\n".join(lines) or "-",
        )
    console.print(table)
    counts: dict[str, int] = {}
    for recs in shots.values():
        v = recs[-1].get("verdict", "?")
        counts[v] = counts.get(v, 0) + 1
    console.print("  ".join(f"{k}: {n}" for k, n in sorted(counts.items())))
    doubted = _doubted_voices(shots)
    if doubted:
        console.print(f"voices under the speaker check in best-effort shots: {', '.join(doubted)}; hear them with "
                      "`compose voices SCRIPT --compare`, then pin another base (`voice.base` in the cast) or give "
                      "a longer, cleaner reference clip", highlight=False)


def _doubted_voices(shots: dict[str, list[dict]]) -> list[str]:
    """The characters whose lines fail a speaker score in the kept attempt of a best-effort shot."""
    found: dict[str, None] = {}
    for recs in shots.values():
        if recs[-1].get("verdict") == "best_effort":
            for s in kept_attempt(recs).get("scores", []):
                if str(s.get("name", "")).startswith("speaker") and not s.get("passed"):
                    found[str((s.get("details") or {}).get("speaker", "?"))] = None
    return list(found)


def _history(shot: str, recs: list[dict], console: Console) -> None:
    console.print(f"[bold]{escape(shot)}[/]: {len(recs)} attempt(s), kept attempt {kept_attempt(recs).get('attempt')}")
    previous: Optional[dict] = None
    for rec in recs:
        backends = rec.get("backends") or {}
        head = (
            f"attempt {rec.get('attempt')} - {_verdict(rec)} - quality {_num(rec.get('quality'))}"
            f" - {escape(str(backends.get('speech', '?')))} + {escape(str(backends.get('video', '?')))}"
            f" - {_num(rec.get('seconds'))} s - {escape(rec.get('clip', ''))}"
        )
        console.rule(head)
        if previous is not None:
            changed = knob_changes(previous, rec)
            text = ", ".join(f"{k} {_num(v[0])} -> {_num(v[1])}" for k, v in changed.items()) or "nothing"
            console.print(f"changed: {escape(text)}")
            console.print(f"because: {escape(previous.get('reason', '') or '-')}")
        table = Table(show_header=True, box=None, pad_edge=False)
        for col in ("score", "value", "threshold", "result"):
            table.add_column(col)
        for s in rec.get("scores", []):
            sign = "≥" if s.get("higher_is_better", True) else "≤"
            result = "[green]ok[/]" if s.get("passed") else "[red]FAIL[/]"
            table.add_row(escape(s.get("name", "?")), _num(s.get("value")), f"{sign} {_num(s.get('threshold'))}", result)
        console.print(table)
        if rec.get("verdict") == "retry" or rec.get("verdict") == "best_effort":
            console.print(f"reason: {escape(rec.get('reason', '') or '-')}")
        previous = rec


def print_report(out_dir: Path, console: Console, shot_id: Optional[str] = None) -> None:
    """Print the per-shot table from `out_dir/retries.jsonl`, or one shot's attempt history."""
    shots = load_records(Path(out_dir) / "retries.jsonl", console)
    if shot_id is None:
        _overview(shots, console)
        return
    if shot_id not in shots:
        known = ", ".join(shots) or "none"
        raise ToolError(f"{out_dir}/retries.jsonl: no attempts for shot {shot_id!r}", f"use one of: {known}")
    _history(shot_id, shots[shot_id], console)
