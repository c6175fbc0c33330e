"""Training: ``kws train CONFIG`` (also under ``torchrun --nproc_per_node N``).

The loss is :func:`kws.train.loss.keyword_loss`. Each epoch draws fresh sequences from a seed
derived from (seed, epoch, rank): deterministic and resumable. Validation after every epoch
measures the miss rate at ``target_fa_per_hour`` on the validation split; ``best.pt`` keeps the
epoch with the lowest (``select = "validation"``; training stops early when it has not improved
for ``patience`` epochs) or the last epoch (``select = "last"``), or with ``average_epochs``
the mean of the last epochs' weights (:mod:`kws.train.averaging`). A feature pool
(:mod:`kws.train.pool`) replaces fresh sequences by features computed once.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import torch

from kws.core.config import Config, to_dict
from kws.core.timing import Timing
from kws.data import corpora
from kws.features import features_torch
from kws.features.cache import FeatureCache
from kws.metrics.evaluate import VAL_SNR_DB, evaluate, prepare_positives
from kws.train import augment, checkpoint, pool, workers
from kws.train.averaging import WeightAverage
from kws.train.loss import keyword_loss
from kws.train.model import (
    KeywordModel,
    count_parameters,
    crop_to_steps,
    macs_per_second,
    torch_scorer,
)
from kws.train.sequences import PARTIAL_KEYWORD_SHARE, Sequence, SequenceMaker

log = logging.getLogger(__name__)

WINDOW_BEFORE_S, WINDOW_AFTER_S = 0.3, 0.3
NORM_BATCHES = 8
# what prepare_data and build_pool make, which members of an ensemble share (Trainer.adopt)
SHARED = ("summary", "train_clips", "noise", "rirs", "maker", "val_pos", "val_neg",
          "val_features", "pool")


class Trainer:
    """One training run in ``out_dir``; rank 0 validates and writes, all ranks train."""

    def __init__(self, cfg: Config, out_dir: Path, device: str | None = None) -> None:
        self.cfg, self.out = cfg, out_dir
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.device = device or workers.default_device()
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
        self.timing = Timing.of(cfg.frontend, cfg.model.stack_frames)
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
        self.average = WeightAverage()  # of the last [train] average_epochs epochs' weights
        self.summary: dict | None = None  # set by prepare_data (or adopt)
        # worker processes for CPU work (the feature pool, cached features): one per core, on a
        # GPU too, since workers compute on the CPU and never touch CUDA; torchrun ranks: none
        self.processes = workers.count() if self.world == 1 else 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def prepare_data(self) -> dict:
        """Load the splits, noise and impulse responses; return the split summary."""
        cfg = self.cfg
        utts = corpora.collect(cfg)
        table = corpora.split_table(utts)
        # auxiliary keywords are trained; validation, like calibration, counts them as negatives
        train = corpora.load_split(utts, "train", cfg.model.keywords + cfg.model.auxiliary,
                                   cfg.frontend.sample_rate)
        val = corpora.load_split(utts, "val", cfg.model.keywords, cfg.frontend.sample_rate)
        empty = [kw for kw in cfg.model.keywords if not val.positives.get(kw)]
        if empty:
            raise ValueError(f"no validation clips for keyword(s) {empty}: validation measures "
                             "each keyword's miss rate (give more clips or raise "
                             "[data] val_fraction)")
        if not val.negatives:
            raise ValueError("no validation negatives: validation measures false alarms per "
                             "hour (add negative audio or raise [data] val_fraction)")
        noise = corpora.load_noise(cfg)
        # rooms follow the pool's seed: ensemble members share one set (simulated once)
        rirs = augment.simulate_rirs(cfg.augment.n_rirs, self.pool_seed) \
            if cfg.augment.reverb_prob > 0 else []
        self.train_clips, self.noise, self.rirs = train, noise, rirs
        self.maker = self.sequence_maker(train, cfg.train.positive_share)
        self.val_pos = prepare_positives(val.positives, cfg.model.keywords, noise, VAL_SNR_DB,
                                         seed=cfg.train.seed)
        self.val_neg = val.negatives
        self.val_features: dict = {}  # features of the val_pos / val_neg waves, computed once
        self.summary = {"splits": table, "skipped_files": train.skipped + val.skipped,
                        "train_negative_hours": train.negative_seconds() / 3600,
                        "val_negative_hours": val.negative_seconds() / 3600,
                        "val_snr_db": VAL_SNR_DB}
        log.info("splits (label: train/val/test): %s", json.dumps(table))
        log.info("skipped %d unreadable files", self.summary["skipped_files"])
        return self.summary

    def adopt(self, other: "Trainer") -> None:
        """Take ``other``'s prepared data instead of loading it again (ensemble members differ
        only in their seed): clips, noise, rooms, validation audio and its features, the pool."""
        for name in SHARED:
            setattr(self, name, getattr(other, name))

    def sequence_maker(self, clips: corpora.Clips, positive_share: float,
                       partial_share: float = PARTIAL_KEYWORD_SHARE) -> SequenceMaker:
        """A :class:`SequenceMaker` of this run's settings, noise and rooms over ``clips``."""
        c = self.cfg
        return SequenceMaker(clips, c.model.keywords, self.noise, self.rirs, c.augment,
                             c.train.sequence_s, positive_share, c.frontend.sample_rate,
                             c.train.negative_draw, partial_share, c.model.auxiliary,
                             c.train.auxiliary_share, c.train.auxiliary_real_share,
                             tuple(c.resolve(folder) for folders in c.data.auxiliary_dirs.values()
                                   for folder in folders),
                             c.data.auxiliary_renderings
                             * (1 - c.data.val_fraction - c.data.test_fraction))

    def batch(self, rng: np.random.Generator) -> tuple[torch.Tensor, ...]:
        """Features ``(B, T, n_mels)`` plus labels and keyword bounds in steps: fresh sequences,
        or a random draw from the feature pool when there is one."""
        if self.pool is None:
            return self.draw(rng)
        pick = torch.from_numpy(rng.integers(len(self.pool[0]), size=self.cfg.train.batch_size))
        return tuple(t[pick].to(self.device) for t in self.pool)

    def build_pool(self, progress: bool) -> None:
        """Draw ``feature_pool`` sequences once (from seeds of their own) and keep their
        features on the CPU; the part made of corpus audio alone comes from the on-disk cache
        when an earlier run made it (:mod:`kws.train.pool`)."""
        cfg, t = self.cfg, self.cfg.train
        n_corpus, positive, partial = pool.pool_sizes(t.feature_pool, t.positive_share,
                                                      PARTIAL_KEYWORD_SHARE)
        own = self.sequence_maker(self.train_clips, positive, partial)
        slots = pool.keyword_slots(cfg, cfg.model.auxiliary, self.pool_seed, self.rank)

        def keyword_batch(j: int) -> tuple[torch.Tensor, ...]:  # as self.draw, rows by slot
            rng = self.rng(777, j)
            return self.columns([own.make(rng, slots[j][i] if slots else None)
                                 for i in range(t.batch_size)], "cpu")

        keyword_part = pool.draw(keyword_batch, t.feature_pool - n_corpus, t.batch_size,
                                 progress, "feature pool: keyword sequences", self.processes)
        corpus = corpora.from_corpora(cfg, self.train_clips)
        maker = self.sequence_maker(corpus, 0.0)
        key = pool.corpus_key(cfg, [p for p, _ in corpus.negatives], corpora.noise_paths(cfg),
                              n_corpus, (self.pool_seed, t.seed), self.rank)
        corpus_part = pool.corpus_part(key, lambda j: self.draw(self.rng(778, j),
                                                                maker.make_negative, "cpu"),
                                       n_corpus, t.batch_size, progress, self.processes)
        self.pool = tuple(torch.cat(column) for column in zip(corpus_part, keyword_part))
        log.info("feature pool: %d sequences, %.0f MB", len(self.pool[0]),
                 self.pool[0].numel() * self.pool[0].element_size() / 1e6)

    def rng(self, stream: int, batch: int) -> np.random.Generator:
        """The random numbers of batch ``batch`` of a pool's ``stream``: one seed per batch, so
        a batch is the same whichever worker process makes it."""
        return np.random.default_rng([self.pool_seed, stream, self.rank, batch])

    def draw(self, rng: np.random.Generator, make=None,
             device: str | None = None) -> tuple[torch.Tensor, ...]:
        """Features of ``batch_size`` fresh sequences (from ``make``, default the run's
        :meth:`SequenceMaker.make`), labels and keyword bounds in steps, on ``device`` (default
        the run's)."""
        make = make or self.maker.make
        return self.columns([make(rng) for _ in range(self.cfg.train.batch_size)], device)

    def columns(self, seqs: list[Sequence],
                device: str | None = None) -> tuple[torch.Tensor, ...]:
        """Features ``(B, T, n_mels)`` of ``seqs``, their labels and keyword bounds in steps, on
        ``device`` (default the run's; the pool's worker processes pass "cpu": a forked worker
        must not touch CUDA)."""
        device = device or self.device
        waves = torch.from_numpy(np.stack([s.wave for s in seqs])).to(device)
        feats = crop_to_steps(features_torch(waves, self.cfg.frontend), self.module.step_frames)
        labels = torch.tensor([s.label for s in seqs], device=device)
        # a step reads `lag` seconds of audio before its own span (0 for log-mel, 0.7 s for the
        # speech embedding): a time t maps to the first step whose audio ends after t
        lag = max(0.0, self.timing.window_s - self.step_s)
        start, end = (torch.tensor([max(0, int((t - lag) / self.step_s)) for t in times],
                                   device=device)
                      for times in ([s.start_s for s in seqs], [s.end_s for s in seqs]))
        return feats, labels, start, end

    def featurize_validation(self, progress: bool = False) -> None:
        """Compute the features of the validation audio now (kept by ``id`` of each wave), so
        ensemble members in forked worker processes share them instead of each computing them.
        Speech embeddings come from the disk cache (:class:`kws.features.cache.FeatureCache`,
        filled in worker processes), so the next run or ``--resume`` reads them back."""
        waves = [c.wave for c in self.val_pos] + [w for _, w in self.val_neg]
        if self.cfg.frontend.kind != "speech_embedding":  # log-mel: cheaper to compute than read
            self.val_features.update({id(w): features_torch(torch.from_numpy(
                np.ascontiguousarray(w))[None].to(self.device), self.cfg.frontend) for w in waves})
            return
        feats = self.cached_features(waves, "validation: features", progress)
        self.val_features.update({id(w): torch.from_numpy(f)[None].to(self.device)
                                  for w, f in zip(waves, feats)})

    def cached_features(self, waves: list[np.ndarray], stage: str,
                        progress: bool) -> list[np.ndarray]:
        """``(frames, F)`` features of each of ``waves`` from the disk cache
        (:class:`kws.features.cache.FeatureCache`), computed in worker processes where absent,
        with a progress bar named ``stage``."""
        from tqdm import tqdm

        cache = FeatureCache(self.cfg.frontend)
        return workers.fork_map(
            lambda i: cache(waves[i]), range(len(waves)), self.processes,
            lambda items: tqdm(items, total=len(waves), desc=stage, leave=False,
                               disable=None if progress else True))

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
        a = self.cfg.augment
        losses = []
        bar = tqdm(range(self.batches), desc=f"epoch {epoch + 1}/{self.cfg.train.epochs}",
                   disable=None if progress else True, leave=False)
        for _ in bar:
            batch = self.batch(rng)
            feats = augment.spec_augment(batch[0], a.time_mask, a.freq_mask, gen)
            with torch.autocast("cuda", dtype=torch.float16, enabled=self.amp):
                logits, _ = self.model(feats)
            loss = self.loss(logits, batch)
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

    def loss(self, logits: torch.Tensor, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """The training loss of ``(B, steps, K + 1)`` logits on a batch (features, labels,
        keyword start and end steps, then any columns a subclass adds)."""
        _, labels, start, end = batch[:4]
        return keyword_loss(logits, labels, start, end, round(WINDOW_BEFORE_S / self.step_s),
                            round(WINDOW_AFTER_S / self.step_s), self.cfg.decision.smoothing_steps)

    def validate(self) -> dict:
        self.module.eval()
        if not self.val_features:
            self.featurize_validation()
        scorer = torch_scorer(self.module, self.cfg, self.device, self.val_features)
        report, _, _ = evaluate(scorer, self.timing, self.cfg.model.keywords, self.val_pos,
                             self.val_neg, self.cfg.decision, intervals=False)
        target = f"{self.cfg.train.target_fa_per_hour:g}"
        out = {}
        for kw, v in report["keywords"].items():
            points = v["at_fa_per_hour"]
            out[kw] = points[target]["miss_rate"]
        out["mean"] = float(np.mean([x for x in out.values() if x is not None] or [1.0]))
        out["negative_hours"] = report["negative_hours"]
        return out

    def save(self, name: str, epoch: int, extra: dict | None = None) -> None:
        checkpoint.save(self.out / name, {
            "model": self.module.state_dict(), "config": to_dict(self.cfg),
            "config_root": str(self.cfg.root.resolve()), "epoch": epoch, **(extra or {})})

    def resume(self) -> None:
        path = self.out / checkpoint.LAST
        if not path.is_file():
            raise FileNotFoundError(f"--resume: no checkpoint at {path}")
        saved = checkpoint.read(path, self.device)
        if saved["config"] != checkpoint.plain(to_dict(self.cfg)):
            raise ValueError(f"--resume: {path} was written with another config; use the same "
                             "config or a new output folder")
        self.module.load_state_dict(checkpoint.upgrade(saved["model"]))
        self.opt.load_state_dict(saved["optimizer"])
        self.sched.load_state_dict(saved["scheduler"])
        self.history, self.best = saved["history"], saved["best"]
        self.best = tuple(self.best) if self.best else None
        self.average = WeightAverage(saved.get("average"))
        self.start_epoch = saved["epoch"] + 1
        log.info("resumed after epoch %d", self.start_epoch)

    def run(self, resume: bool = False, progress: bool = True,
            init: dict | None = None) -> dict:
        """Train; ``init`` is a state dict to start from (its weights and feature
        normalization) instead of fresh weights, as fine-tuning does."""
        self.out.mkdir(parents=True, exist_ok=True)
        summary = self.summary or self.prepare_data()
        if self.cfg.train.feature_pool and self.pool is None:
            self.build_pool(progress and self.main)
        if resume:
            self.resume()
        elif init is not None:
            self.module.load_state_dict(init)
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
            averaged = t.average_epochs > 1 and epoch >= t.epochs - t.average_epochs
            if averaged:
                self.average.add(self.module.state_dict())
            if self.main:
                # "last" keeps the last epoch whatever validation says: only that one is measured
                raw = None
                if averaged and epoch == t.epochs - 1:  # the mean is validated and kept
                    raw = {k: v.clone() for k, v in self.module.state_dict().items()}
                    self.module.load_state_dict(self.average.mean(raw))
                if t.select == "validation" or epoch == t.epochs - 1:
                    row["val_miss"] = self.validate()
                score = (row.get("val_miss", {}).get("mean", 1.0), loss)
                if t.select == "last" or self.best is None or score < self.best:
                    self.best, stale = score, 0
                    self.save(checkpoint.BEST, epoch, {"val_miss": row.get("val_miss")})
                else:
                    stale += 1
                if raw is not None:  # training state: the epoch's own weights
                    self.module.load_state_dict(raw)
                self.history.append(row)
                self.save(checkpoint.LAST, epoch, {
                    "optimizer": self.opt.state_dict(), "scheduler": self.sched.state_dict(),
                    "history": self.history, "best": self.best,
                    "average": self.average.state()})
                log.info("%s: epoch %d loss %.4f val miss@%gFA/h %s (%.0f s)", self.out.name,
                         epoch + 1, loss, t.target_fa_per_hour,
                         json.dumps(row.get("val_miss", "not measured")), row["seconds"])
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
    measured = [r for r in history if r.get("val_miss")]
    keys = [k for k in measured[0]["val_miss"] if k != "negative_hours"] if measured else []
    for k in keys:
        b.plot([r["epoch"] for r in measured], [100 * r["val_miss"][k] for r in measured],
               marker="o", label=k)
    b.set_xlabel("epoch")
    b.set_ylabel(f"validation miss rate (%) at {target:g} FA/h")
    b.grid(alpha=0.3)
    if keys:
        b.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
