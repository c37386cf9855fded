"""CosyVoice backend: only the import boundary is replaced; resampling, timing, prompt caching and
errors run for real."""
import types
import wave
from pathlib import Path

import numpy as np
import pytest
import torch

from orchestrator.config import RenderConfig
from orchestrator.context import backend_options
from orchestrator.schema.cast import CharacterSpec, VoiceSpec
from tools import registry
from tools.base import SpeechKnobs, ToolError
from tools.media.audio import write_wav
from tools.speech import cosyvoice

MODEL_SR = 22050


def _speech_like(n_s: float, sr: int) -> np.ndarray:
    t = np.arange(int(n_s * sr)) / sr
    env = (np.sin(2 * np.pi * 3 * t) > -0.5).astype(np.float32)  # syllable-like bursts
    return (0.3 * env * np.sin(2 * np.pi * 180 * t)).astype(np.float32)


class _OldAPI:
    """Stands in for CosyVoice2 before 2025-12-08: the prompt is a 16 kHz tensor."""

    sample_rate = MODEL_SR

    def __init__(self, model_dir):
        self.calls = []

    def inference_zero_shot(self, tts_text, prompt_text, prompt_speech_16k, zero_shot_spk_id="", stream=False, speed=1.0):
        self.calls.append(("zero_shot", tts_text, prompt_text, prompt_speech_16k))
        yield {"tts_speech": torch.from_numpy(_speech_like(1.0, MODEL_SR))[None]}
        yield {"tts_speech": torch.from_numpy(_speech_like(0.5, MODEL_SR))[None]}

    def inference_instruct2(self, tts_text, instruct_text, prompt_speech_16k, zero_shot_spk_id="", stream=False, speed=1.0):
        self.calls.append(("instruct2", tts_text, instruct_text, prompt_speech_16k))
        yield {"tts_speech": torch.from_numpy(_speech_like(1.0, MODEL_SR))[None]}


class _NewAPI(_OldAPI):
    """CosyVoice after 2025-12-08: the prompt is a file path."""

    def inference_zero_shot(self, tts_text, prompt_text, prompt_wav, zero_shot_spk_id="", stream=False, speed=1.0):
        self.calls.append(("zero_shot", tts_text, prompt_text, prompt_wav))
        yield {"tts_speech": torch.from_numpy(_speech_like(1.5, MODEL_SR))[None]}


@pytest.fixture
def setup(tmp_path, monkeypatch):
    repo, model_dir = tmp_path / "CosyVoice", tmp_path / "CosyVoice2-0.5B"
    (repo / "cosyvoice").mkdir(parents=True)
    model_dir.mkdir()
    (model_dir / "cosyvoice2.yaml").write_text("{}")
    ref = tmp_path / "ref.wav"
    write_wav(ref, _speech_like(2.0, 22050), 22050)
    char = CharacterSpec(id="collins", name="Collins", trigger="COLLINS", images=[Path("c.png")],
                         voice=VoiceSpec(reference=ref, transcript="Houston, this is Collins."))
    cfg = RenderConfig(speech="cosyvoice", cosyvoice={"repo": repo, "model_dir": model_dir})

    def use(api):
        module = types.SimpleNamespace(CosyVoice2=api)
        monkeypatch.setattr(cosyvoice, "import_cosyvoice", lambda repo: module)
        return registry.create("speech", "cosyvoice", **backend_options(cfg, "cosyvoice"))

    return use, char, tmp_path


def _read(path):
    with wave.open(str(path)) as w:
        return w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes()


def test_old_tensor_api_resampled_timed_and_prompt_cached(setup):
    use, char, tmp = setup
    tts = use(_OldAPI)
    res = tts.synthesize("We landed 10 minutes early.", char, SpeechKnobs(), tmp / "a.wav", sample_rate=24000)
    sr, ch, width, n = _read(res.wav_path)
    assert (sr, ch, width) == (24000, 1, 2)
    assert abs(n - 1.5 * 24000) <= 2 and abs(res.duration - 1.5) < 1e-3
    call = tts._model.calls[-1]
    assert call[1] == "We landed ten minutes early." and call[2] == "Houston, this is Collins."
    assert isinstance(call[3], torch.Tensor) and call[3].shape == (1, 2 * 16000)
    assert [w.label for w in res.words] == ["We", "landed", "ten", "minutes", "early."]
    assert all(a.end <= b.start + 1e-6 for a, b in zip(res.words, res.words[1:]))
    assert 0 <= res.words[0].start and res.words[-1].end <= res.duration + 1e-6
    tts.synthesize("Again.", char, SpeechKnobs(), tmp / "b.wav")
    assert tts._model.calls[-1][3] is call[3]  # the 16 kHz prompt is computed once per reference
    assert len(tts._prompts) == 1


def test_new_path_api_and_instruct_for_parentheticals(setup):
    use, char, tmp = setup
    tts = use(_NewAPI)
    res = tts.synthesize("Ready for dinner!", char, SpeechKnobs(), tmp / "c.wav", sample_rate=16000)
    assert tts._model.calls[-1][3] == str(char.voice.reference)
    assert _read(res.wav_path)[0] == 16000 and abs(res.duration - 1.5) < 1e-3
    tts.synthesize("Ready for dinner!", char, SpeechKnobs(), tmp / "d.wav", parenthetical="(whispering)")
    kind, _, instruction, prompt = tts._model.calls[-1]
    assert kind == "instruct2" and instruction == "whispering" and isinstance(prompt, torch.Tensor)


def test_missing_checkout_or_model_is_a_tool_error_with_fix(tmp_path):
    with pytest.raises(ToolError) as err:
        registry.create("speech", "cosyvoice", **backend_options(RenderConfig(speech="cosyvoice"), "cosyvoice"))
    assert "render.cosyvoice.repo" in str(err.value) and "--speech piper" in err.value.fix
    (tmp_path / "repo" / "cosyvoice").mkdir(parents=True)
    cfg = RenderConfig(cosyvoice={"repo": tmp_path / "repo", "model_dir": tmp_path / "nope"})
    with pytest.raises(ToolError, match="model_dir"):
        registry.create("speech", "cosyvoice", **backend_options(cfg, "cosyvoice"))


def test_bad_reference_and_empty_line_fail_before_inference(setup):
    use, char, tmp = setup
    tts = use(_OldAPI)
    with pytest.raises(ToolError, match="no words"):
        tts.synthesize("...", char, SpeechKnobs(), tmp / "e.wav")
    bad = char.model_copy(update={"voice": VoiceSpec(reference=tmp / "missing.wav", transcript="x")})
    with pytest.raises(ToolError, match="missing"):
        tts.synthesize("Hello there.", bad, SpeechKnobs(), tmp / "f.wav")
    assert tts._model is None or not tts._model.calls
