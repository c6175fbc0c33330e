"""The speech embedding frontend (kws.embedding): framing, streaming, config, and a model on it
from training to streaming detection."""

import numpy as np
import pytest

from kws.core.config import SPEECH_EMBEDDING, ConfigError, FrontendConfig
from kws.features import embedding, features, streaming_frontend
from kws.features.logmel import num_frames

EMBEDDING = FrontendConfig(kind="speech_embedding", **SPEECH_EMBEDDING)
STREAM_TOL = 1e-4  # streaming vs whole clip: the mel graph's float rounding differs by chunk


def speechlike(seconds: float, seed: int = 0) -> np.ndarray:
    """Harmonic tones with a moving pitch and pauses, at speech level; ``(n,)`` float32."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    f0 = 120 + 60 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / 16000
    x = sum(np.sin(k * phase) / k for k in range(1, 8)) * (np.sin(2 * np.pi * 1.3 * t) > -0.3)
    return (0.1 * x + 0.003 * rng.standard_normal(len(t))).astype(np.float32)


def test_framing_matches_the_frontend_config():
    assert (EMBEDDING.window_samples, EMBEDDING.hop_samples) == (embedding.WINDOW, embedding.HOP)
    for n in (0, 12511, 12512, 12512 + 1279, 12512 + 1280, 48000):
        assert embedding.num_embeddings(n) == num_frames(n, EMBEDDING)
        assert features(speechlike(n / 16000), EMBEDDING).shape == (num_frames(n, EMBEDDING), 96)


def test_embedding_window_reads_only_its_own_audio():
    """Embedding i depends on samples [1280 i, 1280 i + 12512) only."""
    x = speechlike(3.0)
    ref = embedding.embed(x)
    y = x.copy()
    y[embedding.HOP * 5 + embedding.WINDOW:] = 0.3  # change audio after embedding 5's window
    out = embedding.embed(y)
    assert np.abs(out[:6] - ref[:6]).max() <= STREAM_TOL
    assert np.abs(out[6:] - ref[6:]).max() > 0.1


@pytest.mark.parametrize("chunk", [1, 160, 1280, 3000, "random"])
def test_streaming_equals_the_whole_clip(chunk):
    x = speechlike(3.3, seed=1)
    ref = features(x, EMBEDDING)
    rng = np.random.default_rng(2)
    stream, parts, i = streaming_frontend(EMBEDDING), [], 0
    assert isinstance(stream, embedding.StreamingEmbedding)
    while i < len(x):
        n = int(rng.integers(1, 5000)) if chunk == "random" else chunk
        parts.append(stream.accept(x[i:i + n]))
        i += n
    out = np.concatenate(parts)
    assert out.shape == ref.shape
    assert np.abs(out - ref).max() <= STREAM_TOL
    # what no embedding has passed yet: the audio after the last embedding's start
    assert stream.pending_samples == len(x) - embedding.HOP * len(out)
    stream.reset()
    assert stream.pending_samples == 0 and len(stream.accept(x[:12511])) == 0


def test_a_stream_runs_its_graphs_on_one_compute_thread():
    """A listening device steps the stream every 80 ms: onnxruntime's default pool (one
    spinning thread per core) made `kws bench` report 80% of a core at real time for a
    five-member model whose compute is 2% of it."""
    stream = streaming_frontend(EMBEDDING)
    assert [s.get_session_options().intra_op_num_threads for s in stream.sessions] == [1, 1]


def test_batch_rows_equal_single_clips():
    waves = np.stack([speechlike(2.0, seed=s) for s in range(3)])
    batch = embedding.embed(waves)
    for row, wave in zip(batch, waves):
        assert np.abs(row - embedding.embed(wave)).max() <= STREAM_TOL


def test_openwakeword_computes_the_same_embeddings():
    """Same graphs as openWakeWord's: its features of the same (int16) audio agree."""
    utils = pytest.importorskip("openwakeword.utils", reason="the peers extra is not installed")
    x = speechlike(2.5, seed=3)
    pcm = np.round(x * embedding.SCALE).astype(np.int16)
    theirs = utils.AudioFeatures(inference_framework="onnx").embed_clips(pcm[None], batch_size=1)[0]
    ours = embedding.embed(pcm.astype(np.float32) / embedding.SCALE)
    assert ours.shape == theirs.shape
    assert np.abs(ours - theirs).max() <= 1e-3


def test_the_sequence_graph_equals_one_window_at_a_time(monkeypatch):
    """The shipped graph over a whole clip gives each window's embedding as a run on that
    window alone does, and so does the clip cut into runs of a few embeddings."""
    mels = embedding.mel(np.stack([speechlike(2.0, seed=s) for s in range(2)]))
    whole = embedding.embed_mel(mels)
    alone = np.stack([np.concatenate([embedding.embed_mel(row[None, 8 * i:8 * i + 76])[0]
                                      for i in range(whole.shape[1])]) for row in mels])
    assert whole.shape == (2, 16, 96) and np.abs(whole - alone).max() <= 1e-6
    monkeypatch.setattr(embedding, "CHUNK", 3)
    assert np.array_equal(embedding.embed_mel(mels), whole)


def test_the_shipped_graph_is_made_from_openwakewords():
    """kws/features/speech_embedding/embedding_model.onnx is exactly what embedding_graph makes
    of openWakeWord's window graph, whose sha256 models exported before still name."""
    pytest.importorskip("onnx", reason="the onnx package comes with the train/eval/dev extras")
    oww = pytest.importorskip("openwakeword", reason="the peers extra is not installed")
    from pathlib import Path

    from kws.core.contract import sha256_of
    from kws.features.embedding_graph import sequence_graph

    original = Path(oww.__file__).parent / "resources" / "models" / "embedding_model.onnx"
    assert embedding.SAME_AS["embedding_model.onnx"] == {sha256_of(original)}
    made = sequence_graph(original).SerializeToString()
    assert made == (embedding.FILES / "embedding_model.onnx").read_bytes()
    with pytest.raises(ValueError, match="melspectrogram.onnx: not openWakeWord's embedding_model"):
        sequence_graph(embedding.FILES / "melspectrogram.onnx")


def test_config_names_the_fields_the_embedding_fixes():
    with pytest.raises(ConfigError, match=r"frontend.kind = 'mfcc' .* log_mel or speech_embedding"):
        FrontendConfig(kind="mfcc")
    with pytest.raises(ConfigError, match=r"'hop_ms': 10.0.*'hop_ms': 80.0"):
        FrontendConfig(kind="speech_embedding", **{**SPEECH_EMBEDDING, "hop_ms": 10.0})


@pytest.fixture(scope="module")
def embedding_model(tmp_path_factory):
    """A tiny keyword model on speech embeddings, trained from a feature pool and exported."""
    pytest.importorskip("torch", reason="training needs the train extra")
    from kws.core.config import load_config
    from kws.export.exporter import export_model
    from kws.train.run import train
    from tests.synthetic import make_corpus, write_embedding_config

    root = make_corpus(tmp_path_factory.mktemp("embedding-corpus"))
    path = write_embedding_config(root, feature_pool=96)
    run = root / "run"
    result = train(load_config(path), run, progress=False)
    out = root / "model"
    export_model(run, out)
    return root, result, out


def test_model_trains_exports_and_streams_like_offline(embedding_model):
    from kws.core.contract import load_manifest
    from kws.runtime import OnnxModel

    _, result, folder = embedding_model
    assert len(result["history"]) == 3 and all(np.isfinite(r["loss"]) for r in result["history"])
    manifest = load_manifest(folder)
    assert manifest.frontend.kind == "speech_embedding" and manifest.step_s == pytest.approx(0.08)
    model = OnnxModel(folder)
    x = speechlike(4.0, seed=4)
    ref = model.score_audio(x)
    assert ref.shape == (num_frames(len(x), EMBEDDING), 2)
    for chunk in (320, 1777):
        stream, parts = model.create_stream(steps_per_call=1), []
        for i in range(0, len(x), chunk):
            parts.append(stream.accept_waveform(x[i:i + chunk]))
        parts.append(stream.flush())
        assert np.abs(np.concatenate(parts) - ref).max() <= 1e-4


def test_validation_embeddings_are_read_back_from_the_disk_cache(embedding_model, monkeypatch):
    """The next run of the same data (or ``kws train --resume``) reads the validation audio's
    speech embeddings from the disk cache the first run filled, without the network."""
    from kws.core.config import load_config
    from kws.features import embedding
    from kws.train.trainer import Trainer

    root = embedding_model[0]
    trainer = Trainer(load_config(root / "tiny.toml"), root / "again", device="cpu")
    trainer.prepare_data()
    monkeypatch.setattr(embedding, "embed", lambda *a: pytest.fail("embedded again"))
    trainer.featurize_validation()
    waves = [c.wave for c in trainer.val_pos] + [w for _, w in trainer.val_neg]
    assert set(trainer.val_features) == {id(w) for w in waves}
    assert all(trainer.val_features[id(w)].shape == (1, num_frames(len(w), EMBEDDING), 96)
               for w in waves)


def test_feature_pool_batches_are_rows_of_the_pool(embedding_model):
    """With a pool, training batches come from features computed once."""
    import torch

    from kws.core.config import load_config
    from kws.train.trainer import Trainer

    root = embedding_model[0]
    trainer = Trainer(load_config(root / "tiny.toml"), root / "pool-run", device="cpu")
    trainer.prepare_data()
    trainer.build_pool(progress=False)
    feats, labels, start, end = trainer.pool
    assert feats.shape == (96, num_frames(32000, EMBEDDING), 96) and len(labels) == 96
    assert set(labels.tolist()) == {0, 1, 2} and bool((end >= start).all())
    batch = trainer.batch(np.random.default_rng(0))
    assert batch[0].shape == (16, *feats.shape[1:])
    assert all(any(torch.equal(row, p) for p in feats) for row in batch[0])


def test_firmware_refuses_an_embedding_model(embedding_model, tmp_path):
    from kws.firmware.emit import emit

    with pytest.raises(ValueError, match="speech_embedding.*log_mel models only"):
        emit(embedding_model[2], tmp_path / "fw")


def test_manifest_names_the_embedding_weights_and_refuses_others(embedding_model, tmp_path):
    import json
    import shutil

    from kws.core.contract import ManifestError, load_manifest
    from kws.runtime import OnnxModel

    folder = tmp_path / "model"
    shutil.copytree(embedding_model[2], folder)
    weights = load_manifest(folder).raw["frontend_weights"]
    assert weights["license"] == "Apache-2.0"
    assert set(weights["files"]) == set(embedding.GRAPHS)
    raw = json.loads((folder / "model.json").read_text())
    # exported before kws shipped the sequence graph: openWakeWord's graph computes the same
    raw["frontend_weights"]["files"]["embedding_model.onnx"], = embedding.SAME_AS[
        "embedding_model.onnx"]
    (folder / "model.json").write_text(json.dumps(raw))
    OnnxModel(folder)
    raw["frontend_weights"]["files"]["embedding_model.onnx"] = "0" * 64
    (folder / "model.json").write_text(json.dumps(raw))
    with pytest.raises(ManifestError, match="trained on another embedding_model.onnx"):
        OnnxModel(folder)  # the runtime refuses to run it


def test_streams_call_the_model_every_90_ms_by_default(embedding_model, tiny_export):
    from kws.runtime import OnnxModel

    assert OnnxModel(embedding_model[2]).create_stream().steps_per_call == 1  # 80 ms steps
    assert OnnxModel(tiny_export).create_stream().steps_per_call == 3  # 30 ms steps


def test_feature_cache_computes_each_recording_once(tmp_path, monkeypatch, caplog):
    from kws.features import cache as module
    from kws.features.cache import FeatureCache

    wave, other = speechlike(2.0), speechlike(2.0, seed=1)
    cached = FeatureCache(EMBEDDING, tmp_path)
    first = cached(wave)
    np.testing.assert_array_equal(first, features(wave, EMBEDDING))
    monkeypatch.setattr(module, "features", lambda *a: pytest.fail("computed again"))
    again = FeatureCache(EMBEDDING, tmp_path)  # a new process reads what the first wrote
    np.testing.assert_array_equal(again(wave), first)
    assert (again.hits, again.misses) == (1, 0)
    monkeypatch.setattr(module, "features", features)
    assert not np.array_equal(again(other), first) and again.misses == 1  # other audio
    entries = sorted(p for p in tmp_path.rglob("*.npy"))
    assert len(entries) == 2 and not list(tmp_path.rglob("*.tmp"))
    entries[0].write_bytes(b"not an array")  # a damaged entry is computed again, with a warning
    with caplog.at_level("WARNING"):
        fresh = FeatureCache(EMBEDDING, tmp_path)
        fresh(wave), fresh(other)
    assert "unreadable" in caplog.text and fresh.misses == 1
    np.testing.assert_array_equal(FeatureCache(EMBEDDING, tmp_path)(wave), first)


def test_feature_cache_keeps_no_log_mel_and_keys_on_the_frontend(tmp_path):
    from kws.features.cache import FeatureCache, frontend_key

    FeatureCache(FrontendConfig(), tmp_path)(speechlike(1.0))
    assert not any(tmp_path.rglob("*.npy"))
    other = FrontendConfig(kind="speech_embedding", **{**SPEECH_EMBEDDING, "sample_rate": 16000})
    assert frontend_key(other) == frontend_key(EMBEDDING)
    assert frontend_key(FrontendConfig()) != frontend_key(EMBEDDING)


def test_kws_eval_scores_an_embedding_model_from_the_feature_cache(embedding_model, tmp_path,
                                                                  monkeypatch):
    from kws.eval.engines import exported_engine
    from kws.features import cache as module
    from kws.runtime import OnnxModel

    _, _, folder = embedding_model
    monkeypatch.setenv("KWS_CACHE", str(tmp_path))
    x = speechlike(3.0, seed=5)
    expected = OnnxModel(folder).score_audio(x)
    np.testing.assert_array_equal(exported_engine(folder).scorer(x), expected)
    monkeypatch.setattr(module, "features", lambda *a: pytest.fail("computed again"))
    np.testing.assert_array_equal(exported_engine(folder).scorer(x), expected)
    assert len(list((tmp_path / "features").rglob("*.npy"))) == 1
