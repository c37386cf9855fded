"""Fitting the voice-matching transform to a character's reference clip (once per reference, cached
by the wav's digest in the user cache directory).

1. Analyse the reference: F0 with WORLD `harvest` (not `dio`: octave errors), envelope shape of voiced
   and unvoiced frames on a mel grid, voiced aperiodicity, active-speech time and loudness.
2. Speak the reference transcript with the base voice (piper's joe, hibari's heart, or Kokoro in an
   English style pack), so both say the same words; their active-speech times set the length scale.
3. F0 mean and range mapped in the log domain; the formant warp whose warped source frames best fit
   their paired reference frames (`fit_warp`), a correction per sound class (`tools.speech.classes`,
   frames paired by dynamic time warping), frame selection toward the reference's own frame shapes
   (`tools.speech.frames`); breathiness from the aperiodicity difference, as a mean and per band.
4. A coordinate search around that fit (`tools.speech.search`) keeps the transform the fitting judge
   hears closest to the reference, and furthest from the rest of the cast (`search.cast_score`), on a
   held-out sentence, under an intelligibility floor; the fit is cached by the cast's digests too.
5. Each character's base (`chosen_fit`): joe, heart, and the three English Kokoro packs whose raw speech
   the fitting judge hears closest (four on a near tie of the first two: `tools.speech.packs`) are fitted,
   FIT_THREADS at a time; each fitted voice speaks SCORE_SENTENCES and two judges hear it (CHOICE_JUDGES:
   the fitting judge, and CAM++, which no search hears). A base both judges hear closer to another of the
   cast than to the character (mean margin below zero for each) is set aside. Among the rest each judge
   gives a base a point for every other base whose cast score it beats; the most points win, the earlier
   base on a tie (a Borda count: the two judges count alike whatever their scales). Each candidate's search
   listens through the fitting judge, so that judge alone would keep the candidate tuned hardest to its
   own taste. When every base is set aside, the fitting judge's highest cast score decides, as before the
   fourteenth pass. The d-vector, the acceptance's unseen judge, never hears a candidate (figures:
   bench/RESULTS.md, seventh to fourteenth passes).
"""
from __future__ import annotations

import hashlib
import json
import logging
import threading
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Sequence

import numpy as np

from tools.base import ToolError, check_stopped, map_in_context
from tools.hearing import speaker
from tools.hearing.speaker import FITTING_JUDGE, channel_rate
from tools.media.audio import load_audio, resample
from tools.media.files import voice_cache_file, written_whole
from tools.media.packaged import EN_PACKS, MODELS, pack_blend
from tools.memo import memoised
from tools.speech import heart_voice, kokoro_voice, packs, shared_fits, text_norm
from tools.speech.bands import band_edges, bands
from tools.speech.classes import cepstra, dtw_pairs, usable_shapes
from tools.speech.frames import reference_codebook
from tools.speech.packs import PACK, PACK_CANDIDATES, PACK_TIE, SCORE_SENTENCES
from tools.speech.piper_voice import RawSpeech, load_voice
from tools.speech.world import (
    ANALYSIS_VERSION,
    VoiceProfile,
    WorldTransform,
    active_mask,
    analyse_synthetic,
    check_reference,
    profile_of,
    usable_band_count,
    warp_bins,
    world_analyse,
)

LOG = logging.getLogger(__name__)

# The search scores on HELD_OUT_TEXT, the base choice on SCORE_SENTENCES (`tools.speech.packs`): words no line,
# benchmark or fit uses.
HELD_OUT_TEXT = "We packed warm bread, apples and cheese, then walked along the shore until noon."
BASES = ("joe", "heart")  # fitted for every reference; PACK_CANDIDATES of Kokoro's English packs join them
CHOICE_VERSION = "4: Borda of the choice judges, bases both hear as another set aside"
# The judges a base choice listens through: the fitting judge first, then CAM++ (module docstring, 5).
CHOICE_JUDGES = ("resemblyzer", "campplus")
FIT_THREADS = 2  # candidate bases fitted at once (threads: WORLD and onnxruntime release the GIL; eleventh pass)


def base_voice(base: str):
    """(raw_synthesize, sample rate, cache tag) of one base voice: piper's joe, hibari's heart, or
    Kokoro in one of its English style packs (PACK + its name)."""
    if base == "joe":
        from tools.speech.piper_voice import raw_synthesize

        return raw_synthesize, load_voice().config.sample_rate, "joe-medium"
    if base == "heart":
        return heart_voice.raw_synthesize, heart_voice.SR, "heart-hibari-0.2.1"
    names = pack_blend(base[len(PACK):]) if base.startswith(PACK) else None
    if names:  # one pack, or the mean style of several (a blend)
        style = np.mean([kokoro_voice.pack(n) for n in names], axis=0).astype(np.float32)
        return partial(kokoro_voice.raw_synthesize, style_pack=style), kokoro_voice.SR, f"kokoro-v1.0-{'+'.join(names)}"
    raise ValueError(f"unknown base voice {base!r}: one of {', '.join(BASES)} or {PACK}<one of {', '.join(EN_PACKS)}>"
                     " (several joined by '+': their mean style)")


def raw_speech(base: str, sentences: list[str], length_scale: float = 1.0, noise: float = 0.0,
               seed: int = 0) -> RawSpeech:
    """`sentences` spoken by the base voice `base`, unmatched."""
    return base_voice(base)[0](sentences, length_scale=length_scale, noise=noise, seed=seed)


def fitted_speech(base: str, tf: WorldTransform, sentences: list[str]) -> tuple[list[np.ndarray], int]:
    """(each of `sentences` spoken by `base` under the fitted transform `tf`, rate): what a choice scores."""
    from tools.speech.world import apply_transform

    out = []
    for sentence in sentences:
        raw = raw_speech(base, text_norm.prepare_line(sentence), length_scale=tf.length_scale)
        out.append(apply_transform(raw.audio, raw.sample_rate, tf))
    return out, raw.sample_rate


_MEMO: dict[str, "WorldTransform"] = {}  # each memo is `tools.memo.memoised`'s: one maker per key
_CHOICES: dict[str, tuple[str, "WorldTransform"]] = {}  # choice key -> (base, its fitted transform)
_ANALYSES: dict[str, tuple] = {}  # (reference, rate) -> its WORLD analysis: `reference_analysis`
_BOOKS: dict[str, list] = {}  # (reference, rate, bands) -> its frame codebook: `reference_book`
_ANALYSES_LOCK = threading.Lock()
ANALYSES_KEPT = 3  # joe's rate, heart's and Kokoro's: a base choice's fits share them


def reference_key(path: Path, *extra: str) -> str:
    """A cache key for what is derived from one reference clip: its bytes' digest with `extra`."""
    h = hashlib.sha256(Path(path).read_bytes())
    for e in extra:
        h.update(e.encode())
    return h.hexdigest()[:24]


def write_json(path: Path, data: dict) -> None:
    """Write `data` to `path` in one rename (a reader never sees half a file)."""
    with written_whole(path) as tmp:  # a unique name: two fits in one process may write the same entry at once
        tmp.write_text(json.dumps(data))


def read_cached(path: Path, cls, what: str, reference: Path | None = None):
    """`cls(**entry)` of the JSON cache entry at `path`, or of its copy beside `reference` when the user cache
    lacks it (`tools.speech.shared_fits`); None if missing or corrupt (warned: made again, at `path`)."""
    path = shared_fits.entry(path, reference)
    if path.is_file():
        try:
            return cls(**json.loads(path.read_text()))
        except (ValueError, TypeError):
            LOG.warning("ignoring a corrupt %s cache entry %s", what, path)
    return None


def reference_analysis(path: Path, sr: int) -> tuple:
    """WORLD's analysis (f0, envelope, aperiodicity) of the reference clip resampled to `sr`: made once and
    shared while it is among the ANALYSES_KEPT latest in this process. Every base at one rate fits against
    the same analysis (the three or four English packs at Kokoro's rate), and it was made anew for each
    (about 8 s of harvest for a 25 s clip); at most a few are held, about 80 MB each for 25 s."""
    key = reference_key(Path(path), "world analysis", str(ANALYSIS_VERSION), str(sr))
    def make() -> tuple:
        arrays = world_analyse(resample(*load_audio(Path(path)), sr), sr)
        for a in arrays:
            a.setflags(write=False)  # shared by the threads fitting other bases: read, never written
        return arrays

    return _latest(_ANALYSES, key, make)


def reference_book(path: Path, sr: int, n_use: int) -> list:
    """The reference's frame codebook (`tools.speech.frames.reference_codebook`) at `sr` over `n_use` bands,
    from `reference_analysis`: made once while among the ANALYSES_KEPT latest, like the analysis (its
    k-means takes about 7 s for a 25 s clip, and every base at one rate asked for the same one). Each
    caller gets its own outer list; the rows are shared and never written."""
    key = reference_key(Path(path), "frame codebook", str(ANALYSIS_VERSION), str(sr), str(n_use))
    book = _latest(_BOOKS, key, lambda: reference_codebook(
        10 * np.log10(reference_analysis(path, sr)[1] + 1e-16), sr, n_use))
    return list(book)


def _latest(memo: dict, key: str, make):
    """`memoised(memo, key, make)`, keeping only the ANALYSES_KEPT latest keys in `memo` (an asker holding an
    older value keeps it)."""
    value = memoised(memo, key, make)
    with _ANALYSES_LOCK:
        for old in list(memo)[:-ANALYSES_KEPT]:
            memo.pop(old, None)
    return value


def analyse_reference(path: Path, work_sr: int) -> VoiceProfile:
    """The reference clip's profile at the working rate, cached by the wav's digest. Its usable bands
    end at its channel's Nyquist (`tools.hearing.speaker.channel_rate`): a clip's own rate, or less for
    a telephone recording saved at a higher one."""
    import soundfile as sf

    problems = check_reference(path)
    if problems:
        raise ToolError("; ".join(problems), "give a 1-30 s clip of clear speech as the character's voice.reference")
    sr = sf.info(str(path)).samplerate  # the header only: a cached profile needs no decoding
    channel = min(sr, channel_rate(path) or sr)
    narrower = ["channel", str(channel)] if channel < sr else []  # a stored rate alone keeps its old key
    cache = voice_cache_file(f"{reference_key(path, str(work_sr), str(ANALYSIS_VERSION), *narrower)}.profile.json")
    if (prof := read_cached(cache, VoiceProfile, "voice profile")) is not None:  # never shared: fits are
        return prof
    x, sr = load_audio(path)
    prof = profile_of(resample(x, sr, work_sr), work_sr, native_sr=channel, analysis=reference_analysis(path, work_sr))
    write_json(cache, asdict(prof))
    return prof


def fit_transform(ref: VoiceProfile, src: VoiceProfile, length_scale: float, warp: float | None = None) -> WorldTransform:
    """Closed-form fit of every parameter of the transform from two profiles at the same rate.

    `warp`, the formant scale, is best given from paired frames (`fit_warp`); without it,
    it is the one whose warped long-term source spectrum best fits the reference's."""
    shift = ref.f0_log_mean - src.f0_log_mean
    f0_range = float(np.clip(ref.f0_log_std / src.f0_log_std, 0.4, 2.5))
    n_use = max(ref.usable_bands, 4)
    sr = src.sample_rate
    src_sp = np.asarray(src.mean_log_sp)
    if warp is None:
        ref_v = np.asarray(ref.voiced_shape)[:n_use]
        best = (np.inf, 1.0)
        for w in np.geomspace(0.7, 1.6, 49):
            d = bands(warp_bins(src_sp, w)[None], sr)[0][:n_use] - ref_v
            err = float(np.mean((d - d.mean()) ** 2))
            if err < best[0]:
                best = (err, float(w))
        warp = best[1]
    # The warp moves the source's unvoiced shape too; the correction fits what remains.
    warped_v = bands(warp_bins(src_sp, warp)[None], sr)[0]
    voiced_corr = _smooth_corr(np.asarray(ref.voiced_shape) - warped_v, n_use)
    unvoiced_corr = _smooth_corr(
        np.asarray(ref.unvoiced_shape) - _warp_band_shape(np.asarray(src.unvoiced_shape), warp, sr), n_use
    )
    ap_shift = float(np.clip(ref.voiced_ap - src.voiced_ap, -0.3, 0.3))
    return WorldTransform(f0_shift=float(shift), f0_range=f0_range, warp=warp, voiced_corr=voiced_corr,
                          unvoiced_corr=unvoiced_corr, ap_shift=ap_shift, ap_corr=_ap_corr(ref, src, warp, n_use),
                          length_scale=float(length_scale),
                          gain_db=float(np.clip(ref.loudness_db - src.loudness_db, -20, 12)))


WARP_ROUNDS = 6  # pairings of fit_warp at most
WARPS = np.geomspace(0.7, 1.6, 61)  # formant scales tried by fit_warp: 1.4 % apart (the closed form's range)


def fit_warp(src: tuple, ref: tuple, sr: int, n_use: int, warps: np.ndarray = WARPS) -> float:
    """Formant scale from parallel utterances: the warp of piper's voiced frames whose shapes best
    match their paired reference frames once the recording's own colour is taken out.

    `src` and `ref` are WORLD analyses (f0, envelope, aperiodicity) of piper and the reference saying
    the same words; `n_use` the bands below the reference's Nyquist. Voiced loud frames are paired by
    dynamic time warping on mel cepstra (as `classes.fit_classes` pairs them). For each warp the paired shape
    differences lose their mean per band: what is left is how far the formants move apart from sound to
    sound, which a microphone, a room or a codec (one fixed filter) cannot explain. A long-term
    average spectrum mixes both: on a LibriVox reading it put a woman's formants below a man's (warp
    0.88 where the paired frames give 1.26) and a man's at 0.74.

    The pairing itself depends on the warp (unwarped, a voice with formants a third higher pairs its
    vowels with piper's neighbouring ones), so the frames are paired again on the warped source until
    the warp repeats, at most WARP_ROUNDS times: an espeak-ng voice pitch-shifted by 4 semitones (its
    formants x1.26) read 1.04 from the unwarped pairing and 1.47 after three rounds."""
    f0s, sps = src[0], src[1]
    f0r, spr = ref[0], ref[1]

    def shapes(sp: np.ndarray) -> np.ndarray:
        return usable_shapes(10 * np.log10(sp + 1e-16), sr, n_use)[0]

    def voiced_loud(f0: np.ndarray, sp: np.ndarray) -> np.ndarray:
        e = 10 * np.log10(sp + 1e-16).mean(axis=1)
        return np.where((f0 > 0) & (e > e.max() - 40.0))[0]

    si, ri = voiced_loud(f0s, sps), voiced_loud(f0r, spr)
    if len(si) < 10 or len(ri) < 10:
        return 1.0
    r = shapes(spr[ri])
    warped = [shapes(warp_bins(sps[si], float(w))) for w in warps]  # the same in every round
    source, seen = shapes(sps[si]), []  # the first pairing is at no warp
    while len(seen) < WARP_ROUNDS:
        a, b = dtw_pairs(cepstra(source), cepstra(r))
        errs = []
        for s in warped:
            d = r[b] - s[a]
            errs.append(float(np.mean((d - d.mean(axis=0)) ** 2)))
        best = int(np.argmin(errs))
        if best in seen:
            break
        seen.append(best)
        source = warped[best]
    return float(warps[best])


def _ap_corr(ref: VoiceProfile, src: VoiceProfile, warp: float, n_use: int) -> list:
    """Per-band voiced aperiodicity difference around its mean (the mean is `ap_shift`): where in the
    spectrum the reference is breathier or more periodic than the warped source."""
    if not ref.voiced_ap_bands or not src.voiced_ap_bands:
        return []
    diff = np.asarray(ref.voiced_ap_bands) - _warp_band_shape(np.asarray(src.voiced_ap_bands), warp, src.sample_rate)
    return _smooth_corr(diff, n_use, limit_db=0.3)


def _warp_band_shape(shape: np.ndarray, warp: float, sr: int) -> np.ndarray:
    """Warp a per-band shape by interpolating it on the (mel-band) frequency axis."""
    edges = band_edges(sr, 1024)
    centers = 0.5 * (edges[:-1] + edges[1:])
    return np.interp(centers / warp, centers, shape)


def _smooth_corr(diff: np.ndarray, n_use: int, limit_db: float = 15.0) -> list:
    """Zero-mean, smoothed, clipped correction; bands above the reference's Nyquist get none."""
    d = diff.copy()
    d[n_use:] = d[n_use - 1] if n_use < len(d) else d[n_use:]
    d = np.convolve(np.pad(d, 1, mode="edge"), np.ones(3) / 3, mode="valid")
    d = d - d[:n_use].mean()
    return np.clip(d, -limit_db, limit_db).round(3).tolist()


# -------------------------------------------------------------------------------------------- fit


def cast_others(reference: Path, others: Sequence[Path]) -> tuple[Path, ...]:
    """The other cast references a fit keeps away from: one per distinct clip, none with the bytes of
    `reference` itself (two characters sharing a voice), in digest order so the cast's order does not
    change the fit."""
    own = reference_key(Path(reference))
    by_digest = {reference_key(Path(o)): Path(o) for o in others}
    return tuple(by_digest[d] for d in sorted(by_digest) if d != own)


def _cast_key(others: tuple[Path, ...]) -> list[str]:
    """What a fit or a choice adds to its cache key for the rest of the cast (`cast_others`): the cast
    weight and the clips' digests, nothing when alone."""
    from tools.speech.search import CAST_WEIGHT

    return [f"cast {CAST_WEIGHT}"] + [reference_key(o) for o in others] if others else []


def channel_key(reference: Path, others: tuple[Path, ...]) -> list[str]:
    """What a fit or a choice adds to its cache key for the channels its clips were recorded through
    (`tools.hearing.speaker.channel_rate`): nothing when every clip fills the encoders' band."""
    rates = [channel_rate(p) for p in (reference, *others)]
    return ["channels"] + [str(r) for r in rates] if any(r is not None for r in rates) else []


def fitted_transform(reference: Path, transcript: str, others: Sequence[Path] = (), base: str = "joe") -> WorldTransform:
    """The transform fitted from base voice `base` to one reference clip (see the module docstring),
    kept away from the `others` (the rest of the cast's reference clips), cached by all their digests."""
    raw_synthesize, sr, tag = base_voice(base)
    others = cast_others(reference, others)
    key = _fit_key(reference, transcript, others, sr, tag)
    return memoised(_MEMO, key, lambda: _fit(reference, transcript, others, raw_synthesize, sr,
                                              voice_cache_file(f"{key}.fit.json")))


def _fit_key(reference: Path, transcript: str, others: tuple[Path, ...], sr: int, tag: str) -> str:
    return reference_key(Path(reference), transcript, str(ANALYSIS_VERSION), str(sr), tag, *_cast_key(others),
                         *channel_key(Path(reference), others), FITTING_JUDGE)


def fit_made(reference: Path, transcript: str, others: Sequence[Path], base: str) -> bool:
    """Whether `fitted_transform` from `base` is made already (this process, or the cache)."""
    _, sr, tag = base_voice(base)
    key = _fit_key(reference, transcript, cast_others(Path(reference), others), sr, tag)
    return key in _MEMO or shared_fits.entry(voice_cache_file(f"{key}.fit.json"), Path(reference)).is_file()


def _fit(reference: Path, transcript: str, others: tuple[Path, ...], raw_synthesize, sr: int,
         cache: Path) -> WorldTransform:
    """`fitted_transform`'s transform: read from `cache`, else fitted and written there."""
    from tools.speech.search import refine_by_similarity

    tf = read_cached(cache, WorldTransform, "voice fit", reference)
    if tf is None:
        # check_stopped between steps (each about a second): a Ctrl-C ends the fit at the next (`tools.base`)
        ref = analyse_reference(Path(reference), sr)
        sentences = text_norm.prepare_line(transcript, where=f"transcript of {reference}")
        probe = raw_synthesize(sentences, length_scale=1.0)
        check_stopped()
        probe_active = float(active_mask(probe.audio, sr).sum() * 0.01)
        length_scale = float(np.clip(ref.active_s / max(probe_active, 0.1), 0.6, 1.8))
        src = raw_synthesize(sentences, length_scale=length_scale)
        src_analysis = analyse_synthetic(src.audio, sr)
        check_stopped()
        ref_analysis = reference_analysis(Path(reference), sr)
        n_use = max(ref.usable_bands, 4)
        warp = fit_warp(src_analysis, ref_analysis, sr, n_use)
        tf = fit_transform(ref, profile_of(src.audio, sr, analysis=src_analysis), length_scale, warp=warp)
        check_stopped()
        # A clip recorded below the working rate (telephone 8 kHz, 16 kHz) is compared on its own band only.
        limited = ref.usable_bands < usable_band_count(sr, len(ref.mean_log_sp), sr)
        tf = _fit_classes(tf, src_analysis, ref_analysis, sr, ref.usable_bands if limited else None)
        book = reference_book(Path(reference), sr, n_use)
        tf = replace(tf, frames=book, frames_bands=n_use, frames_mix=1.0)  # the search sets the mix
        check_stopped()
        # Scored on other words than the transcript, so the search keeps what generalises to new lines.
        held_text = text_norm.prepare_line(HELD_OUT_TEXT)
        held = raw_synthesize(held_text, length_scale=length_scale).audio
        check_stopped()
        tf = refine_by_similarity(Path(reference), held, analyse_synthetic(held, sr), sr, tf, text=" ".join(held_text),
                                  others=others)
        write_json(cache, asdict(tf))
    return tf


@dataclass(frozen=True)
class FitChoice:
    """The base voice chosen for one reference; each candidate's points (the other candidates whose cast
    score it beats, summed over the CHOICE_JUDGES; None for a base set aside, as every base is when all
    are); each judge's cast score and mean margin (own similarity less the closest other's) of each
    base's fitted speech of SCORE_SENTENCES."""

    base: str
    scores: dict = field(default_factory=dict)
    by_judge: dict = field(default_factory=dict)
    margins: dict = field(default_factory=dict)


def chosen_fit(reference: Path, transcript: str, others: Sequence[Path] = ()) -> tuple[str, WorldTransform]:
    """(base, its fitted transform) for one reference clip: the base whose fitted voice the fitting
    judge hears closer to the reference and further from the rest of the cast (module docstring, 5),
    among joe, heart and the English Kokoro packs whose raw voice it hears closest (`packs.pack_candidates`),
    cached by the same digests as the fits."""
    reference = Path(reference)
    others = cast_others(reference, others)
    key = _choice_key(reference, transcript, others)

    def make() -> tuple[str, WorldTransform]:
        cache = voice_cache_file(f"{key}.base.json")
        choice = read_cached(cache, FitChoice, "base choice", reference)
        if choice is None:
            choice = _choose(reference, transcript, others)
            write_json(cache, asdict(choice))
        return choice.base, fitted_transform(reference, transcript, others, choice.base)

    return memoised(_CHOICES, key, make)


def _choice_key(reference: Path, transcript: str, others: tuple[Path, ...]) -> str:
    return reference_key(reference, transcript, "base choice", CHOICE_VERSION, *CHOICE_JUDGES,
                         MODELS["campplus"].sha256, str(ANALYSIS_VERSION), *BASES,
                         f"{PACK_CANDIDATES} of, one more on a tie {PACK_TIE}", *EN_PACKS,
                         MODELS["kokoro_en_voices"].sha256,
                         *_cast_key(others), *channel_key(reference, others), FITTING_JUDGE)


def choice_made(reference: Path, transcript: str, others: Sequence[Path] = ()) -> FitChoice | None:
    """The choice `chosen_fit` made for this reference and cast (its cache entry: every candidate's score),
    or None while it is still to be made."""
    key = _choice_key(Path(reference), transcript, cast_others(Path(reference), others))
    return read_cached(voice_cache_file(f"{key}.base.json"), FitChoice, "base choice", Path(reference))


def _choose(reference: Path, transcript: str, others: tuple[Path, ...]) -> FitChoice:
    """`chosen_fit`'s choice, made: every candidate base fitted and scored (module docstring, 5)."""
    from tools.speech.search import cast_score, fitting_listener

    listeners = [fitting_listener(reference, others), *(speaker.Listener([reference, *others], judge)
                                                          for judge in CHOICE_JUDGES[1:])]

    def heard(base: str) -> list[tuple[float, float]]:
        """(cast score, margin) of the base's fitted speech by each choice judge, means over the sentences."""
        audios, sr = fitted_speech(base, fitted_transform(reference, transcript, others, base), SCORE_SENTENCES)
        check_stopped()
        sims = [[judge.similarities(x, sr) for x in audios] for judge in listeners]
        return [(round(float(np.mean([cast_score(s) for s in by])), 4),
                 round(float(np.mean([s[0] - max(s[1:], default=-1.0) for s in by])), 4)) for by in sims]

    candidates = (*BASES, *packs.pack_candidates(listeners[0]))
    by_base = dict(zip(candidates, map_in_context(heard, candidates, FIT_THREADS, "voice-fit")))  # Ctrl-C reaches it
    by_judge = {j: {b: h[i][0] for b, h in by_base.items()} for i, j in enumerate(CHOICE_JUDGES)}
    margins = {j: {b: h[i][1] for b, h in by_base.items()} for i, j in enumerate(CHOICE_JUDGES)}
    kept = [b for b in candidates if any(m[b] >= 0 for m in margins.values())]
    points = {b: sum(sum(cast[o] < cast[b] for o in kept) for cast in by_judge.values()) if b in kept else None
              for b in candidates}
    fitting_judge = by_judge[CHOICE_JUDGES[0]]
    # the earlier base on a tie: joe first
    base = max(kept, key=points.get) if kept else max(candidates, key=fitting_judge.get)
    choice = FitChoice(base, points, by_judge, margins)
    LOG.info("base voice for %s: %s (points %s; cast scores %s)", reference.name, base, points, by_judge)
    return choice


def _fit_classes(tf: WorldTransform, src_analysis, ref_analysis, sr: int, usable_bands: int | None) -> WorldTransform:
    """Add the envelope mapping by sound class (tools.speech.classes) on the formant-warped source."""
    from tools.speech.classes import fit_classes

    src_db = 10 * np.log10(warp_bins(src_analysis[1], tf.warp) + 1e-16)
    ref_db = 10 * np.log10(ref_analysis[1] + 1e-16)
    cent, corr = fit_classes(src_db, ref_db, sr, usable_bands=usable_bands)
    return replace(tf, class_centroids=cent, class_corr=corr)
