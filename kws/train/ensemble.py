"""Ensembles: N independently trained members merged into one :class:`KeywordModel`.

Members differ only in their seed (weights, batch order, augmentation); with a feature pool they
share its sequences. Their false alarms are mostly on different recordings, so averaging them
removes the rare high-scoring negatives that decide the miss rate at low false-alarm rates.

The merge is exact, not an approximation: the merged model is a :class:`KeywordModel` with
``members`` N, N GRUs side by side (``proj_dim`` N*P, ``hidden`` N*H), that exports, quantizes and
streams like any other and stores no weight between members. Per member i of N:

    proj  (P, S*M)   -> rows i*P..          of (N*P, S*M), each member's normalization folded in
    GRU              -> grus[i]             unchanged
    out   (K+1, H)   -> columns i*H.. / N   of (K+1, N*H): the merged logits are the members'
                                               mean logits (softmax of the mean)
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path

import torch

from kws.core.config import Config, FrontendConfig
from kws.train import checkpoint, mining, pool, workers
from kws.train.finetune import LR_FACTOR
from kws.train.model import KeywordModel
from kws.train.trainer import Trainer

log = logging.getLogger(__name__)


def merge(models: list[KeywordModel], frontend: FrontendConfig) -> KeywordModel:
    """One model whose logits are the mean of the members' logits (see the module docstring);
    ``frontend`` is the members' frontend.

    Raises ValueError when the members differ in anything but their weights."""
    first = models[0]
    for i, m in enumerate(models[1:], 1):
        if m.cfg != first.cfg or m.n_mels != first.n_mels:
            raise ValueError(f"ensemble member {i} has model config {m.cfg} ({m.n_mels} bands); "
                             f"member 0 has {first.cfg} ({first.n_mels} bands): members must "
                             "differ only in their weights")
    if first.cfg.members != 1:
        raise ValueError("ensemble members must be single models (members = 1)")
    n, p, h, s = len(models), first.cfg.proj_dim, first.cfg.hidden, first.step_frames
    cfg = dataclasses.replace(first.cfg, proj_dim=n * p, hidden=n * h, members=n)
    merged = KeywordModel(cfg, frontend)
    mean, std = first.feat_mean.clone(), first.feat_std.clone()
    sd = {k: torch.zeros_like(v) for k, v in merged.state_dict().items()}
    sd["feat_mean"], sd["feat_std"] = mean, std
    for i, m in enumerate(models):
        w = m.state_dict()
        # W_i (x - m_i)/s_i + b_i  ==  W_i diag(s/s_i) (x - m)/s + b_i + W_i (m - m_i)/s_i
        ratio = (std / w["feat_std"]).repeat(s)
        shift = ((mean - w["feat_mean"]) / w["feat_std"]).repeat(s)
        rows = slice(i * p, (i + 1) * p)
        sd["proj.weight"][rows] = w["proj.weight"] * ratio
        sd["proj.bias"][rows] = w["proj.bias"] + w["proj.weight"] @ shift
        for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
            sd[f"grus.{i}.{name}"] = w[f"grus.0.{name}"]
        sd["out.weight"][:, i * h:(i + 1) * h] = w["out.weight"] / n
        sd["out.bias"] += w["out.bias"] / n
    merged.load_state_dict(sd)
    return merged.eval()


def train_members(cfg: Config, out: Path, resume: bool, progress: bool,
                  device: str | None, make=Trainer) -> dict:
    """Train ``cfg.train.members`` members in ``out/member-<i>`` (seed + i; the data loaded,
    the validation audio featurized and the feature pool drawn once, from the base seed; the
    members side by side in worker processes, :mod:`kws.train.workers`), merge them into
    ``out/best.pt`` and validate the merged model. With ``[train] hard_negatives``, a second
    round trains each member on in ``out/hard-<i>`` with the merged first round's hardest
    training negatives added to the pool (:func:`add_hard_negatives`). With ``resume``, a member
    whose ``metrics.json`` exists is kept and an interrupted one goes on from its checkpoint.
    ``make(cfg, folder, device)`` makes each member's trainer (a student's, for distillation).
    Returns the merged model's metrics, each member's under ``"members"``."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ValueError(f"train.members = {cfg.train.members}, train.hard_negatives = "
                         f"{cfg.train.hard_negatives}: ensembles and hard-negative rounds train "
                         "in one process; start kws train without torchrun (or set members = 1 "
                         "and hard_negatives = 0)")
    t = cfg.train
    single = dataclasses.replace(t, members=1)

    on = device or workers.default_device()  # the members' (found without starting CUDA)

    def member(i: int, folder: str = "member", on: str = on, **train) -> Trainer:
        trainer = make(dataclasses.replace(cfg, train=dataclasses.replace(
            single, seed=t.seed + i, **train)), out / f"{folder}-{i}", on)
        trainer.pool_seed = t.seed
        return trainer

    # loads what every member shares (Trainer.adopt), on the CPU: it trains nothing, and on a
    # GPU this process must not start CUDA before the members fork (kws.train.workers)
    base = member(0, on="cpu")
    summary = base.prepare_data()

    def ready() -> None:  # before members fork: what they share, made once
        if t.feature_pool and base.pool is None:
            base.build_pool(progress)
        if not base.val_features:
            base.featurize_validation(progress)

    members = train_round(base, member, "member", t.members, resume, progress, ready, on)
    result = {**summary, "members": members}
    models = [checkpoint.load_model(out / f"member-{i}", device or "cpu")[0]
              for i in range(t.members)]
    if t.hard_negatives:
        first = merge(models, cfg.frontend)
        result["first_round_val_miss"] = judged(cfg, out, base, first, device).validate()
        log.info("first round, ensemble of %d: val miss@%gFA/h %s", t.members,
                 t.target_fa_per_hour, json.dumps(result["first_round_val_miss"]))

        def second(i: int) -> Trainer:
            return member(i, "hard", epochs=t.hard_negative_epochs, lr=t.lr * LR_FACTOR,
                          average_epochs=0)  # a few epochs on, as fine-tuning: no average

        def init(i: int) -> dict:
            return models[i].state_dict()

        result["hard_negative_members"] = train_round(
            base, second, "hard", t.members, resume, progress,
            lambda: (ready(), result.update(add_hard_negatives(base, first, progress))), on,
            init)
        models = [checkpoint.load_model(out / f"hard-{i}", device or "cpu")[0]
                  for i in range(t.members)]
    merged = merge(models, cfg.frontend)
    judge = judged(cfg, out, base, merged, device)
    val_miss = judge.validate()
    judge.save(checkpoint.BEST, 0, {"val_miss": val_miss, "members": t.members})
    log.info("ensemble of %d: val miss@%gFA/h %s", t.members, t.target_fa_per_hour,
             json.dumps(val_miss))
    rounds = members + result.get("hard_negative_members", [])
    result.update({"device": judge.device,
                   "train_seconds": sum(m["train_seconds"] for m in rounds),
                   "parameters": sum(p.numel() for p in merged.parameters()),
                   "best": {"val_miss_mean": val_miss["mean"]}, "val_miss": val_miss})
    (out / "metrics.json").write_text(json.dumps(result, indent=2))
    return result


def train_round(base: Trainer, member, folder: str, n: int, resume: bool, progress: bool,
                ready, on: str, init=None) -> list[dict]:
    """Train the members ``member(i)`` (``i < n``, in ``<out>/<folder>-<i>``, on device
    ``on``) in worker processes, from ``init(i)``'s state dict when given; ``ready()`` runs
    first, and only when a member is left to train (with ``resume``, one with ``metrics.json``
    is kept). Returns each member's metrics."""
    from tqdm import tqdm

    out = base.out.parent
    done = {}
    for i in range(n):
        metrics = out / f"{folder}-{i}" / "metrics.json"
        if resume and metrics.is_file():
            log.info("%s %d/%d: kept (%s)", folder, i + 1, n, metrics)
            done[i] = json.loads(metrics.read_text())
    todo = [i for i in range(n) if i not in done]
    if not todo:
        return [done[i] for i in range(n)]
    ready()
    processes = workers.count(on)

    def train_one(i: int) -> dict:
        trainer = member(i)
        trainer.adopt(base)
        log.info("%s %d/%d: seed %d", folder, i + 1, n, trainer.cfg.train.seed)
        return trainer.run(resume=resume and (trainer.out / checkpoint.LAST).is_file(),
                           progress=progress and processes == 1,
                           init=None if init is None else init(i))

    def bar(results):
        return tqdm(results, total=len(todo), leave=False, disable=None if progress else True,
                    desc=f"ensemble: {folder}s ({min(processes, len(todo))} at a time)")

    done.update(zip(todo, workers.fork_map(train_one, todo, processes, bar)))
    return [done[i] for i in range(n)]


def judged(cfg: Config, out: Path, base: Trainer, model: KeywordModel,
           device: str | None) -> Trainer:
    """A trainer in ``out`` holding ``model`` (merged) and ``base``'s data, to validate and
    save it."""
    judge = Trainer(dataclasses.replace(cfg, model=model.cfg), out, device)
    judge.out.mkdir(parents=True, exist_ok=True)
    judge.adopt(base)
    judge.module.load_state_dict(model.state_dict())
    return judge


def add_hard_negatives(base: Trainer, model: KeywordModel, progress: bool) -> dict:
    """Add a negative sequence around each of the ``[train] hard_negatives`` moments of the
    training negatives that ``model`` scores highest to ``base.pool`` (features from the disk
    cache, :class:`kws.features.cache.FeatureCache`, computed in worker processes when
    absent). Returns what was mined, for the metrics."""
    from tqdm import tqdm

    cfg, t = base.cfg, base.cfg.train
    negatives = base.train_clips.negatives

    def bar(stage: str, total: int):
        return lambda items: tqdm(items, total=total, desc=stage, leave=False,
                                  disable=None if progress else True)

    features = base.cached_features([w for _, w in negatives], "hard negatives: features",
                                    progress)
    moments = mining.hardest(model, cfg, negatives, t.hard_negatives, features,
                             bar("hard negatives: scoring", len(negatives)))
    seqs = mining.hard_sequences(moments, negatives, t.sequence_s, cfg.frontend.sample_rate,
                                 base.maker.finish, base.rng(779, 0))
    b = t.batch_size
    rows = pool.draw(lambda j: base.columns(seqs[j * b:(j + 1) * b], "cpu"), len(seqs), b,
                     progress, "hard negatives: sequences", base.processes)
    base.pool = tuple(torch.cat(column) for column in zip(base.pool, rows))
    values = [m[0] for m in moments]
    log.info("hard negatives: %d moments of %.1f h of training negatives (decision values "
             "%.3f..%.3f) added to the pool", len(moments),
             base.train_clips.negative_seconds(cfg.frontend.sample_rate) / 3600,
             min(values, default=0.0), max(values, default=0.0))
    return {"hard_negatives": {"moments": len(moments), "files": len({m[1] for m in moments}),
                               "values": [min(values, default=0.0), max(values, default=0.0)]}}
