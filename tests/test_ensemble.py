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
    """Two members trained side by side in two worker processes."""
    root = make_corpus(tmp_path_factory.mktemp("corpus"))
    cfg = load_config(write_config(root, epochs=1, members=2, feature_pool=32))
    out = root / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KWS_WORKERS", "2")
        return cfg, train(cfg, out, progress=False), out


def test_members_trained_in_worker_processes_equal_members_trained_here(ensemble_run,
                                                                        monkeypatch):
    cfg, result, out = ensemble_run
    monkeypatch.setenv("KWS_WORKERS", "1")
    here = train(cfg, out.parent / "here", progress=False)
    assert [m["history"][-1]["loss"] for m in here["members"]] == pytest.approx(
        [m["history"][-1]["loss"] for m in result["members"]], rel=1e-4)
    for i in range(2):
        a, b = (load_model(folder / f"member-{i}")[0] for folder in (out, out.parent / "here"))
        for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.allclose(x, y, atol=1e-5), name


def test_members_train_merge_and_the_merge_scores_their_mean(ensemble_run):
    cfg, result, out = ensemble_run
    model, saved_cfg = load_model(out)
    assert saved_cfg.model.hidden == 2 * cfg.model.hidden
    assert saved_cfg.model.proj_dim == 2 * cfg.model.proj_dim
    assert [m["history"][0]["epoch"] for m in result["members"]] == [1, 1]
    assert json.loads((out / "metrics.json").read_text())["best"] == result["best"]
    a, b = (load_model(out / f"member-{i}")[0] for i in range(2))
    assert not torch.equal(a.grus[0].weight_hh_l0, b.grus[0].weight_hh_l0)  # seeds 0 and 1
    feats = torch.randn(1, 30, cfg.frontend.n_mels)
    with torch.no_grad():
        assert torch.allclose(model(feats)[0], (a(feats)[0] + b(feats)[0]) / 2, atol=1e-5)


def test_members_share_one_feature_pool(ensemble_run, monkeypatch):
    """The second member trains on the first member's pool: the pool is built once."""
    from kws.train.trainer import Trainer

    cfg, _, out = ensemble_run
    monkeypatch.setenv("KWS_WORKERS", "1")  # the spy sees calls made in this process
    built = []
    original = Trainer.build_pool
    monkeypatch.setattr(Trainer, "build_pool", lambda self, p: built.append(self.pool_seed)
                        or original(self, p))
    train(cfg, out.parent / "again", progress=False)
    assert built == [cfg.train.seed]


def test_members_share_one_loading_of_the_data(ensemble_run, monkeypatch):
    """The data is loaded, and the rooms simulated, once for both members and the merge; every
    member and the merge validate on the same audio."""
    from kws.train import augment
    from kws.train.trainer import Trainer

    _, _, out = ensemble_run
    monkeypatch.setenv("KWS_WORKERS", "1")  # the spies see calls made in this process
    cfg = load_config(write_config(out.parent, epochs=2, members=2, feature_pool=32,
                                   select='"last"'))
    seeds, prepared, validated = [], [], []
    original, prepare, validate = augment.simulate_rirs, Trainer.prepare_data, Trainer.validate
    monkeypatch.setattr(augment, "simulate_rirs",
                        lambda count, seed, *a, **k: seeds.append(seed) or original(count, seed))
    monkeypatch.setattr(Trainer, "prepare_data", lambda self: prepared.append(self.out.name)
                        or prepare(self))
    monkeypatch.setattr(Trainer, "validate", lambda self: validated.append(
        (self.out.name, id(self.val_pos), id(self.val_neg))) or validate(self))
    train(cfg, out.parent / "rooms", progress=False)
    assert seeds == [cfg.train.seed] and prepared == ["member-0"]
    # select = "last": only each member's last epoch (of two) and the merge are validated
    assert [name for name, *_ in validated] == ["member-0", "member-1", "rooms"]
    assert len({tuple(audio) for _, *audio in validated}) == 1


def test_resume_keeps_finished_members(ensemble_run, monkeypatch):
    from kws.train.trainer import Trainer

    cfg, result, out = ensemble_run
    before = (out / "member-0" / "best.pt").stat().st_mtime_ns
    monkeypatch.setattr(Trainer, "run", lambda *a, **k: pytest.fail("a finished member retrained"))
    again = train(cfg, out, resume=True, progress=False)
    assert (out / "member-0" / "best.pt").stat().st_mtime_ns == before
    assert again["best"] == result["best"]


def test_merged_model_exports_and_onnx_matches_torch(ensemble_run, tmp_path):
    from kws.core.contract import FLOAT_FILE
    from kws.export.exporter import export_model
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


def test_the_synthetic_configs_ensemble_is_at_most_200_kb_and_stores_no_zero_blocks(tmp_path):
    """The model ``configs/synthetic.toml`` trains for a phrase that is none of its auxiliary
    keywords (five 64-unit GRUs on the 96-value speech embedding, one keyword and four auxiliary
    classes): one batched graph of the members, no weight between them, at most 200 KB int8
    (issue 23), and the same scores as the merged torch model."""
    from pathlib import Path

    import onnx

    from kws.export.graph import build_graph, weights_from_model
    from kws.export.quantize import quantize_weights

    shipped = load_config(Path(__file__).parent.parent / "configs" / "synthetic.toml")
    n = shipped.train.members
    frontend = shipped.frontend
    cfg = dataclasses.replace(shipped.model, keywords=("smart_mirror",),
                              auxiliary=tuple(shipped.data.auxiliary_dirs))
    members = []
    for seed in range(n):
        torch.manual_seed(seed)
        members.append(KeywordModel(cfg, frontend).eval())
    merged = merge(members, frontend)
    p, h, classes = cfg.proj_dim, cfg.hidden, 2 + len(cfg.auxiliary)
    assert merged.cfg.members == n and merged.cfg.hidden == n * h
    weights = weights_from_model(merged)
    assert weights.hh_w.shape == (h, n * 3 * h) and weights.ih_w.shape == (p, n * 3 * h)
    graph = build_graph(weights)
    onnx.save(quantize_weights(graph), str(tmp_path / "int8.onnx"))
    onnx.save(graph, str(tmp_path / "float.onnx"))
    stored = sum(a.size for a in (weights.proj_w, weights.ih_w, weights.hh_w, weights.out_w))
    assert stored == n * (frontend.n_mels * p + (p + h) * 3 * h + h * classes)
    # int8 weights plus a float scale and bias per output column
    assert (tmp_path / "int8.onnx").stat().st_size <= 200_000
    import onnxruntime as ort

    session = ort.InferenceSession(str(tmp_path / "float.onnx"),
                                   providers=["CPUExecutionProvider"])
    feats = np.random.default_rng(0).normal(size=(20, frontend.n_mels)).astype(np.float32)
    got = session.run(None, {"features": feats[None],
                             "state": np.zeros((1, 1, n * h), np.float32)})[0][0]
    with torch.no_grad():
        want = merged.scores(torch.from_numpy(feats)[None])[0][0].numpy()
        single = torch.stack([m.scores(torch.from_numpy(feats)[None])[0][0] for m in members])
    assert np.abs(got - want).max() <= 1e-5
    # the merged score is the softmax of the members' mean logits, not any one member's
    assert np.abs(want - single.numpy()).max() > 1e-3


def test_hard_negatives_need_a_feature_pool(tmp_path):
    with pytest.raises(ValueError, match=r"train.hard_negatives.*8.*0 without a feature pool"):
        load_config(write_config(tmp_path, hard_negatives=8))
    with pytest.raises(ValueError, match=r"train.hard_negative_epochs.*0.*>= 1"):
        load_config(write_config(tmp_path, hard_negatives=8, feature_pool=32,
                                 hard_negative_epochs=0))


def test_a_hard_negative_round_trains_each_member_on_with_its_mined_pool(ensemble_run,
                                                                         monkeypatch):
    """Second round: each member goes on from its own first-round weights at a tenth of the
    learning rate, on the pool plus one sequence per mined moment; the merge is of the second
    round's members; resume keeps them."""
    from kws.train.trainer import Trainer

    _, _, out = ensemble_run
    monkeypatch.setenv("KWS_WORKERS", "1")  # the spy sees calls made in this process
    cfg = load_config(write_config(out.parent, epochs=1, members=2, feature_pool=32,
                                   hard_negatives=12, hard_negative_epochs=1))
    runs, original = [], Trainer.run
    monkeypatch.setattr(Trainer, "run", lambda self, **k: runs.append(
        (self.out.name, len(self.pool[0]), self.cfg.train.lr, k.get("init"))) or original(
        self, **k))
    run = out.parent / "hard"
    result = train(cfg, run, progress=False)
    mined = result["hard_negatives"]["moments"]
    assert 0 < mined <= 12 and result["first_round_val_miss"]
    assert [(name, rows) for name, rows, *_ in runs] == [
        ("member-0", 32), ("member-1", 32), ("hard-0", 32 + mined), ("hard-1", 32 + mined)]
    for i in range(2):
        name, _, lr, init = runs[2 + i]
        assert lr == pytest.approx(cfg.train.lr / 10)
        first = load_model(run / f"member-{i}")[0].state_dict()
        assert all(torch.equal(init[k], first[k]) for k in first)
    model = load_model(run)[0]
    a, b = (load_model(run / f"hard-{i}")[0] for i in range(2))
    feats = torch.randn(1, 30, cfg.frontend.n_mels)
    with torch.no_grad():
        assert torch.allclose(model(feats)[0], (a(feats)[0] + b(feats)[0]) / 2, atol=1e-5)
    assert len(result["hard_negative_members"]) == 2
    runs.clear()
    again = train(cfg, run, resume=True, progress=False)
    assert runs == [] and again["best"] == result["best"]


def test_auxiliary_keywords_are_scored_but_never_output(tmp_path):
    """A phrase model with three auxiliary keywords: its graph outputs the phrase alone, the
    softmax over all five classes (torch == ONNX), so an auxiliary keyword counts against the
    phrase."""
    import onnx
    import onnxruntime as ort

    from kws.core.config import SPEECH_EMBEDDING
    from kws.export.graph import build_graph, weights_from_model

    frontend = FrontendConfig(kind="speech_embedding", **SPEECH_EMBEDDING)
    cfg = ModelConfig(keywords=("smart_mirror",), auxiliary=("alexa", "jarvis", "snowboy"),
                      stack_frames=1, proj_dim=16, hidden=16)
    torch.manual_seed(0)
    members = [KeywordModel(cfg, frontend).eval() for _ in range(2)]
    merged = merge(members, frontend)
    assert merged.out.out_features == 5
    onnx.save(build_graph(weights_from_model(merged)), str(tmp_path / "float.onnx"))
    session = ort.InferenceSession(str(tmp_path / "float.onnx"),
                                   providers=["CPUExecutionProvider"])
    feats = np.random.default_rng(0).normal(size=(20, 96)).astype(np.float32) * 3
    got = session.run(None, {"features": feats[None],
                             "state": np.zeros((1, 1, 32), np.float32)})[0][0]
    with torch.no_grad():
        logits, _ = merged(torch.from_numpy(feats)[None])
        want = merged.scores(torch.from_numpy(feats)[None])[0][0].numpy()
    assert got.shape == want.shape == (20, 1)
    np.testing.assert_allclose(want[:, 0], torch.softmax(logits[0], -1)[:, 1].numpy(), atol=1e-7)
    assert np.abs(got - want).max() <= 1e-5
    # without the auxiliary classes the phrase would score higher: they are not dropped
    assert (torch.softmax(logits[0, :, :2], -1)[:, 1].numpy() > want[:, 0] + 1e-3).all()
    with pytest.raises(ValueError, match=r"model.auxiliary.*distinct names"):
        ModelConfig(keywords=("alexa",), auxiliary=("alexa",))
