"""Training on the synthetic corpus: loss, run outputs, determinism, resume, DDP, eval CLI."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is in the train extra")

from kws.core.config import load_config  # noqa: E402
from kws.metrics.scores import Scores  # noqa: E402
from kws.train.checkpoint import load_model  # noqa: E402
from kws.train.loss import keyword_loss  # noqa: E402
from kws.train.run import train  # noqa: E402
from tests.synthetic import make_corpus, write_config  # noqa: E402


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("corpus"))


def weights(run):
    model, _ = load_model(run / "checkpoint.pt")
    return {k: v.clone() for k, v in model.state_dict().items()}


def interrupt_in_epoch_3(cfg, run, monkeypatch):
    """Train ``cfg`` into ``run`` until a KeyboardInterrupt in its third epoch."""
    from kws.train.trainer import Trainer

    real_epoch = Trainer.train_epoch

    def dies_in_epoch_3(self, epoch, progress):
        if epoch == 2:
            raise KeyboardInterrupt
        return real_epoch(self, epoch, progress)

    monkeypatch.setattr(Trainer, "train_epoch", dies_in_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, run, progress=False)
    monkeypatch.setattr(Trainer, "train_epoch", real_epoch)


def test_loss_prefers_a_peak_at_the_keyword_end():
    labels = torch.tensor([1])
    start, end = torch.tensor([10]), torch.tensor([20])
    base = torch.zeros(1, 40, 2)
    base[..., 0] = 5.0  # confident "none" everywhere
    at_end = base.clone()
    at_end[0, 21, 1] = 10.0  # keyword fires inside the end window
    too_early = base.clone()
    too_early[0, 2, 1] = 10.0  # fires long before the keyword
    loss = lambda x: keyword_loss(x, labels, start, end, before=3, after=3).item()  # noqa: E731
    assert loss(at_end) < loss(base) < loss(too_early)
    # a negative sequence: any keyword peak costs
    none = torch.tensor([0])
    assert keyword_loss(too_early, none, start, end, 3, 3) > keyword_loss(base, none, start, end,
                                                                          3, 3)


def test_with_a_smoothing_rule_the_loss_asks_for_the_average_it_thresholds():
    """The positive term of a rule averaging 3 steps is -log of the best 3-step average of the
    keyword's probability in the end window: one spike pays for the two quiet steps beside it,
    three steps in a row do not; without smoothing both cost the same."""
    labels, start, end = torch.tensor([1]), torch.tensor([10]), torch.tensor([20])
    none = torch.zeros(1, 40, 2)
    none[..., 0] = 30.0  # certain "none": keyword probability ~0, background terms ~0
    spike, run = none.clone(), none.clone()
    spike[0, 20, 1] = 60.0  # probability ~1 at one step
    run[0, 18:21, 1] = 60.0  # ... at three steps in a row

    def loss(x, smoothing):
        return keyword_loss(x, labels, start, end, 3, 3, smoothing).item()

    assert loss(spike, 1) == pytest.approx(loss(run, 1), abs=1e-4)
    assert loss(run, 3) == pytest.approx(loss(run, 1), abs=1e-4)
    # the spike's best average is 1/3: -log(1/3) more (the hard-negative term is unchanged)
    assert loss(spike, 3) - loss(spike, 1) == pytest.approx(np.log(3), abs=1e-4)
    # the average starts from zeros before the sequence, as the rule's history does
    early = none.clone()
    early[0, 0, 1] = 60.0
    assert keyword_loss(early, labels, torch.tensor([0]), torch.tensor([0]), 0, 0, 3).item() \
        == pytest.approx(keyword_loss(early, labels, torch.tensor([0]), torch.tensor([0]), 0, 0,
                                      1).item() + np.log(3), abs=1e-4)


def test_run_writes_metrics_plot_checkpoints_and_is_deterministic(corpus, tmp_path):
    cfg = load_config(write_config(corpus, epochs=2))
    a = train(cfg, tmp_path / "a", progress=False)
    train(cfg, tmp_path / "b", progress=False)
    for name in ("metrics.json", "training.png", "best.pt", "checkpoint.pt"):
        assert (tmp_path / "a" / name).is_file()
    metrics = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert [r["epoch"] for r in metrics["history"]] == [1, 2]
    assert metrics["splits"]["up"]["test"] == 10
    assert 0 <= metrics["history"][-1]["val_miss"]["mean"] <= 1
    assert a["parameters"] < 5000
    wa, wb = weights(tmp_path / "a"), weights(tmp_path / "b")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_interrupted_then_resumed_equals_uninterrupted(corpus, tmp_path, monkeypatch):
    cfg = load_config(write_config(corpus, epochs=3))
    train(cfg, tmp_path / "straight", progress=False)
    interrupt_in_epoch_3(cfg, tmp_path / "cut", monkeypatch)
    assert torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)["epoch"] == 1
    train(cfg, tmp_path / "cut", resume=True, progress=False)
    ws, wc = weights(tmp_path / "straight"), weights(tmp_path / "cut")
    assert all(torch.equal(ws[k], wc[k]) for k in ws)
    history = json.loads((tmp_path / "cut" / "metrics.json").read_text())["history"]
    assert [r["epoch"] for r in history] == [1, 2, 3]


def test_resume_errors_are_named(corpus, tmp_path):
    cfg = load_config(write_config(corpus, epochs=1))
    with pytest.raises(FileNotFoundError, match="--resume: no checkpoint"):
        train(cfg, tmp_path / "empty", resume=True, progress=False)
    train(cfg, tmp_path / "run", progress=False)
    other = load_config(write_config(corpus, epochs=1, lr=0.01))
    with pytest.raises(ValueError, match="another config"):
        train(other, tmp_path / "run", resume=True, progress=False)


@pytest.mark.skipif(sys.platform != "linux", reason="torchrun test uses Linux process groups")
def test_ddp_two_cpu_processes_end_with_identical_weights(corpus, tmp_path):
    cfg_path = write_config(corpus, epochs=2)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "kws.cli", "train", str(cfg_path), "-o",
           str(tmp_path / "ddp"), "--quiet"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    digests = [(tmp_path / "ddp" / f"weights.rank{r}.sha256").read_text() for r in (0, 1)]
    assert digests[0] == digests[1]
    metrics = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    assert metrics["world_size"] == 2


def test_eval_cli_writes_report_det_and_listening_list(corpus, tmp_path):
    run = tmp_path / "run"
    train(load_config(write_config(corpus, epochs=2)), run, progress=False)
    out = tmp_path / "eval"
    cmd = [sys.executable, "-m", "kws.cli", "eval", "--model", str(run), "--negatives",
           str(corpus / "negatives"), "--noise", str(corpus / "noise"), "--snr", "10",
           "-o", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "0-run" / "report.json").read_text())
    assert report["positive_clips"]["up"] == 10  # holdout 30-39 of the config's test split
    points = report["keywords"]["up"]["at_fa_per_hour"]
    assert set(points) == {"0.1", "0.5", "1"}
    assert points["0.1"]["miss_rate"] >= points["1"]["miss_rate"]
    # what the figures come from is kept, and gives the report's intervals again
    scores = Scores.load(out / "0-run" / "scores.npz")
    up = list(scores.keywords).index("up")
    assert [list(i) for i in scores.intervals(up, (0.1, 0.5, 1))] == [
        points[t]["miss_rate_95"] for t in ("0.1", "0.5", "1")]
    assert all(p["miss_rate_95"][0] <= p["miss_rate"] <= p["miss_rate_95"][1]
               for p in points.values())
    if report["positive_clips"]["down"] == 0:  # no clips: no rate rather than NaN
        assert report["keywords"]["down"]["at_fa_per_hour"]["0.5"]["miss_rate"] is None
    assert report["sources"]["noise"] == {"folder": str(corpus / "noise"), "snr_db": 10.0}
    assert (out / "det.png").stat().st_size > 1000
    assert (out / "0-run" / "false_alarms.tsv").read_text().startswith("file\ttime_s")
    assert "| run | up |" in (out / "summary.md").read_text()


def test_select_last_keeps_the_last_epoch(corpus, tmp_path):
    cfg = load_config(write_config(corpus, epochs=3, select='"last"'))
    train(cfg, tmp_path / "run", progress=False)
    best = torch.load(tmp_path / "run" / "best.pt", weights_only=True)
    last = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert best["epoch"] == last["epoch"] == 2
    assert all(torch.equal(best["model"][k], last["model"][k]) for k in last["model"])
    with pytest.raises(ValueError, match=r"train.select.*'best'.*\"validation\" or \"last\""):
        load_config(write_config(corpus, select='"best"'))


def test_average_epochs_keeps_the_mean_of_the_last_epochs_and_resumes_to_it(
        corpus, tmp_path, monkeypatch):
    plain = load_config(write_config(corpus, epochs=3, select='"last"'))
    train(plain, tmp_path / "plain", progress=False)
    cfg = load_config(write_config(corpus, epochs=3, select='"last"', average_epochs=2))
    interrupt_in_epoch_3(cfg, tmp_path / "avg", monkeypatch)
    second = weights(tmp_path / "avg")  # after epoch 2 of 3
    train(cfg, tmp_path / "avg", resume=True, progress=False)
    third = weights(tmp_path / "avg")  # the resume checkpoint keeps the epoch's own weights
    assert all(torch.equal(third[k], v) for k, v in weights(tmp_path / "plain").items())
    best, _ = load_model(tmp_path / "avg" / "best.pt")
    kept = best.state_dict()
    for name, value in kept.items():
        mean = (second[name].double() + third[name].double()) / 2
        assert torch.allclose(value.double(), mean, atol=1e-7), name
    assert not torch.equal(kept["out.weight"], third["out.weight"])
    with pytest.raises(ValueError, match=r"train.average_epochs.*2.*only with select = \"last\""):
        load_config(write_config(corpus, epochs=3, average_epochs=2))
    with pytest.raises(ValueError, match=r"train.average_epochs.*4.*0..epochs \(3\)"):
        load_config(write_config(corpus, epochs=3, select='"last"', average_epochs=4))


def test_scorer_cache_computes_each_recordings_features_once(monkeypatch):
    import numpy as np

    from kws.core.config import Config, ModelConfig
    from kws.train import model as train_module
    from kws.train.model import KeywordModel

    cfg = Config(model=ModelConfig(keywords=("a",)))
    model = KeywordModel(cfg.model, cfg.frontend).eval()
    waves = [np.random.default_rng(i).standard_normal(8000).astype(np.float32) for i in range(3)]
    plain = [train_module.torch_scorer(model, cfg)(w) for w in waves]
    calls = []
    real = train_module.features_torch
    monkeypatch.setattr(train_module, "features_torch", lambda *a: calls.append(1) or real(*a))
    cache = {}
    scorer = train_module.torch_scorer(model, cfg, cache=cache)
    for _ in range(2):
        assert all(np.array_equal(scorer(w), p) for w, p in zip(waves, plain))
    assert len(calls) == 3 and len(cache) == 3
