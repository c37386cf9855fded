"""The per-character base choice: computed once per reference clip, cached by its digest, a corrupt
cache entry recomputed; a searched style is its pack moved by the offset on every row."""
import shutil
from pathlib import Path

import numpy as np

from tools.speech import bases, kokoro_voice

VOICES = Path(__file__).resolve().parents[2] / "examples" / "orbit" / "assets" / "voices"


def test_choice_is_computed_once_per_reference_and_cached_by_digest(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(bases, "_MEMO", {})
    calls = []

    def fake_score(reference, transcript, others):  # the expensive scoring itself is measured by bench.voices
        calls.append(Path(reference).name)
        return bases.BaseChoice("jm_kumo", 0.1, 1.2, {"jm_kumo": [0.7, -0.2]}, [0.01] * 256)

    monkeypatch.setattr(bases, "_score_all", fake_score)
    ref = tmp_path / "ref.wav"
    shutil.copy(VOICES / "hopper.wav", ref)
    first = bases.chosen_base(ref, "words")
    bases._MEMO.clear()
    assert bases.chosen_base(ref, "words") == first and calls == ["ref.wav"]  # read back from disk
    ref.write_bytes(ref.read_bytes()[:-2000])  # another clip under the same name
    bases._MEMO.clear()
    bases.chosen_base(ref, "words")
    assert len(calls) == 2
    entries = (tmp_path / "cache" / "cascade-composer" / "voice-bases").glob("*.json")
    max(entries, key=lambda p: p.stat().st_mtime_ns).write_text("{not json")  # the current clip's entry
    bases._MEMO.clear()
    assert bases.chosen_base(ref, "words").base == "jm_kumo" and len(calls) == 3
    cast = [VOICES / "collins.wav", VOICES / "chelsea.wav"]  # joe's fit keeps away from the rest of the cast
    bases.chosen_base(ref, "words", cast)
    bases._MEMO.clear()
    bases.chosen_base(ref, "words", cast[::-1])
    assert len(calls) == 4  # chosen again once for this cast, in any order


def test_searched_style_is_the_pack_moved_on_every_row():
    offset = np.linspace(-0.2, 0.2, 256).astype(np.float32)
    offset[128:] = 0
    style = bases.BaseChoice("jf_alpha", style_offset=list(offset)).style()
    pack = kokoro_voice.pack("jf_alpha")
    assert style.shape == pack.shape == (510, 1, 256)
    np.testing.assert_allclose(style[300, 0] - pack[300, 0], offset, atol=1e-6)
    np.testing.assert_array_equal(bases.BaseChoice("jf_alpha").style(), pack)
    tf = bases.BaseChoice("jf_alpha", f0_shift=0.2, f0_range=1.5).transform(0.5)
    assert abs(tf.f0_shift - 0.1) < 1e-9 and abs(tf.f0_range - 1.5 ** 0.5) < 1e-9
