"""Corpus readers and speaker-aware splits.

Every source becomes a list of :class:`Utterance` (path, label, speaker, split). Readers:

* :func:`read_keyword_folder` - one utterance per file (``wake-word-benchmark/alexa/17.flac``);
  numbered files are grouped into speaker blocks of ``BLOCK`` consecutive numbers.
* :func:`read_speech_commands` - ``ROOT/<word>/<speaker>_nohash_<n>.flac``.
* :func:`read_negative_folder` - audio of any length; speaker from LibriSpeech / Speech Commands
  style names, else the file itself.
* :func:`read_manifest` - JSONL lines ``{"path", "label", "speaker", "split"}``.

Splits are decided per speaker with a stable hash, so a speaker is never in two splits.
"""

from __future__ import annotations

import json
import logging
import re
import zlib
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from kws.core.audio import find_audio, load_many
from kws.core.config import Config

log = logging.getLogger(__name__)

NEGATIVE = "none"
SPLITS = ("train", "val", "test")
BLOCK = 10  # numbered keyword files: this many consecutive numbers count as one speaker


@dataclass(frozen=True)
class Utterance:
    """One audio file and what it is.

    Attributes:
        path: the audio file.
        label: a keyword name, or ``"none"`` for negative audio.
        speaker: speaker id used for splitting ("" if unknown: the file is its own speaker).
        split: "train", "val", "test", or "" (not yet assigned).
    """

    path: Path
    label: str
    speaker: str = ""
    split: str = ""


def speaker_of(path: Path) -> str:
    """Speaker id from a file name: LibriSpeech ``spk-chapter-utt``, Speech Commands
    ``spk_nohash_n``, a speaker folder (speechocean762 ``SPEAKER0001/...``), numbered keyword
    files (block of ``BLOCK``), else the file stem."""
    stem = path.stem
    if re.fullmatch(r"SPEAKER\d+", path.parent.name):
        return f"{path.parent.parent.name}-{path.parent.name}"
    if m := re.fullmatch(r"(\d+)-\d+-\d+", stem):
        return f"librispeech-{m.group(1)}"
    if m := re.fullmatch(r"([0-9a-f]+)_nohash_\d+", stem):
        return f"speechcommands-{m.group(1)}"
    if stem.isdigit():
        return f"{path.parent.name}-block{int(stem) // BLOCK}"
    return f"{path.parent.name}-{stem}"


def read_keyword_folder(keyword: str, folder: Path,
                        holdout: tuple[tuple[int, int], ...] = ()) -> list[Utterance]:
    """Utterances of ``keyword``; numbered files inside a ``holdout`` range go to "test"."""
    out = []
    for path in find_audio(folder):
        split = ""
        if path.stem.isdigit() and any(a <= int(path.stem) <= b for a, b in holdout):
            split = "test"
        out.append(Utterance(path, keyword, speaker_of(path), split))
    return out


def read_speech_commands(root: Path, keywords: tuple[str, ...] = ()) -> list[Utterance]:
    """Speech Commands layout; words in ``keywords`` keep their label, all others are negative."""
    out = []
    for path in find_audio(root):
        word = path.parent.name
        out.append(Utterance(path, word if word in keywords else NEGATIVE, speaker_of(path)))
    return out


def read_negative_folder(folder: Path, split: str = "") -> list[Utterance]:
    """Every audio file below ``folder`` as negative audio."""
    return [Utterance(p, NEGATIVE, speaker_of(p), split) for p in find_audio(folder)]


def read_manifest(path: Path) -> list[Utterance]:
    """JSONL manifest; relative paths are relative to the manifest's folder.

    Raises:
        ValueError: a line that is not JSON, lacks ``path``/``label``, or names an unknown split,
            with its line number.
    """
    out = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            audio = Path(row["path"])
            label = str(row["label"])
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise ValueError(f"{path}:{number}: expected a JSON object with 'path' and 'label' "
                             f"({e})") from e
        split = str(row.get("split", ""))
        if split not in ("",) + SPLITS:
            raise ValueError(f"{path}:{number}: split {split!r} is not one of {SPLITS}")
        audio = audio if audio.is_absolute() else path.parent / audio
        out.append(Utterance(audio, label, str(row.get("speaker", "")) or speaker_of(audio),
                             split))
    return out


def bucket(speaker: str, seed: int) -> float:
    """A stable pseudo-random number in [0, 1) for a speaker."""
    return zlib.crc32(f"{seed}:{speaker}".encode()) / 2**32


def assign_splits(utts: list[Utterance], val_fraction: float, test_fraction: float,
                  seed: int) -> list[Utterance]:
    """Give every unassigned utterance a split by its speaker's hash bucket.

    Buckets below ``test_fraction`` -> test, the next ``val_fraction`` -> val, the rest -> train.
    A speaker who already has a "test" utterance (a holdout range) never lands in train or val.
    """
    fixed = {u.speaker: u.split for u in utts if u.split}
    out = []
    for u in utts:
        if u.split:
            out.append(u)
            continue
        if u.speaker in fixed:
            out.append(replace(u, split=fixed[u.speaker]))
            continue
        b = bucket(u.speaker, seed)
        split = "test" if b < test_fraction else "val" if b < test_fraction + val_fraction \
            else "train"
        out.append(replace(u, split=split))
    return out


def collect(cfg: Config) -> list[Utterance]:
    """Every utterance named by ``cfg.data``, with its split assigned."""
    d = cfg.data
    keyword_utts: list[Utterance] = []
    for kw, folders in d.keyword_dirs.items():
        utts = [u for folder in folders
                for u in read_keyword_folder(kw, cfg.resolve(folder), d.holdout.get(kw, ()))]
        keyword_utts += assign_splits(utts, d.val_fraction, keyword_test_fraction(cfg, kw),
                                      d.seed)
    # a keyword's recordings are never its negatives, even in a folder below a negative one
    # (Speech Commands' "yes" as an auxiliary keyword, its parent folder as negatives)
    keyword_folders = [cfg.resolve(f) for folders in d.keyword_dirs.values() for f in folders]
    negative_utts: list[Utterance] = []
    for folder in d.negative_dirs + d.confusable_dirs:
        root = cfg.resolve(folder)
        below = [k for k in keyword_folders if inside(k, [root])]  # most often none: no test
        negative_utts += [u for u in read_negative_folder(root)
                          if not below or not inside(u.path, below)]
    for folder in d.eval_negative_dirs:
        negative_utts += read_negative_folder(cfg.resolve(folder), split="test")
    manifest_utts = [u for m in d.manifests for u in read_manifest(cfg.resolve(m))]
    negative_val = d.val_fraction if d.negative_val_fraction is None else d.negative_val_fraction
    return (keyword_utts
            + assign_splits(negative_utts, negative_val, d.negative_test_fraction, d.seed)
            + assign_splits(manifest_utts, d.val_fraction, d.test_fraction, d.seed))


def split_table(utts: list[Utterance]) -> dict[str, dict[str, int]]:
    """Counts per label and split, for the run's output: ``{label: {split: n}}``."""
    counts = Counter((u.label, u.split) for u in utts)
    labels = sorted({u.label for u in utts})
    return {lab: {s: counts[(lab, s)] for s in SPLITS} for lab in labels}


@dataclass
class Clips:
    """Decoded audio of one split: keyword clips per label and negative recordings.

    Attributes:
        positives: keyword -> list of (path, float32 audio).
        negatives: list of (path, float32 audio), any length.
        skipped: how many files could not be decoded.
    """

    positives: dict[str, list[tuple[Path, np.ndarray]]]
    negatives: list[tuple[Path, np.ndarray]]
    skipped: int

    def negative_seconds(self, sample_rate: int = 16000) -> float:
        return sum(len(w) for _, w in self.negatives) / sample_rate


def load_split(utts: list[Utterance], split: str, keywords: tuple[str, ...],
               sample_rate: int = 16000) -> Clips:
    """Decode the utterances of ``split``; labels not in ``keywords`` count as negative."""
    chosen = [u for u in utts if u.split == split]
    report = load_many([u.path for u in chosen], sample_rate)
    label_of = {u.path: u.label for u in chosen}
    positives: dict[str, list[tuple[Path, np.ndarray]]] = {kw: [] for kw in keywords}
    negatives = []
    for path, wave in report.clips:
        label = label_of[path]
        (positives[label] if label in positives else negatives).append((path, wave))
    return Clips(positives, negatives, len(report.skipped))


def noise_paths(cfg: Config) -> list[Path]:
    """The background noise files in ``cfg.data.noise_dirs``."""
    return [p for folder in cfg.data.noise_dirs for p in find_audio(cfg.resolve(folder))]


def load_noise(cfg: Config) -> list[np.ndarray]:
    """Background noise recordings named by ``cfg.data.noise_dirs``."""
    return [w for _, w in load_many(noise_paths(cfg), cfg.frontend.sample_rate).clips]


def rendering_name(number: int, voice: str) -> str:
    """The file name of a phrase's rendering ``number`` by ``voice`` (:mod:`kws.synth` writes
    it; each file is its own speaker)."""
    return f"{number:05d}-{voice}.wav"


def rendering_number(path: str | Path) -> int | None:
    """The number in a :func:`rendering_name` (None for another name)."""
    match = re.match(r"(\d{5})-", Path(path).name)
    return int(match.group(1)) if match else None


def split_of(path: Path, label: str, cfg: Config) -> str:
    """The split :func:`collect` gives a keyword file that is its own speaker (a rendering) at
    ``path``, whether or not it exists yet."""
    d = cfg.data
    return assign_splits([Utterance(path, label, speaker_of(path))], d.val_fraction,
                         keyword_test_fraction(cfg, label), d.seed)[0].split


def keyword_test_fraction(cfg: Config, keyword: str) -> float:
    """The share of ``keyword``'s speakers held out for test: none for a keyword with holdout
    ranges (it is tested on exactly those files), else ``[data] test_fraction``."""
    return 0.0 if cfg.data.holdout.get(keyword) else cfg.data.test_fraction


def inside(path: str | Path, folders: list[Path]) -> bool:
    """Whether ``path`` is one of ``folders`` or lies below one (resolved: links followed)."""
    path = Path(path).resolve()
    return any(path.is_relative_to(Path(f).resolve()) for f in folders)


def from_corpora(cfg: Config, clips: Clips) -> Clips:
    """``clips`` with only the negatives found in ``cfg.data.negative_dirs`` (not those of
    ``confusable_dirs`` or manifests, which are made for the keywords)."""
    roots = [cfg.resolve(folder) for folder in cfg.data.negative_dirs]
    return Clips(clips.positives, [(p, w) for p, w in clips.negatives if inside(p, roots)], 0)
