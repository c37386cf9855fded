"""Synthetic inputs for the animatic's tests and benchmark: a cast from the bundled sample images,
voiced-burst "speech" lines, and shots built directly from the plan models (no TTS needed).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import soundfile as sf

from orchestrator.plan import CaptionPart, OmniCaption, SceneInfo, Shot, SpeechSegment, Anchor
from orchestrator.spec import Cast, CharacterSpec, VoiceSpec
from tools.base import ShotAudio, SpeechResult, SpokenLine, Timing

SR = 24000
CAT_FACE_BOX = (120, 30, 210, 230)  # chelsea: brow to chin, centred on the nose


def sample_images(folder: Path) -> dict[str, Path]:
    """Write scikit-image's astronaut and chelsea and matplotlib's grace_hopper as PNGs."""
    import matplotlib.cbook as cbook
    from PIL import Image
    from skimage import data

    folder.mkdir(parents=True, exist_ok=True)
    paths = {"collins": folder / "collins.png", "hopper": folder / "hopper.png",
             "chelsea": folder / "chelsea.png"}
    if not paths["collins"].exists():
        Image.fromarray(data.astronaut()).save(paths["collins"])
        Image.fromarray(data.chelsea()).save(paths["chelsea"])
        with cbook.get_sample_data("grace_hopper.jpg") as fh:
            Image.open(fh).convert("RGB").save(paths["hopper"])
    return paths


def demo_cast(folder: Path, ids: tuple[str, ...] = ("collins", "hopper", "chelsea")) -> Cast:
    """A cast of the three sample images (the cat via its face_box)."""
    images = sample_images(folder)
    chars = []
    for cid in ids:
        base = cid if cid in images else "collins"
        chars.append(CharacterSpec(
            id=cid, name=cid.capitalize(), trigger=cid.upper(), images=[images[base]],
            voice=VoiceSpec(reference=images[base], transcript="hello"),
            face_box=CAT_FACE_BOX if base == "chelsea" else None))
    return Cast(characters=chars)


def voiced_bursts(seconds: float, seed: int, sr: int = SR, f0: float = 140.0
                  ) -> tuple[np.ndarray, list[Timing]]:
    """A harmonic 'voice' in syllable-like bursts, and the bursts as phoneme timings."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    voice = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 6))
    env = np.zeros(n)
    timings, pos = [], rng.uniform(0.05, 0.15)
    while pos < seconds - 0.15:
        dur = rng.uniform(0.12, 0.3)
        i0, i1 = int(pos * sr), min(n, int((pos + dur) * sr))
        env[i0:i1] = rng.uniform(0.35, 1.0) * np.hanning(i1 - i0) ** 0.5
        timings.append(Timing(str(rng.choice(["a", "o", "e", "i"])), pos, pos + dur))
        gap = rng.uniform(0.08, 0.22)
        timings.append(Timing("_", pos + dur, pos + dur + gap))
        pos += dur + gap
    return (0.25 * voice * env).astype(np.float32), timings


def make_audio(folder: Path, lines: list[tuple[str, float, float]], duration: float,
               phonemes: bool = False, seed: int = 0) -> ShotAudio:
    """Write one wav per (speaker, start, seconds) line and the mixed shot wav."""
    folder.mkdir(parents=True, exist_ok=True)
    mix = np.zeros(int(duration * SR), np.float32)
    spoken = []
    for i, (speaker, start, seconds) in enumerate(lines):
        wav, timings = voiced_bursts(seconds, seed + i, f0=110 + 40 * (i % 3))
        path = folder / f"speech-l{i:02d}.wav"
        sf.write(path, wav, SR, subtype="PCM_16")
        i0 = int(start * SR)
        seg = wav[: max(0, len(mix) - i0)]
        mix[i0:i0 + len(seg)] += seg
        result = SpeechResult(wav_path=path, duration=len(wav) / SR, sample_rate=SR,
                              phonemes=timings if phonemes else [])
        spoken.append(SpokenLine(f"sc01_l{i + 1:02d}", speaker, f"Line {i + 1} of {speaker}.",
                                 start, result))
    shot_wav = folder / "shot.wav"
    sf.write(shot_wav, np.clip(mix, -1, 1), SR, subtype="PCM_16")
    return ShotAudio(wav_path=shot_wav, sample_rate=SR, duration=duration, lines=spoken)


def make_shot(characters: list[str], framing: str, audio: ShotAudio, camera: str = "static",
              focus: Optional[str] = None, shot_id: str = "sc01_sh01") -> Shot:
    """A plan entry whose caption and speech segments match `audio`."""
    anchors = [Anchor(token=f"<sub{i + 1}>", character=c, label=f"the {c}", visual="", voice="")
               for i, c in enumerate(characters)]
    token = {c: a.token for c, a in zip(characters, anchors)}
    speech = [SpeechSegment(line_id=l.line_id, speaker=l.speaker, text=l.text, start=l.start,
                            duration=l.speech.duration) for l in audio.lines]
    parts = [CaptionPart(kind="speech", text=l.text, anchor=token[l.speaker]) for l in audio.lines]
    return Shot(id=shot_id, scene=1, framing=framing, camera=camera, characters=characters,
                focus=focus, speech=speech, duration=audio.duration,
                caption=OmniCaption(anchors=anchors, scene=f"{framing}.", parts=parts))


def make_scene(characters: list[str], heading: str = "INT. ORBITAL STATION - NIGHT",
               background: Optional[Path] = None) -> SceneInfo:
    """A scene with `characters` in screen order left to right."""
    return SceneInfo(index=1, heading=heading, characters=characters,
                     background=str(background) if background else None)
