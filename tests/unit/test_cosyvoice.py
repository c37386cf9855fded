"""CosyVoice backend: only the import boundary is replaced; resampling, timing, prompt caching and
errors run for real, and every check reads the audio the backend wrote.

The stand-in model behaves like a voice-cloning model in the ways these checks can hear: it speaks
in the prompt's voice (the prompt audio, repeated), for 0.1 s per character of the text it was given,
with seeded noise on top; an instruction with "whisper" in it makes it five times quieter. So the
output's pitch says which prompt reached it and at what sample rate, its length says which text,
its level whether the instruction was used, and its noise which seed.
"""
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
from tools.media.audio import load_audio, read_audio, resample, write_wav
from tools.speech import cosyvoice

MODEL_SR = 22050
SECONDS_PER_CHAR = 0.1


def _speech_like(n_s: float, sr: int, pitch: float = 180.0) -> np.ndarray:
    t = np.arange(int(n_s * sr)) / sr
    env = (np.sin(2 * np.pi * 3 * t) > -0.5).astype(np.float32)  # syllable-like bursts
    return (0.3 * env * np.sin(2 * np.pi * pitch * t)).astype(np.float32)


def _clone(text: str, voice_at_model_rate: np.ndarray, gain: float = 1.0) -> np.ndarray:
    n = int(SECONDS_PER_CHAR * len(text) * MODEL_SR)
    return np.resize(voice_at_model_rate, n) * gain + 0.01 * torch.randn(n).numpy()


class _OldAPI:
    """Stands in for CosyVoice2 before 2025-12-08: the prompt is a 16 kHz tensor."""

    sample_rate = MODEL_SR

    def __init__(self, model_dir):
        pass

    @staticmethod
    def _voice(prompt_speech_16k) -> np.ndarray:
        return resample(prompt_speech_16k.numpy()[0], 16000, MODEL_SR)

    def inference_zero_shot(self, tts_text, prompt_text, prompt_speech_16k, zero_shot_spk_id="", stream=False, speed=1.0):
        out = _clone(tts_text, self._voice(prompt_speech_16k))
        half = len(out) // 2  # two chunks, as the real model streams them
        yield {"tts_speech": torch.from_numpy(out[:half].astype(np.float32))[None]}
        yield {"tts_speech": torch.from_numpy(out[half:].astype(np.float32))[None]}

    def inference_instruct2(self, tts_text, instruct_text, prompt_speech_16k, zero_shot_spk_id="", stream=False, speed=1.0):
        gain = 0.2 if "whisper" in instruct_text else 1.0
        yield {"tts_speech": torch.from_numpy(_clone(tts_text, self._voice(prompt_speech_16k), gain).astype(np.float32))[None]}


class _NewAPI(_OldAPI):
    """CosyVoice after 2025-12-08: the zero-shot prompt is a file path."""

    def inference_zero_shot(self, tts_text, prompt_text, prompt_wav, zero_shot_spk_id="", stream=False, speed=1.0):
        x, sr = load_audio(Path(prompt_wav))
        yield {"tts_speech": torch.from_numpy(_clone(tts_text, resample(x, sr, MODEL_SR)).astype(np.float32))[None]}


class _Exploding(_OldAPI):
    """A model that must never be reached: inference raises."""

    def inference_zero_shot(self, tts_text, prompt_text, prompt_speech_16k, zero_shot_spk_id="", stream=False, speed=1.0):
        raise RuntimeError("inference ran")


def _character(tmp_path, cid: str, pitch: float) -> CharacterSpec:
    ref = tmp_path / f"{cid}.wav"
    write_wav(ref, _speech_like(2.0, 22050, pitch), 22050)
    return CharacterSpec(id=cid, name=cid.title(), trigger=cid.upper(), images=[Path("c.png")],
                         voice=VoiceSpec(reference=ref, transcript="Houston, this is Collins."))


@pytest.fixture
def setup(tmp_path, monkeypatch):
    repo, model_dir = tmp_path / "CosyVoice", tmp_path / "CosyVoice2-0.5B"
    (repo / "cosyvoice").mkdir(parents=True)
    model_dir.mkdir()
    (model_dir / "cosyvoice2.yaml").write_text("{}")
    cfg = RenderConfig(speech="cosyvoice", cosyvoice={"repo": repo, "model_dir": model_dir})

    def use(api):
        module = types.SimpleNamespace(CosyVoice2=api)
        monkeypatch.setattr(cosyvoice, "import_cosyvoice", lambda repo: module)
        return registry.create("speech", "cosyvoice", **backend_options(cfg, "cosyvoice"))

    return use, _character(tmp_path, "collins", 180.0), tmp_path


def _read(path):
    with wave.open(str(path)) as w:
        return w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes()


def _pitch(path, sr) -> float:
    x = read_audio(path, sr)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum) * sr / len(x))


def _rms(path, sr) -> float:
    return float(np.sqrt(np.mean(read_audio(path, sr) ** 2)))


def test_old_tensor_api_speaks_the_normalised_text_in_the_reference_voice_resampled(setup):
    use, char, tmp = setup
    tts = use(_OldAPI)
    res = tts.synthesize("We landed 10 minutes early.", char, SpeechKnobs(), tmp / "a.wav", sample_rate=24000)
    sr, ch, width, n = _read(res.wav_path)
    assert (sr, ch, width) == (24000, 1, 2)
    # The model got the spoken form ("ten", 28 characters), and both streamed chunks were kept.
    spoken = "We landed ten minutes early."
    assert abs(res.duration - SECONDS_PER_CHAR * len(spoken)) < 1e-3 and abs(n - res.duration * 24000) <= 2
    # The 16 kHz prompt tensor was made at the right rate: the output has the reference's pitch
    # (a prompt passed at 22.05 kHz as if 16 kHz would come out at 130 Hz).
    assert _pitch(res.wav_path, 24000) == pytest.approx(180.0, abs=3.0)
    assert [w.label for w in res.words] == ["We", "landed", "ten", "minutes", "early."]
    assert all(a.end <= b.start + 1e-6 for a, b in zip(res.words, res.words[1:]))
    assert 0 <= res.words[0].start and res.words[-1].end <= res.duration + 1e-6


def test_each_character_is_prompted_with_its_own_reference(setup):
    """Prompts are cached per reference: a second voice gets its own, and the first is still served."""
    use, collins, tmp = setup
    hopper = _character(tmp, "hopper", 300.0)
    tts = use(_OldAPI)
    pitches = [_pitch(tts.synthesize("Again.", c, SpeechKnobs(), tmp / f"{k}.wav").wav_path, 24000)
               for k, c in enumerate([collins, hopper, collins])]
    assert pitches == [pytest.approx(180.0, abs=3.0), pytest.approx(300.0, abs=3.0), pytest.approx(180.0, abs=3.0)]


def test_new_path_api_and_instruct_for_parentheticals(setup):
    use, char, tmp = setup
    tts = use(_NewAPI)
    plain = tts.synthesize("Ready for dinner!", char, SpeechKnobs(), tmp / "c.wav", sample_rate=16000)
    assert _read(plain.wav_path)[0] == 16000
    assert abs(plain.duration - SECONDS_PER_CHAR * len("Ready for dinner!")) < 1e-3
    assert _pitch(plain.wav_path, 16000) == pytest.approx(180.0, abs=3.0)  # the file path reached the model
    whisper = tts.synthesize("Ready for dinner!", char, SpeechKnobs(), tmp / "d.wav", parenthetical="(whispering)",
                             sample_rate=16000)
    # The instruction was followed (five times quieter), with the tensor prompt that instruct2 still takes.
    assert _rms(whisper.wav_path, 16000) / _rms(plain.wav_path, 16000) == pytest.approx(0.2, abs=0.03)
    assert _pitch(whisper.wav_path, 16000) == pytest.approx(180.0, abs=3.0)


def test_the_speech_seed_picks_the_take(setup):
    use, char, tmp = setup
    tts = use(_OldAPI)
    take = [tts.synthesize("The relays are fine.", char, SpeechKnobs(seed=s), tmp / f"s{k}.wav").wav_path.read_bytes()
            for k, s in enumerate([3, 3, 4])]
    assert take[0] == take[1] and take[0] != take[2]


def test_missing_checkout_or_model_is_a_tool_error_with_fix(tmp_path):
    with pytest.raises(ToolError) as err:
        registry.create("speech", "cosyvoice", **backend_options(RenderConfig(speech="cosyvoice"), "cosyvoice"))
    assert "render.cosyvoice.repo" in str(err.value) and "--speech piper" in err.value.fix
    (tmp_path / "repo" / "cosyvoice").mkdir(parents=True)
    cfg = RenderConfig(cosyvoice={"repo": tmp_path / "repo", "model_dir": tmp_path / "nope"})
    with pytest.raises(ToolError, match="model_dir"):
        registry.create("speech", "cosyvoice", **backend_options(cfg, "cosyvoice"))


def test_bad_reference_and_empty_line_fail_before_inference(setup):
    """The backend's own errors come first: a model that raises when reached is never reached, and
    nothing is written."""
    use, char, tmp = setup
    tts = use(_Exploding)
    with pytest.raises(ToolError, match="no words"):
        tts.synthesize("...", char, SpeechKnobs(), tmp / "e.wav")
    bad = char.model_copy(update={"voice": VoiceSpec(reference=tmp / "missing.wav", transcript="x")})
    with pytest.raises(ToolError, match="missing"):
        tts.synthesize("Hello there.", bad, SpeechKnobs(), tmp / "f.wav")
    assert not (tmp / "e.wav").exists() and not (tmp / "f.wav").exists()
