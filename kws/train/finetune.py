"""``kws finetune``: train a model further on the activations a person labelled.

The labelled false alarms (``kws review``) join the training negatives, each drawn
``FALSE_ALARM_WEIGHT`` times as often as an ordinary negative file; activations labelled
"keyword" join the positives likewise. The original training data stays in (the config's
``[data]``), so the model does not forget the rest; a few epochs at a tenth of the learning
rate, from the model's own weights, keep it close to what it was.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import torch

from kws.core.config import Config
from kws.data.activations import read_activations
from kws.train.trainer import Trainer

log = logging.getLogger(__name__)

FALSE_ALARM_WEIGHT = 20  # a labelled activation is drawn this many times as often
EPOCHS = 3
LR_FACTOR = 0.1


def activation_manifest(folder: Path, keyword_names: tuple[str, ...], out: Path) -> dict:
    """Write a JSONL manifest (:func:`kws.data.corpora.read_manifest`) of the labelled
    activations in ``folder`` for training; returns the counts per label.

    Raises:
        ValueError: no activation is labelled "false_alarm" (nothing to learn from).
    """
    lines, counts = [], {"false_alarm": 0, "keyword": 0}
    for a in read_activations(folder):
        if a.label is None or not a.wav_path.is_file():
            continue
        if a.label == "keyword" and a.keyword not in keyword_names:
            log.warning("%s: keyword %r is not one of the model's; left out", a.json_path,
                        a.keyword)
            continue
        label = "none" if a.label == "false_alarm" else a.keyword
        row = {"path": str(a.wav_path.resolve()), "label": label, "split": "train",
               "speaker": f"activation-{a.wav_path.stem}"}
        lines += [json.dumps(row)] * FALSE_ALARM_WEIGHT
        counts[a.label] += 1
    if not counts["false_alarm"]:
        raise ValueError(f"{folder}: no activation is labelled false_alarm (label them with "
                         "kws review)")
    out.write_text("\n".join(lines) + "\n")
    return counts


def finetune(cfg: Config, init: dict, activations: Path, out: Path, epochs: int = EPOCHS,
             lr: float | None = None, progress: bool = True) -> dict:
    """Train ``cfg``'s model from the state dict ``init`` (tensors or arrays) on its data plus
    the labelled activations, into the run folder ``out``; returns the trainer's metrics with
    the counts of activations used under ``"activations"``."""
    out.mkdir(parents=True, exist_ok=True)
    manifest = out / "activations.jsonl"
    counts = activation_manifest(activations, cfg.model.keywords, manifest)
    data = dataclasses.replace(cfg.data,
                               manifests=cfg.data.manifests + (str(manifest.resolve()),))
    train = dataclasses.replace(cfg.train, epochs=epochs, lr=lr or cfg.train.lr * LR_FACTOR,
                                select="last", members=1, patience=max(epochs, 1),
                                average_epochs=0)  # a few epochs on: their last weights
    log.info("fine-tuning on %d false alarm(s) and %d keyword activation(s), %d epoch(s)",
             counts["false_alarm"], counts["keyword"], epochs)
    init = {k: torch.as_tensor(v) for k, v in init.items()}
    result = Trainer(dataclasses.replace(cfg, data=data, train=train), out).run(
        progress=progress, init=init)
    result["activations"] = counts
    return result
