"""``kws mine``: the hardest negatives of a model's own training audio, saved as false alarms.

The model scores every negative recording of a split (the training split by default, never the
ones its figures are measured on) and reads the scores with its decision rule; the moments that
score highest (at most one per refractory period of a recording) are saved as activations
labelled ``false_alarm``, in the format ``kws listen --save-detections`` writes and
``kws finetune`` trains on. Mining and fine-tuning in turn is a training round on the mistakes
that matter for false alarms per hour.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from kws.core.config import Config
from kws.core.decision import decision_track, events
from kws.core.timing import Timing
from kws.data import corpora
from kws.data.activations import read_activations, save_activation, write_label
from kws.train.model import KeywordModel, torch_scorer

log = logging.getLogger(__name__)

BEFORE_S, AFTER_S = 1.5, 0.5  # the audio kept around a mined moment, as kws listen keeps


def mine(model: KeywordModel, cfg: Config, out: Path, count: int = 300,
         split: str = "train", progress=iter) -> list[Path]:
    """Save the ``count`` highest-scoring moments of ``split``'s negatives to ``out``; returns
    their JSON paths."""
    if split not in ("train", "val"):
        raise ValueError(f"split {split!r}: mine from 'train' or 'val', never from the test "
                         "split the figures are measured on")
    rate = cfg.frontend.sample_rate
    clips = corpora.load_split(corpora.collect(cfg), split, cfg.model.keywords, rate)
    scorer = torch_scorer(model.eval(), cfg)
    timing = Timing.of(cfg.frontend, cfg.model.stack_frames)
    rule = cfg.decision
    refractory = rule.refractory_steps(timing.step_s)
    candidates = []  # (score, file index, step, keyword)
    for f, (_, wave) in enumerate(progress(clips.negatives)):
        track = decision_track(scorer(wave), rule.smoothing_steps, rule.min_steps)
        for k, kw in enumerate(cfg.model.keywords):
            column = np.nan_to_num(track[:, k])
            # one candidate per event at a low level: the peaks a threshold could meet
            for step in events(column, 0.05, refractory):
                stop = min(len(column), step + refractory)
                peak = step + int(np.argmax(column[step:stop]))
                candidates.append((float(column[peak]), f, peak, kw))
    candidates.sort(reverse=True)
    saved = []
    for score, f, step, kw in candidates[:count]:
        path, wave = clips.negatives[f]
        t = float(timing.step_times(step + 1)[step])
        a, b = max(0, int((t - BEFORE_S) * rate)), int((t + AFTER_S) * rate)
        saved.append(save_activation(out, kw, score, t, wave[a:b], a / rate, rate))
    for activation in read_activations(out):
        if activation.json_path in saved:
            write_label(activation, "false_alarm")
    log.info("mined %d of %d candidate moments from %d %s negatives into %s", len(saved),
             len(candidates), len(clips.negatives), split, out)
    return saved
