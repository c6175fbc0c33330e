"""Corpus readers and speaker-aware splits."""

import json
from pathlib import Path

import pytest

from kws.core.config import config_from_dict
from kws.data.corpora import (
    Utterance,
    assign_splits,
    collect,
    read_manifest,
    read_speech_commands,
    speaker_of,
    split_table,
)
from tests.conftest import shared_dir
from tests.synthetic import make_corpus, write_config


def test_speaker_ids_from_file_names():
    assert speaker_of(Path("x/1688-142285-0003.flac")) == "librispeech-1688"
    assert speaker_of(Path("yes/0bac8a71_nohash_0.flac")) == "speechcommands-0bac8a71"
    assert speaker_of(Path("alexa/157.flac")) == "alexa-block15"
    assert speaker_of(Path("jarvis/ab-cd.flac")) == "jarvis-ab-cd"


def test_a_speaker_never_spans_two_splits():
    utts = [Utterance(Path(f"{s}-{i}.wav"), "none", f"spk{s}") for s in range(200)
            for i in range(3)]
    out = assign_splits(utts, val_fraction=0.2, test_fraction=0.1, seed=3)
    by_speaker = {}
    for u in out:
        by_speaker.setdefault(u.speaker, set()).add(u.split)
    assert all(len(v) == 1 for v in by_speaker.values())
    counts = {s: sum(1 for v in by_speaker.values() if s in v) for s in ("train", "val", "test")}
    assert 5 <= counts["test"] <= 40 and 20 <= counts["val"] <= 60  # ~10% / ~20% of 200
    assert assign_splits(utts, 0.2, 0.1, seed=3) == out  # stable


def test_holdout_speaker_stays_out_of_train(tmp_path):
    root = make_corpus(tmp_path, clips=40)
    cfg = config_from_dict({"model": {"keywords": ["up", "down"]},
                            "data": {"keyword_dirs": {"up": ["keywords/up"]},
                                     "holdout": {"up": [[35, 39]]}}}, root=root)
    utts = collect(cfg)
    split = {u.path.stem: u.split for u in utts}
    # 35..39 are held out; 30..34 share their speaker block (30-39), so they are test too
    assert all(split[str(i)] == "test" for i in range(30, 40))
    assert all(split[str(i)] != "test" for i in range(30))


def test_a_keyword_folder_below_a_negative_folder_gives_no_negatives(tmp_path):
    """Negatives named by a parent folder ("keywords/", as Speech Commands' root holds "yes")
    leave out the files of every keyword folder below it; the rest are negatives."""
    root = make_corpus(tmp_path, clips=40)
    cfg = config_from_dict({"model": {"keywords": ["up"]},
                            "data": {"keyword_dirs": {"up": ["keywords/up"]},
                                     "negative_dirs": ["keywords", "negatives"]}}, root=root)
    labels = {}
    for u in collect(cfg):
        labels.setdefault(u.path.parent.name, set()).add(u.label)
    assert labels == {"up": {"up"}, "down": {"none"}, "negatives": {"none"}}
    assert sum(u.label == "none" for u in collect(cfg)) == 40 + 30


def test_manifest_reader_and_errors(tmp_path):
    good = tmp_path / "m.jsonl"
    good.write_text(json.dumps({"path": "a.wav", "label": "up", "speaker": "s1", "split": "val"})
                    + "\n\n" + json.dumps({"path": "/abs/b.wav", "label": "none"}) + "\n")
    utts = read_manifest(good)
    assert utts[0] == Utterance(tmp_path / "a.wav", "up", "s1", "val")
    assert utts[1].path == Path("/abs/b.wav") and utts[1].split == ""
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"path": "a.wav", "label": "x"}) + "\n{not json\n")
    with pytest.raises(ValueError, match=r"bad\.jsonl:2: expected a JSON object"):
        read_manifest(bad)
    bad.write_text(json.dumps({"path": "a.wav", "label": "x", "split": "dev"}) + "\n")
    with pytest.raises(ValueError, match=r"bad\.jsonl:1: split 'dev' is not one of"):
        read_manifest(bad)


def test_config_split_table(tmp_path):
    root = make_corpus(tmp_path, clips=40)
    from kws.core.config import load_config

    table = split_table(collect(load_config(write_config(root))))
    assert table["up"]["test"] == 10  # holdout 30-39 only: a keyword with holdout ranges
    assert sum(table["down"].values()) == 40 and sum(table["none"].values()) == 30


def test_speech_commands_layout():
    root = shared_dir("speech-commands-test")
    utts = read_speech_commands(root, keywords=("yes",))
    labels = {u.label for u in utts}
    assert labels == {"yes", "none"}
    assert all(u.speaker.startswith("speechcommands-") for u in utts if u.path.parent.name == "yes")
