"""Shared fixtures: where the shared data lives, and skips when it is absent."""

from pathlib import Path

import pytest

pytest_plugins = ["tests.pulse"]  # the virtual microphone fixtures: pulse, pulse_server

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def shared_dir(*parts: str) -> Path:
    """A folder under ../shared/data, or skip the test saying which folder is missing."""
    path = SHARED.joinpath(*parts)
    if not path.is_dir():
        pytest.skip(f"shared data folder {path} is absent (a fresh clone has no ../shared)")
    return path


@pytest.fixture(scope="session", autouse=True)
def own_cache(tmp_path_factory):
    """Feature pools and room impulse responses go to a cache of this test session (and its
    subprocesses), not to the user's ~/.cache/kws."""
    import os

    os.environ["KWS_CACHE"] = str(tmp_path_factory.mktemp("kws-cache"))


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A tiny model trained for 6 short epochs on the synthetic corpus: (corpus root, run)."""
    pytest.importorskip("torch", reason="training needs the train extra")
    from kws.core.config import load_config
    from kws.train.run import train
    from tests.synthetic import make_corpus, write_config

    root = make_corpus(tmp_path_factory.mktemp("tiny-corpus"))
    run = root / "run"
    train(load_config(write_config(root, epochs=6, sequences=192)), run, progress=False)
    return root, run


@pytest.fixture(scope="session")
def tiny_export(tiny_run, tmp_path_factory):
    """The tiny model exported with ``kws export``: the model folder."""
    from kws.export.exporter import export_model

    out = tmp_path_factory.mktemp("tiny-model")
    export_model(tiny_run[1], out)
    return out
