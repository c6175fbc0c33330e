"""Engines for ``kws eval``: anything that turns audio into per-step keyword scores.

An :class:`Engine` is a name, its keywords, its step timing, a scorer (see
:mod:`kws.metrics.evaluate`) and the decision rule its scores are read with. Engines come from an
exported model folder (onnxruntime, no torch), a training run or checkpoint (torch, through
:mod:`kws.train.checkpoint`), or another wake word engine (:mod:`kws.peers`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kws.core.audio import float32_to_int16
from kws.core.config import Config
from kws.core.contract import MANIFEST
from kws.core.decision import DecisionRule
from kws.core.extras import require
from kws.core.timing import Timing
from kws.features.cache import FeatureCache
from kws.metrics.evaluate import Scorer
from kws.peers import PEERS, peer_streams
from kws.runtime import OnnxModel
from kws.runtime.cascade import Verifier, cascade_track


@dataclass(frozen=True)
class Engine:
    """Something that turns audio into per-step keyword scores, and how they are read.

    Attributes:
        rule: the decision rule (smoothing, holding, refractory) its scores are read with: a
            model's own, the default rule for other engines.
        config: the run config of a checkpoint or exported model (None for peers).
    """

    name: str
    keywords: tuple[str, ...]
    timing: Timing
    scorer: Scorer
    rule: DecisionRule = field(default_factory=DecisionRule)
    config: Config | None = None
    verified: bool = False


def exported_engine(folder: Path, file: str | None = None, verifier: bool = True) -> Engine:
    """An engine for an exported model folder (the int8 file unless ``file`` says otherwise);
    speech embeddings are read from, or added to, the on-disk feature cache
    (:mod:`kws.features.cache`). A folder with a verifier is read as the cascade
    (:func:`kws.runtime.cascade.cascade_track`) unless ``verifier`` is False."""
    model = OnnxModel(folder, file)
    m = model.manifest
    cached = FeatureCache(m.frontend)
    timing = Timing.of(m.frontend, m.step_frames)
    name = f"{folder}/{model.file}"
    if m.verifier is None or not verifier:
        return Engine(name + (" (first stage)" if m.verifier else ""), model.keywords, timing,
                      lambda wave: model.score_features(cached(wave)), m.rule)
    second = Verifier(m)
    return Engine(name + " + verifier", model.keywords, timing,
                  lambda wave: cascade_track(second, model.score_features(cached(wave)), wave,
                                             m.rule), second.rule, verified=True)


def checkpoint_engine(path: Path) -> Engine:
    """An engine for a checkpoint or run folder (needs torch: the ``train`` extra)."""
    require("torch", "train", f"evaluating the checkpoint {path}")
    from kws.train.checkpoint import load_model
    from kws.train.model import torch_scorer

    model, cfg = load_model(path)
    return Engine(str(path), cfg.model.keywords, Timing.of(cfg.frontend, cfg.model.stack_frames),
                  torch_scorer(model, cfg), cfg.decision, cfg)


def peer_engine(spec: str) -> Engine:
    """An engine for ``openwakeword:KEYWORD`` or ``microwakeword:KEYWORD``."""
    new_stream, timing = peer_streams(spec)

    def scorer(wave: np.ndarray) -> np.ndarray:
        return new_stream().accept(float32_to_int16(wave))

    return Engine(spec, (spec.partition(":")[2],), timing, scorer)


def load_engine(spec: str, verifier: bool = True) -> Engine:
    """A checkpoint (``.pt`` or a run folder with ``best.pt``), an exported model folder
    (``model.json`` inside), or a peer engine ``openwakeword:KEYWORD`` /
    ``microwakeword:KEYWORD``."""
    if spec.split(":", 1)[0] in PEERS:
        return peer_engine(spec)
    path = Path(spec)
    if (path / MANIFEST).is_file():
        return exported_engine(path, verifier=verifier)
    if path.suffix == ".pt" or (path / "best.pt").is_file():
        return checkpoint_engine(path)
    raise FileNotFoundError(f"{spec}: not a checkpoint (.pt), a run folder with best.pt, or an "
                            "exported model folder with model.json")


def with_rule(engine: Engine, smoothing_steps: int | None = None, min_steps: int | None = None,
              refractory_s: float | None = None) -> Engine:
    """``engine`` read with the given settings in place of its own (None: keep its own), as
    ``kws detect --smoothing S --min-steps M --refractory R`` reads a model.

    Raises:
        ValueError: settings for a cascade, whose first stage is read with its own rule.
    """
    if engine.verified and (smoothing_steps, min_steps, refractory_s) != (None, None, None):
        raise ValueError(f"{engine.name}: a model with a verifier is evaluated with its own "
                         "rule; --smoothing, --min-steps and --refractory need --no-verifier")
    return dataclasses.replace(engine, rule=engine.rule.overridden(
        smoothing_steps=smoothing_steps, min_steps=min_steps, refractory_s=refractory_s))
