"""benchmarks/stand_in.py: stand-in audio of the same files, lengths, rates and encodings, read
by the same config with the same splits, then trained and exported."""

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

torch = pytest.importorskip("torch", reason="training needs the train extra")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import zero_shot  # noqa: E402
from stand_in import listing, phrase_listing, rendered_config, stand_in, timed  # noqa: E402

from kws.core.config import config_from_dict, load_config  # noqa: E402
from kws.data import corpora  # noqa: E402
from kws.synth import tts  # noqa: E402
from tests.synthetic import make_corpus, write_config  # noqa: E402


def test_stand_ins_match_the_files_and_splits_and_train(tmp_path, monkeypatch):
    monkeypatch.setenv("KWS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("KWS_WORKERS", "1")
    corpus = make_corpus(tmp_path / "corpus", clips=20)
    rng = np.random.default_rng(0)
    # a minute of Vorbis in one write crashed libsndfile 1.2.2: stand-ins are written in blocks
    music = (0.1 * rng.standard_normal((44100 * 70, 2))).astype(np.float32)
    with soundfile.SoundFile(corpus / "negatives" / "music.ogg", "w", 44100, 2, format="OGG",
                             subtype="VORBIS") as out:
        for start in range(0, len(music), 16384):
            out.write(music[start:start + 16384])
    talk = corpus / "negatives" / "SPEAKER0001" / "000010011.ogg"
    talk.parent.mkdir()
    soundfile.write(talk, 0.1 * rng.standard_normal(16000 * 2), 16000, format="OGG",
                    subtype="OPUS")
    cfg = load_config(write_config(corpus, epochs=1))
    listed = listing(cfg)
    assert any(f[4:] == ["OGG", "OPUS"] for f in listed["files"])

    root = tmp_path / "elsewhere"
    moved = stand_in(listed, root, processes=2)
    for path, frames, rate, channels, container, encoding in listed["files"]:
        info = soundfile.info(str(root / path.lstrip("/")))
        assert (info.frames, info.samplerate, info.channels, info.format, info.subtype) == (
            frames, rate, channels, container, encoding)
    assert corpora.split_table(corpora.collect(moved)) == corpora.split_table(
        corpora.collect(cfg))
    assert all(str(u.path).startswith(str(root)) for u in corpora.collect(moved))

    result = timed(moved, tmp_path / "out")  # on a GPU where there is one
    assert (tmp_path / "out" / "model" / "model.int8.onnx").is_file()
    assert result["device"] == ("cuda" if torch.cuda.is_available() else "cpu")
    assert result["train_s"] > 0 and result["export_s"] > 0


@pytest.mark.skipif(not shutil.which("espeak-ng"), reason="needs espeak-ng (apt-get install "
                    "espeak-ng)")
def test_with_render_the_renderings_are_made_there_as_here(tmp_path, monkeypatch):
    monkeypatch.setenv("KWS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(zero_shot, "RENDERINGS", 6)
    monkeypatch.setattr(tts, "available", lambda: ["espeak-ng"])
    corpus = make_corpus(tmp_path / "corpus", clips=8)
    run = tmp_path / "runs" / "hey_there"
    listed = phrase_listing(load_config(write_config(corpus, epochs=1)), "hey there", run)
    here = config_from_dict(listed["config"], root=Path(listed["config_root"]))
    made_here = sorted(p.name for p in (run / "synth" / "positive").iterdir())
    assert len(made_here) >= 4

    root = tmp_path / "elsewhere"
    stand_in(listed, root, processes=2, rendering=True)
    there_run = root / str(run).lstrip("/")
    assert not (there_run / "synth").exists()  # renderings are not stood in
    assert (root / str(corpus).lstrip("/") / "negatives").is_dir()  # the rest is
    cfg, seconds = rendered_config(listed, root)
    assert sorted(p.name for p in (there_run / "synth" / "positive").iterdir()) == made_here
    assert cfg.data.keyword_dirs["hey_there"] == (str(there_run / "synth" / "positive"),)
    assert corpora.split_table(corpora.collect(cfg)) == corpora.split_table(
        corpora.collect(here))
    assert seconds["phrase_render_s"] > 0 and seconds["auxiliary_render_s"] >= 0


@pytest.mark.skipif(not shutil.which("espeak-ng"), reason="needs espeak-ng (apt-get install "
                    "espeak-ng)")
def test_zero_shot_trains_on_as_many_renderings_as_asked(tmp_path, monkeypatch):
    """benchmarks/zero_shot.py --renderings N: the phrase's model trains on N renderings and N
    confusables; without it, on RENDERINGS of each."""
    monkeypatch.setenv("KWS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(zero_shot, "RENDERINGS", 2)
    monkeypatch.setattr(tts, "available", lambda: ["espeak-ng"])
    cfg = load_config(write_config(make_corpus(tmp_path / "corpus", clips=8), epochs=1))
    for count, made in ((None, 2), (3, 3)):
        run = tmp_path / f"run-{count}"
        retargeted = zero_shot.retargeted(cfg, "hey there", run, count)
        synth = run / "synth"
        assert len(list((synth / "positive").iterdir())) == made
        assert len(list((synth / "confusable").iterdir())) == made
        assert retargeted.data.keyword_dirs["hey_there"] == (str((synth / "positive").resolve()),)


def test_zero_shot_refuses_fewer_than_one_rendering():
    """--renderings 0 is refused by name before anything is loaded or rendered."""
    script = Path(zero_shot.__file__)
    proc = subprocess.run([sys.executable, str(script), "computer", "--renderings", "0"],
                          capture_output=True, text=True, cwd=script.parents[1])
    assert proc.returncode == 2
    assert "--renderings 0: at least 1 rendering of the phrase" in proc.stderr
