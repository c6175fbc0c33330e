"""Distillation (kws distill): a log-mel student trained on a speech-embedding teacher's scores."""

import json
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is in the train extra")

from kws.core.config import load_config  # noqa: E402
from kws.core.timing import Timing  # noqa: E402
from kws.train.distill import StudentTrainer, aligned_steps, student_config  # noqa: E402
from tests.synthetic import make_corpus, write_config, write_embedding_config  # noqa: E402

STUDENT = Timing(3, 0.010, 0.025)  # 30 ms log-mel steps
TEACHER = Timing(1, 0.080, 0.782)  # the speech embedding


def test_each_student_step_takes_the_teachers_latest_finished_step():
    index = aligned_steps(STUDENT, TEACHER, 40, 10)
    # student step i ends at 0.045 + 0.03 i; teacher step j at 0.782 + 0.08 j
    assert index[24] == -1 and index[25] == 0  # 0.765 s: nothing yet; 0.795 s: step 0
    assert index[27] == 0 and index[28] == 1  # 0.855 s < 0.862 s <= 0.885 s
    assert index[39] == 5  # 1.215 s: step 5 ended at 1.182 s, step 6 ends at 1.262 s
    ends, teacher_ends = STUDENT.step_times(40), TEACHER.step_times(10)
    for i, j in enumerate(index):
        assert j == -1 or teacher_ends[j] <= ends[i] + 1e-9
        assert j + 1 >= 10 or teacher_ends[j + 1] > ends[i] + 1e-9


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    from kws.train.run import train

    root = make_corpus(tmp_path_factory.mktemp("distill-corpus"))
    train(load_config(write_embedding_config(root, epochs=2, feature_pool=64)), root / "teacher",
          progress=False)
    (root / "student").mkdir()
    student = write_config(root / "student", epochs=2, feature_pool=48, distill_weight=1.0)
    return root, load_config(student)


def test_student_config_takes_the_teachers_data_and_refuses_what_cannot_run(teacher):
    import dataclasses

    root, student = teacher
    from kws.train.checkpoint import load_model

    _, teacher_cfg = load_model(root / "teacher")
    cfg = student_config(student, teacher_cfg)
    assert cfg.data == teacher_cfg.data and cfg.model.keywords == teacher_cfg.model.keywords
    assert cfg.frontend == student.frontend and cfg.model.hidden == student.model.hidden
    with pytest.raises(ValueError, match=r"student frontend kind 'speech_embedding'.*log_mel"):
        student_config(teacher_cfg, teacher_cfg)
    no_pool = dataclasses.replace(student, train=dataclasses.replace(student.train,
                                                                     feature_pool=0))
    with pytest.raises(ValueError, match=r"feature_pool = 0"):
        student_config(no_pool, teacher_cfg)


def test_pool_rows_hold_the_teachers_scores_at_aligned_steps(teacher, tmp_path):
    from kws.features import features_torch
    from kws.train.checkpoint import load_model

    root, student = teacher
    model, teacher_cfg = load_model(root / "teacher")
    trainer = StudentTrainer(student_config(student, teacher_cfg), tmp_path, model, teacher_cfg)
    trainer.prepare_data()
    feats, labels, start, end, soft = trainer.draw(np.random.default_rng(5), device="cpu")
    rng = np.random.default_rng(5)
    seqs = [trainer.maker.make(rng) for _ in range(len(feats))]  # the same draws again
    steps = feats.shape[1] // trainer.module.step_frames
    assert soft.shape == (len(feats), steps, 3)
    for row in (0, len(feats) - 1):
        wave = torch.from_numpy(seqs[row].wave[None])
        with torch.no_grad():
            probs = torch.softmax(model(features_torch(wave, teacher_cfg.frontend))[0], -1)[0]
        index = aligned_steps(trainer.timing, trainer.teacher_timing, steps, len(probs))
        assert (index == -1).sum() > 0 and (index >= 0).sum() > 0
        torch.testing.assert_close(soft[row][index >= 0], probs[index[index >= 0]])
        assert torch.all(soft[row][index < 0] == 0)  # no teacher target before its first step


def test_kws_distill_trains_a_student_that_exports_and_fits_the_firmware(teacher, tmp_path):
    root, student = teacher
    out = tmp_path / "student"
    proc = subprocess.run([sys.executable, "-m", "kws.cli", "distill", str(root / "teacher"),
                           str(root / "student" / "tiny.toml"), "-o", str(out), "--quiet"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    printed = json.loads(proc.stdout)
    assert printed["teacher"] == str((root / "teacher").resolve())
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["history"]) == 2 and all(np.isfinite(r["loss"])
                                                for r in metrics["history"])
    proc = subprocess.run([sys.executable, "-m", "kws.cli", "export", str(out), "-o",
                           str(tmp_path / "model")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    proc = subprocess.run([sys.executable, "-m", "kws.cli", "firmware", str(tmp_path / "model"),
                           "-o", str(tmp_path / "fw")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_distillation_term_pulls_towards_the_teacher():
    """With a teacher target, the loss is lowest when the student's probabilities equal it."""
    from kws.core.config import Config, TrainConfig
    from kws.train.trainer import Trainer

    class Probe(StudentTrainer):
        def __init__(self):  # only what loss() reads
            self.cfg = Config(train=TrainConfig(distill_weight=1.0))
            self.step_s = 0.03

    target = torch.tensor([[[0.2, 0.8], [0.0, 0.0]]])  # one step taught, one not
    batch = (None, torch.tensor([0]), torch.tensor([0]), torch.tensor([0]), target)
    hard = Trainer.loss(Probe(), torch.zeros(1, 2, 2), batch)
    losses = {p: (Probe().loss(torch.log(torch.tensor([[[1 - p, p], [0.5, 0.5]]])), batch)
                  - Trainer.loss(Probe(), torch.log(torch.tensor([[[1 - p, p], [0.5, 0.5]]])),
                                 batch)).item() for p in (0.2, 0.5, 0.8, 0.95)}
    assert min(losses, key=losses.get) == 0.8
    assert losses[0.8] == pytest.approx(-(0.2 * np.log(0.2) + 0.8 * np.log(0.8)), abs=1e-5)
    assert torch.isfinite(hard)


def test_a_teachers_auxiliary_keywords_are_none_to_the_student(teacher, tmp_path):
    """The teacher's "down" made auxiliary: the student learns "up" alone, and its target
    for "none" is the teacher's "none" plus "down" (the student's data has "down" as a
    negative), so the targets still sum to one."""
    import dataclasses

    from kws.features import features_torch
    from kws.train.checkpoint import load_model

    root, student = teacher
    model, teacher_cfg = load_model(root / "teacher")
    model.cfg = dataclasses.replace(model.cfg, keywords=("up",), auxiliary=("down",))
    teacher_cfg = dataclasses.replace(teacher_cfg, model=model.cfg)
    trainer = StudentTrainer(student_config(student, teacher_cfg), tmp_path, model, teacher_cfg)
    trainer.prepare_data()
    assert trainer.maker.keywords == ("up",)
    feats, labels, start, end, soft = trainer.draw(np.random.default_rng(5), device="cpu")
    seqs = [trainer.maker.make(np.random.default_rng(5)) for _ in range(1)]
    steps = feats.shape[1] // trainer.module.step_frames
    assert soft.shape == (len(feats), steps, 2) and set(labels.unique().tolist()) <= {0, 1}
    with torch.no_grad():
        probs = torch.softmax(model(features_torch(torch.from_numpy(seqs[0].wave[None]),
                                                   teacher_cfg.frontend))[0], -1)[0]
    index = aligned_steps(trainer.timing, trainer.teacher_timing, steps, len(probs))
    kept = probs[index[index >= 0]]
    torch.testing.assert_close(soft[0][index >= 0],
                               torch.stack([kept[:, 0] + kept[:, 2], kept[:, 1]], -1))


def test_a_second_round_on_the_students_hard_negatives_keeps_the_teachers_scores(
        teacher, tmp_path, monkeypatch):
    """With hard_negatives the student goes on from its first round's weights, on the pool
    plus its mined negatives, each mined row with the teacher's scores; the result is one
    model of the firmware's family, and resume trains nothing again (and, as kws train's, is
    refused where a one-round run has no checkpoint)."""
    import dataclasses

    from kws.train.checkpoint import load_model
    from kws.train.distill import distill

    root, student = teacher
    monkeypatch.setenv("KWS_WORKERS", "1")  # the spy sees calls made in this process
    student = dataclasses.replace(student, train=dataclasses.replace(
        student.train, epochs=1, hard_negatives=10, hard_negative_epochs=1))
    runs, original = [], StudentTrainer.run
    monkeypatch.setattr(StudentTrainer, "run", lambda self, **k: runs.append(
        (self.out.name, self.pool)) or original(self, **k))
    out = tmp_path / "student"
    result = distill(root / "teacher", student, out, progress=False)
    mined = result["hard_negatives"]["moments"]
    assert 0 < mined <= 10
    (first, pool), (second, mined_pool) = runs
    assert (first, second) == ("member-0", "hard-0")
    assert len(mined_pool) == 5 and len(mined_pool[0]) == 48 + mined
    taught = mined_pool[4][48:]  # the mined rows: negatives, with teacher scores
    assert (mined_pool[1][48:] == 0).all() and taught.shape[1:] == pool[4].shape[1:]
    assert torch.allclose(taught.sum(-1)[taught.sum(-1) > 0], torch.ones(1), atol=1e-5)
    model, cfg = load_model(out)
    assert cfg.model == student_config(student, cfg).model and cfg.model.members == 1
    assert json.loads((out / "metrics.json").read_text())["teacher"] == str(
        (root / "teacher").resolve())
    runs.clear()
    assert distill(root / "teacher", student, out, progress=False, resume=True)["best"] == \
        result["best"] and runs == []
    with pytest.raises(FileNotFoundError, match=r"--resume: no checkpoint at .*checkpoint.pt"):
        distill(root / "teacher", teacher[1], tmp_path / "new", progress=False, resume=True)
