"""The feature pool: training sequences whose features are computed once, then sampled.

With ``[train] feature_pool = N`` (speech-embedding configs, where features cost the most), a
run draws N sequences once. Half of the negative sequences come from the negative corpora alone
(no keyword material: no partial keyword, no confusable phrase), so they are the same for every
keyword trained on the same corpora with the same augmentation. Their features are cached on
disk (``$KWS_CACHE``, default ``~/.cache/kws``) under a key of everything they depend on: the
files (path, size, modification time), the frontend, augmentation and sequence settings, the
model's step (features are cropped to whole steps), the seeds, and the source of the modules
that make them. The other sequences (every positive, the partial keywords, the negatives that
may hold confusables) are drawn for the run, with the shares set so the pool as a whole keeps
``positive_share`` positives and as many partial keywords as fresh sequences would have.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import zipfile
import zlib
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch

from kws.core.config import to_dict
from kws.features.cache import cache_dir
from kws.train import workers
from kws.train.sequences import CANDIDATES, PARTIAL_KEYWORD_SHARE, Slot, draw_slot

log = logging.getLogger(__name__)

CORPUS_SHARE = 0.5  # of the pool's negative sequences: corpus audio alone, cached
SLOT_STREAM = 779  # the seeds of the keyword part's slots: (seed, SLOT_STREAM, rank, batch, row)
FORMAT = 1
POOL_COLUMNS = ("features", "labels", "start", "end")
# the modules whose code decides what a corpus sequence and its features are (decoding,
# mixing, augmentation, drawing, features, cropping)
SOURCES = ("kws/core/audio.py", "kws/core/resample.py", "kws/core/mixing.py",
           "kws/train/sequences.py", "kws/train/augment.py", "kws/train/trainer.py",
           "kws/train/model.py", "kws/features/__init__.py", "kws/features/logmel.py",
           "kws/features/embedding.py")

Batch = tuple[torch.Tensor, ...]  # features (B, T, F) float32, labels, start, end (B,) int64


def pool_sizes(total: int, positive_share: float, partial_share: float
               ) -> tuple[int, float, float]:
    """Split a pool of ``total`` sequences: (cached corpus negatives, positive share and
    partial-keyword share of the negatives among the rest)."""
    corpus = int(total * (1 - positive_share) * CORPUS_SHARE)
    rest = total - corpus
    positive = min(1.0, total * positive_share / rest)
    partial = min(1.0, total * (1 - positive_share) * partial_share
                  / max(1.0, rest * (1 - positive))) if positive < 1 else 0.0
    return corpus, positive, partial


def keyword_slots(cfg, auxiliary: tuple[str, ...], seed: int, rank: int = 0
                  ) -> list[list[Slot]]:
    """The :class:`kws.train.sequences.Slot` of each row of each batch of the pool's keyword
    part (every sequence but the cached corpus negatives) for a run of ``cfg`` with
    ``auxiliary`` keywords, pool ``seed`` and ``rank``: a function of these alone, so the
    renderings the pool will use are known before they are made. The k-th slot of an
    auxiliary keyword names the k-th ``CANDIDATES`` numbers of a stream of that keyword's own,
    whatever the other keywords: phrases share their renderings. None (rows drawn as fresh
    sequences are) without a pool or unless ``[data] auxiliary_render = "drawn"``."""
    t = cfg.train
    if not t.feature_pool or cfg.data.auxiliary_render != "drawn":
        return []
    n_corpus, positive, partial = pool_sizes(t.feature_pool, t.positive_share,
                                             PARTIAL_KEYWORD_SHARE)
    batches = -(-(t.feature_pool - n_corpus) // t.batch_size)
    streams = [np.random.default_rng([seed, SLOT_STREAM, rank, zlib.crc32(kw.encode())])
               for kw in auxiliary]

    def slot(j: int, i: int) -> Slot:
        drawn = draw_slot(np.random.default_rng([seed, SLOT_STREAM, rank, j, i]), positive,
                          partial, len(auxiliary), t.auxiliary_share)
        if drawn.auxiliary < 0 or not cfg.data.auxiliary_renderings:
            return drawn
        numbers = streams[drawn.auxiliary].integers(cfg.data.auxiliary_renderings,
                                                    size=CANDIDATES)
        return dataclasses.replace(drawn, renderings=tuple(int(r) for r in numbers))

    return [[slot(j, i) for i in range(t.batch_size)] for j in range(batches)]


def file_list(paths: Iterable[Path]) -> list[tuple[str, int, int]]:
    """(resolved path, bytes, modification time in ns) of each file, sorted."""
    out = []
    for p in paths:
        st = Path(p).stat()
        out.append((str(Path(p).resolve()), st.st_size, st.st_mtime_ns))
    return sorted(out)


def corpus_key(cfg, negatives: Sequence[Path], noise: Sequence[Path], count: int,
               seed: int, rank: int) -> str:
    """A hex digest of everything the cached corpus sequences depend on."""
    root = Path(__file__).resolve().parents[2]
    code = hashlib.sha256()
    for name in SOURCES:
        code.update((root / name).read_bytes())
    inputs = {"format": FORMAT, "frontend": to_dict(cfg.frontend), "augment": to_dict(cfg.augment),
              "stack_frames": cfg.model.stack_frames,  # features are cropped to whole steps
              "sequence_s": cfg.train.sequence_s, "negative_draw": cfg.train.negative_draw,
              "batch_size": cfg.train.batch_size, "count": count, "seed": seed, "rank": rank,
              "negatives": file_list(negatives), "noise": file_list(noise),
              "code": code.hexdigest()}
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:32]


def load(path: Path) -> Batch | None:
    """The cached columns, or None (with a warning) when the file is missing or unreadable."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as saved:
            return tuple(torch.from_numpy(saved[name].copy()) for name in POOL_COLUMNS)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        log.warning("feature cache %s is unreadable (%s): computing it again", path, exc)
        return None


def save(path: Path, columns: Batch) -> None:
    """Write atomically: a partial file never takes the cache's name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as f:
        np.savez(f, **{name: t.numpy() for name, t in zip(POOL_COLUMNS, columns)})
    os.replace(tmp, path)


def draw(make: Callable[[int], Batch], count: int, batch_size: int, progress: bool,
         stage: str, processes: int = 1) -> Batch:
    """``count`` rows from ``make(0)``, ``make(1)``, ... (``batch_size`` rows each; each batch
    draws from seeds of its own, so the rows do not depend on ``processes``), on the CPU; the
    batches are made in ``processes`` worker processes (:mod:`kws.train.workers`)."""
    from tqdm import tqdm

    if count == 0:
        return tuple(torch.empty(0) for _ in POOL_COLUMNS)
    batches = -(-count // batch_size)

    def bar(results):
        return tqdm(results, total=batches, desc=stage, leave=False,
                    disable=None if progress else True)

    parts = workers.fork_map(lambda j: tuple(t.cpu().numpy() for t in make(j)),
                             range(batches), processes, bar)
    return tuple(torch.cat([torch.from_numpy(p) for p in column])[:count]
                 for column in zip(*parts))


def corpus_part(key: str, make: Callable[[int], Batch], count: int, batch_size: int,
                progress: bool, processes: int = 1) -> Batch:
    """The cached corpus sequences for ``key``, computed and saved when absent."""
    path = cache_dir() / f"pool-{key}.npz"
    cached = load(path)
    if cached is not None and len(cached[0]) == count:
        log.info("feature pool: %d corpus sequences from the cache %s", count, path)
        return cached
    columns = draw(make, count, batch_size, progress, "feature pool: corpus negatives (cached)",
                   processes)
    save(path, columns)
    log.info("feature pool: %d corpus sequences cached in %s (%.0f MB)", count, path,
             path.stat().st_size / 1e6)
    return columns
