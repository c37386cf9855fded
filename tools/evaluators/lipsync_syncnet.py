"""`lipsync_syncnet` evaluator: the published SyncNet lip-sync scores (Sync-C / Sync-D) from local weights.

This is the network of Chung & Zisserman, "Out of time: automated lip sync in the wild" (ACCV
workshops 2016), as released in `joonson/syncnet_python` (`syncnet_v2.model`) and used by the
Wav2Lip family of papers for LSE-C/LSE-D. Facts taken from that repository (the code here is our own):

- audio tower: 13 MFCCs x 20 frames (0.2 s at 100 Hz, the `python_speech_features.mfcc` defaults
  on 16 kHz audio at int16 scale), 2-D convolutions down to 512 channels, then 512 -> 512 -> 1024;
- lip tower: 5 consecutive 224x224 face crops in colour (BGR, raw 0..255, no normalisation), a
  3-D convolution over the 5 frames, then 2-D convolutions down to 512, then 512 -> 512 -> 1024;
- face crops as in its `run_pipeline.crop_video`: half-size = max(box w, h) / 2, box centre and size
  median-filtered over 13 frames, the crop extends 0.4 half-sizes sideways and 0.8 below the box,
  padding is grey 110;
- one embedding per video frame t (frames t..t+4, MFCC frames 4t..4t+19); for offsets -15..+15 the
  mean over t of the Euclidean distance between video t and audio t - offset (audio features
  zero-padded at the ends); `av_offset` is the argmin (positive: the mouth moves after the sound,
  the convention of `tools.evaluators.signals`), `min_dist` the minimum (Sync-D) and `confidence` the
  median minus the minimum (Sync-C).

Weights are read ONLY from a safetensors file named by `COMPOSER_SYNCNET_WEIGHTS`; the released
`syncnet_v2.model` is a pickle and is never unpickled here. Convert it once on your own machine
(inside a syncnet_python checkout after `sh download_model.sh`):

    python -c "import torch; from safetensors.torch import save_file; \
s = torch.load('data/syncnet_v2.model', map_location='cpu', weights_only=True); \
save_file({k: v.contiguous() for k, v in s.items()}, 'syncnet_v2.safetensors')"
    export COMPOSER_SYNCNET_WEIGHTS=$PWD/syncnet_v2.safetensors

(`weights_only=True` loads a plain state dict without running pickled code; the file holds the
parameters of the model class `S` under names like `netcnnlip.0.weight`.)

Each visible speaker is scored on its longest run of visible frames in masks.npz, against its own
lines (`tools.evaluators.signals.speaker_stem`), so a neighbour's line never counts. Scores:
`lipsync.offset.syncnet[<id>]` (|av_offset| in frames, lower is better; the family and prefix the
retry policy re-aligns by) and `lipsync.confidence.syncnet[<id>]`; details carry `min_dist` and the
31-entry distance curve.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from tools.base import AttemptInput, Score, ToolError
from tools.evaluators.signals import speaker_stem
from tools.evaluators.thresholds import thresholds

ENV = "COMPOSER_SYNCNET_WEIGHTS"
SYNC_FPS = 25  # the network was trained on 25 fps video ...
SYNC_SR = 16000  # ... and 16 kHz audio: 640 samples and 4 MFCC frames per video frame
VSHIFT = 15  # offsets searched either way (syncnet_python's --vshift default)
WINDOW = 5  # video frames per embedding (0.2 s)
MFCC_PER_FRAME, MFCC_WINDOW = 4, 20
CROP, CROP_SCALE, CROP_PAD = 224, 0.40, 110  # run_pipeline.py: output size, --crop_scale, pad grey
BOX_SMOOTH = 13  # median filter over the face track (run_pipeline.py)
BATCH = 20  # windows per forward pass (syncnet_python's --batch_size): bounds memory, not results
MIN_TRACK_FRAMES = BOX_SMOOTH  # a shorter run cannot fill the box filter, and says little about sync

# Published defaults for the real weights. Offset: within one frame (40 ms), inside the ITU-R
# BT.1359 detectability window (+45 ms audio early / -125 ms audio late). Confidence: 3 is the cut
# commonly used to call a face track in sync when filtering talking-head data with syncnet_python;
# for scale, its README demo clip scores 10.0 (min dist 5.35, offset 3) and Wav2Lip (Prajwal et
# al. 2020, table 1) reports real LRS2 videos at LSE-C 7.84 / LSE-D 6.74. Random or other weights
# need their own calibration (`lipsync_syncnet.*` keys in tools/evaluators/thresholds.json override these).
OFFSET_MAX = 1.0
CONFIDENCE_MIN = 3.0


# ------------------------------------------------------------------------------------------ model


def _conv_bn_relu(conv: nn.Module, bn: type, channels: int) -> list[nn.Module]:
    return [conv, bn(channels), nn.ReLU(inplace=True)]


def _head(embed: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, embed))


class SyncNetModel(nn.Module):
    """syncnet_python's `S`: the same layers at the same Sequential indices, so its state dict
    (`netcnnaud.*`, `netfcaud.*`, `netcnnlip.*`, `netfclip.*`) loads by name."""

    def __init__(self, embed: int = 1024):
        super().__init__()
        c2, b2, c3, b3 = nn.Conv2d, nn.BatchNorm2d, nn.Conv3d, nn.BatchNorm3d
        self.netcnnaud = nn.Sequential(  # (N, 1, 13, 20) MFCC -> (N, 512, 1, 1)
            *_conv_bn_relu(c2(1, 64, 3, padding=1), b2, 64), nn.MaxPool2d(1, 1),
            *_conv_bn_relu(c2(64, 192, 3, padding=1), b2, 192), nn.MaxPool2d(3, stride=(1, 2)),
            *_conv_bn_relu(c2(192, 384, 3, padding=1), b2, 384),
            *_conv_bn_relu(c2(384, 256, 3, padding=1), b2, 256),
            *_conv_bn_relu(c2(256, 256, 3, padding=1), b2, 256), nn.MaxPool2d(3, stride=2),
            *_conv_bn_relu(c2(256, 512, (5, 4)), b2, 512),
        )
        self.netfcaud = _head(embed)
        self.netfclip = _head(embed)
        self.netcnnlip = nn.Sequential(  # (N, 3, 5, 224, 224) BGR -> (N, 512, 1, 1, 1)
            *_conv_bn_relu(c3(3, 96, (5, 7, 7), stride=(1, 2, 2)), b3, 96),
            nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2)),
            *_conv_bn_relu(c3(96, 256, (1, 5, 5), stride=(1, 2, 2), padding=(0, 1, 1)), b3, 256),
            nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),
            *_conv_bn_relu(c3(256, 256, (1, 3, 3), padding=(0, 1, 1)), b3, 256),
            *_conv_bn_relu(c3(256, 256, (1, 3, 3), padding=(0, 1, 1)), b3, 256),
            *_conv_bn_relu(c3(256, 256, (1, 3, 3), padding=(0, 1, 1)), b3, 256),
            nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2)),
            *_conv_bn_relu(c3(256, 512, (1, 6, 6)), b3, 512),
        )

    def forward_aud(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, 13, 20) MFCC windows -> (N, embed)."""
        return self.netfcaud(self.netcnnaud(x).flatten(1))

    def forward_lip(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, 5, 224, 224) BGR 0..255 windows -> (N, embed)."""
        return self.netfclip(self.netcnnlip(x).flatten(1))


_LOCK = threading.Lock()
_LOADED: dict[tuple, SyncNetModel] = {}


def weights_path() -> Path:
    """The safetensors file named by $COMPOSER_SYNCNET_WEIGHTS, checked to exist."""
    raw = os.environ.get(ENV)
    fix = (f"convert syncnet_v2.model to safetensors once (see the tools/eval_syncnet.py docstring) "
           f"and set {ENV} to the .safetensors file")
    if not raw:
        raise ToolError(f"no SyncNet weights configured ({ENV} is not set)", fix)
    path = Path(raw).expanduser()
    if not path.is_file():
        raise ToolError(f"{path} ({ENV}) does not exist", fix)
    return path


def load_syncnet(path: Path) -> SyncNetModel:
    """SyncNet in eval mode on the CPU from a safetensors state dict, checked key by key; cached."""
    path = Path(path)
    key = (str(path), path.stat().st_mtime_ns)
    with _LOCK:
        if key not in _LOADED:
            _LOADED[key] = _build(path)
        return _LOADED[key]


def _build(path: Path) -> SyncNetModel:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = load_file(str(path), device="cpu")  # never unpickles: a pickle fails its header check
    except (SafetensorError, OSError, ValueError) as exc:
        raise ToolError(f"{path} ({ENV}) is not a safetensors file ({exc}); pickled torch files "
                        f"(.model/.pt) are never loaded",
                        "convert it once with the snippet in the tools/eval_syncnet.py docstring") from exc
    for prefix in ("__S__.", "module."):  # SyncNetInstance / DataParallel wrappers
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    model = SyncNetModel()
    expected = model.state_dict()
    # Checkpoints from 2017-era torch have no BatchNorm `num_batches_tracked`; eval mode never reads it.
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    wrong = [f"{k} {tuple(state[k].shape)} (want {tuple(v.shape)})" for k, v in expected.items()
             if k in state and tuple(state[k].shape) != tuple(v.shape)]
    if missing or unexpected or wrong:
        parts = [f"{name}: {', '.join(items[:4])}{' ...' if len(items) > 4 else ''}"
                 for name, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong))
                 if items]
        raise ToolError(f"{path} ({ENV}) does not hold a syncnet_python SyncNet state dict; " + "; ".join(parts),
                        "convert the state dict of syncnet_v2.model (class S, names like netcnnlip.0.weight) "
                        "as in the tools/eval_syncnet.py docstring")
    model.load_state_dict(state, strict=False)
    return model.eval()


# ------------------------------------------------------------------------------------------ audio


def _mel_filters(nfilt: int, nfft: int, sr: int) -> np.ndarray:
    """Triangular mel filters on FFT bins rounded down, as python_speech_features builds them
    (librosa's Slaney/HTK banks differ slightly, and the weights were trained on these)."""
    mel = np.linspace(0.0, 2595.0 * np.log10(1.0 + (sr / 2) / 700.0), nfilt + 2)
    bins = np.floor((nfft + 1) * (700.0 * (10.0 ** (mel / 2595.0) - 1.0)) / sr).astype(int)
    fb = np.zeros((nfilt, nfft // 2 + 1))
    for j in range(nfilt):
        lo, mid, hi = bins[j], bins[j + 1], bins[j + 2]
        fb[j, lo:mid] = (np.arange(lo, mid) - lo) / max(mid - lo, 1)
        fb[j, mid:hi] = (hi - np.arange(mid, hi)) / max(hi - mid, 1)
    return fb


def syncnet_mfcc(wav: np.ndarray, sr: int = SYNC_SR) -> np.ndarray:
    """(13, T) MFCCs at 100 Hz of float audio in [-1, 1], with the math of syncnet_python's
    `python_speech_features.mfcc(audio, 16000)` on int16 samples: 25 ms rectangular frames every
    10 ms (end zero-padded), pre-emphasis 0.97, 512-point power spectrum, 26 mel filters, log,
    orthonormal DCT-II, lifter 22, coefficient 0 replaced by the log frame energy."""
    from scipy.fft import dct

    x = np.clip(np.round(np.asarray(wav, np.float64) * 32768.0), -32768, 32767)  # wavfile.read's int16 scale
    x = np.append(x[:1], x[1:] - 0.97 * x[:-1])
    flen, step, nfft = int(round(0.025 * sr)), int(round(0.01 * sr)), 512
    n = 1 if len(x) <= flen else 1 + int(np.ceil((len(x) - flen) / step))
    x = np.concatenate([x, np.zeros((n - 1) * step + flen - len(x))])
    frames = x[np.arange(flen)[None, :] + step * np.arange(n)[:, None]]
    power = np.abs(np.fft.rfft(frames, nfft)) ** 2 / nfft
    tiny = np.finfo(float).eps
    energy = np.where(power.sum(1) == 0, tiny, power.sum(1))
    feat = power @ _mel_filters(26, nfft, sr).T
    feat = dct(np.log(np.where(feat == 0, tiny, feat)), type=2, axis=1, norm="ortho")[:, :13]
    feat *= 1.0 + 11.0 * np.sin(np.pi * np.arange(13) / 22.0)  # lifter L=22: 1 + L/2 sin(pi n / L)
    feat[:, 0] = np.log(energy)
    return feat.T.astype(np.float32)


# ------------------------------------------------------------------------------------------ video


def longest_run(visible: np.ndarray) -> tuple[int, int]:
    """[start, end) of the longest run of True; (0, 0) when none."""
    best, start = (0, 0), None
    for t, v in enumerate(list(visible) + [False]):
        if v and start is None:
            start = t
        elif not v and start is not None:
            best = max(best, (start, t), key=lambda r: r[1] - r[0])
            start = None
    return best


def crop_plan(boxes: np.ndarray) -> np.ndarray:
    """(T, 3) crop centre x, y and half-size per frame from (T, 4) x0, y0, x1, y1 face boxes,
    median-filtered over 13 frames as syncnet_python's pipeline does (scipy zero-pads the ends)."""
    from scipy.signal import medfilt

    s = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) / 2.0
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2.0, (boxes[:, 1] + boxes[:, 3]) / 2.0
    return np.stack([medfilt(v.astype(np.float64), BOX_SMOOTH) for v in (cx, cy, s)], axis=1)


def face_crop(rgb: np.ndarray, cx: float, cy: float, bs: float) -> np.ndarray:
    """224x224 BGR uint8 crop: the face box's top edge to 0.8 half-sizes below its bottom, 1.4
    half-sizes either side of its centre, grey 110 outside the frame."""
    bsi = int(bs * (1 + 2 * CROP_SCALE))
    padded = cv2.copyMakeBorder(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), bsi, bsi, bsi, bsi, cv2.BORDER_CONSTANT,
                                value=(CROP_PAD,) * 3)
    my, mx = cy + bsi, cx + bsi
    face = padded[int(my - bs):int(my + bs * (1 + 2 * CROP_SCALE)),
                  int(mx - bs * (1 + CROP_SCALE)):int(mx + bs * (1 + CROP_SCALE))]
    if face.shape[0] < 1 or face.shape[1] < 1:  # a degenerate box: nothing to see
        return np.full((CROP, CROP, 3), CROP_PAD, np.uint8)
    return cv2.resize(face, (CROP, CROP))


def face_tracks(clip_path: Path, boxes: np.ndarray, fps: int,
                runs: dict[int, tuple[int, int]]) -> dict[int, np.ndarray]:
    """Decode the clip once; per character index k, (T, 224, 224, 3) crops over its run of
    25 fps frames (`runs[k]`). `boxes` is (F25, K, 4) on the 25 fps timeline."""
    from tools.media.video import read_frames

    plans = {k: crop_plan(boxes[a:b, k]) for k, (a, b) in runs.items()}
    crops = {k: np.zeros((b - a, CROP, CROP, 3), np.uint8) for k, (a, b) in runs.items()}
    wanted: dict[int, list[int]] = {}  # source frame -> 25 fps frames that show it
    for t in range(len(boxes)):
        wanted.setdefault(int(t * fps / SYNC_FPS), []).append(t)
    for src, rgb in enumerate(read_frames(clip_path)):
        for t in wanted.get(src, []):
            for k, (a, b) in runs.items():
                if a <= t < b:
                    cx, cy, bs = plans[k][t - a]
                    crops[k][t - a] = face_crop(rgb, cx, cy, bs)
    return crops


# ------------------------------------------------------------------------------------------ scoring


@torch.no_grad()
def sync_curve(model: SyncNetModel, crops: np.ndarray, wav: np.ndarray) -> dict:
    """SyncNet's offset search for one face track: `crops` (T, 224, 224, 3) BGR uint8 at 25 fps,
    `wav` the same span's audio at 16 kHz. Returns av_offset, min_dist, confidence, and `curve`:
    the mean distance for offsets -15..+15 (curve[i] is offset i - 15)."""
    n = min(len(crops), len(wav) * SYNC_FPS // SYNC_SR) - WINDOW  # as syncnet_python: min_length - 5
    mfcc = syncnet_mfcc(wav)
    if n < 1:
        raise ToolError(f"a face track of {len(crops)} frames is too short for SyncNet", "score longer shots")
    video, audio = [], []
    for i in range(0, n, BATCH):
        ts = range(i, min(n, i + BATCH))
        lips = np.stack([crops[t:t + WINDOW] for t in ts])  # (B, 5, H, W, 3)
        lips = torch.from_numpy(lips).permute(0, 4, 1, 2, 3).float()
        mf = np.stack([mfcc[:, t * MFCC_PER_FRAME:t * MFCC_PER_FRAME + MFCC_WINDOW] for t in ts])[:, None]
        video.append(model.forward_lip(lips))
        audio.append(model.forward_aud(torch.from_numpy(mf).float()))
    v, a = torch.cat(video), torch.cat(audio)
    a = torch.nn.functional.pad(a, (0, 0, VSHIFT, VSHIFT))  # zero features beyond the ends, as published
    win = 2 * VSHIFT + 1
    # dists[t, j]: video t against audio t + j - VSHIFT, i.e. offset VSHIFT - j
    dists = torch.stack([torch.nn.functional.pairwise_distance(v[t:t + 1].expand(win, -1), a[t:t + win])
                         for t in range(n)])
    mdist = dists.mean(0)
    j = int(torch.argmin(mdist))
    min_dist = float(mdist[j])
    curve = mdist.flip(0).tolist()  # index i <-> offset i - VSHIFT
    return {"av_offset": VSHIFT - j, "min_dist": min_dist,
            "confidence": float(torch.median(mdist)) - min_dist,
            "curve": [round(d, 4) for d in curve], "windows": n}


class SyncNetEvaluator:
    """Offset and confidence of each visible speaker's face track under the real SyncNet."""

    name = "lipsync_syncnet"
    version = "1"

    def __init__(self, path: Path, offset_threshold: float = OFFSET_MAX, confidence_threshold: float = CONFIDENCE_MIN):
        self.path = Path(path)
        self.offset_threshold = offset_threshold
        self.confidence_threshold = confidence_threshold
        self.thresholds = {"lipsync.offset.syncnet": offset_threshold,
                           "lipsync.confidence.syncnet": confidence_threshold}

    def evaluate(self, attempt: AttemptInput) -> list[Score]:
        """Score every speaker visible for at least MIN_TRACK_FRAMES consecutive frames."""
        speakers = list(dict.fromkeys(line.speaker for line in attempt.audio.lines))
        if not speakers:
            return []
        labels, boxes, runs = speaker_runs(attempt, speakers)
        if not runs:
            return []
        model = load_syncnet(self.path)
        fps = int(attempt.video.fps or SYNC_FPS)
        crops = face_tracks(attempt.video.clip_path, boxes, fps, runs)
        scores: list[Score] = []
        for k, (a, b) in runs.items():
            cid = labels[k]
            stem = speaker_stem(attempt.audio, cid, len(boxes) / SYNC_FPS, SYNC_SR)
            seg = stem[a * SYNC_SR // SYNC_FPS:b * SYNC_SR // SYNC_FPS]  # the track's span, as crop_video cuts it
            stats = sync_curve(model, crops[k], seg)
            stats.update(track=[a, b], fps=SYNC_FPS)
            offset = float(abs(stats["av_offset"]))  # in 25 fps frames, what the threshold means
            if fps != SYNC_FPS:  # the retry policy re-aligns in the clip's own frames
                stats["av_offset_25fps"] = stats["av_offset"]
                stats["av_offset"] = int(round(stats["av_offset"] * fps / SYNC_FPS))
            scores.append(Score(f"lipsync.offset.syncnet[{cid}]", offset, self.offset_threshold,
                                higher_is_better=False, details=stats))
            scores.append(Score(f"lipsync.confidence.syncnet[{cid}]", stats["confidence"], self.confidence_threshold,
                                details={k2: v for k2, v in stats.items() if k2 != "curve"}))
        return scores


def speaker_runs(attempt: AttemptInput,
                 speakers: list[str]) -> tuple[list[str], np.ndarray, dict[int, tuple[int, int]]]:
    """masks.npz labels, its face boxes resampled to 25 fps (nearest earlier frame; a no-op at 25
    fps), and per visible speaker's mask index its longest visible run [a, b) of 25 fps frames."""
    from tools.media.masks import load_masks

    masks = load_masks(attempt.video.masks_path)
    labels = [str(x) for x in masks["labels"]]
    fps = int(attempt.video.fps or SYNC_FPS)
    boxes = masks["face_boxes"][:attempt.video.frames or None]
    src = np.minimum((np.arange(int(len(boxes) * SYNC_FPS / fps)) * fps / SYNC_FPS).astype(int), len(boxes) - 1)
    boxes = boxes[src]
    runs = {}
    for cid in speakers:
        if cid in labels:
            k = labels.index(cid)
            a, b = longest_run(np.all(np.isfinite(boxes[:, k]), axis=1))
            if b - a >= MIN_TRACK_FRAMES:
                runs[k] = (a, b)
    return labels, boxes, runs


def create() -> SyncNetEvaluator:
    """Registry factory: weights from $COMPOSER_SYNCNET_WEIGHTS (checked now, so a bad file fails
    before any rendering); thresholds from tools/evaluators/thresholds.json `lipsync_syncnet.*`, else the
    published defaults above."""
    path = weights_path()
    load_syncnet(path)
    t = thresholds()
    return SyncNetEvaluator(path, t.get("lipsync_syncnet.offset", OFFSET_MAX),
                            t.get("lipsync_syncnet.confidence", CONFIDENCE_MIN))
