"""Model invariants: streaming step by step equals the whole sequence; budget; shapes."""

import pytest

torch = pytest.importorskip("torch", reason="torch is in the train extra")

from kws.core.config import FrontendConfig, ModelConfig, load_config  # noqa: E402
from kws.train.model import KeywordModel, count_parameters, macs_per_second  # noqa: E402

STREAM_TOL = 1e-5  # float32, same ops in a different grouping


def model(**kw):
    torch.manual_seed(0)
    m = KeywordModel(ModelConfig(**kw))
    m.set_normalization(torch.randn(40), torch.rand(40) + 0.5)
    return m.eval()


def test_streaming_one_step_at_a_time_equals_whole_sequence():
    m = model()
    feats = torch.randn(2, 300, 40)
    whole, final = m(feats)
    state, parts = None, []
    for t in range(0, 300, 3):
        out, state = m(feats[:, t:t + 3], state)
        parts.append(out)
    assert (torch.cat(parts, 1) - whole).abs().max() <= STREAM_TOL
    assert (state - final).abs().max() <= STREAM_TOL


def test_uneven_chunks_equal_whole_sequence():
    m = model()
    feats = torch.randn(1, 90, 40)
    whole, _ = m.scores(feats)
    a, s = m.scores(feats[:, :33])
    b, _ = m.scores(feats[:, 33:], s)
    assert (torch.cat([a, b], 1) - whole).abs().max() <= STREAM_TOL


def test_output_shapes_and_probabilities():
    m = model(keywords=("a", "b", "c"))
    scores, state = m.scores(torch.randn(4, 30, 40))
    assert scores.shape == (4, 10, 3) and state.shape == (1, 4, m.cfg.hidden)
    assert scores.min() >= 0 and scores.sum(-1).max() <= 1 + 1e-6
    assert m.initial_state(2).shape == (1, 2, m.cfg.hidden)


def test_bad_feature_shape_is_named():
    with pytest.raises(ValueError, match=r"features of shape \(1, 10, 40\): .* multiple of 3"):
        model()(torch.randn(1, 10, 40))
    with pytest.raises(ValueError, match=r"expected \(batch, T, 40\)"):
        model()(torch.randn(1, 9, 20))


def test_default_model_budget():
    cfg = load_config("configs/default.toml")
    m = KeywordModel(cfg.model, cfg.frontend)
    params = count_parameters(m)
    macs = macs_per_second(cfg.model, cfg.frontend)
    assert params <= 100_000 and macs <= 10_000_000
    # proj (3*40)*P + P, GRU 3*H*(P+H) + 6*H biases, out H*5 + 5; one step per 30 ms
    p, h = cfg.model.proj_dim, cfg.model.hidden
    assert params == 120 * p + p + 3 * h * (p + h) + 6 * h + h * 5 + 5
    assert macs == round((120 * p + 3 * h * (p + h) + h * 5) / 0.03)


def test_model_config_errors():
    from kws.core.config import ConfigError

    with pytest.raises(ConfigError, match=r'model\.keywords .* names other than "none"'):
        ModelConfig(keywords=("none", "x"))
    with pytest.raises(ConfigError, match=r"model\.stack_frames = 0 .* 1\.\.8"):
        ModelConfig(stack_frames=0)
    assert FrontendConfig().hop_samples == 160
