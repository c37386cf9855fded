"""Choosing each character's base voice: "joe" (the piper backend's matched voice: piper's joe,
hibari's heart or an English Kokoro pack with its fitted WORLD transform, whichever
`fitting.chosen_fit` keeps), one of Kokoro's five Japanese style packs, or a Kokoro style searched
toward the reference (`tools.speech.style_search`, from the best pack), each raw or with WORLD pitch
matching. Once per reference, cached by digest.

Every candidate speaks SCORE_SENTENCES (words no line of the example, no benchmark and no fit of joe uses) and is
scored by the mean resemblyzer similarity to the reference (through its channel: `speaker.Listener`), the
judge that fitting listens through.
joe's own fit keeps away from the rest of the cast (`tools.speech.search.cast_score`); scoring the
candidates and the style search by that cast score too was measured and dropped (bench/RESULTS.md,
sixth pass: the unseen judges gained on the espeak-ng set and lost on the real wideband one, and the
words got worse on both).
The d-vector judge (`tools.hearing.dvector`) never hears a candidate, so acceptance stays blind.
WORLD pitch matching (log-F0 mean and range toward the reference's) is a candidate of its own
beside each raw pack, so it is applied only where it scores higher. An intelligibility floor keeps
gibberish out: the recogniser's forced-alignment score (`tools.hearing.recogniser.mean_log_probs`,
the measure of piper's clearer-reading check) of a candidate may be at most FLOOR_NATS per token
below the best raw pack's. Budget: 13 candidates and the style search's 40 steps, each 2 sentences
of synthesis and embedding, each style spoken once: 3.5 minutes for a 3.1 s reference on this 2-core machine
(bench/RESULTS.md, twenty-second pass: 7.0 before Kokoro's int8 convolutions ran as matrix products and a
kept step's words were checked on the audio already spoken), plus
the piper backend's five or six fits (joe's, heart's and three English packs', four on a near tie,
about 10-40 s each) when they are not cached.

The best candidate but joe is this backend's own voice (`own_voice`), which a cast pins as `voice.base:
kokoro`. None of its candidates hears the rest of the cast (only joe's fit keeps away from it), so it is
cached by the clip alone: a character pinned to it keeps that voice when the cast changes, and it needs none
of the piper backend's fits. The choice writes it on the way, so pinning the voice the choice made costs
nothing more.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from tools.base import check_stopped
from tools.hearing import speaker
from tools.media.audio import load_audio, resample
from tools.memo import memoised
from tools.speech import fitting, kokoro_voice, shared_fits, style_search, world

LOG = logging.getLogger(__name__)
SCORE_SENTENCES = fitting.SCORE_SENTENCES  # the piper backend's base choice is scored on the same words
FLOOR_NATS = 0.3
MAX_RANGE = 2.0  # the F0 range factor is clipped to [1/MAX_RANGE, MAX_RANGE]
VERSION = "4"
_MEMO: dict[str, "BaseChoice"] = {}  # `tools.memo.memoised`'s: one maker per key


@dataclass(frozen=True)
class BaseChoice:
    """The chosen base: "joe" or a Kokoro pack name, and the WORLD pitch match applied to a pack."""

    base: str
    f0_shift: float = 0.0
    f0_range: float = 1.0
    scores: dict | None = None  # candidate -> [mean similarity, mean forced-alignment log-prob]
    style_offset: list = field(default_factory=list)  # (256,) added to every row of the pack: a searched style

    def style(self) -> np.ndarray:
        """The (510, 1, 256) Kokoro style of this choice (a pack, or a pack moved by the search)."""
        pack = kokoro_voice.pack(self.base)
        if not self.style_offset:
            return pack
        return (pack + np.asarray(self.style_offset, np.float32).reshape(1, 1, 256)).astype(np.float32)

    def label(self) -> str:
        """What this voice is, as a line's notes say it: the pack, "searched" and "pitch" where they apply."""
        return self.base + (" searched" if self.style_offset else "") + (
            "" if self.transform().is_identity else " pitch")

    def transform(self, strength: float = 1.0) -> world.WorldTransform:
        """The pitch-matching transform at `strength` (identity for joe: piper applies its own fit)."""
        return world.WorldTransform(f0_shift=self.f0_shift, f0_range=self.f0_range).scaled(strength)


def pitch_match(reference: Path, audio: np.ndarray, sr: int) -> tuple[float, float]:
    """(log-F0 shift, range factor) that move `audio`'s pitch statistics to the reference's."""
    ref = world.profile_of(resample(*load_audio(reference), sr), sr, analysis=fitting.reference_analysis(reference, sr))
    src = world.profile_of(audio, sr)
    rng = float(np.clip(ref.f0_log_std / max(src.f0_log_std, 1e-3), 1 / MAX_RANGE, MAX_RANGE))
    return float(ref.f0_log_mean - src.f0_log_mean), rng


def _joe(reference: Path, transcript: str, others: Sequence[Path]) -> tuple[list[np.ndarray], int]:
    """The piper backend's matched voice (joe, heart or an English pack with its fitted WORLD transform,
    kept away from `others`: `fitting.chosen_fit`) speaking the scoring sentences."""
    return fitting.fitted_speech(*fitting.chosen_fit(reference, transcript, others), SCORE_SENTENCES)


def _score_all(reference: Path, transcript: str, others: Sequence[Path]) -> BaseChoice:
    """The choice among every candidate (`_candidates`); the backend's own voice (`own_voice`), the best of them
    but joe, is kept in the cache on the way, where it is not there yet."""
    found = _candidates(reference, transcript, others)
    choice = _best(found["candidates"], found["floor"])
    LOG.info("base for %s: %s (%s)", reference.name, choice.label(), choice.scores)
    own = fitting.voice_cache_file(f"{_own_key(reference, transcript)}.json", "voice-bases")
    if not shared_fits.entry(own, reference).is_file():
        fitting.write_json(own, asdict(_best(found["candidates"], found["floor"], leave_out=("joe",))))
    return choice


def _candidates(reference: Path, transcript: str, others: Sequence[Path], with_joe: bool = True) -> dict:
    """Every candidate (joe's when `with_joe`, then this backend's own: five packs, a searched style, each raw
    and pitch-matched) -> (choice, mean similarity, mean forced-alignment log-prob), and "floor" -> the
    intelligibility floor."""
    from tools.hearing.recogniser import load_whisper, mean_log_probs

    heard_by = speaker.Listener([reference])  # through the reference's own channel
    model = load_whisper()
    scored: dict[str, tuple[BaseChoice, float, float]] = {}

    def judge(name: str, choice: BaseChoice, audios: list[np.ndarray], sr: int) -> None:
        check_stopped()  # a Ctrl-C ends the choice at its next candidate (`tools.base.stoppable`)
        sim = float(np.mean([heard_by.similarities(x, sr)[0] for x in audios]))
        lp = float(np.mean([mean_log_probs(model, [x], sr, s)[0] for x, s in zip(audios, SCORE_SENTENCES)]))
        scored[name] = (choice, sim, lp)

    def with_pitch(name: str, choice: BaseChoice, raws: list[np.ndarray]) -> None:
        sr = kokoro_voice.SR
        judge(name, choice, raws, sr)
        shift, rng = pitch_match(reference, np.concatenate(raws), sr)
        pitched = BaseChoice(choice.base, shift, rng, style_offset=choice.style_offset)
        judge(f"{name}+pitch", pitched, [world.apply_transform(x, sr, pitched.transform()) for x in raws], sr)

    # Each style speaks the sentences once: the search starts from a pack, and checks the words of a step it keeps.
    spoken: dict[bytes, list[np.ndarray]] = {}

    def speak(style_pack: np.ndarray) -> list[np.ndarray]:
        key = hashlib.sha256(np.ascontiguousarray(style_pack, np.float32).tobytes()).digest()
        if key not in spoken:
            spoken[key] = [kokoro_voice.raw_synthesize([s], style_pack).audio for s in SCORE_SENTENCES]
        return spoken[key]

    if with_joe:
        judge("joe", BaseChoice("joe"), *_joe(reference, transcript, others))
    for name in kokoro_voice.PACKS:
        with_pitch(name, BaseChoice(name), speak(kokoro_voice.pack(name)))
    floor = max(scored[n][2] for n in kokoro_voice.PACKS) - FLOOR_NATS

    def clear_enough(style_pack: np.ndarray) -> bool:
        return float(np.mean([mean_log_probs(model, [x], kokoro_voice.SR, s)[0]
                              for x, s in zip(speak(style_pack), SCORE_SENTENCES)])) >= floor

    start = max(kokoro_voice.PACKS, key=lambda n: scored[n][1])
    offset, _, _ = style_search.search_style(start, style_search.similarity_scorer(heard_by, speak), clear_enough)
    searched = BaseChoice(start, style_offset=[round(float(v), 6) for v in offset])
    with_pitch("search", searched, speak(searched.style()))
    return {"candidates": scored, "floor": floor}


def _best(scored: dict, floor: float, leave_out: tuple[str, ...] = ()) -> BaseChoice:
    """The candidate the fitting judge hears closest among those over the intelligibility floor (all of them
    where none is), its scores attached; `leave_out`: candidates not weighed."""
    weighed = {n: v for n, v in scored.items() if n not in leave_out}
    clear = {n: v for n, v in weighed.items() if v[2] >= floor} or weighed
    best = max(clear, key=lambda n: clear[n][1])
    scores = {n: [round(sim, 4), round(lp, 3)] for n, (_, sim, lp) in weighed.items()}
    c = clear[best][0]
    return BaseChoice(c.base, c.f0_shift, c.f0_range, scores, c.style_offset)


def chosen_base(reference: Path, transcript: str, others: Sequence[Path] = ()) -> BaseChoice:
    """The base voice for one reference clip (module docstring), cached by the clip's digest and those
    of the `others` (the rest of the cast), which joe's fit keeps away from. The backend's own voice
    (`own_voice`) is kept too, from the same candidates."""
    reference = Path(reference)
    others = fitting.cast_others(reference, others)
    key = _key(reference, transcript, others)

    def make() -> BaseChoice:
        cache = fitting.voice_cache_file(f"{key}.json", "voice-bases")
        choice = fitting.read_cached(cache, BaseChoice, "base-choice", reference)
        if choice is None:
            choice = _score_all(reference, transcript, others)
            fitting.write_json(cache, asdict(choice))
        return choice

    return memoised(_MEMO, key, make)


def own_voice(reference: Path, transcript: str) -> BaseChoice:
    """This backend's own voice for one reference clip, as a cast pins it (`voice.base: kokoro`): the best of
    the candidates `chosen_base` weighs but joe (five Japanese packs, a style searched from the best of them,
    each raw or pitch-matched). None of them hears the rest of the cast, so neither does its cache key: a cast
    that grows keeps the voice. Made with the choice when that is made first."""
    reference = Path(reference)
    key = _own_key(reference, transcript)

    def make() -> BaseChoice:
        cache = fitting.voice_cache_file(f"{key}.json", "voice-bases")
        choice = fitting.read_cached(cache, BaseChoice, "own-voice", reference)
        if choice is None:
            found = _candidates(reference, transcript, (), with_joe=False)
            choice = _best(found["candidates"], found["floor"])
            LOG.info("own voice for %s: %s (%s)", reference.name, choice.label(), choice.scores)
            fitting.write_json(cache, asdict(choice))
        return choice

    return memoised(_MEMO, key, make)


def own_voice_made(reference: Path, transcript: str) -> bool:
    """Whether `own_voice` for this clip is made already (this process, or the cache)."""
    key = _own_key(Path(reference), transcript)
    return key in _MEMO or shared_fits.entry(fitting.voice_cache_file(f"{key}.json", "voice-bases"),
                                             Path(reference)).is_file()


def _own_key(reference: Path, transcript: str) -> str:
    return fitting.reference_key(reference, transcript, VERSION, "own", str(world.ANALYSIS_VERSION),
                                 *fitting.channel_key(reference, ()), speaker.FITTING_JUDGE)


def _key(reference: Path, transcript: str, others: tuple[Path, ...]) -> str:
    return fitting.reference_key(reference, transcript, VERSION, str(world.ANALYSIS_VERSION),  # joe's fit competes
                                 *[fitting.reference_key(o) for o in others], *fitting.channel_key(reference, others),
                                 speaker.FITTING_JUDGE)


def choice_made(reference: Path, transcript: str, others: Sequence[Path] = ()) -> bool:
    """Whether `chosen_base` for this reference and cast is made already (this process, or the cache)."""
    key = _key(Path(reference), transcript, fitting.cast_others(Path(reference), others))
    return key in _MEMO or shared_fits.entry(fitting.voice_cache_file(f"{key}.json", "voice-bases"),
                                             Path(reference)).is_file()
