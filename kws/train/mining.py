"""The hardest negatives: the moments of negative audio a model scores highest.

``kws mine`` saves them as activations labelled ``false_alarm`` (:func:`mine`), in the format
``kws listen --save-detections`` writes and ``kws finetune`` trains on. An ensemble with
``[train] hard_negatives`` mines its own training negatives between two rounds and trains on
them (:func:`hard_sequences`, :mod:`kws.train.ensemble`). Either way a training round on the
mistakes that matter for false alarms per hour. The model reads its scores with its decision
rule, and a recording gives at most one moment per refractory period. Only the training split
(or validation, for ``kws mine``) is mined, never the audio the figures are measured on.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch

from kws.core.config import Config
from kws.core.decision import decision_track, events
from kws.core.timing import Timing
from kws.data import corpora
from kws.data.activations import read_activations, save_activation, write_label
from kws.train.model import KeywordModel, torch_scorer
from kws.train.sequences import Sequence

log = logging.getLogger(__name__)

BEFORE_S, AFTER_S = 1.5, 0.5  # the audio kept around a mined moment, as kws listen keeps
LOW = 0.05  # decision value from which a moment counts as a candidate
Moment = tuple[float, int, float, str]  # decision value, recording index, time in s, keyword


def hardest(model: KeywordModel, cfg: Config, negatives: list[tuple[Path, np.ndarray]],
            count: int, features: list[np.ndarray] | None = None,
            progress: Callable[[Iterable], Iterable] = iter) -> list[Moment]:
    """The ``count`` highest-scoring moments of ``model`` on ``negatives`` ((path, wave)
    pairs), highest first. ``features`` (one ``(frames, F)`` array per recording) are used
    instead of computing them again."""
    cache = None if features is None else {
        id(w): torch.from_numpy(f)[None] for (_, w), f in zip(negatives, features)}
    scorer = torch_scorer(model.eval(), cfg, cache=cache)
    timing = Timing.of(cfg.frontend, cfg.model.stack_frames)
    rule = cfg.decision
    refractory = rule.refractory_steps(timing.step_s)
    candidates = []
    for f, (_, wave) in enumerate(progress(negatives)):
        track = decision_track(scorer(wave), rule.smoothing_steps, rule.min_steps)
        for k, kw in enumerate(cfg.model.keywords):
            column = np.nan_to_num(track[:, k])
            # one candidate per event at a low level: the peaks a threshold could meet
            for step in events(column, LOW, refractory):
                stop = min(len(column), step + refractory)
                peak = step + int(np.argmax(column[step:stop]))
                candidates.append((float(column[peak]), f, timing.end_of(peak), kw))
    candidates.sort(reverse=True)
    return candidates[:count]


def mine(model: KeywordModel, cfg: Config, out: Path, count: int = 300,
         split: str = "train", progress=iter) -> list[Path]:
    """Save the ``count`` highest-scoring moments of ``split``'s negatives to ``out``; returns
    their JSON paths."""
    if split not in ("train", "val"):
        raise ValueError(f"split {split!r}: mine from 'train' or 'val', never from the test "
                         "split the figures are measured on")
    rate = cfg.frontend.sample_rate
    # as in training, auxiliary keywords' recordings are their own class, never negatives
    clips = corpora.load_split(corpora.collect(cfg), split,
                               cfg.model.keywords + cfg.model.auxiliary, rate)
    moments = hardest(model, cfg, clips.negatives, count, progress=progress)
    saved = []
    for score, f, t, kw in moments:
        path, wave = clips.negatives[f]
        a, b = max(0, int((t - BEFORE_S) * rate)), int((t + AFTER_S) * rate)
        saved.append(save_activation(out, kw, score, t, wave[a:b], a / rate, rate))
    for activation in read_activations(out):
        if activation.json_path in saved:
            write_label(activation, "false_alarm")
    log.info("mined %d moments from %d %s negatives into %s", len(saved),
             len(clips.negatives), split, out)
    return saved


def hard_sequences(moments: list[Moment], negatives: list[tuple[Path, np.ndarray]],
                   sequence_s: float, sample_rate: int, finish, rng: np.random.Generator
                   ) -> list[Sequence]:
    """One negative training sequence (label 0) of ``sequence_s`` seconds per moment: the
    recording's audio up to the moment and a little after, placed as a keyword is placed in a
    positive sequence (the moment at a random time at least 0.3 s before the end, at most as
    late as the recording allows; silence where the recording has no audio), then ``finish``
    (``SequenceMaker.finish``: the room, noise, gain and colour every training sequence gets)."""
    n, margin = int(sequence_s * sample_rate), int(0.3 * sample_rate)
    out = []
    for _, f, t, _ in moments:
        wave = negatives[f][1]
        at = min(int(t * sample_rate), len(wave))
        end_at = int(rng.integers(min(at, n - margin - 1), n - margin))  # where `at` lands
        seq = np.zeros(n, dtype=np.float32)
        first = max(0, at - end_at)  # the recording's first sample in the sequence
        start = end_at - at + first  # ... and where it goes
        part = wave[first:first + n - start]
        seq[start:start + len(part)] = part
        out.append(Sequence(finish(seq, rng), 0))
    return out
