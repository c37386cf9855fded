"""Real rendered attempts for the evaluator tests and the calibration bench.

Shots are short (about 2-3 s) and small (320x180) so a whole session renders in seconds; speech is
real piper TTS in the example cast's matched voices and video is the real animatic renderer. Every
builder takes an output folder, so pytest fixtures can cache them per session.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Optional

import numpy as np
import pytest
from ruamel.yaml import YAML

from orchestrator.plan import SceneInfo, Shot, SpeechSegment
from orchestrator.planner_rules import build_caption
from orchestrator.spec import Cast
from tools.base import AttemptInput, ShotAudio, SpeechKnobs, SpokenLine, VideoKnobs
from tools.eval_common import load_wav

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "orbit"
SR = 24000
LEAD_IN = 0.4  # seconds of picture before the first line
TAIL = 0.4
SIZE = (320, 180)
WRONG_WORDS = "Next time, the cat flies coach."


def orbit_cast(**face_swaps: str) -> Cast:
    """The example cast with absolute paths; `hopper="collins"` draws hopper with collins's image."""
    data = YAML(typ="safe").load((EXAMPLE / "cast.yaml").read_text())
    for c in data["characters"]:
        c["images"] = [str(EXAMPLE / p) for p in c["images"]]
        c["voice"]["reference"] = str(EXAMPLE / c["voice"]["reference"])
    original = {c["id"]: (c["images"], c.get("face_box")) for c in data["characters"]}
    for c in data["characters"]:
        if c["id"] in face_swaps:
            c["images"], c["face_box"] = original[face_swaps[c["id"]]]
    return Cast(**data)


def scene_info(characters: list[str]) -> SceneInfo:
    return SceneInfo(index=1, heading="INT. SPACE STATION MODULE - NIGHT", characters=characters)


def speak(lines: list[tuple[str, str, str]], cast: Cast, out_dir: Path,
          voice_of: Optional[dict[str, str]] = None, gap: float = 0.3) -> ShotAudio:
    """Synthesize (line_id, speaker, text) lines one after another into a ShotAudio.

    `voice_of` maps a line id to the character whose voice speaks it (the wrong-voice control).
    """
    from tools.tts_piper import PiperSynthesizer

    tts = PiperSynthesizer()
    out_dir.mkdir(parents=True, exist_ok=True)
    spoken, t = [], LEAD_IN
    for line_id, speaker, text in lines:
        voice = cast.by_id((voice_of or {}).get(line_id, speaker))
        res = tts.synthesize(text, voice, SpeechKnobs(), out_dir / f"speech-{line_id}.wav", sample_rate=SR)
        spoken.append(SpokenLine(line_id, speaker, text, t, res))
        t += res.duration + gap
    duration = t - gap + TAIL
    return mix(spoken, duration, out_dir / "shot.wav")


def mix(lines: list[SpokenLine], duration: float, wav_path: Path) -> ShotAudio:
    """Mix lines at their starts into one shot wav."""
    from tools.tts_piper import write_wav

    out = np.zeros(int(round(duration * SR)), np.float32)
    for line in lines:
        x = load_wav(line.speech.wav_path, SR)
        a = int(round(line.start * SR))
        n = max(0, min(len(x), len(out) - a))
        out[a:a + n] += x[:n]
    write_wav(wav_path, out, SR)
    return ShotAudio(wav_path=wav_path, sample_rate=SR, duration=duration, lines=list(lines))


def make_shot(shot_id: str, characters: list[str], audio: ShotAudio, cast: Cast,
              framing: str = "two-shot", camera: str = "static") -> tuple[Shot, SceneInfo]:
    """A plan entry matching the synthesized audio."""
    speech = [SpeechSegment(line_id=ln.line_id, speaker=ln.speaker, text=ln.text, start=ln.start,
                            duration=ln.speech.duration) for ln in audio.lines]
    scene = scene_info(characters)
    shot = Shot(id=shot_id, scene=1, framing=framing, camera=camera, characters=characters,
                focus=audio.lines[0].speaker if audio.lines else None, speech=speech,
                duration=audio.duration, caption={"anchors": [], "scene": "", "parts": []})
    shot = shot.model_copy(update={"caption": build_caption(shot, cast, scene)})
    return shot, scene


def render(shot: Shot, scene: SceneInfo, audio: ShotAudio, cast: Cast, out_dir: Path,
           knobs: Optional[VideoKnobs] = None, judge_cast: Optional[Cast] = None,
           judge_audio: Optional[ShotAudio] = None) -> AttemptInput:
    """Render with the animatic and return what the evaluators get.

    The video is made from `cast` and `audio`; the evaluators judge it against `judge_cast` and
    `judge_audio` (default: the same), which is how the negative controls lie to the renderer.
    """
    from tools.video_animatic import AnimaticRenderer

    knobs = knobs or VideoKnobs()
    knobs = replace(knobs, width=SIZE[0], height=SIZE[1])
    out_dir.mkdir(parents=True, exist_ok=True)
    video = AnimaticRenderer().render(shot, scene, audio, cast, knobs, out_dir / "clip.mp4", out_dir / "masks.npz")
    return AttemptInput(shot=shot, scene=scene, cast=judge_cast or cast, audio=judge_audio or audio, video=video)


def reattribute(audio: ShotAudio, speakers: dict[str, str]) -> ShotAudio:
    """The same audio with some lines credited to other speakers (line id -> cast id)."""
    lines = [replace(ln, speaker=speakers.get(ln.line_id, ln.speaker)) for ln in audio.lines]
    return replace(audio, lines=lines)


def controls_of(shot_id: str, chars: list[str], lines: list[tuple[str, str, str]], other_voice: str,
             other_face: str, work: Path, offsets: tuple[int, ...] = (2, 4, 8)) -> dict[str, AttemptInput]:
    """The positive attempt and its negative controls, each an AttemptInput to evaluate.

    offset2/4/8: mouths rendered k frames late; swap: every line credited to the other character
    for the renderer (judged against the true speakers); voice: the first line spoken in
    `other_voice`; words: the first line's audio says WRONG_WORDS; face: the first speaker drawn
    with `other_face`'s image (judged against the true cast).
    """
    cast = orbit_cast()
    audio = speak(lines, cast, work / "speech")
    shot, scene = make_shot(shot_id, chars, audio, cast)
    out = {"positive": render(shot, scene, audio, cast, work / "pos")}
    for k in offsets:
        out[f"offset{k}"] = render(shot, scene, audio, cast, work / f"off{k}", VideoKnobs(offset_frames=k))
    other = {c: next(x for x in chars if x != c) for c in chars}
    swapped = reattribute(audio, {ln.line_id: other[ln.speaker] for ln in audio.lines})
    out["swap"] = render(shot, scene, swapped, cast, work / "swap", judge_audio=audio)
    first = audio.lines[0]
    voiced = speak(lines[:1], cast, work / "voice", voice_of={first.line_id: other_voice})
    out["voice"] = replace(out["positive"], audio=voiced)
    wrong = speak([(first.line_id, first.speaker, WRONG_WORDS)], cast, work / "words")
    out["words"] = replace(out["positive"], audio=replace(wrong, lines=[replace(wrong.lines[0], text=first.text)]))
    face_cast = orbit_cast(**{first.speaker: other_face})
    out["face"] = render(shot, scene, audio, face_cast, work / "face", judge_cast=cast)
    return out


# The shot every evaluator test judges: two characters, one line each, so binding has a rival.
TEST_CASE = ("sc01_sh03", ["collins", "hopper"],
             [("sc01_l03", "collins", "The relays are fine."), ("sc01_l04", "hopper", "Then look at the cat.")],
             "chelsea", "chelsea")
_BUILT: dict[str, dict[str, AttemptInput]] = {}


@pytest.fixture(scope="session")
def controls(tmp_path_factory) -> dict[str, AttemptInput]:
    """TEST_CASE's positive attempt and negative controls (offsets 4 and 8), built once per
    process: test modules import this fixture, and every import shares the one build."""
    if "case" not in _BUILT:
        _BUILT["case"] = controls_of(*TEST_CASE, tmp_path_factory.getbasetemp() / "eval-controls",
                                                  offsets=(4, 8))
    return _BUILT["case"]


def one_line_attempt(work: Path, text: str, speaker: str = "hopper") -> AttemptInput:
    """A real one-line shot (piper speech, animatic clip, masks) with Collins listening."""
    cast = orbit_cast()
    audio = speak([("sc01_l05", speaker, text)], cast, work / "speech")
    shot, scene = make_shot("sc01_sh05", ["collins", "hopper"], audio, cast)
    return render(shot, scene, audio, cast, work / "video")
