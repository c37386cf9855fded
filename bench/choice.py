"""Which base would another choice rule keep? Every candidate a voice's base choice weighed, judged.

For each reference of the judged sets (`bench.judged_sets`: espeak-ng, example, real telephone, real
wideband), the piper backend's base choice has fitted joe, heart and three or four Kokoro packs
(`tools.speech.fitting.chosen_fit`, cached). Here every one of those candidates (pinned as `voice.base`
for the backend: the same fit) speaks the choice's SCORE_SENTENCES and the sets' unseen
SET_LINES; each is heard by all three speaker judges through the references' channels (the cast score
of the scoring sentences as the choice speaks and scores them, checked against the scores the choice
stored for each of its judges; own / closest other on the unseen lines, spoken by the backend as in a film).
Then choice rules are compared on what the d-vector (which no fit or choice hears) makes of the base
each rule keeps: the shipped rule (bases both choice judges hear as another set aside, then a Borda
count of the fitting judge and CAM++; computed here from this bench's own measurements and checked
against the base each choice kept), the fitting judge alone (the rule to the thirteenth pass), the
fitting judge plus CAM++ summed, a Borda count of the two over every candidate, and, as a ceiling, the
candidate the d-vector itself prefers on the unseen lines. A rule is also judged by the controls: a line
credited to another speaker that passes both judges' thresholds.

The thirteenth and fourteenth passes (bench/RESULTS.md) measured these rules with this bench. The
choices' own fits are read from the cache, not made (run `bench.voices --sets-only` or `bench.calibrate
--with-sets piper` first); only `--more-packs` and `--blend` fit anything.
`--more-packs N` also fits the next N packs of the fitting judge's raw ranking for each reference and
grades every rule again among all of them: whether a wider choice could reach further; `--blend` does the
same with one more candidate, the mean style of the ranking's first two packs (sixteenth pass). `--save F` keeps
what was measured; `--load F` grades the rules on it again without speaking a line.
Run: .venv/bin/python -m bench.choice [--set espeak|example|real|wideband ...] [--more-packs N] [--blend]
     [--save F | --load F]
"""
from __future__ import annotations

import argparse
import pickle
import tempfile
from pathlib import Path

import numpy as np

from bench.judged_sets import PREFIX, SET_LINES, _character
from tools.base import SpeechKnobs
from tools.evaluators.thresholds import thresholds
from tools.hearing import speaker
from tools.media.audio import load_audio
from tools.speech import fitting, packs, search
from tools.speech.piper import PiperSynthesizer, cast_base
from tools.speech.search import cast_score

CHOICE = ("resemblyzer", "campplus")  # the judges a rule may use; the d-vector only grades


def _sets(tmp: Path) -> dict:
    from bench import human_set
    from bench.voices import espeak_voices, example_voices

    return {"espeak": lambda: espeak_voices(tmp), "example": example_voices, "real": human_set.fetch,
            "wideband": human_set.fetch_wideband}


def measure(voices: dict[str, tuple[Path, str]], tmp: Path, more: int = 0, blend: bool = False) -> dict:
    """name -> {"chosen": base, "bases": {base: {"cast": {judge: cast score on SCORE_SENTENCES},
    "unseen": {judge: similarities (lines, references)}}}, "more": the same for `more` packs beyond
    the choice's (the next in the fitting judge's ranking, fitted here; with `blend`, the mean style of
    the ranking's first two packs too)} for every candidate the choice weighed."""
    names = list(voices)
    paths = [voices[n][0] for n in names]
    # the fitting judge hears the references as the choice's listener does (`search.fitting_listener`)
    heard = {j: speaker.Listener(paths, j, [speaker.embed(*load_audio(p)) for p in paths] if j == "resemblyzer"
                                 else None) for j in speaker.BENCH_JUDGES}
    synth = PiperSynthesizer()
    out = {}
    for i, n in enumerate(names):
        ref, transcript = voices[n]
        others = [p for k, p in enumerate(paths) if k != i]
        order = [i] + [k for k in range(len(names)) if k != i]  # own first, as the choice's listener
        choice = fitting.choice_made(ref, transcript, others)
        if choice is None:
            print(f"  {n}: no base choice cached; make the fits first (module docstring)")
            continue
        bases, extra = {}, []
        if more or blend:
            ranked = packs.pack_candidates(search.fitting_listener(ref, others), k=len(packs.EN_PACKS))
            extra = [b for b in ranked if b not in choice.scores][:more]
            extra += [ranked[0] + "+" + ranked[1].removeprefix(packs.PACK)] if blend else []
        for base in (*choice.scores, *extra):
            # the scoring sentences as the choice speaks them; the unseen lines as a film does (the backend)
            audios, sr = fitting.fitted_speech(base, fitting.fitted_transform(ref, transcript, others, base),
                                               fitting.SCORE_SENTENCES)
            heard_as = {j: np.array([np.asarray(h.similarities(x, sr))[order] for x in audios])
                        for j, h in heard.items()}  # (sentences, own first then the others)
            cast = {j: float(np.mean([cast_score(sims) for sims in s])) for j, s in heard_as.items()}
            for j, stored in choice.by_judge.items():
                if base in stored and abs(cast[j] - stored[base]) > 1e-3:
                    print(f"  {n} {base}: the choice's {j} scored {stored[base]}, here {cast[j]:.4f}")
            ch = _character(n, ref, transcript, cast_base(base))
            rows = []
            for k, line in enumerate(SET_LINES):
                wav = tmp / f"{n}-{cast_base(base)}-{k}.wav"
                synth.synthesize(line, ch, SpeechKnobs(), wav, others=others)
                rows.append({j: h.similarities(*load_audio(wav)) for j, h in heard.items()})
            bases[base] = {"cast": cast, "scoring": heard_as,
                           "unseen": {j: np.array([r[j] for r in rows]) for j in heard}}
            print(f"  {n:11s} {cast_base(base):11s} {'(more) ' if base in extra else ''}cast "
                  + " ".join(f"{j} {v:.3f}" for j, v in bases[base]["cast"].items()), flush=True)
        out[n] = {"index": i, "chosen": choice.base, "bases": {b: bases[b] for b in choice.scores},
                  "more": {b: bases[b] for b in extra}}
    return out


def _borda(bases: dict, own: int) -> str:
    points = {b: sum(sum(o["cast"][j] < v["cast"][j] for o in bases.values()) for j in CHOICE)
              for b, v in bases.items()}
    return max(points, key=points.get)  # the earlier base on a tie, as the choice


def _fitting_judge(bases: dict, own: int) -> str:
    return max(bases, key=lambda b: bases[b]["cast"]["resemblyzer"])


def _set_aside_then_borda(bases: dict, own: int) -> str:
    """Bases both choice judges hear closer to another of the set (mean margin on the scoring sentences
    below zero for each) set aside; a Borda count among the rest; the fitting judge alone if none is left."""
    kept = {b: v for b, v in bases.items()
            if any((s[:, 0] - s[:, 1:].max(1)).mean() >= 0 for j, s in v["scoring"].items() if j in CHOICE)}
    return _borda(kept, own) if kept else _fitting_judge(bases, own)


# rule(candidates, the reference's index in its set) -> the base it keeps
RULES = {
    "shipped: set aside, then Borda": _set_aside_then_borda,
    "fitting judge alone (to the 13th pass)": _fitting_judge,
    "fitting judge + CAM++, summed": lambda bases, own: max(bases, key=lambda b: sum(bases[b]["cast"][j]
                                                                                      for j in CHOICE)),
    "Borda count of the two": _borda,
    "ceiling: the d-vector's own pick": lambda bases, own: max(bases, key=lambda b: bases[b]["unseen"]["dvector"][
        :, own].mean()),
}


def grade(measured: dict, rule) -> dict:
    """What the d-vector and resemblyzer make of the bases `rule` keeps: own and closest-other similarity,
    identification, lines passing both judges, and controls (a line credited to another speaker) passing."""
    thr = thresholds()
    own = {j: [] for j in speaker.BENCH_JUDGES}
    ident = {j: [] for j in speaker.BENCH_JUDGES}
    passed = controls = 0
    picks = {}
    for n, m in measured.items():
        base = rule(m["bases"], m["index"])
        picks[n] = cast_base(base)
        i, sims = m["index"], m["bases"][base]["unseen"]
        ok = np.ones(len(SET_LINES), bool)
        credited = np.ones((len(SET_LINES), sims["dvector"].shape[1]), bool)
        for j, s in sims.items():
            others = np.delete(s, i, axis=1)
            own[j] += list(s[:, i])
            ident[j] += list(s[:, i] > others.max(1))
            if j in PREFIX:
                sim, margin = thr[f"{PREFIX[j]}similarity"], thr[f"{PREFIX[j]}margin"]
                ok &= (s[:, i] >= sim) & (s[:, i] - others.max(1) >= margin)
                # as every other speaker: its similarity and margin over the rest, this line's own included
                for c in range(s.shape[1]):
                    rest = np.delete(s, c, axis=1).max(1)
                    credited[:, c] &= (s[:, c] >= sim) & (s[:, c] - rest >= margin)
        passed += int(ok.sum())
        controls += int(np.delete(credited, i, axis=1).sum())
    return {"own": {j: float(np.mean(v)) for j, v in own.items()},
            "ident": {j: float(np.mean(v)) for j, v in ident.items()}, "passed": passed,
            "lines": len(SET_LINES) * len(measured), "controls": controls, "picks": picks}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", nargs="+", choices=("espeak", "example", "real", "wideband"),
                    default=["espeak", "example", "real", "wideband"])
    ap.add_argument("--more-packs", type=int, default=0, metavar="N",
                    help="also fit the next N packs of the fitting judge's ranking (minutes each) and grade every "
                         "rule again among them all: what a wider choice could reach")
    ap.add_argument("--blend", action="store_true",
                    help="also fit the mean style of the fitting judge's first two packs (a blend) and grade every "
                         "rule again with it")
    ap.add_argument("--save", type=Path, metavar="F", help="keep what was measured (a pickle) to grade rules again")
    ap.add_argument("--load", type=Path, metavar="F", help="grade the rules on what --save kept; nothing is spoken")
    args = ap.parse_args()
    kept = pickle.loads(args.load.read_bytes()) if args.load else {}
    with tempfile.TemporaryDirectory() as d:
        sets = _sets(Path(d))
        for name in args.set:
            if name in kept:
                measured = kept[name]
            else:
                print(f"\n{name}: every candidate base (cast score of the scoring sentences by each judge)")
                kept[name] = measured = measure(sets[name](), Path(d), args.more_packs, args.blend)
                if args.save:
                    args.save.write_bytes(pickle.dumps(kept))
            print(f"{name}: {'rule':42s} {'d-vector own / ident':>21s} {'resemblyzer':>13s} {'CAM++':>13s}"
                  f" {'both':>6s} {'controls':>9s}  bases")
            for n, m in measured.items():  # the rule as computed here against the choice the fit made
                if (here := _set_aside_then_borda(m["bases"], m["index"])) != m["chosen"]:
                    print(f"  {n}: the choice kept {cast_base(m['chosen'])}, the shipped rule here {cast_base(here)}")
            rules = [(rule, pick, measured) for rule, pick in RULES.items()]
            if args.more_packs or args.blend:  # every rule again, among the choice's candidates and the more
                wider = {n: {**m, "bases": {**m["bases"], **m["more"]}} for n, m in measured.items()}
                more = f"+{args.more_packs} packs" + (" +blend" if args.blend else "")
                rules += [(f"{more}: {rule}", pick, wider) for rule, pick in RULES.items()]
            for rule, pick, among in rules:
                g = grade(among, pick)
                print(f"  {rule:42s} {g['own']['dvector']:10.3f} / {g['ident']['dvector'] * 100:3.0f}% "
                      f"{g['own']['resemblyzer']:6.3f} / {g['ident']['resemblyzer'] * 100:3.0f}% "
                      f"{g['own']['campplus']:6.3f} / {g['ident']['campplus'] * 100:3.0f}% "
                      f"{g['passed']:3d}/{g['lines']:<3d} {g['controls']:5d}     "
                      + " ".join(f"{n}:{b}" for n, b in g["picks"].items()))


if __name__ == "__main__":
    main()
