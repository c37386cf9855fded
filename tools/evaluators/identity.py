"""`identity` evaluator: does each character's face in the shot look like their reference image?

Method (offline, no weights): the reference face (the cast's `face_box` or the detected face, the
same box the renderers use) and the face crops sampled over the shot inside the character's face
box and mask are aligned by their boxes, resampled to 64x64 gray and histogram-equalised; each is
described by uniform LBP histograms on a 4x4 grid (local texture, unchanged by the monotonic
lighting and tint changes a scene applies) concatenated with HOG (the layout of eyes, nose and
mouth). Similarity is the cosine of the square-rooted descriptors (Hellinger). This separates
different faces well as long as the crops are aligned, which the masks' face boxes provide; it is
not a face-recognition network, so it judges "same picture of the same face", which is what a
renderer conditioned on reference images must deliver.

Per visible character two scores: `identity[<id>]`, the median similarity to their own reference,
and `identity.margin[<id>]`, that minus the best similarity to another cast member's reference (a
face that looks more like someone else fails).
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from orchestrator.schema.cast import Cast, CharacterSpec
from tools.base import AttemptInput, Score
from tools.evaluators.signals import FACE_SIZE, attempt_signals
from tools.evaluators.thresholds import thresholds

GRID = 4
LBP_POINTS, LBP_RADIUS = 8, 1


def describe(gray_face: np.ndarray) -> np.ndarray:
    """Unit-length LBP-grid + HOG descriptor of a face crop (any size, gray or RGB)."""
    from skimage.feature import hog, local_binary_pattern

    g = gray_face if gray_face.ndim == 2 else cv2.cvtColor(gray_face, cv2.COLOR_RGB2GRAY)
    g = cv2.equalizeHist(cv2.resize(g.astype(np.uint8), (FACE_SIZE, FACE_SIZE), interpolation=cv2.INTER_AREA))
    lbp = local_binary_pattern(g, LBP_POINTS, LBP_RADIUS, method="uniform")
    n_bins = LBP_POINTS + 2
    cell = FACE_SIZE // GRID
    hists = []
    for i in range(GRID):
        for j in range(GRID):
            block = lbp[i * cell:(i + 1) * cell, j * cell:(j + 1) * cell]
            h, _ = np.histogram(block, bins=n_bins, range=(0, n_bins))
            hists.append(h / max(h.sum(), 1))
    lbp_vec = np.sqrt(np.concatenate(hists))
    hog_vec = np.sqrt(hog(g, orientations=9, pixels_per_cell=(8, 8), cells_per_block=(2, 2), feature_vector=True))
    parts = [v / (np.linalg.norm(v) + 1e-9) for v in (lbp_vec, hog_vec)]
    out = np.concatenate(parts)
    return (out / (np.linalg.norm(out) + 1e-9)).astype(np.float32)


def reference_face(character: CharacterSpec) -> np.ndarray:
    """The character's first reference image cut to its face box, as gray uint8."""
    return _reference_face(str(character.images[0]), Path(character.images[0]).stat().st_mtime_ns,
                           tuple(character.face_box) if character.face_box else None)


@lru_cache(maxsize=32)
def _reference_face(path: str, mtime: int, face_box: Optional[tuple]) -> np.ndarray:
    from tools.faces.portraits import load_portrait

    p = load_portrait(Path(path), face_box)
    x, y, w, h = (int(round(v)) for v in p.face)
    return cv2.cvtColor(np.ascontiguousarray(p.rgb[y:y + h, x:x + w]), cv2.COLOR_RGB2GRAY)


def face_similarities(crops: list[np.ndarray], cast: Cast) -> dict[str, float]:
    """Median similarity of the crops to every cast member's reference face."""
    descs = np.stack([describe(c) for c in crops])
    return {c.id: float(np.median(descs @ describe(reference_face(c)))) for c in cast.characters}


class IdentityEvaluator:
    """Per visible character: similarity to the own reference and margin over the others."""

    name = "identity"
    version = "2"  # joins the score cache key: bump when the measure changes

    def __init__(self, threshold: float, margin_threshold: float):
        self.threshold = threshold
        self.margin_threshold = margin_threshold
        self.thresholds = {"identity": threshold, "identity.margin": margin_threshold}

    def evaluate(self, attempt: AttemptInput) -> list[Score]:
        """Score every character of the shot whose face was seen in the sampled frames."""
        if not attempt.shot.characters:
            return []
        sig = attempt_signals(attempt)
        scores: list[Score] = []
        shot = attempt.shot
        focus = shot.focus or (shot.speech[0].speaker if shot.speech else None)
        for cid in shot.characters:
            if shot.framing == "over-shoulder" and focus and cid != focus:
                # The listener in the foreground is deliberately cropped, blurred and in shadow
                # (a shoulder, not a portrait): judging their likeness would only measure that.
                continue
            crops = sig.faces.get(cid) or []
            if not crops:
                continue
            sims = face_similarities(crops, attempt.cast)
            own = sims[cid]
            details = {"similarities": {k: round(v, 4) for k, v in sims.items()}, "crops": len(crops)}
            scores.append(Score(f"identity[{cid}]", own, self.threshold, details=details))
            others = {k: v for k, v in sims.items() if k != cid}
            if others:
                closest = max(others, key=others.get)
                scores.append(Score(f"identity.margin[{cid}]", own - others[closest], self.margin_threshold,
                                    details=dict(details, closest_other=closest)))
        return scores


def create() -> IdentityEvaluator:
    """Registry factory with the calibrated thresholds."""
    t = thresholds()
    return IdentityEvaluator(t["identity"], t["identity.margin"])
