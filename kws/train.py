"""Training: ``kws train CONFIG`` (also under ``torchrun --nproc_per_node N``).

Loss (why): keyword ends found by an energy endpoint are off by ~0.1 s and a model that is told to
fire on every keyword frame fires early and often. So we use max-pooling (Sun et al., 2016)
localized at the keyword end, plus hard-negative max-pooling:

* positive term: in a window ``[end - 0.3 s, end + 0.3 s]`` only the step where the keyword's
  log-probability is highest gets cross-entropy towards the keyword;
* negative term: every step outside ``[keyword start, end + 0.3 s]`` gets cross-entropy towards
  "none" (mean over steps), so the model stays quiet on speech and on partial keywords;
* hard-negative term: per sequence, the non-keyword step with the highest keyword probability
  gets cross-entropy towards "none" again, which pushes down the rare peaks that become false
  alarms.

Each epoch draws fresh sequences from a seed derived from (seed, epoch, rank): deterministic and
resumable. Validation after every epoch measures the miss rate at ``target_fa_per_hour`` on the
validation split; ``best.pt`` keeps the epoch with the lowest (``select = "validation"``; training
stops early when it has not improved for ``patience`` epochs) or the last epoch
(``select = "last"``).
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from kws import augment, data
from kws.config import Config, config_from_dict, to_dict
from kws.evaluate import Timing, evaluate, prepare_positives
from kws.frontend import features_torch
from kws.metrics import decided
from kws.model import KeywordModel, count_parameters, crop_to_steps, macs_per_second
from kws.sequences import SequenceMaker

log = logging.getLogger(__name__)

WINDOW_BEFORE_S, WINDOW_AFTER_S = 0.3, 0.3
VAL_SNR_DB = 10.0
NORM_BATCHES = 8


def keyword_loss(logits: torch.Tensor, labels: torch.Tensor, start_step: torch.Tensor,
                 end_step: torch.Tensor, before: int, after: int) -> torch.Tensor:
    """The loss in the module docstring.

    Args:
        logits: ``(B, steps, K + 1)``.
        labels: ``(B,)`` 0 = none, else 1 + keyword index.
        start_step, end_step: ``(B,)`` keyword bounds in steps (ignored where label is 0).
        before, after: the positive window around ``end_step``, in steps.
    """
    logp = F.log_softmax(logits.float(), dim=-1)
    steps = torch.arange(logits.shape[1], device=logits.device)[None, :]
    positive = (labels > 0)[:, None]
    keyword_zone = positive & (steps >= start_step[:, None]) & (steps <= end_step[:, None] + after)
    none_lp = logp[..., 0]
    background = ~keyword_zone
    loss = -(none_lp * background).sum() / background.sum().clamp(min=1)
    hard = (-none_lp).masked_fill(keyword_zone, float("-inf")).max(dim=1).values
    loss = loss + hard[torch.isfinite(hard)].mean()
    if positive.any():
        kw_lp = logp.gather(-1, labels[:, None, None].expand(-1, logp.shape[1], 1)).squeeze(-1)
        window = positive & (steps >= end_step[:, None] - before) & \
            (steps <= end_step[:, None] + after)
        best = kw_lp.masked_fill(~window, float("-inf")).max(dim=1).values
        loss = loss - best[labels > 0].mean()
    return loss


def load_model(path: str | Path, device: str = "cpu") -> tuple[KeywordModel, Config]:
    """A trained model and its config from ``best.pt``/``checkpoint.pt`` (or a run folder)."""
    path = Path(path)
    if path.is_dir():
        path = path / "best.pt"
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    saved = torch.load(path, map_location=device, weights_only=False)
    cfg = config_from_dict(saved["config"], root=Path(saved.get("config_root", ".")))
    model = KeywordModel(cfg.model, cfg.frontend).to(device)
    model.load_state_dict(saved["model"])
    model.eval()
    return model, cfg


def torch_scorer(model: KeywordModel, cfg: Config, device: str = "cpu",
                 cache: dict | None = None):
    """A :data:`kws.evaluate.Scorer` running the torch model over a whole recording at once
    (equal to streaming it: the model is causal and the state starts at zero). ``cache`` keeps
    each recording's features by ``id(wave)``, for recordings that stay alive and are scored
    again (validation, every epoch)."""
    def score(wave: np.ndarray) -> np.ndarray:
        feats = None if cache is None else cache.get(id(wave))
        if feats is None:
            feats = features_torch(torch.from_numpy(np.ascontiguousarray(wave))[None].to(device),
                                   cfg.frontend)
            if cache is not None:
                cache[id(wave)] = feats
        feats = crop_to_steps(feats, model.step_frames)
        if feats.shape[1] == 0:  # shorter than one step (the speech embedding reads 0.78 s)
            return np.zeros((0, len(cfg.model.keywords)), dtype=np.float32)
        with torch.no_grad():
            scores, _ = model.scores(feats)
        return scores[0].float().cpu().numpy()
    return score


def timing_of(cfg: Config) -> Timing:
    return Timing(cfg.model.stack_frames, cfg.frontend.hop_ms / 1000, cfg.frontend.window_ms / 1000)


class Trainer:
    """One training run in ``out_dir``; rank 0 validates and writes, all ranks train."""

    def __init__(self, cfg: Config, out_dir: Path, device: str | None = None) -> None:
        self.cfg, self.out = cfg, out_dir
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if self.world > 1:
            import torch.distributed as dist

            if self.device == "cuda":
                self.device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
                torch.cuda.set_device(self.device)
            dist.init_process_group("nccl" if self.device.startswith("cuda") else "gloo")
        torch.manual_seed(cfg.train.seed)
        self.model = KeywordModel(cfg.model, cfg.frontend).to(self.device)
        self.module = self.model
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            self.model = DistributedDataParallel(self.module)
        self.timing = timing_of(cfg)
        self.step_s = self.timing.step_s
        t = cfg.train
        self.batches = t.sequences_per_epoch // (t.batch_size * self.world)
        self.opt = torch.optim.AdamW(self.module.parameters(), lr=t.lr,
                                     weight_decay=t.weight_decay)
        self.sched = torch.optim.lr_scheduler.OneCycleLR(
            self.opt, max_lr=t.lr, total_steps=t.epochs * self.batches, pct_start=0.15)
        self.amp = self.device.startswith("cuda")
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.pool: tuple[torch.Tensor, ...] | None = None  # features, labels, start, end
        self.pool_seed = cfg.train.seed  # ensemble members share the pool of the base seed
        self.history: list[dict] = []
        self.best: tuple[float, float] | None = None
        self.start_epoch = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    def prepare_data(self) -> dict:
        """Load the splits, noise and impulse responses; return the split summary."""
        cfg = self.cfg
        utts = data.collect(cfg)
        table = data.split_table(utts)
        train = data.load_split(utts, "train", cfg.model.keywords, cfg.frontend.sample_rate)
        val = data.load_split(utts, "val", cfg.model.keywords, cfg.frontend.sample_rate)
        noise = data.load_noise(cfg)
        rirs = augment.simulate_rirs(cfg.augment.n_rirs, cfg.train.seed) \
            if cfg.augment.reverb_prob > 0 else []
        self.maker = SequenceMaker(train, cfg.model.keywords, noise, rirs, cfg.augment,
                                   cfg.train.sequence_s, cfg.train.positive_share,
                                   cfg.frontend.sample_rate, cfg.train.negative_draw)
        self.val_pos = prepare_positives(val.positives, cfg.model.keywords, noise, VAL_SNR_DB,
                                         seed=cfg.train.seed)
        self.val_neg = val.negatives
        self.val_features: dict = {}  # features of the val_pos / val_neg waves, computed once
        summary = {"splits": table, "skipped_files": train.skipped + val.skipped,
                   "train_negative_hours": train.negative_seconds() / 3600,
                   "val_negative_hours": val.negative_seconds() / 3600,
                   "val_snr_db": VAL_SNR_DB}
        log.info("splits (label: train/val/test): %s", json.dumps(table))
        log.info("skipped %d unreadable files", summary["skipped_files"])
        return summary

    def batch(self, rng: np.random.Generator) -> tuple[torch.Tensor, ...]:
        """Features ``(B, T, n_mels)`` plus labels and keyword bounds in steps: fresh sequences,
        or a random draw from the feature pool when there is one."""
        if self.pool is None:
            return self.draw(rng)
        pick = torch.from_numpy(rng.integers(len(self.pool[0]), size=self.cfg.train.batch_size))
        return tuple(t[pick].to(self.device) for t in self.pool)

    def build_pool(self, progress: bool) -> None:
        """Draw ``feature_pool`` sequences once (from a seed of their own) and keep their
        features on the CPU."""
        from tqdm import tqdm

        n, size = self.cfg.train.feature_pool, self.cfg.train.batch_size
        rng = np.random.default_rng([self.pool_seed, 777, self.rank])
        parts = [tuple(t.cpu() for t in self.draw(rng))
                 for _ in tqdm(range(-(-n // size)), desc="feature pool", leave=False,
                               disable=None if progress else True)]
        self.pool = tuple(torch.cat(column)[:n] for column in zip(*parts))
        log.info("feature pool: %d sequences, %.0f MB", n,
                 self.pool[0].numel() * self.pool[0].element_size() / 1e6)

    def draw(self, rng: np.random.Generator) -> tuple[torch.Tensor, ...]:
        """Features of ``batch_size`` fresh sequences, labels and keyword bounds in steps."""
        seqs = [self.maker.make(rng) for _ in range(self.cfg.train.batch_size)]
        waves = torch.from_numpy(np.stack([s.wave for s in seqs])).to(self.device)
        feats = crop_to_steps(features_torch(waves, self.cfg.frontend), self.module.step_frames)
        labels = torch.tensor([s.label for s in seqs], device=self.device)
        # a step reads `lag` seconds of audio before its own span (0 for log-mel, 0.7 s for the
        # speech embedding): a time t maps to the first step whose audio ends after t
        lag = max(0.0, self.timing.window_s - self.step_s)
        start, end = (torch.tensor([max(0, int((t - lag) / self.step_s)) for t in times],
                                   device=self.device)
                      for times in ([s.start_s for s in seqs], [s.end_s for s in seqs]))
        return feats, labels, start, end

    def fit_normalization(self) -> None:
        rng = np.random.default_rng([self.cfg.train.seed, 999])
        feats = torch.cat([self.batch(rng)[0].reshape(-1, self.cfg.frontend.n_mels)
                           for _ in range(NORM_BATCHES)])
        self.module.set_normalization(feats.mean(0), feats.std(0))

    def train_epoch(self, epoch: int, progress: bool) -> float:
        from tqdm import tqdm

        self.model.train()
        rng = np.random.default_rng([self.cfg.train.seed, epoch, self.rank])
        gen = torch.Generator().manual_seed(self.cfg.train.seed * 1000 + epoch)
        torch.manual_seed(self.cfg.train.seed * 1000 + epoch)
        before = int(round(WINDOW_BEFORE_S / self.step_s))
        after = int(round(WINDOW_AFTER_S / self.step_s))
        a = self.cfg.augment
        losses = []
        bar = tqdm(range(self.batches), desc=f"epoch {epoch + 1}/{self.cfg.train.epochs}",
                   disable=None if progress else True, leave=False)
        for _ in bar:
            feats, labels, start, end = self.batch(rng)
            feats = augment.spec_augment(feats, a.time_mask, a.freq_mask, gen)
            with torch.autocast("cuda", dtype=torch.float16, enabled=self.amp):
                logits, _ = self.model(feats)
            loss = keyword_loss(logits, labels, start, end, before, after)
            self.opt.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.opt)
            torch.nn.utils.clip_grad_norm_(self.module.parameters(), 5.0)
            self.scaler.step(self.opt)
            self.scaler.update()
            self.sched.step()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
        return float(np.mean(losses))

    def validate(self) -> dict:
        self.module.eval()
        rule = self.cfg.decision
        scorer = decided(torch_scorer(self.module, self.cfg, self.device, self.val_features),
                         rule.smoothing_steps, rule.min_steps)
        report, _ = evaluate(scorer, self.timing, self.cfg.model.keywords, self.val_pos,
                             self.val_neg)
        target = f"{self.cfg.train.target_fa_per_hour:g}"
        out = {}
        for kw, v in report["keywords"].items():
            points = v["at_fa_per_hour"]
            out[kw] = points[target]["miss_rate"]
        out["mean"] = float(np.mean([x for x in out.values() if x is not None] or [1.0]))
        out["negative_hours"] = report["negative_hours"]
        return out

    def save(self, name: str, epoch: int, extra: dict | None = None) -> None:
        state = {"model": self.module.state_dict(), "config": to_dict(self.cfg),
                 "config_root": str(self.cfg.root.resolve()), "epoch": epoch, **(extra or {})}
        tmp = self.out / f".{name}.tmp"
        torch.save(state, tmp)
        tmp.replace(self.out / name)  # never leave a half-written checkpoint

    def resume(self) -> None:
        path = self.out / "checkpoint.pt"
        if not path.is_file():
            raise FileNotFoundError(f"--resume: no checkpoint at {path}")
        saved = torch.load(path, map_location=self.device, weights_only=False)
        if saved["config"] != to_dict(self.cfg):
            raise ValueError(f"--resume: {path} was written with another config; use the same "
                             "config or a new output folder")
        self.module.load_state_dict(saved["model"])
        self.opt.load_state_dict(saved["optimizer"])
        self.sched.load_state_dict(saved["scheduler"])
        self.history, self.best = saved["history"], saved["best"]
        self.best = tuple(self.best) if self.best else None
        self.start_epoch = saved["epoch"] + 1
        log.info("resumed after epoch %d", self.start_epoch)

    def run(self, resume: bool = False, progress: bool = True) -> dict:
        self.out.mkdir(parents=True, exist_ok=True)
        summary = self.prepare_data()
        if self.cfg.train.feature_pool and self.pool is None:
            self.build_pool(progress and self.main)
        if resume:
            self.resume()
        else:
            self.fit_normalization()
        t = self.cfg.train
        begun = time.time()
        stale = 0
        for epoch in range(self.start_epoch, t.epochs):
            tick = time.time()
            loss = self.train_epoch(epoch, progress and self.main)
            row = {"epoch": epoch + 1, "loss": loss, "lr": self.sched.get_last_lr()[0],
                   "seconds": time.time() - tick}
            stop = torch.zeros(1)
            if self.main:
                row["val_miss"] = self.validate()
                score = (row["val_miss"]["mean"], loss)
                if self.best is None or score < self.best or t.select == "last":
                    self.best, stale = score, 0
                    self.save("best.pt", epoch, {"val_miss": row["val_miss"]})
                else:
                    stale += 1
                self.history.append(row)
                self.save("checkpoint.pt", epoch, {
                    "optimizer": self.opt.state_dict(), "scheduler": self.sched.state_dict(),
                    "history": self.history, "best": self.best})
                log.info("epoch %d loss %.4f val miss@%gFA/h %s (%.0f s)", epoch + 1, loss,
                         t.target_fa_per_hour, json.dumps(row["val_miss"]), row["seconds"])
                stop[0] = float(stale >= t.patience)
            if self.world > 1:
                import torch.distributed as dist

                dist.broadcast(stop, src=0)
            if stop.item():
                log.info("early stop: no improvement for %d epochs", t.patience)
                break
        if self.world > 1:
            self.write_weight_digest()
        result = {"device": self.device, "world_size": self.world,
                  "train_seconds": time.time() - begun, "parameters": count_parameters(
                      self.module), "macs_per_second": macs_per_second(self.cfg.model,
                                                                       self.cfg.frontend),
                  "best": {"val_miss_mean": self.best[0] if self.best else None},
                  "history": self.history, **summary}
        if self.main:
            (self.out / "metrics.json").write_text(json.dumps(result, indent=2))
            plot_history(self.history, self.out / "training.png", t.target_fa_per_hour)
        if self.world > 1:
            import torch.distributed as dist

            # every rank reaches teardown before any leaves: a rank that destroyed its gloo group
            # while rank 0 was still writing metrics was seen to abort at exit
            dist.barrier()
            dist.destroy_process_group()
        return result

    def write_weight_digest(self) -> None:
        """Each rank writes a digest of its final weights (DDP keeps them identical)."""
        import hashlib

        h = hashlib.sha256()
        for name, tensor in sorted(self.module.state_dict().items()):
            h.update(name.encode())
            h.update(tensor.detach().cpu().numpy().tobytes())
        (self.out / f"weights.rank{self.rank}.sha256").write_text(h.hexdigest() + "\n")


def plot_history(history: list[dict], path: Path, target: float) -> None:
    """Training loss and validation miss rate per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(epochs, [r["loss"] for r in history], marker="o")
    a.set_xlabel("epoch")
    a.set_ylabel("training loss")
    a.grid(alpha=0.3)
    keys = [k for k in history[0]["val_miss"] if k not in ("negative_hours",)] if history else []
    for k in keys:
        b.plot(epochs, [100 * r["val_miss"][k] for r in history], marker=".", label=k)
    b.set_xlabel("epoch")
    b.set_ylabel(f"validation miss rate (%) at {target:g} FA/h")
    b.grid(alpha=0.3)
    if keys:
        b.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def train(cfg: Config, out_dir: str | Path, resume: bool = False, progress: bool = True,
          device: str | None = None) -> dict:
    """Train a model as configured; see the module docstring. Returns the metrics dict."""
    if cfg.train.members > 1:
        from kws.ensemble import train_members

        return train_members(cfg, Path(out_dir), resume, progress, device)
    return Trainer(cfg, Path(out_dir), device).run(resume=resume, progress=progress)
