"""Staging: where each character's face sits in the frame, and how big, for each framing.

Screen direction comes from the scene: `SceneInfo.characters` is the left-to-right order for the
whole scene, so a character keeps their side across reverse shots. Sizes are face heights as a
fraction of the frame height (a close-up's face is about 60% of it).
"""
from __future__ import annotations

from dataclasses import dataclass

from orchestrator.schema.plan import SceneInfo, Shot


@dataclass
class Placement:
    """One visible character: face centre and face height in frame pixels, drawing order."""

    character: str
    face_cx: float
    face_cy: float
    face_h: float
    z: int  # drawn in increasing z
    foreground: bool = False  # an over-the-shoulder listener: large, cut by the frame edge


def focus_of(shot: Shot) -> str:
    """The character a single is about: the plan's focus, else the first speaker, else the first."""
    if shot.focus in shot.characters:
        return shot.focus
    for seg in shot.speech:
        if seg.speaker in shot.characters:
            return seg.speaker
    return shot.characters[0]


def side_of(character: str, scene: SceneInfo) -> float:
    """-1 (screen left) .. +1 (screen right) from the scene's left-to-right order."""
    order = list(scene.characters)
    if character not in order:
        order.append(character)
    n = len(order)
    return 0.0 if n == 1 else 2.0 * order.index(character) / (n - 1) - 1.0


def _spread(chars: list[str], lo: float, hi: float, width: int) -> list[float]:
    n = len(chars)
    if n == 1:
        return [width * (lo + hi) / 2]
    return [width * (lo + (hi - lo) * i / (n - 1)) for i in range(n)]


def stage(shot: Shot, scene: SceneInfo, width: int, height: int) -> list[Placement]:
    """Placements of the characters visible in `shot`, in drawing order."""
    if not shot.characters:
        return []
    order = {c: side_of(c, scene) for c in shot.characters}
    chars = sorted(shot.characters, key=lambda c: order[c])
    focus = focus_of(shot)
    n = len(chars)
    framing = shot.framing
    if framing == "medium" and n > 1:
        framing = "two-shot"  # a medium with company is staged as a tight group
    if framing == "wide":
        fh = height * (0.17 if n <= 2 else 0.14)
        xs = _spread(chars, 0.22 if n > 2 else 0.3, 0.78 if n > 2 else 0.7, width)
        return [Placement(c, x, height * 0.40, fh, i) for i, (c, x) in enumerate(zip(chars, xs))]
    if framing == "two-shot":
        fh = height * (0.26 if n <= 2 else 0.2)
        xs = _spread(chars, 0.3 if n <= 2 else 0.2, 0.7 if n <= 2 else 0.8, width)
        return [Placement(c, x, height * 0.40, fh, i) for i, (c, x) in enumerate(zip(chars, xs))]
    lean = order[focus]  # singles sit slightly toward the character's own side of the scene
    if framing == "medium":
        return [Placement(focus, width * (0.5 + 0.08 * lean), height * 0.40, height * 0.32, 0)]
    if framing == "close-up":
        return [Placement(focus, width * (0.5 + 0.05 * lean), height * 0.46, height * 0.60, 0)]
    # over-shoulder: the focus faces camera on their side, the nearest other character is a large
    # foreground shape on the opposite edge, partly outside the frame.
    others = [c for c in chars if c != focus]
    fx = 0.5 + 0.14 * (lean if lean else 1.0)
    placements = [Placement(focus, width * fx, height * 0.40, height * 0.30, 0)]
    if others:
        listener = min(others, key=lambda c: abs(order[c] - order[focus]))
        lx = 0.04 if fx > 0.5 else 0.96
        placements.append(Placement(listener, width * lx, height * 0.55, height * 0.62, 1,
                                    foreground=True))
    return placements
