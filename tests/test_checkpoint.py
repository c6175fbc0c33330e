"""Checkpoints are plain data: a crafted .pt whose pickle runs code is refused, not run."""

import subprocess
import sys

import pytest

torch = pytest.importorskip("torch", reason="checkpoints need the train extra")

from kws.train import checkpoint  # noqa: E402


class Payload:
    """Unpickling this calls ``open(MARKER, "w")``: what a hostile checkpoint could run."""

    marker = ""

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_pickled_payload_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "ran.txt"
    Payload.marker = str(marker)
    evil = tmp_path / "evil.pt"
    torch.save({"model": {}, "config": {}, "extra": Payload()}, evil)
    with pytest.raises(checkpoint.CheckpointError, match=r"evil\.pt: refused: it holds objects "
                                                         r"other than tensors and plain data"):
        checkpoint.load_model(evil)
    assert not marker.exists()
    for command in (["export", str(evil), "-o", str(tmp_path / "out")],
                    ["eval", "--model", str(evil), "--negatives", str(tmp_path)]):
        proc = subprocess.run([sys.executable, "-m", "kws", *command], capture_output=True,
                              text=True)
        assert proc.returncode == 2 and "refused" in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_garbage_and_foreign_files_are_named(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(checkpoint.CheckpointError, match=r"junk\.pt: not a readable checkpoint"):
        checkpoint.read(junk)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(checkpoint.CheckpointError, match="not a kws checkpoint"):
        checkpoint.read(foreign)
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        checkpoint.read(tmp_path)


def test_trained_checkpoints_load_with_weights_only(tiny_run):
    saved = torch.load(tiny_run[1] / "checkpoint.pt", weights_only=True)
    assert {"model", "config", "optimizer", "scheduler", "history"} <= set(saved)
    model, cfg = checkpoint.load_model(tiny_run[1])
    assert cfg.model.keywords == ("up", "down") and not model.training
