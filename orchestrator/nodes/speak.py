"""Speak node: synthesize every line of a shot (cached per line), retime the shot, mix its track."""
from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from orchestrator.context import RunContext
from orchestrator.planning.timing import retime_shot
from orchestrator.schema.plan import Shot
from orchestrator.state import ShotState
from orchestrator.store import (
    atomic_copy,
    atomic_write_json,
    cache_counts,
    digest_file,
    digest_json,
    written_whole,
)
from tools.base import (
    ShotAudio,
    SpeechKnobs,
    SpeechResult,
    SpokenLine,
    Timing,
    ToolError,
    stoppable,
)


def cast_others(ctx: RunContext, character) -> list[Path]:
    """The rest of the cast's reference clips: the speech backend may fit a voice away from them."""
    return [c.voice.reference for c in ctx.project.cast.characters if c.id != character.id]


def speech_key(ctx: RunContext, text: str, parenthetical, character, knobs: SpeechKnobs) -> str:
    synth = ctx.speech
    return digest_json(
        {
            "kind": "speech",
            "backend": synth.name,
            "version": synth.line_version(character) if hasattr(synth, "line_version") else synth.version,
            "text": text,
            "parenthetical": parenthetical,
            "voice": digest_file(character.voice.reference),
            "transcript": character.voice.transcript,
            **({"base": character.voice.base} if character.voice.base else {}),  # a pinned base voice
            "others": sorted(digest_file(p) for p in cast_others(ctx, character)),  # the fit depends on them
            "knobs": knobs.as_dict(),
            "sample_rate": ctx.config.sample_rate,
        }
    )


def synthesize_line(ctx: RunContext, seg, knobs: SpeechKnobs, character=None) -> tuple[SpeechResult, str]:
    """One line through the speech backend, reusing a verified cache entry when one exists; also the
    cache outcome. `character`: the speaker's cast entry as given (`compose voices` tries other bases)."""
    character = character or ctx.project.cast.by_id(seg.speaker)
    sr = ctx.config.sample_rate

    def build(tmp: Path):
        with stoppable(ctx.stop):  # a Ctrl-C ends a voice fit (minutes) at its next step, not at its end
            res = ctx.speech.synthesize(seg.text, character, knobs, tmp / "speech.wav", seg.parenthetical, sr,
                                        others=cast_others(ctx, character))
        if res.sample_rate != sr:
            raise ToolError(f"speech backend {ctx.speech.name!r} returned {res.sample_rate} Hz, asked {sr} Hz")
        meta = {
            "duration": res.duration,
            "sample_rate": res.sample_rate,
            "phonemes": [t.__dict__ for t in res.phonemes],
            "words": [t.__dict__ for t in res.words],
            "notes": res.notes,
        }
        (tmp / "speech.json").write_text(json.dumps(meta))
        return ["speech.wav", "speech.json"]

    entry, outcome = ctx.cache.get_or_build(speech_key(ctx, seg.text, seg.parenthetical, character, knobs), build)
    meta = json.loads((entry / "speech.json").read_text())
    return SpeechResult(
        wav_path=entry / "speech.wav",
        duration=meta["duration"],
        sample_rate=meta["sample_rate"],
        phonemes=[Timing(**t) for t in meta["phonemes"]],
        words=[Timing(**t) for t in meta["words"]],
        notes=meta.get("notes", {}),
    ), outcome


def announce_fit(ctx: RunContext, shot_id: str, attempt: int, speaker: str) -> bool:
    """Say on the progress line when this speaker's next line first fits their voice (once per reference
    clip and cast, a minute or two on a laptop), so a long first shot is not taken for a hung one."""
    ready = getattr(ctx.speech, "voice_ready", None)
    character = ctx.project.cast.by_id(speaker)
    try:
        if ready is None or ready(character, cast_others(ctx, character)):
            return False
    except (OSError, ToolError):  # a clip gone or damaged since validation: the synthesis reports it, with its fix
        return False
    ctx.on_event("stage", {"shot": shot_id, "stage": f"speak: fitting {speaker}'s voice to its reference clip, "
                           "once", "attempt": attempt})
    return True


def mix_lines(lines: list[SpokenLine], duration: float, sr: int, out: Path) -> None:
    """Place every line at its start in one mono track of the shot's length."""
    track = np.zeros(int(round(duration * sr)), dtype=np.float32)
    for line in lines:
        data, _ = sf.read(line.speech.wav_path, dtype="float32", always_2d=True)
        data = data.mean(axis=1)
        i = int(round(line.start * sr))
        n = min(len(data), len(track) - i)
        if n > 0:
            track[i : i + n] += data[:n]
    with written_whole(out) as tmp:
        sf.write(tmp, np.clip(track, -1.0, 1.0), sr, subtype="PCM_16")


def speak(state: ShotState, ctx: RunContext) -> dict:
    ctx.check_stop()
    started = time.time()
    shot = Shot.model_validate(state["shot"])
    attempt_dir = ctx.shot_dir(shot.id) / f"attempt-{state['attempt']}"
    if state["attempt"] == 1 and ctx.shot_dir(shot.id).exists():
        # A fresh run of this shot: older attempt folders belong to an earlier plan. Their
        # artifacts stay in the cache, so nothing rendered is lost.
        shutil.rmtree(ctx.shot_dir(shot.id))
    attempt_dir.mkdir(parents=True, exist_ok=True)
    knobs = SpeechKnobs(**state["speech_knobs"])
    ctx.on_event("stage", {"shot": shot.id, "stage": "speak", "attempt": state["attempt"]})
    spoken = {}
    for seg in shot.speech:
        announced = announce_fit(ctx, shot.id, state["attempt"], seg.speaker)
        spoken[seg.line_id] = synthesize_line(ctx, seg, knobs)
        if announced:
            ctx.on_event("stage", {"shot": shot.id, "stage": "speak", "attempt": state["attempt"]})
    results = {k: r for k, (r, _) in spoken.items()}
    shot = retime_shot(shot, {k: r.duration for k, r in results.items()})
    fps = ctx.config.fps
    # Whole frames: the film's length must equal the sum of its shots to the frame.
    shot = shot.model_copy(update={"duration": math.ceil(shot.duration * fps - 1e-6) / fps})
    lines = []
    for seg in shot.speech:
        local = attempt_dir / f"speech-{seg.line_id}.wav"
        atomic_copy(results[seg.line_id].wav_path, local)
        res = results[seg.line_id]
        lines.append(SpokenLine(seg.line_id, seg.speaker, seg.text, seg.start, SpeechResult(
            local, res.duration, res.sample_rate, res.phonemes, res.words, res.notes)))
    sr = ctx.config.sample_rate
    mix_lines(lines, shot.duration, sr, attempt_dir / "shot.wav")
    audio = ShotAudio(attempt_dir / "shot.wav", sr, shot.duration, lines)
    atomic_write_json(attempt_dir / "audio.json", audio.to_json())
    atomic_write_json(attempt_dir / "shot.json", shot.model_dump(mode="json"))
    return {"attempt_dir": str(attempt_dir), "started": started,
            "cache": cache_counts(*(outcome for _, outcome in spoken.values()))}
