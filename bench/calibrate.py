"""Calibrate the evaluators: render positive shots and negative controls, print the separation.

Positives are short two-character shots in the example cast (real piper speech, real animatic).
Each gets the negative controls its evaluators must catch:

  offset2/4/8  the mouths rendered 2, 4, 8 frames late         -> lipsync.offset
  swap         the lines credited to the other character       -> binding, lipsync
  silent       the first line's speaker drawn with a shut mouth -> lipsync.confidence
  offscreen    a voice-over line lip-synced by a visible listener -> binding.offscreen
  voice        the line spoken in another character's voice    -> speaker.similarity/margin, both judges
  words        the audio says different words than the line    -> wer
  face         the speaker drawn with another character's face -> identity/margin

For every score family it prints the positives' range, the targeted controls' range and the gap,
and proposes the midpoint of the gap as threshold. `--write` stores them in tools/evaluators/thresholds.json
with these numbers; `--write --only FAMILY ...` stores only those families and keeps the others as
they are. `--with-sets BACKEND` adds the judged voice sets of bench/voices.py part 3 (the espeak-ng
set, the example voices, both real human sets, spoken by that speech backend) to the speaker families:
each line's own similarity and margin are positives, the same line judged as every other speaker's
(another speaker's voice, swapped speakers) are `voice` controls. The real sets add the real speakers
themselves (`judge_ceiling`): each speaker's second half against its own first half is a positive,
against every other speaker's first half a `voice` control (another real speaker's voice). Thresholds
are proposed from the example shots alone; with the sets every speaker family has its strictest
threshold printed too (the one every control fails), and then the speaker evaluator's joint verdict
(a line passes only when all four speaker scores pass) on every source under the current and the
proposed thresholds, with every control it would accept. Where the controls reach above the worst
positive there is no gap, and the proposed threshold sits just above the best control, so every
control still fails that score. `--save-rows FILE` keeps every measured record, `--from-rows FILE` separates them
again without measuring (to write other families from the same run).
Run: `.venv/bin/python -m bench.calibrate [--size 640x360] [--with-sets piper] [--save-rows F | --from-rows F]
[--write [--only ...]]`.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from tests.fixtures import evalkit as ek
from tools.evaluators.binding import BindingEvaluator
from tools.evaluators.identity import IdentityEvaluator
from tools.evaluators.intelligibility import IntelligibilityEvaluator
from tools.evaluators.lipsync import LipSyncEvaluator
from tools.evaluators.speaker_similarity import SpeakerSimilarityEvaluator
from tools.evaluators.thresholds import THRESHOLDS_PATH

ROOT = Path(__file__).resolve().parents[1]

# (shot id, characters left to right, lines (line id, speaker, text), another voice, another face)
CASES = [
    ("sc01_sh02", ["collins", "hopper"], [("sc01_l02", "hopper", "Then somebody left a bug in it. Check the relays.")],
     "collins", "collins"),
    ("sc01_sh03", ["collins", "hopper"], [("sc01_l03", "collins", "The relays are fine."),
                                          ("sc01_l04", "hopper", "Then look at the cat.")], "chelsea", "chelsea"),
    ("sc02_sh02", ["chelsea", "collins"], [("sc02_l01", "collins", "We landed ten minutes early. Is everyone all right?")],
     "hopper", "hopper"),
    ("sc01_sh05", ["chelsea", "hopper"], [("sc01_l05", "chelsea", "I only sat on it for a minute.")], "hopper", "collins"),
]
# family -> (higher is better, the controls aimed at it)
FAMILIES = {
    "lipsync.offset": (False, ("offset2", "offset4", "offset8")),
    "lipsync.confidence": (True, ("silent",)),
    "binding": (True, ("swap",)),
    "binding.offscreen": (False, ("offscreen",)),
    "speaker.similarity": (True, ("voice",)),
    "speaker.margin": (True, ("voice",)),
    "speaker.dvector_similarity": (True, ("voice",)),
    "speaker.dvector_margin": (True, ("voice",)),
    "wer": (False, ("words",)),
    "identity": (True, ("face",)),
    "identity.margin": (True, ("face",)),
}

NO_GAP_STEP = 0.001
REAL_SETS = ("human", "wideband")


def evaluators():
    # Thresholds do not matter here: only the measured values are used.
    return [LipSyncEvaluator(1, 0), BindingEvaluator(0.5, 0.5), SpeakerSimilarityEvaluator(0, 0, 0, 0),
            IntelligibilityEvaluator(0.5), IdentityEvaluator(0, 0)]


def measure(size: tuple[int, int]) -> list[dict]:
    """Every score of every control of every case, as flat records."""
    rows = []
    evs = evaluators()
    with tempfile.TemporaryDirectory() as tmp:
        for i, case in enumerate(CASES):
            first = case[2][0]
            # A control tampers with the first line (voice, words) or its speaker (face) only;
            # scores of untouched subjects are not negatives.
            touched = {"voice": {first[0]}, "words": {first[0]}, "face": {first[1]}, "silent": set(first[:2])}
            for control, attempt in ek.controls_of(*case, Path(tmp) / f"case{i}", size=size).items():
                for ev in evs:
                    for s in ev.evaluate(attempt):
                        fam, _, subject = s.name.partition("[")
                        if control in touched and subject.rstrip("]") not in touched[control]:
                            continue
                        rows.append({"case": case[0], "control": control, "family": fam, "name": s.name,
                                     "value": s.value, "details": {k: v for k, v in s.details.items() if k != "curve"}})
            print(f"measured {case[0]}", file=sys.stderr)
        for control, attempt in ek.offscreen_controls(Path(tmp) / "offscreen", size=size).items():
            for s in BindingEvaluator(0.5, 0.5).evaluate(attempt):
                fam = s.name.partition("[")[0]
                rows.append({"case": "offscreen", "control": control, "family": fam, "name": s.name,
                             "value": s.value, "details": {k: v for k, v in s.details.items() if k != "curve"}})
        print("measured offscreen", file=sys.stderr)
    return rows


def set_rows(backend: str) -> list[dict]:
    """Calibration records of the judged voice sets (bench/voices.py part 3) spoken by `backend`."""
    import shutil

    from bench import human_set
    from bench.judged_sets import calibration_rows, judge_ceiling, judge_set
    from bench.voices import espeak_voices, example_voices
    from tools.registry import create

    synth = create("speech", backend)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        sets = {"example": example_voices(), "human": human_set.fetch(), "wideband": human_set.fetch_wideband()}
        if shutil.which("espeak-ng") is not None:
            sets["espeak"] = espeak_voices(Path(tmp))
        for name, voices in sets.items():
            rows += calibration_rows(judge_set(f"{name} ({backend})", voices, Path(tmp), synth)["sims"], name)
            if name in REAL_SETS:  # the real speakers themselves: own other half positive, other speakers controls
                ceiling = judge_ceiling(name, voices)
                rows += calibration_rows({j: c[3] for j, c in ceiling.items()}, f"{name}-speakers")
    return rows


def separation(rows: list[dict]) -> dict[str, dict]:
    """Per family: positives' and targeted negatives' values, the gap and a proposed threshold."""
    out = {}
    for fam, (higher, aimed) in FAMILIES.items():
        pos = [r["value"] for r in rows if r["family"] == fam and r["control"] == "positive"]
        neg = {c: [r["value"] for r in rows if r["family"] == fam and r["control"] == c] for c in aimed}
        # The controls judge only the line or speaker they tamper with; the swap's NaN (a still mouth) fails anyway.
        negs = [v for vs in neg.values() for v in vs if v == v]
        pos_ok = [v for v in pos if v == v]
        if not pos_ok:
            continue
        worst_pos = min(pos_ok) if higher else max(pos_ok)
        best_neg = (max(negs) if higher else min(negs)) if negs else None
        gap = None if best_neg is None else (worst_pos - best_neg if higher else best_neg - worst_pos)
        thr = worst_pos if best_neg is None else (worst_pos + best_neg) / 2
        if gap is not None and gap <= 0:  # no threshold passes every positive: every control must still fail
            thr = best_neg + (NO_GAP_STEP if higher else -NO_GAP_STEP)
        out[fam] = {"higher_is_better": higher, "positives": [round(v, 4) for v in pos],
                    "negatives": {c: [round(v, 4) if v == v else None for v in vs] for c, vs in neg.items()},
                    "gap": None if gap is None else round(gap, 4), "proposed": round(thr, 4)}
    return out


SPEAKER_FAMILIES = ("speaker.similarity", "speaker.margin", "speaker.dvector_similarity", "speaker.dvector_margin")


def speaker_verdicts(rows: list[dict], thr: dict[str, float]) -> tuple[dict[str, dict[str, list[int]]], list[str]]:
    """The speaker evaluator's own rule on every judged line: it passes only when all four speaker
    scores pass. Per source (the example shots, each voice set, each set's real speakers) and kind
    (positive, or the `voice` control): [passed, judged], and the controls that pass. A per-family
    threshold can let a control through one score that another score stops; this counts what the
    evaluator would accept."""
    lines: dict[tuple, dict[str, float]] = {}
    for r in rows:
        if r["family"] in SPEAKER_FAMILIES and r["control"] in ("positive", "voice"):
            subject = r.get("name", "").partition("[")[2]  # the shot's line id; set rows name it in "case"
            lines.setdefault((r["case"], r["control"], subject), {})[r["family"]] = r["value"]
    out: dict[str, dict[str, list[int]]] = {}
    accepted = []
    for (case, control, subject), scores in lines.items():
        if len(scores) < len(SPEAKER_FAMILIES):
            continue
        source = case.split(":")[0] if ":" in case else "example shots"
        ok = all(scores[f] >= thr[f] for f in SPEAKER_FAMILIES)
        tally = out.setdefault(source, {}).setdefault(control, [0, 0])
        tally[0] += int(ok)
        tally[1] += 1
        if ok and control == "voice":
            accepted.append(f"{case}{subject.rstrip(']')} " + ", ".join(
                f"{f.split('.')[1]} {scores[f]:.3f}" for f in SPEAKER_FAMILIES))
    return out, accepted


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="640x360", help="render size WxH (default 640x360: the face mesh "
                    "reads faces from about 90 pixels)")
    ap.add_argument("--write", action="store_true", help="store the proposed thresholds in tools/evaluators/thresholds.json")
    ap.add_argument("--only", nargs="+", choices=sorted(FAMILIES), help="with --write: store only these families")
    ap.add_argument("--with-sets", metavar="BACKEND", help="add the judged voice sets spoken by this speech backend")
    ap.add_argument("--save-rows", type=Path, help="also write every measured record to this JSON file")
    ap.add_argument("--from-rows", type=Path, help="measure nothing: separate the records a --save-rows run wrote")
    args = ap.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    if args.from_rows:
        rows = json.loads(args.from_rows.read_text(encoding="utf-8"))
    else:
        rows = measure(size)
        if args.with_sets:
            rows += set_rows(args.with_sets)
    if args.save_rows:
        args.save_rows.write_text(json.dumps(rows, default=str), encoding="utf-8")
    # Thresholds are proposed from the example shots (the film's own case); the sets and real speakers
    # are then judged under them, jointly, as the evaluator judges (speaker_verdicts).
    shot_rows = [r for r in rows if ":" not in r["case"]]
    if len(shot_rows) < len(rows):
        print("with the judged sets and real speakers, per family (no threshold passes every positive "
              "and fails every control where the gap is negative):")
        for fam, s in separation(rows).items():
            if fam in SPEAKER_FAMILIES:
                print(f"    {fam:28s} gap {s['gap']:+.3f}, strictest threshold failing every control {s['proposed']:.3f}")
        print()
    sep = separation(shot_rows)
    print(f"{'family':20s} {'dir':4s} {'positives (worst)':>18s} {'controls (best)':>16s} {'gap':>8s} {'threshold':>9s}")
    for fam, s in sep.items():
        pos = [v for v in s["positives"] if v == v]
        negs = [v for vs in s["negatives"].values() for v in vs if v is not None]
        worst = min(pos) if s["higher_is_better"] else max(pos)
        best = (max(negs) if s["higher_is_better"] else min(negs)) if negs else float("nan")
        print(f"{fam:20s} {'>=' if s['higher_is_better'] else '<=':4s} {worst:18.3f} {best:16.3f} "
              f"{s['gap'] if s['gap'] is not None else float('nan'):8.3f} {s['proposed']:9.3f}")
        for c, vs in s["negatives"].items():
            print(f"    {c:10s} {vs}")
        print(f"    {'positive':10s} {s['positives']}")
    current = json.loads(THRESHOLDS_PATH.read_text(encoding="utf-8"))["thresholds"]
    proposed = dict(current, **{f: sep[f]["proposed"] for f in SPEAKER_FAMILIES if f in sep})
    for title, thr in (("current", current), ("proposed", proposed)):
        print(f"\nspeaker evaluator's verdict, {title} thresholds "
              + ", ".join(f"{f.split('.')[1]} {thr[f]}" for f in SPEAKER_FAMILIES) + ":")
        verdicts, accepted = speaker_verdicts(rows, thr)
        for source, kinds in verdicts.items():
            print(f"    {source:20s} " + "  ".join(f"{k} passing {p}/{n}" for k, (p, n) in sorted(kinds.items())))
        for line in accepted:  # set cases are set:speaker:line:judged-as
            print(f"    control accepted: {line}")
    if args.write:
        data = {"thresholds": {f: s["proposed"] for f, s in sep.items()},
                "calibration": {"size": args.size, "cases": [c[0] for c in CASES], "separation": sep}}
        if args.only:
            data = json.loads(THRESHOLDS_PATH.read_text(encoding="utf-8"))
            for fam in args.only:
                data["thresholds"][fam] = sep[fam]["proposed"]
                data["calibration"]["separation"][fam] = sep[fam]
        THRESHOLDS_PATH.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {THRESHOLDS_PATH}")


if __name__ == "__main__":
    main()
