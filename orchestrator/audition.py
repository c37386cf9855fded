"""`compose voices`: hear every character's voice before a render, judged as the render will judge it.

For each character with lines, the voice is fitted to its reference clip (once per clip and cast, in the
user cache a render reads), up to `per_character` of their lines are spoken exactly as a render's first
attempt speaks them (same backend, knobs and seed, into the run's cache, so the render reuses them), and
the lines are judged by the run's evaluators that hear lines alone (`score_lines`: speaker similarity by
both judges, intelligibility). Per character: the base voice the fit chose, each line's scores against
their thresholds, and for a line that fails, what to change, pointing at the voice's line in the cast
file, and what a render would do: the line spoken again as the retry policy would retry it (`retakes`,
up to the render's attempts), each take judged. With `compare`, each character's first line is also spoken from every
base voice the fit weighed (the backend's `base_candidates`: piper's and kokoro's), pinned as `voice.base` in
the cast would pin it (a backend's own choice that no cast can pin, spoken as chosen), and judged the same
way. A second audition into the same folder says what sounds different since the first, and why
(`orchestrator.report.since`). `--character` and `--line` hear some characters, or some lines, only
(`orchestrator.audition_lines`); the others keep their last hearing.
Files: OUT/<title>/voices/<id>-<line>[-<base>|-take<N>].wav, voices.json.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

from rich import box
from rich.console import Console
from rich.table import Table

from orchestrator.audition_lines import base_id, carried, chosen_characters, chosen_lines, sample_lines
from orchestrator.config import RenderConfig
from orchestrator.context import RunContext
from orchestrator.inputs.checks import pinnable
from orchestrator.inputs.project import Project
from orchestrator.lock import OutputLock
from orchestrator.nodes.speak import announce_fit, cast_others, synthesize_line
from orchestrator.planning import make_plan
from orchestrator.report.html import write_voices_html
from orchestrator.report.since import read_previous, since_last
from orchestrator.retry import plan_retry
from orchestrator.schema.plan import SpeechSegment
from orchestrator.store import atomic_copy, atomic_write_json, digest_file, digest_json
from tools.base import Score, SpeechKnobs, SpeechResult, SpokenLine, VideoKnobs, map_in_context
from tools.hearing.speaker import channel_rate
from tools.hearing.words import CLIP_WER, clip_wer
from tools.media.audio import clip_levels, load_audio
from tools.speech.packs import PACK
from tools.speech.shared_fits import SHARED, home

DEFAULT_LINES = 2
CLEAR_CLIP_S = 10.0  # advice: a reference shorter than this gives the fit (and the judges) little to hear
NOISY_DB = 20.0  # ... pauses closer than this to the speech: noise (clean clips 25-75 dB, `clip_levels`)
CLIPPED_SHARE = 0.001  # ... more samples than this at full scale: a distorted recording
COLUMNS = {"speaker.similarity": "sim", "speaker.margin": "margin", "speaker.dvector_similarity": "d-vec",
           "speaker.dvector_margin": "d-margin", "wer": "WER"}  # short: the table fits 80 columns


def _family(score: Score) -> tuple[str, str]:
    """`speaker.margin[sc01_l02]` -> ("speaker.margin", "sc01_l02")."""
    m = re.fullmatch(r"(.+)\[(.+)\]", score.name)
    return (m.group(1), m.group(2)) if m else (score.name, "")


JUDGE_NAMES = {"speaker.": "resemblyzer", "speaker.dvector_": "the d-vector"}


def _worst(failing: list[Score], *families: str) -> tuple[Score, str] | None:
    """The failing score of these families furthest past its threshold, and its judge's name."""
    found = [s for s in failing if _family(s)[0] in families]
    if not found:
        return None
    s = min(found, key=lambda s: (s.value - s.threshold) * (1 if s.higher_is_better else -1))
    family = _family(s)[0]
    prefix = family[: family.rindex("_") + 1] if "_" in family else family.rsplit(".", 1)[0] + "."
    return s, JUDGE_NAMES.get(prefix, family)


def if_rendered(lines: list[dict], max_attempts: int) -> str | None:
    """What a render would make of the failing lines (each line entry's `takes`: `retakes`), or None when
    every first take passes."""
    said = []
    for ln in lines:
        if ln["passed"]:
            continue
        takes = ln.get("takes") or []
        good = next((t for t in takes if t["passed"]), None)
        said.append(f"{ln['line_id']}: take {good['attempt']} passes ({good['why']})" if good else
                    f"{ln['line_id']}: no take of {1 + len(takes)} passes, so its shot ends best_effort "
                    "(the render keeps its best attempt)")
    if not said:
        return None
    return (f"in a render (up to {max_attempts} attempts, each line retried as the retry policy retries it): "
            + "; ".join(said))


@dataclass(frozen=True)
class ClipFacts:
    """What the advice may say about a reference clip."""

    seconds: float
    band_hz: int | None = None  # the channel's sample rate when band-limited (`speaker.channel_rate`)
    over_floor_db: float = 60.0  # speech over the pauses' level (`tools.media.audio.clip_levels`)
    clipped: float = 0.0  # share of samples at full scale
    takes: int = 0  # the takes joined into the clip (`voice.takes`), 0 for one clip
    words_wer: float = 0.0  # the transcript against what the recogniser hears in the clip (`words.clip_wer`)
    heard: str = ""

    def length_note(self) -> str:
        """"; the clip is N s, give 10-30 s" for a short clip, else empty."""
        if self.seconds >= CLEAR_CLIP_S:
            return ""
        if self.takes:
            joined = f"the {self.takes} takes join into" if self.takes > 1 else "the one take is"
            return f"; {joined} {self.seconds:.1f} s, give 10-30 s in all (more takes)"
        return f"; the clip is {self.seconds:.1f} s, give 10-30 s (short takes may be joined: `voice.takes`)"

    def notes(self) -> str:
        """What to change in the recording, as "; ..." clauses (empty for a long, clean, full-band clip)."""
        out = self.length_note()
        if self.over_floor_db < NOISY_DB:
            out += f"; its pauses are only {self.over_floor_db:.0f} dB below the speech (background noise)"
        if self.clipped > CLIPPED_SHARE:
            out += f"; {100 * self.clipped:.1f}% of its samples are at full scale (distorted: record it quieter)"
        if self.band_hz:
            out += (f"; it carries nothing above {self.band_hz // 2} Hz (a telephone band), a full-band recording "
                    "lets the fit hear more")
        return out


def clip_facts(voice) -> ClipFacts:
    """What the advice may say about a voice's reference clip. For `takes`, the length and band of the clip
    they were joined into, but noise and clipping of the noisiest and most clipped take as recorded: the joined
    clip's silent gaps would stand for its pauses, and its takes were brought to one level."""
    audio, rate = load_audio(voice.reference)
    levels = [clip_levels(*load_audio(take.reference)) for take in voice.takes or ()] or [clip_levels(audio, rate)]
    rate_wrong, heard = clip_wer(voice.reference, voice.transcript)
    return ClipFacts(len(audio) / rate, channel_rate(voice.reference), min(over for over, _ in levels),
                     max(clipped for _, clipped in levels), takes=len(voice.takes or ()), words_wer=rate_wrong,
                     heard=heard)


def advice(character: str, failing: list[Score], clip: ClipFacts, same_clip: tuple[str, ...] = (),
           pinned: bool = False) -> list[dict]:
    """What each kind of failing score means for this voice and what the writer can change (`same_clip`:
    the characters whose reference is this character's very file content; `pinned`: the cast pins the
    base voice)."""
    out = []
    if clip.words_wer > CLIP_WER:  # whatever the lines scored: the fit learnt the voice from a clip of other words
        given = "the takes' transcripts" if clip.takes else "its `transcript`"
        out.append({"problem": f"{character}'s clip does not say {given}: the recogniser heard {clip.heard!r} "
                               f"(word error rate {clip.words_wer:.2f}, at most {CLIP_WER:.2g} for a clip)",
                    "fix": f"check that the clip is {character}'s and that {given} gives its exact words"})
    unpin = "leave `voice.base` out so the fit chooses the base, or " if pinned else ""
    worst = _worst(failing, "speaker.margin", "speaker.dvector_margin")
    if worst is not None:
        (s, judge), other = worst, worst[0].details.get("closest_other", "another character")
        twin = other in same_clip
        relation = (f"closer to {other}'s reference than to {character}'s own" if s.value < 0 else
                    f"about as close to {other}'s reference as to {character}'s own")
        out.append({"problem": f"{character}'s lines sound {relation}{' (the two share one clip)' if twin else ''}"
                               f": margin {s.value:+.3f} by {judge}, needs {s.threshold:+.3g}",
                    "fix": f"give {character} a recording of their own" if twin else
                           f"{unpin}give {character} and {other} clips of clearly different voices, or a longer "
                           f"clip of {character} alone{clip.length_note()}"})
    worst = _worst(failing, "speaker.similarity", "speaker.dvector_similarity")
    if worst is not None:
        s, judge = worst
        out.append({"problem": f"{character}'s lines are far from the reference clip: similarity "
                               f"{s.value:.3f} by {judge}, needs {s.threshold:.3g}",
                    "fix": f"{unpin}a clean clip of {character} alone (no music, noise or other voices) with "
                           f"its exact transcript{clip.notes()}"})
    worst = _worst(failing, "wer")
    if worst is not None:
        s, _ = worst
        out.append({"problem": f"the recogniser heard {s.details.get('heard_in_shot', '')!r} for "
                               f"{s.details.get('text', '')!r}: word error rate {s.value:.2f}, at most "
                               f"{s.threshold:.3g}",
                    "fix": "write numbers, names and abbreviations as they are spoken, or give a clearer "
                           "reference clip"})
    return out


THREADS = 2  # speaking (WORLD's analysis, Kokoro's ONNX graph) and listening release the GIL for most of their time


def judge(ctx: RunContext, lines: list[SpokenLine]) -> dict[str, list[Score]]:
    """line id -> the scores of every configured evaluator that judges lines alone, each line on its own (a
    line's words are not heard with its neighbours', so the same audio scores the same in either table).
    The evaluators listen side by side, each to every line in turn (as a render's evaluate node runs them)."""
    judges = [e for e in ctx.evaluators() if hasattr(e, "score_lines")]
    heard = map_in_context(lambda e: [e.score_lines(ctx.project.cast, [ln]) for ln in lines], judges, THREADS)
    return {ln.line_id: [s for by_judge in heard for s in by_judge[k]] for k, ln in enumerate(lines)}


def _speak(ctx: RunContext, seg: SpeechSegment, wav: Path, line_id: str, character=None,
           knobs: SpeechKnobs | None = None) -> SpokenLine:
    """`seg` spoken as a render's first attempt speaks it (the schedule node's knobs, the run's cache; by
    `character` when given: a pinned copy of the speaker; with `knobs`: a retry's), copied to `wav`, to be
    judged as `line_id`."""
    res, _ = synthesize_line(ctx, seg, knobs or SpeechKnobs(seed=ctx.config.seed), character=character)
    atomic_copy(res.wav_path, wav)
    return SpokenLine(line_id, seg.speaker, seg.text, 0.0, SpeechResult(
        wav, res.duration, res.sample_rate, res.phonemes, res.words, res.notes))


def retakes(ctx: RunContext, seg: SpeechSegment, scores: list[Score], wav: Path) -> list[dict]:
    """A failing line spoken again as a render's retries would speak it: the knobs the retry policy
    (`orchestrator.retry.plan_retry`) gives the previous take's failing scores, as if the line's shot held
    it alone, up to `max_attempts` takes in all; each take judged, until one passes. Files: `wav` with
    -take<N> before its suffix."""
    knobs, takes = SpeechKnobs(seed=ctx.config.seed), []
    for attempt in range(2, ctx.config.max_attempts + 1):
        knobs, _, changes, why = plan_retry(scores, knobs, VideoKnobs(), attempt - 1,
                                            take_noise=ctx.speech.take_noise, audio_guidance=None)
        line = _speak(ctx, seg, wav.with_name(f"{wav.stem}-take{attempt}{wav.suffix}"), seg.line_id, knobs=knobs)
        scores = judge(ctx, [line])[seg.line_id]
        takes.append({"attempt": attempt, "why": why, "changes": changes, "wav": str(line.speech.wav_path),
                      "seconds": round(line.speech.duration, 2), "scores": [s.as_dict() for s in scores],
                      "passed": all(s.passed for s in scores)})
        if takes[-1]["passed"]:
            break
    return takes


def audition_character(ctx: RunContext, cid: str, segs: list[SpeechSegment], folder: Path,
                       console: Console, digests: dict[str, str]) -> dict:
    """Fit, speak and judge one character's sample lines; the character's entry of voices.json. `digests`: every
    character's reference clip digest (`clip_digests`)."""
    character = ctx.project.cast.by_id(cid)
    started = time.time()
    ctx.on_event = lambda kind, info: console.print(f"{info['stage'].removeprefix('speak: ')} (a minute or two)")
    announce_fit(ctx, "voices", 1, cid)
    lines = map_in_context(lambda seg: _speak(ctx, seg, folder / f"{cid}-{seg.line_id}.wav", seg.line_id), segs,
                           THREADS)
    spoken_s = time.time() - started
    scores = judge(ctx, lines)
    ref = character.voice.reference
    heard_ref = folder / f"{cid}-reference{ref.suffix}"  # beside the lines: voices.html plays it
    atomic_copy(ref, heard_ref)
    clip = clip_facts(character.voice)
    failing = [s for ln in lines for s in scores[ln.line_id] if not s.passed]
    entries = [{"line_id": ln.line_id, "text": ln.text, "wav": str(ln.speech.wav_path),
                "seconds": round(ln.speech.duration, 2), "notes": ln.speech.notes,
                "sha256": digest_file(ln.speech.wav_path),  # the next audition says which lines sound different
                "scores": [s.as_dict() for s in scores[ln.line_id]],
                "passed": all(s.passed for s in scores[ln.line_id])} for ln in lines]
    for entry, seg, ln in zip(entries, segs, lines):
        if not entry["passed"]:
            console.print(f"{cid}: {seg.line_id} fails; speaking it again as a render's retries would")
            entry["takes"] = retakes(ctx, seg, scores[ln.line_id], ln.speech.wav_path)
    file, line, col = ctx.project.locations.get(f"voice:{cid}", (str(ctx.project.cast_path), 1, 1))
    return {
        "id": cid,
        "reference": str(ref),
        "reference_copy": str(heard_ref),
        # what the voice was made from, for the next audition's "since the last audition" (`report.since`)
        "reference_sha256": digests[cid],
        "cast_sha256": digest_json(sorted(d for other, d in digests.items() if other != cid)),
        "where": f"{file}:{line}:{col}",
        "clip_seconds": round(clip.seconds, 2),
        "band_limited_hz": clip.band_hz,
        "clip_over_floor_db": round(clip.over_floor_db, 1),
        "clip_clipped_share": round(clip.clipped, 5),
        "clip_heard": clip.heard,  # what the recogniser heard in the clip, and its word error rate to the transcript
        "clip_words_wer": round(clip.words_wer, 3),
        # as the cast names it (`voice.base`), so that it can be pinned as written
        "base": next((ln.speech.notes["base"].removeprefix(PACK) for ln in lines if ln.speech.notes.get("base")), None),
        "pinned": bool(character.voice.base),
        "took_s": round(spoken_s, 1),  # its fit (when made now) and its lines
        "lines": entries,
        "passed": not failing,
        "advice": advice(cid, failing, clip, same_clips(digests)[cid], pinned=bool(character.voice.base)),
        "if_rendered": if_rendered(entries, ctx.config.max_attempts),
    }


def compare_bases(ctx: RunContext, cid: str, seg: SpeechSegment, folder: Path) -> list[dict] | None:
    """`seg` spoken from every base the fit weighs for this character (the backend's `base_candidates`), each
    pinned as `voice.base` would pin it, and judged; None for a backend that names no bases. A backend's own
    choice may be no base a cast can pin: it comes first and is spoken unpinned, as chosen."""
    weigh = getattr(ctx.speech, "base_candidates", None)
    if weigh is None:
        return None
    character = ctx.project.cast.by_id(cid)
    candidates = weigh(character, cast_others(ctx, character))
    if any(not pinnable(base) for base in list(candidates)[1:]):
        raise ValueError(f"{ctx.speech.name}.base_candidates: only its first, its own choice, may be unpinnable")

    def as_pinned(base: str):
        if not pinnable(base):
            return character
        return character.model_copy(update={"voice": character.voice.model_copy(update={"base": base})})

    lines = map_in_context(lambda base: _speak(ctx, seg, folder / f"{cid}-{seg.line_id}-{base}.wav",
                                               f"{seg.line_id}@{base}", as_pinned(base)), candidates, THREADS)
    scores = judge(ctx, lines)
    return [{"base": base, "fit_score": fit, "chosen": k == 0, "pinned": base == character.voice.base,
             "pinnable": pinnable(base),
             "line_id": seg.line_id, "wav": str(ln.speech.wav_path), "notes": ln.speech.notes,
             "scores": [sc.as_dict() for sc in scores[ln.line_id]],
             "passed": all(sc.passed for sc in scores[ln.line_id])}
            for k, ((base, fit), ln) in enumerate(zip(candidates.items(), lines))]


def clip_digests(characters) -> dict[str, str]:
    """Character id -> the digest of its reference clip's bytes (each clip read once per audition)."""
    return {c.id: digest_file(c.voice.reference) for c in characters}


def same_clips(digests: dict[str, str]) -> dict[str, tuple[str, ...]]:
    """Character id -> the other characters whose reference clip has the same bytes (`clip_digests`)."""
    return {cid: tuple(o for o, d in digests.items() if o != cid and d == own) for cid, own in digests.items()}


def share_fits(ctx: RunContext, character, console: Console) -> list[str] | None:
    """`--share-fits`: the character's voice fits copied beside its reference clip by the speech backend
    (`share_fits`); None for a backend that keeps no fits."""
    share = getattr(ctx.speech, "share_fits", None)
    if share is None:
        console.print(f"--share-fits: the {ctx.config.speech} backend keeps no voice fits to share")
        return None
    copied = share(character, cast_others(ctx, character))
    console.print(f"{character.id}: {len(copied)} voice fit file(s) written to "
                  f"{home(character.voice.reference) / SHARED}")
    return [str(p) for p in copied]


def run_audition(project: Project, config: RenderConfig, out_dir: Path, console: Console,
                 per_character: int = DEFAULT_LINES, compare: bool = False, share: bool = False,
                 only: tuple[str, ...] = (), lines: tuple[str, ...] = ()) -> dict:
    """Audition every speaking character (or those `only` names, and the speakers of the `lines` named, in
    those lines) into `out_dir` (holding its lock); returns voices.json's content. `share`: each character's
    voice fits are copied beside its reference clip (`tools.speech.shared_fits`)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with OutputLock(out_dir):
        ctx = RunContext(project=project, config=config, out_dir=out_dir)
        plan, _ = make_plan(project, "rules", out_dir / "cache" / "plans")
        samples = sample_lines(plan, per_character)
        named = chosen_lines(project, plan, lines) if lines else {}
        asked = chosen_characters(project, samples, only) if only or named else list(samples)
        asked += [cid for cid in named if cid not in asked]
        samples.update(named)  # a speaker of a line named is heard in the lines named
        folder = out_dir / "voices"
        folder.mkdir(exist_ok=True)
        before = read_previous(folder / "voices.json")  # what the last audition here heard, before it is replaced
        entries = []
        digests = clip_digests(project.cast.characters)
        for c in project.cast.characters:
            if c.id in asked:
                console.print(f"{c.id}: speaking {len(samples[c.id])} line(s)")
                entries.append(audition_character(ctx, c.id, samples[c.id], folder, console, digests))
                if c.id in named:  # what the next step asks for again
                    entries[-1]["lines_named"] = list(dict.fromkeys(base_id(s.line_id) for s in named[c.id]))
                if compare:
                    entries[-1]["bases"] = compare_bases(ctx, c.id, samples[c.id][0], folder)
                    if entries[-1]["bases"] is None:
                        console.print(f"--compare: the {config.speech} backend names no bases to compare")
                        compare = False
                if share:
                    entries[-1]["shared_fits"] = share_fits(ctx, c, console)
        summary = {"title": project.script.title,
                   "speech": config.speech, "evaluators": config.evaluators,
                   "silent": [c.id for c in project.cast.characters if c.id not in samples],
                   "characters": entries}
        summary["since_last"] = since_last(before, summary)
        order = [c.id for c in project.cast.characters]  # the cast's order, as a full audition's
        summary["characters"] = sorted(entries + carried(before, asked, digests, list(samples)),
                                       key=lambda c: order.index(c["id"]))
        atomic_write_json(folder / "voices.json", summary)
        write_voices_html(folder, summary)
    print_audition(summary, console)
    console.print(f"listen: {folder / 'voices.html'} (each line beside its reference clip; voices.json: every score)")
    return summary


def next_step(summary: dict, inputs: str) -> str:
    """What to run after an audition: the render where every voice heard passes, else the audition of the
    doubtful voices alone (in the lines named, where they were), once they are changed (`inputs`: the script,
    and the cast where given)."""
    doubtful = [c for c in summary["characters"] if not c.get("carried_from") and not c["passed"]]
    if not doubtful:
        return f"next: `compose {inputs}` to render"
    again = " ".join(" ".join(f"--line {lid}" for lid in c["lines_named"]) if c.get("lines_named")
                     else f"--character {c['id']}" for c in doubtful)
    return (f"next: change {', '.join(c['id'] for c in doubtful)} as advised, then hear only them: "
            f"`compose voices {inputs} {again}`")


def _score(d: dict) -> Score:
    """A score back from its `as_dict` form."""
    return Score(**{k: v for k, v in d.items() if k != "passed"})


def _value(s: Score, form: str = ".3f") -> str:
    return format(s.value, ("+" if "margin" in s.name else "") + form)


def _table(title: str, head: list[str], rows: list[tuple[list[str], list[dict], bool]]) -> Table:
    """Rows of leading cells, then each score family's value (red where it fails) and a verdict; the first
    row holds the thresholds."""
    scored = [(cells, {_family(sc)[0]: sc for sc in map(_score, scores)}, passed) for cells, scores, passed in rows]
    families = list(dict.fromkeys(f for _, scores, _ in scored for f in scores))
    t = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for col in [*head, *[COLUMNS.get(f, f) for f in families]]:
        t.add_column(col, no_wrap=True)
    t.add_column("ok", no_wrap=True, min_width=4)  # on a narrow terminal the others give way, not the verdict
    needs = {f: sc for _, scores, _ in scored for f, sc in scores.items()}
    bounds = [("≥" if needs[f].higher_is_better else "≤") + _value(Score(f, needs[f].threshold, 0), ".3g")
              for f in families]
    t.add_row("[dim]needs[/dim]", *[""] * (len(head) - 1), *[f"[dim]{b}[/dim]" for b in bounds], "")
    for cells, scores, passed in scored:
        t.add_row(*cells, *[("" if scores[f].passed else "[red]") + _value(scores[f]) if f in scores else "-"
                            for f in families],
                  "[green]pass[/green]" if passed else "[red]FAIL[/red]")
    return t


def print_audition(summary: dict, console: Console) -> None:
    """The per-line table, the bases compared (with --compare), then each doubtful voice's problems at its
    place in the cast file (the voices heard now: not those `--character` left as last heard)."""
    chars = [c for c in summary["characters"] if not c.get("carried_from")]
    if not chars:
        console.print("no character speaks a line in this script: nothing to audition")
        return
    console.print(_table(f"{summary['title']}: voices ({summary['speech']}) judged as a render's first attempt",
                         ["who", "base", "line"],
                         [([c["id"], str(c["base"] or "-") + ("*" if c["pinned"] else ""),
                            ln["line_id"]], ln["scores"], ln["passed"]) for c in chars for ln in c["lines"]]))
    if any(c["pinned"] for c in chars):
        console.print("* pinned in the cast (`voice.base`); the others are the fit's choice")
    compared = [c for c in chars if c.get("bases")]
    if compared:
        console.print(_table("each base the fit weighed, speaking the first line (the fit's choice first)",
                             ["who", "base", "fit"],
                             [([c["id"], b["base"] + ("*" if b["pinned"] else "") + ("" if b["pinnable"] else "†"),
                                "-" if b["fit_score"] is None else f"{b['fit_score']:g}"], b["scores"], b["passed"])
                              for c in compared for b in c["bases"]]))
        console.print("fit: the choice's points (a point per base each of resemblyzer and CAM++ hears further from the "
                      "character; -: a base both hear closer to another of the cast, set aside); pin another base "
                      "with `voice.base` in the cast")
        if any(not b["pinnable"] for c in compared for b in c["bases"]):
            console.print("†: the backend's own choice, spoken as chosen; a cast cannot pin it, only the bases below "
                          "it")
    since = summary.get("since_last")
    if since:
        console.print(f"since the last audition here ({since['written']}):"
                      + ("" if since["changes"] else " every voice sounds as it did"), markup=False, highlight=False)
        for cid, said in since["changes"].items():
            console.print(f"  {cid}: {'; '.join(said)}", markup=False, highlight=False, soft_wrap=True)
    for c in chars:
        for a in c["advice"]:
            console.print(f"{c['where']}: {a['problem']} (fix: {a['fix']})", markup=False, highlight=False,
                          soft_wrap=True)
        if c["if_rendered"]:
            console.print(f"  {c['id']}: {c['if_rendered']}", markup=False, highlight=False, soft_wrap=True)
    if summary["silent"]:
        console.print(f"no lines, not auditioned: {', '.join(summary['silent'])}")
    kept = [c for c in summary["characters"] if c.get("carried_from")]
    if kept:
        console.print(f"not auditioned now: {', '.join(c['id'] for c in kept)}; voices.json keeps "
                      f"their last audition ({', '.join(sorted({c['carried_from'] for c in kept}))})")
    doubtful = [c["id"] for c in chars if not c["passed"]]
    console.print(f"{len(chars) - len(doubtful)} of {len(chars)} voices pass"
                  + (f"; doubtful: {', '.join(doubtful)}" if doubtful else ""))
