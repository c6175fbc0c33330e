"""The feature pool: its shares, and the cache of corpus sequences shared across keywords."""

import logging
import os

import numpy as np
import pytest
import soundfile

torch = pytest.importorskip("torch", reason="training needs the train extra")

from kws.core.config import load_config  # noqa: E402
from kws.train import pool  # noqa: E402
from kws.train.trainer import Trainer  # noqa: E402
from tests.synthetic import make_corpus, write_config  # noqa: E402

POOL = 48


def test_pool_shares_keep_the_positive_and_partial_keyword_counts():
    corpus, positive, partial = pool.pool_sizes(100, 0.5, 0.15)
    assert corpus == 25  # half of the 50 negative sequences
    assert positive * 75 == pytest.approx(50)  # 50 positives among the other 75
    assert partial * 75 * (1 - positive) == pytest.approx(0.15 * 50)  # 7.5 partial keywords
    assert pool.pool_sizes(10, 1.0, 0.15) == (0, 1.0, 0.0)


@pytest.fixture
def corpus(tmp_path, monkeypatch):
    monkeypatch.setenv("KWS_CACHE", str(tmp_path / "cache"))
    return make_corpus(tmp_path / "corpus")


def built(root, other=False, stack_frames=3):
    """A trainer of the tiny config with its pool built; ``other`` trains "up" on other clips
    (its recordings played backwards: another word) with confusables of its own, on the same
    negative corpora."""
    path = write_config(root, feature_pool=POOL)
    text = path.read_text().replace("[model]\n", f"[model]\nstack_frames = {stack_frames}\n")
    path.write_text(text)
    if other:
        for source, made in (("keywords/up", "keywords/backwards"), ("negatives", "confusable")):
            (root / made).mkdir(exist_ok=True)
            for clip in (root / source).iterdir():
                wave, rate = soundfile.read(clip, dtype="float32")
                soundfile.write(root / made / clip.name, wave[::-1], rate)
        text = path.read_text().replace('up = ["keywords/up"]', 'up = ["keywords/backwards"]')
        text = text.replace("[data]\n", '[data]\nconfusable_dirs = ["confusable"]\n')
        path = root / "other.toml"
        path.write_text(text)
    trainer = Trainer(load_config(path), root / "run", device="cpu")
    trainer.prepare_data()
    trainer.build_pool(progress=False)
    return trainer


def cached(root):
    return sorted((root.parent / "cache").glob("pool-*.npz"))


def test_corpus_sequences_are_cached_once_and_shared_by_other_keywords(corpus, monkeypatch):
    first = built(corpus)
    n_corpus = pool.pool_sizes(POOL, 0.5, 0.15)[0]
    feats, labels, start, end = first.pool
    assert len(feats) == POOL and (labels[:n_corpus] == 0).all() and (end[:n_corpus] == 0).all()
    assert set(labels[n_corpus:].tolist()) == {0, 1, 2}
    assert len(cached(corpus)) == 1

    stages = []
    original = pool.draw
    monkeypatch.setattr(pool, "draw", lambda make, n, size, progress, stage, processes: (
        stages.append(stage) or original(make, n, size, progress, stage, processes)))
    second = built(corpus, other=True)
    assert stages == ["feature pool: keyword sequences"]  # the corpus part came from disk
    assert any(p.parent.name == "confusable" for p, _ in second.train_clips.negatives)
    assert torch.equal(second.pool[0][:n_corpus], feats[:n_corpus])
    assert not torch.equal(second.pool[0][n_corpus:], feats[n_corpus:])
    assert len(cached(corpus)) == 1


def test_a_changed_negative_file_makes_a_new_cache_entry(corpus):
    built(corpus)
    path = next((corpus / "negatives").iterdir())
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    built(corpus)
    assert len(cached(corpus)) == 2


def test_another_model_step_makes_a_new_cache_entry(corpus):
    """Features are cropped to whole model steps, so the step is part of the key."""
    three, one = built(corpus), built(corpus, stack_frames=1)
    assert len(cached(corpus)) == 2
    assert len(three.pool[0]) == len(one.pool[0]) == POOL


def test_an_unreadable_cache_file_is_computed_again(corpus, caplog):
    first = built(corpus)
    (entry,) = cached(corpus)
    entry.write_bytes(b"not a zip file")
    with caplog.at_level(logging.WARNING, logger="kws.train.pool"):
        again = built(corpus)
    assert "is unreadable" in caplog.text and str(entry) in caplog.text
    assert torch.equal(again.pool[0], first.pool[0])  # same seeds, same features
    with np.load(entry, allow_pickle=False) as saved:
        assert saved["features"].shape[0] == pool.pool_sizes(POOL, 0.5, 0.15)[0]


def test_the_pool_does_not_depend_on_the_number_of_worker_processes(corpus, monkeypatch):
    """Each batch draws from seeds of its own: two workers make the rows one process makes (to
    float rounding: a worker computes on one thread)."""
    monkeypatch.setenv("KWS_WORKERS", "2")
    two = built(corpus)
    (corpus.parent / "cache").rename(corpus.parent / "cache-two")
    monkeypatch.setenv("KWS_WORKERS", "1")
    one = built(corpus)
    for a, b in zip(one.pool, two.pool):
        assert a.shape == b.shape and torch.allclose(a.float(), b.float(), atol=1e-5)


def test_the_pool_is_made_on_the_cpu_in_workers_whatever_the_training_device(corpus,
                                                                               monkeypatch):
    """On a GPU the pool's batches are still made by forked CPU workers (a forked worker must
    not touch CUDA): with the run's device set to one that holds no data ("meta"), the workers
    make the same pool as on the CPU."""
    monkeypatch.setenv("KWS_WORKERS", "2")
    on_cpu = built(corpus)
    (corpus.parent / "cache").rename(corpus.parent / "cache-cpu")
    path = corpus / "tiny.toml"
    elsewhere = Trainer(load_config(path), corpus / "run-meta", device="cpu")
    elsewhere.device = "meta"  # as if training on a GPU: nothing of the pool may go there
    assert elsewhere.processes == 2
    elsewhere.prepare_data()
    elsewhere.build_pool(progress=False)
    for a, b in zip(on_cpu.pool, elsewhere.pool):
        assert b.device.type == "cpu" and torch.allclose(a.float(), b.float(), atol=1e-5)


def test_an_auxiliary_keywords_slots_name_the_same_renderings_whatever_the_others():
    """pool.keyword_slots: one slot per keyword-part row; the k-th slot of an auxiliary keyword
    names the same rendering numbers (uniform over [0, auxiliary_renderings)) whichever other
    keywords are auxiliary, so a second phrase reuses the first one's renderings; no pool, or
    every rendering made ([data] auxiliary_render = "all"), no slots."""
    from kws.core.config import Config, DataConfig, TrainConfig
    from kws.train.pool import keyword_slots, pool_sizes
    from kws.train.sequences import CANDIDATES, PARTIAL_KEYWORD_SHARE

    cfg = Config(train=TrainConfig(feature_pool=2560, batch_size=64),
                 data=DataConfig(auxiliary_renderings=300, auxiliary_render="drawn"))
    n_corpus = pool_sizes(2560, 0.5, PARTIAL_KEYWORD_SHARE)[0]

    def named(auxiliary, keyword, rank=0):
        slots = [s for batch in keyword_slots(cfg, auxiliary, 0, rank) for s in batch]
        assert len(slots) == 2560 - n_corpus
        a = auxiliary.index(keyword)
        return [s.renderings for s in slots if s.auxiliary == a]

    six, seven = named(("a", "b", "c"), "b"), named(("c", "b", "a", "d"), "b")
    assert min(len(six), len(seven)) > 100
    assert six[:len(seven)] == seven[:len(six)]
    assert all(len(r) == CANDIDATES for r in six)
    numbers = np.concatenate(six)
    assert numbers.min() >= 0 and numbers.max() < 300
    assert np.bincount(numbers, minlength=300).std() < 3 * np.sqrt(len(numbers) / 300)
    assert named(("a", "b"), "a") != named(("a", "b"), "a", rank=1)
    assert keyword_slots(cfg, ("a", "b"), 0) == keyword_slots(cfg, ("a", "b"), 0)
    no_pool = Config(train=TrainConfig(feature_pool=0), data=cfg.data)
    assert keyword_slots(no_pool, ("a",), 0) == []
    assert keyword_slots(Config(train=cfg.train), ("a",), 0) == []  # "all" rendered: no slots
    with pytest.raises(ValueError, match=r"data.auxiliary_render = 'some' is not allowed; "
                                         r'expected "all" or "drawn"'):
        DataConfig(auxiliary_render="some")
