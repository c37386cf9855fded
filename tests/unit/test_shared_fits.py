"""Voice fits beside a cast's clips (`voice-fits/`): read when the user cache lacks them, never written by a
render, copied there by `compose voices --share-fits`; the example ships its own, and they are current."""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from orchestrator.cli import main
from orchestrator.inputs.loading import load_project
from tests.fixtures.pipeline_kit import EXAMPLE, MINI_SCRIPT, write_project
from tools.media.files import voice_cache_file
from tools.speech import fitting, shared_fits
from tools.speech.piper import PiperSynthesizer


@dataclass
class Probe:
    value: int


def test_an_entry_beside_the_clip_is_read_when_the_user_cache_lacks_it(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    ref = tmp_path / "cast" / "ann.wav"
    ref.parent.mkdir()
    ref.write_bytes(b"RIFF")
    own = voice_cache_file("k1.fit.json")
    shared = shared_fits.shared_path(own, ref)
    assert shared == tmp_path / "cast" / "voice-fits" / "voices" / "k1.fit.json"
    assert fitting.read_cached(own, Probe, "probe", ref) is None  # in neither place
    shared.parent.mkdir(parents=True)
    shared.write_text(json.dumps({"value": 1}))
    assert fitting.read_cached(own, Probe, "probe", ref) == Probe(1)
    assert fitting.read_cached(own, Probe, "probe") is None  # without its clip: the user cache alone
    shared.write_text("{not json")
    assert fitting.read_cached(own, Probe, "probe", ref) is None  # a damaged copy is made again (at `own`)
    own.write_text(json.dumps({"value": 2}))
    assert fitting.read_cached(own, Probe, "probe", ref) == Probe(2)  # the user's own entry first
    # Sharing copies what was asked for this clip and is in the user cache, nothing else.
    voice_cache_file("k2.fit.json").write_text(json.dumps({"value": 3}))  # never asked for ann
    assert shared_fits.share(ref) == [shared]
    assert json.loads(shared.read_text()) == {"value": 2}
    assert sorted(p.name for p in shared.parent.iterdir()) == ["k1.fit.json"]  # no temporary left either


def test_the_example_ships_its_current_voice_fits(example_project, tmp_path, monkeypatch):
    """With an empty user cache every voice of the example is ready, and every base its choice weighed is
    fitted, from the files beside its clips: a fresh machine's first render fits nothing. (A change to the
    fitting code that changes the keys fails here: run `compose voices --compare --share-fits` on the
    example's script, and commit the new files and the removal of the old ones.)"""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(fitting, "_MEMO", {})
    monkeypatch.setattr(shared_fits, "_USED", {})  # what this test asks, not what earlier tests asked
    cast = example_project.cast.characters
    tts = PiperSynthesizer()
    shipped = set((cast[0].voice.reference.parent / shared_fits.SHARED / "voices").iterdir())
    used = set()
    for c in cast:
        others = [o.voice.reference for o in cast if o.id != c.id]
        assert tts.voice_ready(c, others), c.id
        choice = fitting.choice_made(c.voice.reference, c.voice.transcript, others)
        assert choice.base in choice.scores and len(choice.scores) >= 5
        for base in choice.scores:
            assert fitting.fit_made(c.voice.reference, c.voice.transcript, others, base), (c.id, base)
        used |= {shared_fits.shared_path(p, c.voice.reference) for p in shared_fits._USED[c.voice.reference.resolve()]}
    assert not list((tmp_path / "cascade-composer" / "voices").iterdir())  # nothing made
    assert shipped == used  # and nothing shipped that no voice reads


def test_share_fits_writes_beside_each_clip_and_an_empty_cache_reads_them(tmp_path, monkeypatch):
    """`compose voices --share-fits` on a project whose clips have no fits beside them writes the character's
    choice and the fit of every base it weighed there; with another, empty user cache the voice is ready."""
    monkeypatch.setattr(fitting, "_MEMO", {})
    monkeypatch.setattr(fitting, "_CHOICES", {})
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "first"))
    script = {**MINI_SCRIPT, "scenes": [{**MINI_SCRIPT["scenes"][0],
                                         "beats": [{"character": "COLLINS", "line": "The relays are fine."}]}]}
    path = write_project(tmp_path / "proj", script)
    voices = tmp_path / "proj" / "assets" / "voices"
    shutil.rmtree(voices / shared_fits.SHARED)  # copied with the example's assets: this cast ships none
    shipped = EXAMPLE / "assets" / "voices" / shared_fits.SHARED / "voices"
    for f in shipped.iterdir():  # the first machine's user cache holds the fits (the same keys): none made here
        voice_cache_file(f.name).write_bytes(f.read_bytes())
    assert main(["voices", str(path), "--out", str(tmp_path / "out"), "--share-fits", "--quiet", "--lines", "1"]) == 0
    (collins,) = json.loads((tmp_path / "out" / "mini" / "voices" / "voices.json").read_text())["characters"]
    written = sorted(Path(p).name for p in collins["shared_fits"])
    assert written == sorted(p.name for p in (voices / shared_fits.SHARED / "voices").iterdir())
    assert len(written) >= 6 and sum(n.endswith(".base.json") for n in written) == 1  # the choice, 5+ fits
    assert all((voices / shared_fits.SHARED / "voices" / n).read_bytes() == (shipped / n).read_bytes() for n in written)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "second"))
    monkeypatch.setattr(fitting, "_MEMO", {})
    cast = load_project(path).cast.characters
    (c,) = [c for c in cast if c.id == "collins"]
    assert PiperSynthesizer().voice_ready(c, [o.voice.reference for o in cast if o.id != "collins"])
