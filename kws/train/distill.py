"""Distillation: a log-mel student that follows a speech-embedding teacher.

A keyword trained from text (``configs/synthetic.toml``) reads the speech embedding, which a
microcontroller cannot run. ``kws distill TEACHER STUDENT_CONFIG`` trains a model of the firmware's
family (log-mel frontend, one GRU; ``configs/student.toml``) on the teacher's own training data
(its synthetic positives and confusables, the real negative corpora, the same augmentation) with
two targets per sequence:

* the labels, by :func:`kws.train.loss.keyword_loss`, as any training;
* the teacher's probabilities at every student step: cross-entropy towards the teacher's
  ``(K + 1)`` distribution, weighted by ``[train] distill_weight``. Where the teacher says "none"
  on real speech or noise, the student learns it too, beyond what the labels say.

Sequences are drawn once (``[train] feature_pool`` of them, required): each batch's audio goes
through both frontends; the teacher (a run folder or checkpoint, every member of an ensemble) is
run once per sequence and its scores kept beside the student's features. The teacher's step ``j``
covers the audio up to ``0.08 j + 0.782`` s; a student step takes the teacher's latest step that
ended by its own end, and the student steps before the teacher's first one have no teacher target.
With ``[train] hard_negatives``, the student is trained on for a second round with its own
hardest training negatives added to the pool, each with the teacher's scores, as an ensemble's
second round (:mod:`kws.train.ensemble`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from kws.core.config import Config
from kws.core.timing import Timing
from kws.features import features_torch
from kws.train import checkpoint, pool
from kws.train.model import KeywordModel, crop_to_steps
from kws.train.run import train
from kws.train.sequences import Sequence
from kws.train.trainer import Trainer

log = logging.getLogger(__name__)


def aligned_steps(student: Timing, teacher: Timing, student_steps: int,
                  teacher_steps: int) -> np.ndarray:
    """For each student step, the index of the teacher's latest step that ended by the student
    step's end (to 0.1 ms), or -1 when none had: ``(student_steps,)`` int64."""
    ends = np.round(student.step_times(student_steps), 4)
    teacher_ends = np.round(teacher.step_times(teacher_steps), 4)
    return np.searchsorted(teacher_ends, ends, side="right").astype(np.int64) - 1


def student_config(student: Config, teacher: Config) -> Config:
    """The student's config: its own frontend, model, augmentation, training and decision rule;
    the teacher's data and keywords."""
    if student.frontend.kind != "log_mel":
        raise ValueError(f"student frontend kind {student.frontend.kind!r}: a student runs on a "
                         "microcontroller, so its frontend must be \"log_mel\"")
    if not student.train.feature_pool:
        raise ValueError("student [train] feature_pool = 0: distillation draws its sequences "
                         "once (the teacher is run once per sequence); give a pool size")
    if student.train.members != 1:
        raise ValueError(f"student [train] members = {student.train.members}: a student is one "
                         "model (members = 1)")
    model = dataclasses.replace(student.model, keywords=teacher.model.keywords)
    return dataclasses.replace(student, model=model, data=teacher.data, root=teacher.root)


class StudentTrainer(Trainer):
    """A :class:`Trainer` whose pool also holds the teacher's probabilities (a fifth column,
    ``(B, student steps, K + 1)``) and whose loss adds the distillation term."""

    def __init__(self, cfg: Config, out: Path, teacher: KeywordModel, teacher_cfg: Config,
                 device: str | None = None) -> None:
        super().__init__(cfg, out, device)
        self.teacher, self.teacher_cfg = teacher.to("cpu").eval(), teacher_cfg
        self.teacher_timing = Timing.of(teacher_cfg.frontend, teacher.step_frames)

    def build_pool(self, progress: bool) -> None:
        self.pool = pool.draw(lambda j: self.draw(self.rng(779, j), device="cpu"),
                              self.cfg.train.feature_pool, self.cfg.train.batch_size, progress,
                              "distillation pool: student features and teacher scores",
                              self.processes)
        log.info("distillation pool: %d sequences", len(self.pool[0]))

    def columns(self, seqs: list[Sequence],
                device: str | None = None) -> tuple[torch.Tensor, ...]:
        """:meth:`Trainer.columns` of ``seqs`` and the teacher's probabilities at each student
        step, ``(B, steps, K + 1)`` (zero where the teacher has none yet): every pool row,
        the mined hard negatives' too (:func:`kws.train.ensemble.add_hard_negatives`)."""
        columns = super().columns(seqs, device)  # on the CPU in the pool's worker processes
        waves = torch.from_numpy(np.stack([s.wave for s in seqs]))
        feats = crop_to_steps(features_torch(waves, self.teacher_cfg.frontend),
                              self.teacher.step_frames)
        with torch.no_grad():
            # a teacher's auxiliary keywords are "none" to the student (its data's negatives)
            probs = self.teacher.folded(torch.softmax(self.teacher(feats)[0].float(), dim=-1))
        steps = columns[0].shape[1] // self.module.step_frames
        index = torch.from_numpy(aligned_steps(self.timing, self.teacher_timing, steps,
                                               probs.shape[1]))
        soft = probs[:, index.clamp(min=0)] * (index >= 0)[None, :, None]
        return (*columns, soft.to(columns[0].device))

    def loss(self, logits: torch.Tensor, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """The labels' loss plus ``distill_weight`` times the cross-entropy towards the
        teacher, averaged over the steps that have a teacher target."""
        hard = super().loss(logits, batch)
        soft = batch[4]
        has = soft.sum(-1) > 0
        cross = -(soft * F.log_softmax(logits.float(), dim=-1)).sum(-1)
        taught = (cross * has).sum() / has.sum().clamp(min=1)
        return hard + self.cfg.train.distill_weight * taught


def distill(teacher_path: str | Path, student: Config, out: str | Path,
            progress: bool = True, resume: bool = False) -> dict:
    """Train a student (config ``student``, see :func:`student_config`) on the teacher at
    ``teacher_path`` (a run folder or checkpoint) into ``out``; returns the metrics (also
    ``out/metrics.json``), with the teacher's path under ``"teacher"``. With ``[train]
    hard_negatives``, a second round on the student's own hardest training negatives, each
    with the teacher's scores (:func:`kws.train.ensemble.train_members`). With ``resume``, an
    interrupted run goes on from its checkpoint (a finished round is kept), as ``kws train``'s."""
    teacher, teacher_cfg = checkpoint.load_model(teacher_path)
    cfg, out = student_config(student, teacher_cfg), Path(out)

    def make(c: Config, folder: Path, device: str | None = None) -> StudentTrainer:
        return StudentTrainer(c, folder, teacher, teacher_cfg, device)

    result = train(cfg, out, resume, progress, make=make)
    result["teacher"] = str(Path(teacher_path).resolve())
    (out / "metrics.json").write_text(json.dumps(result, indent=2))
    return result
