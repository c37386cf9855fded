"""report.html: contact sheet, attempt table with reasons, and a plot of every score's margin; voices.html:
`compose voices`'s lines to listen to beside each reference clip, with their scores and advice."""
from __future__ import annotations

import base64
import html
import io
from pathlib import Path

from orchestrator.store import atomic_write_text


def _score_plot(records: list[dict]) -> str:
    """A PNG (base64) of each score's margin over its threshold, per attempt."""
    from matplotlib.figure import Figure  # without pyplot (0.5-0.75 s to import), as for a server

    names = sorted({s["name"] for r in records for s in r["scores"]})
    if not names:
        return ""
    scores = [s for r in records for s in r["scores"]]
    margins = [s["value"] - s["threshold"] if s["higher_is_better"] else s["threshold"] - s["value"] for s in scores]
    fig = Figure(figsize=(10, 0.25 * len(names) + 2))
    ax = fig.subplots()
    ax.scatter(margins, [names.index(s["name"]) for s in scores], s=12,  # one call: a call per point took 1 s
               color=["tab:green" if s["passed"] else "tab:red" for s in scores])
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set_xlabel("margin over threshold (right of 0 passes)")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return base64.b64encode(buf.getvalue()).decode()


def write_html(out_dir: Path, title: str, records: list[dict], contact_sheet: str | None) -> None:
    """report.html in `out_dir`; `contact_sheet` names the sheet's PNG beside it (drawn at the same time)."""
    rows = []
    for r in records:
        bad = ", ".join(s["name"] for s in r["scores"] if not s["passed"]) or "none"
        rows.append(
            f"<tr><td>{html.escape(r['shot'])}</td><td>{r['attempt']}</td><td>{html.escape(r['verdict'])}</td>"
            f"<td>{r['quality']:.3f}</td><td>{html.escape(bad)}</td><td>{html.escape(r['reason'])}</td></tr>"
        )
    sheet = (f'<h2>Contact sheet</h2><img src="{html.escape(contact_sheet)}" style="max-width:100%">'
             if contact_sheet else "")
    plot = _score_plot(records)
    plot_html = f'<h2>Scores</h2><img src="data:image/png;base64,{plot}">' if plot else ""
    doc = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em}} td,th{{padding:2px 8px;border-bottom:1px solid #ddd}}</style>
</head><body><h1>{html.escape(title)}</h1><p><a href="film.mp4">film.mp4</a> · <a href="film.srt">film.srt</a>
· <a href="film.otio">film.otio</a> · <a href="retries.jsonl">retries.jsonl</a></p>{sheet}
<h2>Attempts</h2><table><tr><th>shot</th><th>attempt</th><th>verdict</th><th>quality</th><th>failing</th>
<th>reason</th></tr>{''.join(rows)}</table>{plot_html}</body></html>"""
    atomic_write_text(out_dir / "report.html", doc)


def _audio(src: str) -> str:
    return f'<audio controls preload="none" src="{html.escape(src)}"></audio>'


def _score_cells(scores: list[dict]) -> str:
    cells = []
    for sc in scores:
        sign = "≥" if sc["higher_is_better"] else "≤"
        style = "" if sc["passed"] else ' style="color:#b00"'
        cells.append(f'<td{style} title="{sign} {sc["threshold"]:.4g}">{sc["value"]:.3f}</td>')
    return "".join(cells)


def _line_row(first: str, second: str, wav: str, scores: list[dict], passed: bool) -> str:
    return (f"<tr><td>{html.escape(first)}</td><td>{html.escape(second)}</td><td>{_audio(Path(wav).name)}</td>"
            f"{_score_cells(scores)}<td>{'pass' if passed else 'FAIL'}</td></tr>")


def write_voices_html(folder: Path, summary: dict) -> None:
    """`folder`/voices.html from voices.json's content: per character the reference clip and each line (and,
    with --compare, each base) as players, every score (red where it fails; its threshold on hover), the
    advice, and what sounds different since the last audition in the folder (`report.since`). Audio sources are
    the files' names: the page and the wavs stay together."""
    parts = []
    for c in summary["characters"]:
        families = [sc["name"].split("[")[0] for sc in c["lines"][0]["scores"]]
        head = "".join(f"<th>{html.escape(f)}</th>" for f in ["line", "text", "listen", *families, ""])
        rows = [row for ln in c["lines"] for row in
                [_line_row(ln["line_id"], ln["text"], ln["wav"], ln["scores"], ln["passed"])]
                + [_line_row(f"{ln['line_id']}, take {t['attempt']}", t["why"], t["wav"], t["scores"], t["passed"])
                   for t in ln.get("takes") or []]]
        rows += [_line_row(f"{b['line_id']}, base {b['base']}" + (" (the fit's choice)" if b["chosen"] else "")
                           + ("" if b["pinnable"] else " (the backend's own; a cast cannot pin it)"),
                           c["lines"][0]["text"], b["wav"], b["scores"], b["passed"]) for b in c.get("bases") or []]
        advice = "".join(f"<li>{html.escape(c['where'])}: {html.escape(a['problem'])} (fix: {html.escape(a['fix'])})"
                         "</li>" for a in c["advice"])
        since = summary.get("since_last") or {}
        moved = since.get("changes", {}).get(c["id"])
        advice += (f"<li>since the last audition here ({html.escape(since['written'])}): "
                   f"{html.escape('; '.join(moved))}</li>" if moved else "")
        carried = c.get("carried_from")
        when = f" (as heard {html.escape(carried)}; not auditioned this time)" if carried else ""
        parts.append(f"<h2>{html.escape(c['id'])}: {'passes' if c['passed'] else 'doubtful'}{when}</h2>"
                     f"<p>reference clip ({c['clip_seconds']} s) {_audio(Path(c['reference_copy']).name)} · base "
                     f"{html.escape(str(c['base']))}{' (pinned)' if c['pinned'] else ''}</p>"
                     f"<table><tr>{head}</tr>{''.join(rows)}</table>" + (f"<ul>{advice}</ul>" if advice else ""))
    title = f"{summary['title']}: voices ({summary['speech']})"
    doc = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em}} td,th{{padding:2px 8px;border-bottom:1px solid #ddd}}</style>
</head><body><h1>{html.escape(title)}</h1><p>Each line as a render's first attempt speaks it, judged as a
render judges it (hover a score for its threshold); a line that fails, then taken again as a render's
retries would take it. <a href="voices.json">voices.json</a></p>
{''.join(parts) or '<p>Nobody speaks a line in this script.</p>'}</body></html>"""
    atomic_write_text(folder / "voices.html", doc)
