"""Optional model evaluators: real transformers classes at tiny random sizes, loaded from disk the
way a user's local weights are; missing weights name the fix."""
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from tests.fixtures import evalkit as ek  # noqa: E402
from tools.base import ToolError  # noqa: E402
from tools.evaluators import clip_text_video, intelligibility_whisper, speaker_wavlm
from tools.evaluators.clip_text_video import ClipTextVideoEvaluator
from tools.evaluators.speaker_wavlm import WavLMSpeakerEvaluator


@pytest.fixture(scope="module")
def attempt(tmp_path_factory):
    """A real one-line animatic shot (speech + clip)."""
    return ek.one_line_attempt(tmp_path_factory.mktemp("models"), "Then look at the cat.")


@pytest.fixture(scope="module")
def wavlm_dir(tmp_path_factory):
    from transformers import WavLMConfig, WavLMForXVector

    torch.manual_seed(0)
    cfg = WavLMConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                      conv_dim=(16, 16, 16), conv_stride=(5, 4, 4), conv_kernel=(10, 4, 4),
                      num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
                      tdnn_dim=(16, 16), tdnn_kernel=(3, 1), tdnn_dilation=(1, 1), xvector_output_dim=24)
    path = tmp_path_factory.mktemp("wavlm")
    WavLMForXVector(cfg).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    from transformers import (
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        CLIPProcessor,
        CLIPTokenizer,
    )

    torch.manual_seed(0)
    cfg = CLIPConfig(
        text_config=dict(vocab_size=49408, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=77),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=32, patch_size=8),
        projection_dim=16)
    path = tmp_path_factory.mktemp("clip")
    CLIPModel(cfg).save_pretrained(path)
    tok = CLIPTokenizer(vocab=_tiny_vocab(), merges=[])
    CLIPProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size=32), tokenizer=tok).save_pretrained(path)
    return path


def _tiny_vocab() -> dict:
    """A byte-level vocabulary (every single byte symbol, no merges): the real CLIP tokenizer, offline."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    chars = list(bytes_to_unicode().values())
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in chars:
        vocab[c] = len(vocab)
        vocab[c + "</w>"] = len(vocab)
    return vocab


def test_wavlm_scores_every_line(attempt, wavlm_dir):
    scores = WavLMSpeakerEvaluator(wavlm_dir, 0.5, 0.0).evaluate(attempt)
    assert [s.name for s in scores] == ["speaker.similarity[sc01_l05]", "speaker.margin[sc01_l05]"]
    sims = scores[0].details["similarities"]
    assert set(sims) == {"collins", "hopper", "chelsea"}
    assert all(-1.0 <= v <= 1.0 for v in sims.values())


def test_clip_scores_the_shot(attempt, clip_dir):
    (score,) = ClipTextVideoEvaluator(clip_dir, 0.2).evaluate(attempt)
    assert score.name == "clip[sc01_sh05]" and len(score.details["per_frame"]) == 4
    assert -1.0 <= score.value <= 1.0 and np.isfinite(score.value)


def test_missing_weights_name_the_fix(monkeypatch, tmp_path):
    monkeypatch.delenv("COMPOSER_WAVLM_DIR", raising=False)
    with pytest.raises(ToolError) as err:
        speaker_wavlm.create()
    assert "COMPOSER_WAVLM_DIR" in err.value.fix
    monkeypatch.setenv("COMPOSER_CLIP_DIR", str(tmp_path))  # exists but holds no weights
    with pytest.raises(ToolError) as err:
        clip_text_video.create()
    assert str(tmp_path) in err.value.message
    with pytest.raises(ToolError) as err:
        intelligibility_whisper.create(model_path=tmp_path)
    assert "ct2-transformers-converter" in err.value.fix
