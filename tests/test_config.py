"""Configuration: values of the wrong kind or out of range are refused with the key named."""

import pytest

from kws.core.config import ConfigError, config_from_dict, load_config


@pytest.mark.parametrize("raw, message", [
    ({"train": {"lr": float("inf")}}, r"train\.lr = inf is not allowed; expected a finite number"),
    ({"train": {"lr": float("nan")}}, r"train\.lr = nan is not allowed"),
    ({"train": {"epochs": 1.5}}, r"train\.epochs = 1\.5 is not allowed; expected an integer"),
    ({"train": {"epochs": True}}, r"train\.epochs = True is not allowed; expected an integer"),
    ({"train": {"negative_draw": 3}}, r"train\.negative_draw = 3 is not allowed; expected a "
                                      r"string"),
    ({"augment": {"snr_db": [0, float("inf")]}}, r"augment\.snr_db = \[0, inf\] is not allowed"),
    ({"frontend": {"n_mels": "40"}}, r"frontend\.n_mels = '40' is not allowed"),
    ({"model": {"keywords": ["up", "../../etc"]}}, r"model\.keywords = '\.\./\.\./etc'"),
    ({"decision": {"thresholds": {"up": 0.5}}}, r"decision\.thresholds = \{'up': 0\.5\} is not "
                                                r"allowed; expected none in a run config"),
    ({"train": []}, r"\[train\] = \[\] is not allowed; expected a table"),
])
def test_bad_values_are_named(raw, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict(raw)


def test_integers_stay_accepted_where_floats_are_expected():
    cfg = config_from_dict({"train": {"lr": 1, "sequence_s": 4}, "frontend": {"hop_ms": 10}})
    assert cfg.train.lr == 1 and cfg.frontend.hop_ms == 10


def test_a_keyword_without_validation_clips_is_an_error_at_start(tmp_path):
    """Not a TypeError after training: the trainer refuses before the first epoch."""
    pytest.importorskip("torch", reason="training needs the train extra")
    from kws.train.trainer import Trainer
    from tests.synthetic import make_corpus, write_config

    root = make_corpus(tmp_path / "c", clips=3)  # too few clips for a validation speaker
    cfg = load_config(write_config(root))
    with pytest.raises(ValueError, match=r"no validation clips for keyword\(s\) \["):
        Trainer(cfg, tmp_path / "run").prepare_data()
