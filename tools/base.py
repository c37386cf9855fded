"""Tool protocols: what the orchestrator asks of speech, video and evaluation backends.

Tools never choose where they write: the run context hands them every output path. A tool that
cannot run (missing optional dependency, missing weights, bad input) raises `ToolError` with a
message that names the fix; the CLI prints it and exits 2.
"""
from __future__ import annotations

import contextvars
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional, Protocol, Sequence, runtime_checkable

from orchestrator.schema.cast import Cast, CharacterSpec
from orchestrator.schema.plan import SceneInfo, Shot


class ToolError(Exception):
    """A tool cannot do its job; `fix` says what the user should change."""

    def __init__(self, message: str, fix: str = ""):
        self.message = message
        self.fix = fix
        super().__init__(f"{message} (fix: {fix})" if fix else message)


class RunStopped(Exception):
    """The user asked the run to stop (Ctrl-C): no new step starts; finished shots stay checkpointed."""


_STOP: contextvars.ContextVar[Optional[threading.Event]] = contextvars.ContextVar("stop", default=None)


@contextmanager
def stoppable(stop: threading.Event):
    """Within the block, `check_stopped` raises RunStopped once `stop` is set: a step of minutes (a voice
    fit) ends at its next check instead of running on after a Ctrl-C. Worker threads a tool starts inherit
    it only when started in a copy of the caller's context (`in_context`)."""
    token = _STOP.set(stop)
    try:
        yield
    finally:
        _STOP.reset(token)


def check_stopped() -> None:
    """Raise RunStopped when the run this call belongs to (`stoppable`) was asked to stop."""
    stop = _STOP.get()
    if stop is not None and stop.is_set():
        raise RunStopped("stopped by the user")


def in_context(fn):
    """`fn` to run in another thread (a pool's worker) within a copy of the caller's context, so that
    `check_stopped` there hears the caller's stop."""
    ctx = contextvars.copy_context()
    return lambda *args, **kwargs: ctx.copy().run(fn, *args, **kwargs)  # a context is entered by one thread


def map_in_context(fn, items, threads: int, name: str = "") -> list:
    """`fn` of each item, in order, on `threads` pool threads (named `name`-N), each within the caller's
    context (`in_context`: a Ctrl-C's stop reaches them)."""
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix=name) as pool:
        return list(pool.map(in_context(fn), items))


@dataclass
class Timing:
    """A phoneme or word with its time span in seconds from the start of its wav."""

    label: str
    start: float
    end: float


# ---------------------------------------------------------------------------------------- speech


@dataclass
class SpeechKnobs:
    seed: int = 0
    rate: float = 1.0  # >1 speaks faster
    noise: float = 0.0  # synthesis noise (piper noise_scale); 0 is deterministic
    matching_strength: float = 1.0  # 0 = raw TTS voice, 1 = fully matched to the reference
    emotion: Optional[str] = None  # free-form, from the parenthetical

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class SpeechResult:
    wav_path: Path  # mono 16-bit PCM at `sample_rate`
    duration: float
    sample_rate: int
    phonemes: list[Timing] = field(default_factory=list)
    words: list[Timing] = field(default_factory=list)
    notes: dict = field(default_factory=dict)  # how the backend made the line (e.g. which reading it kept)


@runtime_checkable
class SpeechSynthesizer(Protocol):
    name: str
    version: str  # joins the cache key: bump it when output changes
    take_noise: float  # synthesis noise of a fresh take when a retry needs a different one
    # A backend that fits each voice on first use may also have `voice_ready(character, others) -> bool`
    # (False: the next line fits the voice first); the speak node then says so on the progress line.
    # One whose lines for some characters come from other code may have `line_version(character) -> str`, which
    # then joins a line's cache key instead of `version` and names that code's version too.

    def synthesize(
        self,
        text: str,
        character: CharacterSpec,
        knobs: SpeechKnobs,
        out_path: Path,
        parenthetical: Optional[str] = None,
        sample_rate: int = 24000,
        others: Sequence[Path] = (),
    ) -> SpeechResult:
        """Speak one line in the character's voice into `out_path` (wav). `others` are the rest of the
        cast's reference clips: a backend may fit the voice away from them (the speaker check fails a
        line that sounds more like another character), and must then be deterministic in them."""
        ...


# ----------------------------------------------------------------------------------------- video


@dataclass
class SpokenLine:
    """One synthesized line placed in a shot."""

    line_id: str
    speaker: str  # cast id
    text: str
    start: float  # seconds from the start of the shot
    speech: SpeechResult  # timings relative to the line's own wav

    @property
    def end(self) -> float:
        return self.start + self.speech.duration


@dataclass
class ShotAudio:
    """The shot's dialogue: the mixed track plus each line with its timings."""

    wav_path: Path  # mono, the shot's full duration, every line mixed at its start
    sample_rate: int
    duration: float
    lines: list[SpokenLine] = field(default_factory=list)

    def to_json(self) -> dict:
        """A JSON-able form (paths as strings), for attempt folders and graph state."""
        d = asdict(self)
        d["wav_path"] = str(self.wav_path)
        for line in d["lines"]:
            line["speech"]["wav_path"] = str(line["speech"]["wav_path"])
        return d

    @classmethod
    def from_json(cls, d: dict) -> "ShotAudio":
        lines = []
        for ln in d["lines"]:
            sp = dict(ln["speech"])
            sp["wav_path"] = Path(sp["wav_path"])
            sp["phonemes"] = [Timing(**t) for t in sp.get("phonemes", [])]
            sp["words"] = [Timing(**t) for t in sp.get("words", [])]
            lines.append(SpokenLine(**{**ln, "speech": SpeechResult(**sp)}))
        return cls(Path(d["wav_path"]), d["sample_rate"], d["duration"], lines)


@dataclass
class VideoKnobs:
    seed: int = 0
    camera: Optional[str] = None  # override the plan's camera move
    mask_dilation: int = 0  # pixels added around each character's router mask
    offset_frames: int = 0  # shift mouth animation against audio (re-alignment knob)
    audio_guidance: Optional[float] = None  # diffusion backend only
    width: int = 854
    height: int = 480
    fps: int = 25
    subtitles: bool = False
    lower_thirds: bool = False

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class VideoResult:
    clip_path: Path  # H.264 yuv420p + AAC, `fps`
    masks_path: Path  # npz, see MASKS_NPZ
    frames: int
    fps: int


# masks.npz keys (shared by the animatic, the GPU model and the evaluators):
#   masks       uint8 (F, H, W): 0 background, k for the k-th entry of `labels`
#   labels      str (K,): cast ids, in the shot's `characters` order
#   face_boxes  float32 (F, K, 4): x0, y0, x1, y1 in pixels; NaN where the face is not visible
MASKS_NPZ = ("masks", "labels", "face_boxes")


@runtime_checkable
class VideoGenerator(Protocol):
    name: str
    version: str
    default_audio_guidance: Optional[float]  # the audio-guidance scale retries raise; None: no guidance

    def render(
        self,
        shot: Shot,
        scene: SceneInfo,
        audio: ShotAudio,
        cast: Cast,
        knobs: VideoKnobs,
        clip_path: Path,
        masks_path: Path,
    ) -> VideoResult:
        """Render one shot into `clip_path` and `masks_path`."""
        ...


# ------------------------------------------------------------------------------------ evaluation


@dataclass
class Score:
    name: str  # "lipsync.confidence[red]", "binding", ...
    value: float
    threshold: float
    higher_is_better: bool = True
    details: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        if self.value != self.value:  # NaN never passes
            return False
        return self.value >= self.threshold if self.higher_is_better else self.value <= self.threshold

    def as_dict(self) -> dict:
        d = asdict(self)
        d["passed"] = self.passed
        return d


@dataclass
class AttemptInput:
    """Everything an evaluator may look at for one rendered attempt."""

    shot: Shot
    scene: SceneInfo
    cast: Cast
    audio: ShotAudio
    video: VideoResult


@runtime_checkable
class Evaluator(Protocol):
    name: str  # the registry name; scores are named `<family>[<subject>]`

    def evaluate(self, attempt: AttemptInput) -> list[Score]:
        """Score one attempt; an evaluator with nothing to judge (no speech) returns []."""
        ...
