"""Synthetic keyword speech: positives and confusable negatives from the installed TTS engines.

Half of the espeak-ng renderings say the keyword as people also do (:mod:`kws.synth.phonemes`).
Every rendering gets voice-level augmentation (vocal tract length perturbation, speed) and is
rejected when broken (silent, clipped, too short or too long). Confusable negatives
(:func:`kws.synth.phonemes.confusable_texts`) come with as many ordinary sentences, spoken by
every engine (so that no engine's voice alone means "keyword").

``kws synth`` writes ``positive/``, ``confusable/``, a JSONL manifest and a report of what it
made and rejected, the engines it used and their licences.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from kws.features.cache import cache_dir
from kws.synth import tts
from kws.synth.phonemes import SENTENCES, confusable_texts, phonemes, pronunciations
from kws.synth.tts import Voice, render
from kws.synth.voices import voices
from kws.train.augment import change_speed, vtlp

log = logging.getLogger(__name__)


def broken(wave: np.ndarray, sample_rate: int = 16000, min_s: float = 0.2,
           max_s: float = 4.0) -> str | None:
    """Why a rendering is unusable (None if it is fine)."""
    seconds = len(wave) / sample_rate
    if seconds < min_s or seconds > max_s:
        return f"length {seconds:.2f} s outside {min_s}-{max_s} s"
    if float(np.sqrt(np.mean(np.square(wave)))) < 1e-3:
        return "silent"
    if np.mean(np.abs(wave) >= 0.999) > 1e-3:
        return "clipped"
    return None


def installed_engines() -> list[str]:
    """The TTS engines that can speak now; RuntimeError naming how to install them if none."""
    engines = tts.available()
    if not engines:
        raise RuntimeError("no TTS engine found: " + "; ".join(tts.INSTALL_HINT.values()))
    return engines


def synthesize(phrase: str, out: Path, count: int, seed: int = 0,
               confusables: int | None = None, progress=iter,
               engines: list[str] | None = None) -> dict:
    """Write ``count`` positive renderings of ``phrase`` and ``confusables`` (default ``count``)
    confusable negatives to ``out`` by ``engines`` (default: every installed one); ``progress``
    wraps the loop over renderings (a tqdm bar).

    Returns the report (also written to ``out/report.json``).
    """
    engines = engines or installed_engines()
    rng = np.random.default_rng(seed)
    n_conf = confusables if confusables is not None else count
    near = confusable_texts(phrase, rng, max(1, n_conf // 2))
    texts = [near[i % len(near)] for i in range(n_conf // 2)]
    texts += [SENTENCES[int(rng.integers(len(SENTENCES)))] for _ in range(n_conf - len(texts))]
    spelled = [t for t in texts if t.startswith("[[")]  # espeak-ng phoneme input
    plain = [t for t in texts if not t.startswith("[[")]
    phoneme_engines = [e for e in engines if e in tts.SPELLS_PHONEMES]
    jobs = [("positive", phrase, v) for v in voices(count, rng, engines)]
    # half of the renderings by an engine that reads phonemes say the phrase as people also do
    said = iter(pronunciations(phrase, rng, count))
    jobs = [(kind, next(said, text) if v.engine in tts.SPELLS_PHONEMES and i % 2 else text, v)
            for i, (kind, text, v) in enumerate(jobs)]
    if phoneme_engines:
        jobs += [("confusable", t, v) for t, v in
                 zip(spelled, voices(len(spelled), rng, phoneme_engines))]
    jobs += [("confusable", t, v) for t, v in zip(plain, voices(len(plain), rng, engines))]
    made, rejected = render_jobs(jobs, out, rng, {"positive": phrase}, progress)
    report = {"phrase": phrase, "phonemes": phonemes(phrase), "engines": engines,
              "licences": {e: tts.LICENCES[e] for e in engines},
              "not_installed": {e: h for e, h in tts.INSTALL_HINT.items() if e not in engines},
              "requested": {"positive": count, "confusable": n_conf},
              "made": {"positive": made.get("positive", 0),
                       "confusable": made.get("confusable", 0)},
              "rejected": rejected, "seed": seed}
    (out / "report.json").write_text(json.dumps(report, indent=2))
    return report


def speak(texts: list[str], out: Path, count: int, seed: int = 0, kind: str = "speech",
          progress=iter) -> dict[str, int]:
    """``count`` renderings of ``texts`` (in turn) by voices drawn across every installed engine,
    into ``out/<kind>`` (label "none"), as :func:`render_jobs` makes them; returns the
    rejections per reason."""
    engines = installed_engines()
    rng = np.random.default_rng(seed)
    jobs = [(kind, texts[i % len(texts)], v) for i, v in enumerate(voices(count, rng, engines))]
    return render_jobs(jobs, out, rng, {}, progress)[1]


def render_jobs(jobs: list[tuple[str, str, Voice]], out: Path, rng: np.random.Generator,
                labels: dict[str, str], progress=iter) -> tuple[dict, dict]:
    """Render (kind, text, voice) jobs into ``out/<kind>/<index>-<voice>.wav`` (16 kHz, after a
    random vocal tract length and speed change from ``rng``, broken renderings rejected) and
    write ``out/manifest.jsonl`` (label: ``labels[kind]``, else "none").

    The engines run side by side in worker threads (most are separate programs); the results
    come back in order, so the random draws, and the files, do not depend on the worker count.
    The renderings an earlier ``out/manifest.jsonl`` lists are deleted first (training reads
    the folders, so none may outlive its manifest); no other file is touched.
    Returns (renderings made per kind, rejections per reason)."""
    import soundfile

    forget(out)
    made: dict[str, int] = {}
    rejected: dict[str, int] = {}
    lines = []
    workers = ThreadPoolExecutor(os.cpu_count() or 1)
    try:
        results = workers.map(attempt, jobs)
        for i in progress(range(len(jobs))):
            kind, text, voice = jobs[i]
            wave = next(results)
            if isinstance(wave, RuntimeError):
                rejected["engine error"] = rejected.get("engine error", 0) + 1
                log.warning("%s", wave)
                continue
            wave = vtlp(wave, float(rng.uniform(0.9, 1.1)))
            wave = change_speed(wave, float(rng.uniform(0.9, 1.1)))
            reason = broken(wave, max_s=4.0 if kind == "positive" else 8.0)
            if reason:
                rejected[reason.split(" ")[0]] = rejected.get(reason.split(" ")[0], 0) + 1
                continue
            folder = out / kind
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{i:05d}-{voice.id}.wav"
            soundfile.write(path, wave, 16000, subtype="PCM_16")
            made[kind] = made.get(kind, 0) + 1
            lines.append(json.dumps({"path": f"{kind}/{path.name}",
                                     "label": labels.get(kind, "none"), "speaker": voice.id,
                                     "text": text}))
    finally:  # on an error or a signal, the queued renderings are dropped, not awaited
        workers.shutdown(cancel_futures=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    return made, rejected


def forget(out: Path) -> None:
    """Delete the files ``out/manifest.jsonl`` lists (only those inside ``out``), then it."""
    manifest = out / "manifest.jsonl"
    if not manifest.is_file():
        return
    root = out.resolve()
    for line in manifest.read_text().splitlines():
        try:
            path = (root / json.loads(line)["path"]).resolve()
        except (ValueError, KeyError, TypeError):  # not a row this module wrote
            continue
        if path.is_relative_to(root) and path.is_file():
            path.unlink()
    manifest.unlink()


def attempt(job: tuple[str, str, Voice]) -> np.ndarray | RuntimeError:
    """The rendering of one (kind, text, voice) job, or the engine's error."""
    try:
        return render(job[2], job[1])
    except RuntimeError as e:
        return e


def keyword_name(phrase: str) -> str:
    """A keyword name for a phrase: "Smart Mirror" -> "smart_mirror"."""
    name = "_".join(phrase.lower().split())
    if not name or not all(c.isalnum() or c in "_'-" for c in name):
        raise ValueError(f"phrase {phrase!r}: use words of letters and digits")
    return name


def rendered(phrase: str, folder: Path, count: int, seed: int = 0,
             confusables: int | None = None, progress=iter,
             engines: list[str] | None = None) -> list[dict]:
    """The manifest rows of ``folder``, rendered first unless a rendering of the same phrase,
    seed and counts by the same ``engines`` (default: every installed one) is already there."""
    report = folder / "report.json"
    wanted = {"positive": count, "confusable": count if confusables is None else confusables}
    engines = engines or installed_engines()
    old = json.loads(report.read_text()) if report.is_file() else {}
    if (old.get("phrase"), old.get("seed"), old.get("requested"), old.get("engines")) != \
            (phrase, seed, wanted, engines):
        synthesize(phrase, folder, count, seed, confusables, progress, engines)
    return [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()
            if line.strip()]


def with_synthetic_voices(cfg, folder: Path, progress=iter):
    """``cfg`` with ``[data] synth_positives`` renderings of each keyword, and
    ``synth_confusables`` confusable negatives, added to the training split only (validation,
    calibration and test stay real voices). Made in ``folder/<keyword>``, reused while the
    phrase, seed and counts match; listed in ``folder/train.jsonl``, appended to
    ``[data] manifests``."""
    d = cfg.data
    rows = []
    for keyword in cfg.model.keywords:
        sub = folder / keyword
        for row in rendered(keyword.replace("_", " "), sub, d.synth_positives, d.seed,
                            d.synth_confusables, progress):
            positive = row["label"] != "none"
            rows.append(json.dumps({**row, "path": str((sub / row["path"]).resolve()),
                                    "label": keyword if positive else "none", "split": "train"}))
    manifest = folder / "train.jsonl"
    manifest.write_text("\n".join(rows) + "\n")
    data = dataclasses.replace(d, manifests=d.manifests + (str(manifest.resolve()),))
    return dataclasses.replace(cfg, data=data)


def synthetic_config(cfg, phrase: str, folder: Path, count: int, seed: int = 0, progress=iter):
    """``cfg`` retargeted to ``phrase``: synthetic positives (made in ``folder`` unless already
    there), its confusables as ``[data] confusable_dirs``; no real recording of the phrase.
    Every ``[data] auxiliary_dirs`` keyword but the phrase becomes a ``model.auxiliary``
    keyword: its real recordings and ``[data] auxiliary_renderings`` renderings by every
    installed engine but ``[data] auxiliary_skip_engines`` (made once per machine in
    ``$KWS_CACHE/synth``, shared by every phrase).

    Raises:
        ValueError: ``auxiliary_skip_engines`` names an unknown engine, or leaves none.
    """
    unknown = sorted(set(cfg.data.auxiliary_skip_engines) - set(tts.INSTALL_HINT))
    if unknown:
        raise ValueError(f"data.auxiliary_skip_engines: unknown engine(s) {unknown}; "
                         f"allowed: {sorted(tts.INSTALL_HINT)}")
    n_aux = cfg.data.auxiliary_renderings
    installed = installed_engines()
    aux_engines = [e for e in installed if e not in cfg.data.auxiliary_skip_engines]
    if n_aux and not aux_engines:
        raise ValueError(f"data.auxiliary_skip_engines {list(cfg.data.auxiliary_skip_engines)} "
                         "leaves no installed TTS engine for the auxiliary keywords' "
                         f"renderings; installed: {installed}")
    rendered(phrase, folder, count, seed, progress=progress)
    name = keyword_name(phrase)
    dirs = {name: (str((folder / "positive").resolve()),)}
    for kw, real in cfg.data.auxiliary_dirs.items():
        if kw == name:
            continue
        dirs[kw] = tuple(str(cfg.resolve(d).resolve()) for d in real)
        if n_aux:
            voices_of = cache_dir() / "synth" / f"{kw}-{seed}-{n_aux}"
            rendered(kw.replace("_", " "), voices_of, n_aux, seed, 0, progress, aux_engines)
            dirs[kw] += (str((voices_of / "positive").resolve()),)
    auxiliary = tuple(kw for kw in dirs if kw != name)
    data = dataclasses.replace(
        cfg.data, keyword_dirs=dirs, holdout={},
        negative_dirs=tuple(str(cfg.resolve(d).resolve()) for d in cfg.data.negative_dirs),
        confusable_dirs=(str((folder / "confusable").resolve()),),
        eval_negative_dirs=tuple(str(cfg.resolve(d).resolve())
                                 for d in cfg.data.eval_negative_dirs),
        noise_dirs=tuple(str(cfg.resolve(d).resolve()) for d in cfg.data.noise_dirs))
    return dataclasses.replace(cfg, data=data, model=dataclasses.replace(
        cfg.model, keywords=(name,), auxiliary=auxiliary))
