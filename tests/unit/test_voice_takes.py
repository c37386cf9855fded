"""A voice given as several short takes (`voice.takes`): the loader checks each clip where it is written, joins
them into one reference clip in the user cache (in order, at the highest rate, TAKE_GAP_S of silence between,
at one speech level) and their transcripts into one; a cast that gives both forms, none, or takes of more than
30 s is refused with the file, line and fix."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from orchestrator.cli import main
from orchestrator.inputs.loading import load_project
from orchestrator.inputs.problems import SpecError
from tools.speech import shared_fits
from tools.speech.shared_fits import SHARED
from tools.speech.world import TAKE_GAP_S

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "orbit"
COLLINS_VOICE = """    voice:
      reference: assets/voices/collins.wav
      transcript: "Houston, this is Collins. The capsule is stable, and all three of us are doing fine up here."
"""


@pytest.fixture
def project(tmp_path, monkeypatch):
    """The example, its cache in tmp_path, and a 16 kHz take of hopper's clip and a noise beside the others."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    shutil.copytree(EXAMPLE, tmp_path / "orbit", ignore=shutil.ignore_patterns("voice-fits"))
    x, sr = sf.read(EXAMPLE / "assets" / "voices" / "hopper.wav", dtype="float32")
    sf.write(tmp_path / "orbit" / "assets" / "voices" / "hopper16k.wav", resample_poly(x, 320, 441), 16000,
             subtype="PCM_16")
    noise = 0.1 * np.random.default_rng(7).standard_normal((2 * 96000, 2))  # 2 s of white noise, 96 kHz stereo
    sf.write(tmp_path / "orbit" / "assets" / "voices" / "noise.wav", noise, 96000, subtype="PCM_16")
    cast = (tmp_path / "orbit" / "cast.yaml").read_text()
    assert COLLINS_VOICE in cast, "the example's cast changed: update COLLINS_VOICE"
    return tmp_path / "orbit", cast


def with_voice(project, voice: str) -> Path:
    folder, cast = project
    (folder / "cast.yaml").write_text(cast.replace(COLLINS_VOICE, voice))
    return folder / "script.yaml"


TAKES = """    voice:
      takes:
        - reference: assets/voices/collins.wav
          transcript: "Orbit insertion complete."
        - reference: assets/voices/hopper16k.wav
          transcript: "  Copy that, lights down.  "
"""


def speech_db(x: np.ndarray, sr: int) -> float:
    """Speech level, computed apart from `world.speech_level_db`: mean power of the 10 ms frames whose
    power is within 35 dB of the loudest frame's (and over -70 dB)."""
    hop = int(sr * 0.01)
    powers = np.array([np.mean(np.asarray(x[i:i + hop], np.float64) ** 2) for i in range(0, len(x) - hop + 1, hop)])
    floor = max(10 * np.log10(powers.max() + 1e-12) - 35, -70)
    return float(10 * np.log10(powers[10 * np.log10(powers + 1e-12) > floor].mean()))


def test_takes_are_joined_into_one_clip_in_order_at_the_highest_rate(project, tmp_path):
    loaded = load_project(with_voice(project, TAKES))
    voice = loaded.cast.by_id("collins").voice
    assert voice.transcript == "Orbit insertion complete. Copy that, lights down."
    assert [t.reference.name for t in voice.takes] == ["collins.wav", "hopper16k.wav"]
    assert voice.reference.parent == tmp_path / "cache" / "cascade-composer" / "voice-takes"
    joined, sr = sf.read(voice.reference, dtype="float64")
    first, sr1 = sf.read(project[0] / "assets" / "voices" / "collins.wav", dtype="float64")
    second, sr2 = sf.read(project[0] / "assets" / "voices" / "hopper16k.wav", dtype="float64")
    assert (sr, sr1, sr2) == (22050, 22050, 16000)
    gap = round(TAKE_GAP_S * sr)
    second = resample_poly(second, 441, 320)
    target = (speech_db(first, sr) + speech_db(second, sr)) / 2  # the median of two
    first, second = (x * min(10 ** ((target - speech_db(x, sr)) / 20), max(1, 10 ** (-1 / 20) / np.max(np.abs(x))))
                     for x in (first, second))
    expected = np.concatenate([first, np.zeros(gap), second])
    assert len(joined) == len(expected)
    assert np.max(np.abs(joined - expected)) < 2 / 32767  # the 16-bit rounding of the file
    assert np.max(np.abs(joined[len(first):len(first) + gap])) == 0  # the takes do not run into each other

    # its fits travel in the takes' folder (`compose voices --share-fits`, Ray workers), not in the user cache
    entry = tmp_path / "cache" / "cascade-composer" / "voices" / "abc.fit.json"
    shared = project[0] / "assets" / "voices" / SHARED / "voices" / "abc.fit.json"
    assert shared_fits.shared_path(entry, voice.reference) == shared
    shared.parent.mkdir(parents=True)
    shared.write_text("{}")
    assert shared_fits.files_beside(voice.reference) == [shared]
    assert shared_fits.entry(entry, voice.reference) == shared

    stamp = voice.reference.stat().st_mtime_ns
    again = load_project(with_voice(project, TAKES)).cast.by_id("collins").voice
    assert again.reference == voice.reference and again.reference.stat().st_mtime_ns == stamp  # made once
    other = TAKES.replace("hopper16k.wav", "chelsea.wav")
    assert load_project(with_voice(project, other)).cast.by_id("collins").voice.reference != voice.reference


@pytest.mark.parametrize("voice, at, said, fix", [
    (TAKES.replace("hopper16k.wav", "nobody.wav"), "assets/voices/nobody.wav",
     "assets/voices/nobody.wav not found", "check the spelling"),
    (TAKES.replace("      takes:\n", "      reference: assets/voices/collins.wav\n      takes:\n"),
     "reference: assets/voices/collins.wav", "`reference` beside `takes`", "not both"),
    (TAKES + "\n".join(f"        - reference: assets/voices/collins.wav\n          transcript: Again {k}."
                       for k in range(5)) + "\n", "takes:", "the 7 takes add up to 3", "keep 10-30 s of takes"),
    (TAKES.replace("hopper16k.wav", "noise.wav"), "assets/voices/noise.wav",
     "noise.wav: reference voice has no voiced sound (0% of its sounding time is voiced", "speaking aloud"),
    ("    voice:\n      takes: []\n", "takes: []",
     "a voice needs `reference` (a clip) and its `transcript`, or `takes`",
     "or `takes:`, a list of them"),
    (TAKES.replace('          transcript: "Orbit insertion complete."\n', ""), "reference: assets/voices/collins.wav",
     "missing required key `transcript`", "add `transcript: ...`"),
])
def test_a_bad_voice_is_refused_where_it_is_written(project, capsys, voice, at, said, fix):
    script = with_voice(project, voice)
    with pytest.raises(SpecError) as exc:
        load_project(script)
    (problem,) = [p for p in exc.value.problems if said in p.message]
    line = (project[0] / "cast.yaml").read_text().splitlines()[problem.line - 1]
    assert line[problem.col - 1:].startswith(at) and fix in problem.fix and problem.file.endswith("cast.yaml")
    assert main(["validate", str(script)]) == 2
    out = capsys.readouterr()
    assert said in out.out + out.err and "Traceback" not in out.out + out.err


def test_validate_writes_nothing_and_a_render_finds_the_clip_it_named(project, tmp_path, capsys):
    """`compose validate` checks and joins the takes but writes nothing (not even the user cache's folder);
    loading for a render writes the joined clip at the path validation would have named."""
    script = with_voice(project, TAKES)
    assert main(["validate", str(script)]) == 0
    assert capsys.readouterr().err.startswith("ok ")  # the console writes to stderr
    assert not (tmp_path / "cache").exists()
    named = load_project(script, store_takes=False).cast.by_id("collins").voice.reference
    assert not named.exists() and not (tmp_path / "cache").exists()
    assert load_project(script).cast.by_id("collins").voice.reference == named and named.is_file()


def test_without_the_asset_checks_the_first_take_stands_for_the_clip(project, tmp_path):
    """Unit tests load casts without opening files: nothing is joined or written, the words are joined."""
    voice = load_project(with_voice(project, TAKES), check_assets=False).cast.by_id("collins").voice
    assert voice.reference == (project[0] / "assets" / "voices" / "collins.wav").resolve()
    assert voice.transcript == "Orbit insertion complete. Copy that, lights down."
    assert not (tmp_path / "cache" / "cascade-composer" / "voice-takes").exists()


def test_a_take_written_as_a_bare_path_is_refused_and_nothing_is_joined(project, tmp_path):
    bare = "        - assets/voices/hopper16k.wav\n"
    voice = TAKES.replace("        - reference: assets/voices/hopper16k.wav\n", bare)
    voice = voice.replace('          transcript: "  Copy that, lights down.  "\n', "")
    with pytest.raises(SpecError) as exc:
        load_project(with_voice(project, voice))
    (problem,) = exc.value.problems
    line = (project[0] / "cast.yaml").read_text().splitlines()[problem.line - 1]
    assert line.strip() == "- assets/voices/hopper16k.wav" and "reference, transcript" in problem.fix
    assert not (tmp_path / "cache" / "cascade-composer" / "voice-takes").exists()


def test_a_quiet_take_is_brought_to_the_others_level(project, tmp_path):
    """Three takes, one 20 dB under the others: each ends at the median of their speech levels (the loud
    takes keep theirs), and the quiet one's speech counts among the clip's loud frames again. A take alone,
    or raised where its peak would pass -1 dBFS, is not raised past it."""
    from tools.speech.world import active_mask, take_gains

    voices = project[0] / "assets" / "voices"
    x, sr = sf.read(voices / "collins.wav", dtype="float32")
    sf.write(voices / "quiet.wav", x * 0.1, sr, subtype="FLOAT")
    three = TAKES.replace("hopper16k.wav", "collins.wav") + (
        "        - reference: assets/voices/quiet.wav\n          transcript: Quietly.\n")
    joined, rate = sf.read(load_project(with_voice(project, three)).cast.by_id("collins").voice.reference,
                           dtype="float64")
    n, gap = len(x), round(TAKE_GAP_S * sr)
    parts = [joined[k * (n + gap):k * (n + gap) + n] for k in range(3)]
    assert rate == sr and len(joined) == 3 * n + 2 * gap
    assert [round(speech_db(part, sr) - speech_db(x, sr), 2) for part in parts] == [0, 0, 0]
    assert np.max(np.abs(parts[2] - x)) < 2 / 32767  # raised 20 dB back to where it was
    hop = int(sr * 0.01)
    quiet_frames = active_mask(joined, sr)[(2 * (n + gap)) // hop:(2 * (n + gap) + n) // hop]
    assert quiet_frames.mean() > 0.5  # its speech is heard among the loud frames

    assert take_gains([x * 0.1], sr) == [1.0]
    full = x / np.max(np.abs(x))  # peaks at full scale: brought to its level, a take at half would reach it
    assert take_gains([full, full, full * 0.5], sr) == [1.0, 1.0, pytest.approx(10 ** (-1 / 20) / 0.5)]
    (low, high) = take_gains([full, full * 0.5], sr)  # between the two
    assert low == pytest.approx(2 ** -0.5, rel=1e-3) and high == pytest.approx(2 ** 0.5, rel=1e-3)


def test_the_advice_for_short_takes_asks_for_more_takes(project):
    """The audition's advice names the takes and their joined length, not one clip's (`audition.clip_facts`)."""
    from orchestrator.audition import clip_facts

    two = clip_facts(load_project(with_voice(project, TAKES)).cast.by_id("collins").voice)
    first, sr = sf.read(project[0] / "assets" / "voices" / "collins.wav")
    second = sf.info(project[0] / "assets" / "voices" / "hopper16k.wav").duration
    assert two.takes == 2 and two.seconds == pytest.approx(len(first) / sr + TAKE_GAP_S + second, abs=1e-3)
    assert two.length_note() == ""  # 11.6 s
    one = TAKES.split("        - reference: assets/voices/hopper16k.wav")[0]
    facts = clip_facts(load_project(with_voice(project, one)).cast.by_id("collins").voice)
    assert facts.takes == 1 and facts.length_note() == f"; the one take is {len(first) / sr:.1f} s, give 10-30 s " \
        "in all (more takes)"
    assert clip_facts(load_project(with_voice(project, COLLINS_VOICE)).cast.by_id("collins").voice).takes == 0


def test_a_noisy_take_is_heard_as_noisy_among_many(project):
    """Six short takes, one with noise 12 dB under its speech: the joined clip's pauses are mostly the silent
    gaps, yet the advice hears the noisy take's pauses as recorded."""
    from orchestrator.audition import NOISY_DB, clip_facts
    from tools.media.audio import clip_levels

    voices = project[0] / "assets" / "voices"
    x, sr = sf.read(voices / "collins.wav", dtype="float32")
    short = x[: int(1.1 * sr)]
    noisy = short + np.random.default_rng(0).normal(0, np.sqrt(np.mean(short**2)) / 4, len(short)).astype("float32")
    sf.write(voices / "short.wav", short, sr, subtype="FLOAT")
    sf.write(voices / "noisy.wav", noisy, sr, subtype="FLOAT")
    takes = "    voice:\n      takes:\n" + "".join(
        f"        - reference: assets/voices/{'noisy' if k == 3 else 'short'}.wav\n          transcript: Take {k}.\n"
        for k in range(6))
    voice = load_project(with_voice(project, takes)).cast.by_id("collins").voice
    joined, rate = sf.read(voice.reference, dtype="float32")
    assert clip_levels(joined, rate)[0] == 60.0  # the joined clip alone would hide the noise
    facts = clip_facts(voice)
    assert facts.over_floor_db == pytest.approx(clip_levels(noisy, sr)[0]) and facts.over_floor_db < NOISY_DB
    assert "background noise" in facts.notes() and "the 6 takes join into 8.6 s" in facts.notes()


def loud_edges(x: np.ndarray, sr: int, floor_db: float) -> tuple[int, int]:
    """(first sample of the first, one past the last sample of the last) 10 ms frame whose power is within
    `floor_db` of the loudest frame's (and over -70 dB), computed apart from `world.active_mask`."""
    hop = int(sr * 0.01)
    db = [10 * np.log10(np.mean(np.asarray(x[i:i + hop], np.float64) ** 2) + 1e-12)
          for i in range(0, len(x) - hop + 1, hop)]
    loud = [k for k, d in enumerate(db) if d > max(max(db) - floor_db, -70)]
    return loud[0] * hop, (loud[-1] + 1) * hop


def test_a_takes_edge_silences_are_cut_but_not_its_soft_sounds(project):
    """A take recorded with 1.5 s of silence before and 2 s after (a phone started and stopped around the words)
    is joined with 0.3 s of it left each side, and a soft 0.5 s sound 40 dB under its loudest is kept; the 30 s
    limit counts what is joined, so four such takes (36 s as recorded, 25 s joined) are taken. A take whose
    pauses hold noise 30 dB under its speech is joined whole. A tap on the phone (8 ms, 10 dB louder than the
    loudest speech) in either silence is no sound, nor does it move what is: 80 ms as loud as the speech is."""
    from tools.speech.world import EDGE_FLOOR_DB, TAKE_EDGE_S

    voices = project[0] / "assets" / "voices"
    x, sr = sf.read(voices / "collins.wav", dtype="float32")
    hop = int(sr * 0.01)
    loudest = max(np.sqrt(np.mean(x[i:i + hop] ** 2)) for i in range(0, len(x) - hop + 1, hop))
    level = 10 ** (speech_db(x, sr) / 20)
    soft = (loudest * 10 ** (-40 / 20) * np.sqrt(2) * np.sin(2 * np.pi * 300 * np.arange(int(0.5 * sr)) / sr))
    padded = np.concatenate([np.zeros(int(1.5 * sr)), soft, x, np.zeros(2 * sr)]).astype("float32")
    sf.write(voices / "padded.wav", padded, sr, subtype="FLOAT")
    first, last = loud_edges(padded, sr, EDGE_FLOOR_DB)
    edge = int(TAKE_EDGE_S * sr)
    kept = padded[first - edge:last + edge]
    assert first <= int(1.5 * sr) + int(0.01 * sr) and len(kept) > len(soft) + len(x)  # the soft sound is kept

    takes = "    voice:\n      takes:\n" + "".join(
        f"        - reference: assets/voices/padded.wav\n          transcript: Take {k}.\n" for k in range(4))
    joined, rate = sf.read(load_project(with_voice(project, takes)).cast.by_id("collins").voice.reference,
                           dtype="float32")
    gap = np.zeros(round(TAKE_GAP_S * sr), np.float32)
    expected = np.concatenate([kept, gap, kept, gap, kept, gap, kept])  # four equal takes: no gain
    assert 4 * len(padded) / sr > 30 and rate == sr and len(joined) == len(expected)
    assert np.max(np.abs(joined - expected)) < 2 / 32767  # the 16-bit rounding of the file

    def joined_alone(take: np.ndarray) -> np.ndarray:
        sf.write(voices / "take.wav", take, sr, subtype="FLOAT")
        one = "    voice:\n      takes:\n        - reference: assets/voices/take.wav\n          transcript: One.\n"
        return sf.read(load_project(with_voice(project, one)).cast.by_id("collins").voice.reference,
                       dtype="float32")[0]

    def tapped(*taps: tuple[float, float, float]) -> np.ndarray:  # (where, how long) in seconds, dB over the loudest
        out = padded.copy()
        for at, length, db in taps:
            out[int(at * sr) + np.arange(int(length * sr))] += loudest * 10 ** (db / 20)
        return out

    taps = tapped((0.5, 0.008, 10), (len(padded) / sr - 1.0, 0.008, 0))  # outside what is kept of the take
    tap_first, tap_last = loud_edges(taps, sr, EDGE_FLOOR_DB)
    assert tap_first < first and tap_last > last  # the taps are loud frames
    cut = joined_alone(taps)
    assert len(cut) == len(kept) and np.max(np.abs(cut - kept)) < 2 / 32767  # cut as if they were not there
    sound = tapped((0.4, 0.08, 0))
    start = loud_edges(sound, sr, EDGE_FLOOR_DB)[0] - edge
    cut = joined_alone(sound)
    assert start < first - edge and len(cut) == last + edge - start
    assert np.max(np.abs(cut - sound[start:last + edge])) < 2 / 32767

    noise = np.random.default_rng(0).normal(0, level * 10 ** (-30 / 20), len(padded)).astype("float32")
    sf.write(voices / "hiss.wav", padded + noise, sr, subtype="FLOAT")
    one = "    voice:\n      takes:\n        - reference: assets/voices/hiss.wav\n          transcript: Hiss.\n"
    joined = sf.read(load_project(with_voice(project, one)).cast.by_id("collins").voice.reference)[0]
    assert len(joined) == len(padded)
