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
"""
from __future__ import annotations

import hashlib
import io
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tools.media.audio import load_audio, write_wav
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
                src = Path(tmp) / Path(c.member).name
                src.write_bytes(raw)
                x, sr = load_audio(src)
                x = x[int(c.start * sr): None if c.end is None else int(c.end * sr)]
                write_wav(cache / f"{c.name}.wav", (0.9 * x / max(float(np.abs(x).max()), 1e-6)).astype(np.float32), sr)
    for c in CLIPS:
        out[c.name] = (cache / f"{c.name}.wav", c.transcript)
    return out

