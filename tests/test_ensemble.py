"""Ensembles: the merge is exact, members differ only in weights, ``[train] members`` trains,
merges, exports and resumes."""

import dataclasses
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is in the train extra")

from kws.core.config import FrontendConfig, ModelConfig, load_config
from kws.train.checkpoint import load_model
from kws.train.ensemble import merge
from kws.train.model import KeywordModel
from kws.train.run import train
from tests.synthetic import make_corpus, write_config

FRONTEND = FrontendConfig()
CFG = ModelConfig(keywords=("up", "down"), stack_frames=3, proj_dim=8, hidden=6)


def member(seed: int) -> KeywordModel:
    torch.manual_seed(seed)
    model = KeywordModel(CFG, FRONTEND)
    model.set_normalization(torch.randn(FRONTEND.n_mels), torch.rand(FRONTEND.n_mels) + 0.5)
    return model.eval()


def test_merged_logits_are_the_members_mean_logits_also_streamed():
    members = [member(s) for s in range(3)]
    merged = merge(members, FRONTEND)
    assert (merged.cfg.proj_dim, merged.cfg.hidden) == (24, 18)
    feats = torch.randn(2, 60, FRONTEND.n_mels) * 3
    with torch.no_grad():
        want = torch.stack([m(feats)[0] for m in members]).mean(0)
        got, _ = merged(feats)
        assert torch.allclose(got, want, atol=1e-5)
        # the merged state carries every member's state: pieces equal the whole
        state, parts = None, []
        for t in range(0, 60, 15):
            out, state = merged(feats[:, t:t + 15], state)
            parts.append(out)
        assert torch.allclose(torch.cat(parts, 1), got, atol=1e-5)


def test_merge_refuses_members_that_differ_in_more_than_weights():
    other = KeywordModel(dataclasses.replace(CFG, hidden=7), FRONTEND)
    with pytest.raises(ValueError, match=r"member 1 has model config .*hidden=7.*differ only"):
        merge([member(0), other], FRONTEND)


def test_members_config_is_checked(tmp_path):
    path = write_config(tmp_path, members=0)
    with pytest.raises(ValueError, match=r"train.members.*0.*1\.\.16"):
        load_config(path)


@pytest.fixture(scope="module")
def ensemble_run(tmp_path_factory):
    root = make_corpus(tmp_path_factory.mktemp("corpus"))
    cfg = load_config(write_config(root, epochs=1, members=2, feature_pool=32))
    out = root / "run"
    return cfg, train(cfg, out, progress=False), out


def test_members_train_merge_and_the_merge_scores_their_mean(ensemble_run):
    cfg, result, out = ensemble_run
    model, saved_cfg = load_model(out)
    assert saved_cfg.model.hidden == 2 * cfg.model.hidden
    assert saved_cfg.model.proj_dim == 2 * cfg.model.proj_dim
    assert [m["history"][0]["epoch"] for m in result["members"]] == [1, 1]
    assert json.loads((out / "metrics.json").read_text())["best"] == result["best"]
    a, b = (load_model(out / f"member-{i}")[0] for i in range(2))
    assert not torch.equal(a.gru.weight_hh_l0, b.gru.weight_hh_l0)  # seeds 0 and 1
    feats = torch.randn(1, 30, cfg.frontend.n_mels)
    with torch.no_grad():
        assert torch.allclose(model(feats)[0], (a(feats)[0] + b(feats)[0]) / 2, atol=1e-5)


def test_members_share_one_feature_pool(ensemble_run, monkeypatch):
    """The second member trains on the first member's pool: the pool is built once."""
    from kws.train.trainer import Trainer

    cfg, _, out = ensemble_run
    built = []
    original = Trainer.build_pool
    monkeypatch.setattr(Trainer, "build_pool", lambda self, p: built.append(self.pool_seed)
                        or original(self, p))
    train(cfg, out.parent / "again", progress=False)
    assert built == [cfg.train.seed]


def test_resume_keeps_finished_members(ensemble_run, monkeypatch):
    from kws.train.trainer import Trainer

    cfg, result, out = ensemble_run
    before = (out / "member-0" / "best.pt").stat().st_mtime_ns
    monkeypatch.setattr(Trainer, "run", lambda *a, **k: pytest.fail("a finished member retrained"))
    again = train(cfg, out, resume=True, progress=False)
    assert (out / "member-0" / "best.pt").stat().st_mtime_ns == before
    assert again["best"] == result["best"]


def test_merged_model_exports_and_onnx_matches_torch(ensemble_run, tmp_path):
    from kws.export.exporter import export_model

    from kws.core.contract import FLOAT_FILE
    from kws.runtime import OnnxModel

    cfg, _, out = ensemble_run
    export_model(out, tmp_path / "m")
    onnx_model = OnnxModel(tmp_path / "m", file=FLOAT_FILE)
    model, _ = load_model(out)
    feats = np.random.default_rng(0).normal(size=(30, cfg.frontend.n_mels)).astype(np.float32)
    with torch.no_grad():
        want = model.scores(torch.from_numpy(feats)[None])[0][0].numpy()
    got, _ = onnx_model.step(feats, onnx_model.initial_state())
    assert np.abs(got - want).max() <= 1e-5
