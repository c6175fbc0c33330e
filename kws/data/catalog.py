"""The public corpora the configs can use: where each comes from, its licence, size and checksum,
and how ``kws data get`` lays it out.

A config names a corpus folder as ``corpus:NAME`` or ``corpus:NAME/SUBFOLDER``
(:meth:`kws.core.config.Config.resolve`): ``<data root>/NAME/...``, the data root being
``[data] corpus_root`` of the config, else the ``KWS_DATA`` environment variable, else
``~/kws-data``. Plain paths work as before.

Checksums are the published SHA-256 digests where there are any (TensorFlow Datasets' records for
Speech Commands and LibriSpeech); for the other corpora none is published, and ``kws data get``
asks for one (``--sha256``) or for ``--accept-unverified``, printing the digest it computed.
Extra corpora (your own, or a mirror) come from a JSON catalog file (``--catalog``) with the
fields of :class:`Corpus`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, fields
from pathlib import Path


@dataclass(frozen=True)
class Corpus:
    """One downloadable corpus.

    Attributes:
        name: the folder name it is laid out as, and what configs call it (``corpus:NAME``).
        title: what it is.
        license: its licence.
        url: the archive to download (``.tar.gz``, ``.tar`` or ``.zip``).
        size: the archive's size in bytes (0: unknown).
        sha256: its published SHA-256 digest ("" when none is published).
        strip: the folder inside the archive whose content becomes ``NAME/`` ("" for the top).
        keep: only these sub-folders of ``strip`` are unpacked (empty: everything).
        homepage: where to read about it.
    """

    name: str
    title: str
    license: str
    url: str
    size: int = 0
    sha256: str = ""
    strip: str = ""
    keep: tuple[str, ...] = ()
    homepage: str = ""

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{0,63}", self.name):
            raise ValueError(f"corpus name {self.name!r}: use 1-64 lower-case letters, digits, "
                             "'.', '_' or '-'")
        if not self.url.startswith(("https://", "http://")):
            raise ValueError(f"corpus {self.name}: url {self.url!r} is not http(s)")
        if self.sha256 and not re.fullmatch(r"[0-9a-f]{64}", self.sha256):
            raise ValueError(f"corpus {self.name}: sha256 {self.sha256!r} is not 64 hex digits")
        object.__setattr__(self, "keep", tuple(self.keep))


OPENSLR = "https://www.openslr.org/resources"
CORPORA = (
    Corpus("speech-commands-test", "Speech Commands v0.02 test set: 4,890 one-second words",
           "CC BY 4.0",
           "http://download.tensorflow.org/data/speech_commands_test_set_v0.02.tar.gz",
           112563277, "cc2a00c1147c2254e9be3fa0f779d8c17421dc349b86366567a8edfa9acd51df",
           homepage="https://arxiv.org/abs/1804.03209"),
    Corpus("background-noise", "Speech Commands v0.02 background noise (dishes, bike, tap, "
           "white and pink noise), from the full 2.4 GB archive", "CC BY 4.0",
           "http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz",
           2428923189, "af14739ee7dc311471de98f5f9d2c9191b18aedfe957f4a6ff791c709868ff58",
           strip="_background_noise_", homepage="https://arxiv.org/abs/1804.03209"),
    Corpus("librispeech-test-other", "LibriSpeech test-other: 5.3 h of read English, 33 "
           "speakers", "CC BY 4.0", f"{OPENSLR}/12/test-other.tar.gz", 328757843,
           "d09c181bba5cf717b3dee7d4d592af11a3ee3a09e08ae025c5506f6ebe961c29",
           strip="LibriSpeech/test-other", homepage="https://www.openslr.org/12"),
    Corpus("librispeech-dev-clean", "LibriSpeech dev-clean: 5.4 h of read English, 40 "
           "speakers", "CC BY 4.0", f"{OPENSLR}/12/dev-clean.tar.gz", 337926286,
           "76f87d090650617fca0cac8f88b9416e0ebf80350acb97b343a85fa903728ab3",
           strip="LibriSpeech/dev-clean", homepage="https://www.openslr.org/12"),
    Corpus("librispeech-train-clean-100", "LibriSpeech train-clean-100: 100 h of read English, "
           "251 speakers", "CC BY 4.0", f"{OPENSLR}/12/train-clean-100.tar.gz", 6387309499,
           "d4ddd1d5a6ab303066f14971d768ee43278a5f2a0aa43dc716b0e64ecbbbf6e2",
           strip="LibriSpeech/train-clean-100", homepage="https://www.openslr.org/12"),
    Corpus("wake-word-benchmark", "Picovoice wake-word benchmark: crowd-sourced alexa, "
           "computer, jarvis, snowboy and more", "Apache-2.0",
           "https://github.com/Picovoice/wake-word-benchmark/archive/refs/heads/master.zip",
           strip="wake-word-benchmark-master/audio",
           homepage="https://github.com/Picovoice/wake-word-benchmark"),
    Corpus("precise-community", "Mycroft Precise community data: other wake words and "
           "not-wake-words", "public domain (contributors' waivers in licenses/)",
           "https://github.com/MycroftAI/Precise-Community-Data/archive/refs/heads/master.zip",
           strip="Precise-Community-Data-master",
           homepage="https://github.com/MycroftAI/Precise-Community-Data"),
    Corpus("speechocean762", "speechocean762: 5,000 read English sentences by 250 speakers, "
           "Mandarin first language, children included", "CC BY 4.0",
           f"{OPENSLR}/101/speechocean762.tar.gz", strip="speechocean762",
           homepage="https://www.openslr.org/101"),
    Corpus("musan", "MUSAN: 109 h of music, speech and noise (for noise mixing)", "CC BY 4.0",
           f"{OPENSLR}/17/musan.tar.gz", strip="musan", homepage="https://www.openslr.org/17"),
    Corpus("rirs-noises", "Room impulse responses (real and simulated) and point-source "
           "noises", "Apache-2.0", f"{OPENSLR}/28/rirs_noises.zip", strip="RIRS_NOISES",
           homepage="https://www.openslr.org/28"),
)


def catalog(extra: str | Path | None = None) -> dict[str, Corpus]:
    """The built-in corpora, plus (overriding by name) those of a JSON catalog file: a list of
    objects with :class:`Corpus` fields.

    Raises:
        ValueError: the catalog file is not such a list, naming the entry.
    """
    corpora = {c.name: c for c in CORPORA}
    if extra is None:
        return corpora
    path = Path(extra)
    try:
        entries = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"catalog {path}: not readable JSON ({e})") from e
    names = {f.name for f in fields(Corpus)}
    if not isinstance(entries, list):
        raise ValueError(f"catalog {path}: expected a list of corpora")
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or set(entry) - names or not {"name", "url"} <= set(entry):
            raise ValueError(f"catalog {path}: entry {i} must be an object with name, url and "
                             f"only the fields {sorted(names)}")
        corpus = Corpus(**{"title": entry["name"], "license": "unknown", **entry})
        corpora[corpus.name] = corpus
    return corpora
