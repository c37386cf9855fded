"""SyncNet-compatible scorer: the real architecture with random weights (fixed seed), saved and
loaded through safetensors the way a user's converted syncnet_v2 weights are, scoring a real
rendered animatic clip.

Random weights cannot tell synced from unsynced mouths, so nothing here asserts sync quality: the
tests check the plumbing (crops, MFCCs, the 31-offset search, scores and details) and that every
bad weights file is refused with a fix. Agreement with the published model (state-dict names and
shapes, MFCC math, distance/offset logic) was checked once against joonson/syncnet_python itself.
"""
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from tests.fixtures import evalkit as ek  # noqa: E402
from tools.base import ToolError  # noqa: E402
from tools.evaluators.lipsync_syncnet import (
    ENV,
    SyncNetEvaluator,
    SyncNetModel,
    create,
    face_crop,
    load_syncnet,
    syncnet_mfcc,
)


@pytest.fixture(scope="module")
def state():
    torch.manual_seed(0)
    return {k: v.contiguous() for k, v in SyncNetModel().state_dict().items()}


@pytest.fixture(scope="module")
def weights(tmp_path_factory, state):
    path = tmp_path_factory.mktemp("syncnet") / "syncnet_v2.safetensors"
    save_file(state, str(path))
    return path


@pytest.fixture(scope="module")
def attempt(tmp_path_factory):
    """A real one-line animatic shot (piper speech + rendered clip + masks), about 2 s."""
    return ek.one_line_attempt(tmp_path_factory.mktemp("syncnet-shot"), "Look at the cat.")


def test_scores_a_rendered_clip(monkeypatch, weights, attempt):
    monkeypatch.setenv(ENV, str(weights))
    evaluator = create()
    assert isinstance(evaluator, SyncNetEvaluator)
    scores = evaluator.evaluate(attempt)
    assert [s.name for s in scores] == ["lipsync.offset.syncnet[hopper]", "lipsync.confidence.syncnet[hopper]"]
    offset, confidence = scores
    d = offset.details
    assert len(d["curve"]) == 31 and all(np.isfinite(d["curve"]))
    assert -15 <= d["av_offset"] <= 15 and offset.value == abs(d["av_offset"])
    # the reported numbers are read off the curve: argmin, min and median minus min
    curve = np.array(d["curve"])
    assert d["av_offset"] == int(np.argmin(curve)) - 15
    assert d["min_dist"] == pytest.approx(curve.min(), abs=1e-3)
    assert confidence.value == pytest.approx(np.median(curve) - curve.min(), abs=1e-3)
    assert confidence.value >= 0.0 and d["min_dist"] > 0.0
    a, b = d["track"]
    assert b - a >= 13 and d["windows"] == b - a - 5  # one embedding per 5-frame window, as published
    assert offset.threshold == 1.0 and confidence.threshold == 3.0 and not offset.higher_is_better


def test_inputs_match_the_published_shapes(attempt):
    from tools.media.audio import read_audio
    from tools.media.masks import load_masks
    from tools.media.video import read_frames

    wav = read_audio(attempt.audio.lines[0].speech.wav_path, 16000)
    mfcc = syncnet_mfcc(wav)
    assert mfcc.shape[0] == 13 and abs(mfcc.shape[1] - len(wav) / 160) <= 2  # 100 Hz: 4 per video frame
    boxes = load_masks(attempt.video.masks_path)["face_boxes"][0, 1]
    rgb = next(read_frames(attempt.video.clip_path))
    x0, y0, x1, y1 = boxes
    crop = face_crop(rgb, (x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0) / 2)
    assert crop.shape == (224, 224, 3) and crop.dtype == np.uint8 and crop.std() > 5  # a face, not padding
    model = SyncNetModel().eval()
    with torch.no_grad():
        assert model.forward_lip(torch.zeros(1, 3, 5, 224, 224)).shape == (1, 1024)
        assert model.forward_aud(torch.zeros(1, 1, 13, 20)).shape == (1, 1024)


def test_missing_variable_or_file_names_the_fix(monkeypatch, tmp_path):
    monkeypatch.delenv(ENV, raising=False)
    with pytest.raises(ToolError) as err:
        create()
    assert ENV in err.value.message and ENV in err.value.fix and "safetensors" in err.value.fix
    monkeypatch.setenv(ENV, str(tmp_path / "absent.safetensors"))
    with pytest.raises(ToolError) as err:
        create()
    assert "absent.safetensors" in err.value.message


def test_pickled_weights_are_refused(tmp_path, state):
    path = tmp_path / "syncnet_v2.model"
    torch.save(state, path)  # what download_model.sh fetches: a pickle, never to be loaded here
    with pytest.raises(ToolError) as err:
        load_syncnet(path)
    assert "not a safetensors file" in err.value.message and "docstring" in err.value.fix


@pytest.mark.parametrize("change, words", [
    ("missing", ["missing", "netfclip.3.weight"]),
    ("shape", ["wrong shape", "netcnnlip.0.weight", "(96, 1, 5, 7, 7)"]),
    ("unexpected", ["unexpected", "extra.weight"]),
])
def test_mismatched_state_dicts_are_refused(tmp_path, state, change, words):
    bad = dict(state)
    if change == "missing":
        del bad["netfclip.3.weight"]
    elif change == "shape":  # a grayscale-input variant of the lip tower
        bad["netcnnlip.0.weight"] = torch.zeros(96, 1, 5, 7, 7)
    else:
        bad["extra.weight"] = torch.zeros(3)
    path = tmp_path / f"{change}.safetensors"
    save_file(bad, str(path))
    with pytest.raises(ToolError) as err:
        load_syncnet(path)
    assert all(w in err.value.message for w in words), err.value.message
    assert "syncnet_v2.model" in err.value.fix


def test_old_checkpoints_without_batchnorm_counters_load(tmp_path, state):
    """2017-era torch wrote no `num_batches_tracked`; the SyncNetInstance wrapper adds `__S__.`."""
    old = {f"__S__.{k}": v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "old.safetensors"
    save_file(old, str(path))
    model = load_syncnet(path)
    assert torch.equal(model.state_dict()["netcnnaud.0.weight"], state["netcnnaud.0.weight"])
    assert not model.training
