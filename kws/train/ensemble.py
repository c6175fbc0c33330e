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
from kws.train import checkpoint, workers
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
                  device: str | None) -> dict:
    """Train ``cfg.train.members`` members in ``out/member-<i>`` (seed + i; the data loaded,
    the validation audio featurized and the feature pool drawn once, from the base seed; the
    members side by side in worker processes, :mod:`kws.train.workers`), merge them into
    ``out/best.pt`` and validate the merged model. With ``resume``, a member whose
    ``metrics.json`` exists is kept and an interrupted one goes on from its checkpoint. Returns
    the merged model's metrics, each member's under ``"members"``."""
    from tqdm import tqdm

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ValueError(f"train.members = {cfg.train.members}: ensembles train in one process; "
                         "start kws train without torchrun (or set members = 1)")
    n, single = cfg.train.members, dataclasses.replace(cfg.train, members=1)

    def member(i: int) -> Trainer:
        trainer = Trainer(dataclasses.replace(cfg, train=dataclasses.replace(
            single, seed=cfg.train.seed + i)), out / f"member-{i}", device)
        trainer.pool_seed = cfg.train.seed
        return trainer

    done = {}
    for i in range(n):
        if resume and (out / f"member-{i}" / "metrics.json").is_file():
            log.info("ensemble member %d/%d: kept (%s)", i + 1, n,
                     out / f"member-{i}" / "metrics.json")
            done[i] = json.loads((out / f"member-{i}" / "metrics.json").read_text())
    base = member(0)  # loads what every member shares (Trainer.adopt)
    summary = base.prepare_data()
    todo = [i for i in range(n) if i not in done]
    if todo and cfg.train.feature_pool:
        base.build_pool(progress)
    if todo:
        base.featurize_validation()
    processes = workers.count(base.device)

    def train_one(i: int) -> dict:
        trainer = member(i)
        trainer.adopt(base)
        log.info("ensemble member %d/%d: seed %d", i + 1, n, cfg.train.seed + i)
        return trainer.run(resume=resume and (trainer.out / checkpoint.LAST).is_file(),
                           progress=progress and processes == 1)

    def bar(results):
        return tqdm(results, total=len(todo), leave=False, disable=None if progress else True,
                    desc=f"ensemble members ({min(processes, len(todo))} at a time)")

    done.update(zip(todo, workers.fork_map(train_one, todo, processes, bar)))
    members = [done[i] for i in range(n)]
    merged = merge([checkpoint.load_model(out / f"member-{i}", device or "cpu")[0]
                    for i in range(n)],
                   cfg.frontend)
    judge = Trainer(dataclasses.replace(cfg, model=merged.cfg), out, device)
    judge.out.mkdir(parents=True, exist_ok=True)
    judge.adopt(base)
    judge.module.load_state_dict(merged.state_dict())
    val_miss = judge.validate()
    judge.save(checkpoint.BEST, 0, {"val_miss": val_miss, "members": n})
    log.info("ensemble of %d: val miss@%gFA/h %s", n, cfg.train.target_fa_per_hour,
             json.dumps(val_miss))
    result = {**summary, "device": judge.device, "members": members,
              "train_seconds": sum(m["train_seconds"] for m in members),
              "parameters": sum(p.numel() for p in merged.parameters()),
              "best": {"val_miss_mean": val_miss["mean"]}, "val_miss": val_miss}
    (out / "metrics.json").write_text(json.dumps(result, indent=2))
    return result
