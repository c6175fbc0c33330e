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
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from kws.data.corpora import rendering_name, rendering_number, split_of
from kws.features.cache import cache_dir
from kws.synth import tts
from kws.synth.phonemes import SENTENCES, confusable_texts, phonemes, pronunciations
from kws.synth.tts import Voice, render
from kws.synth.voices import voices
from kws.train.augment import change_speed, vtlp
from kws.train.pool import keyword_slots

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
    n_conf = confusables if confusables is not None else count
    jobs, factors = planned_jobs(phrase, count, seed, n_conf, engines)
    forget(out)
    rows, rejected = render_jobs(jobs, factors, out, {"positive": phrase}, range(len(jobs)),
                                 progress)
    return write_rendering(out, phrase, seed, engines, {"positive": count, "confusable": n_conf},
                           rows, rejected)


def planned_jobs(phrase: str, count: int, seed: int, confusables: int, engines: list[str]
                 ) -> tuple[list[tuple[str, str, Voice]], np.ndarray]:
    """The (kind, text, voice) jobs of ``count`` positives and ``confusables`` confusable
    negatives, and each job's ``(n_jobs, 2)`` vocal tract length and speed factors: a function
    of its arguments, so one rendering of the plan can be made without the others."""
    rng = np.random.default_rng(seed)
    near = confusable_texts(phrase, rng, max(1, confusables // 2))
    texts = [near[i % len(near)] for i in range(confusables // 2)]
    texts += [SENTENCES[int(rng.integers(len(SENTENCES)))]
              for _ in range(confusables - len(texts))]
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
    return jobs, rng.uniform(0.9, 1.1, size=(len(jobs), 2))


def write_rendering(out: Path, phrase: str, seed: int, engines: list[str], requested: dict,
                    rows: list[dict], rejected: dict[int, str], partial: bool = False) -> dict:
    """Write ``out/manifest.jsonl`` (``rows``) and ``out/report.json``, which it returns: what
    was requested, made and rejected (per reason, and by rendering number), the engines and
    their licences; ``partial``: only some of the requested renderings were asked for."""
    write_manifest(out, rows)
    report = {"phrase": phrase, "phonemes": phonemes(phrase), "engines": engines,
              "licences": {e: tts.LICENCES[e] for e in engines},
              "not_installed": {e: h for e, h in tts.INSTALL_HINT.items() if e not in engines},
              "requested": requested,
              "made": {kind: sum(row["path"].startswith(f"{kind}/") for row in rows)
                       for kind in requested},
              "rejected": reasons(rejected),
              "rejected_numbers": {str(i): why for i, why in sorted(rejected.items())},
              "seed": seed, "partial": partial}
    (out / "report.json").write_text(json.dumps(report, indent=2))
    return report


def write_manifest(out: Path, rows: list[dict]) -> None:
    """``out/manifest.jsonl``: one JSON row per rendering."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "manifest.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))


def reasons(rejected: dict[int, str]) -> dict[str, int]:
    """Rejections per reason ("engine error", "length", "silent", "clipped")."""
    return dict(sorted(Counter(why if why == "engine error" else why.split(" ")[0]
                               for why in rejected.values()).items()))


def speak(texts: list[str], out: Path, count: int, seed: int = 0, kind: str = "speech",
          progress=iter) -> dict[str, int]:
    """``count`` renderings of ``texts`` (in turn) by voices drawn across every installed engine,
    into ``out/<kind>`` (label "none"), as :func:`render_jobs` makes them, listed in
    ``out/manifest.jsonl``; returns the rejections per reason."""
    engines = installed_engines()
    rng = np.random.default_rng(seed)
    jobs = [(kind, texts[i % len(texts)], v) for i, v in enumerate(voices(count, rng, engines))]
    forget(out)
    rows, rejected = render_jobs(jobs, rng.uniform(0.9, 1.1, size=(len(jobs), 2)), out, {},
                                 range(len(jobs)), progress)
    write_manifest(out, rows)
    return reasons(rejected)


def render_jobs(jobs: list[tuple[str, str, Voice]], factors: np.ndarray, out: Path,
                labels: dict[str, str], numbers, progress=iter
                ) -> tuple[list[dict], dict[int, str]]:
    """Render the (kind, text, voice) jobs ``numbers`` into
    ``out/<kind>/<number>-<voice>.wav`` (:func:`kws.data.corpora.rendering_name`; 16 kHz, after
    the job's vocal tract length and speed ``factors``; broken renderings rejected).

    The engines run side by side in worker threads (most are separate programs); the results
    come back in order, so the files do not depend on the worker count.
    Returns (manifest rows of those made, label ``labels[kind]``, else "none";
    {number: why} of those rejected)."""
    import soundfile

    numbers = list(numbers)
    rows, rejected = [], {}
    workers = ThreadPoolExecutor(os.cpu_count() or 1)
    try:
        results = workers.map(attempt, [jobs[i] for i in numbers])
        for i in progress(numbers):
            kind, text, voice = jobs[i]
            wave = next(results)
            if isinstance(wave, RuntimeError):
                rejected[i] = "engine error"
                log.warning("%s", wave)
                continue
            wave = vtlp(wave, float(factors[i, 0]))
            wave = change_speed(wave, float(factors[i, 1]))
            reason = broken(wave, max_s=4.0 if kind == "positive" else 8.0)
            if reason:
                rejected[i] = reason
                continue
            folder = out / kind
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / rendering_name(i, voice.id)
            soundfile.write(path, wave, 16000, subtype="PCM_16")
            rows.append({"path": f"{kind}/{path.name}", "label": labels.get(kind, "none"),
                         "speaker": voice.id, "text": text})
    finally:  # on an error or a signal, the queued renderings are dropped, not awaited
        workers.shutdown(cancel_futures=True)
    return rows, rejected


def forget(out: Path) -> None:
    """Delete the files ``out/manifest.jsonl`` lists (only those inside ``out``), then it."""
    manifest = out / "manifest.jsonl"
    if not manifest.is_file():
        return
    for row in manifest_rows(out):
        if (out / row["path"]).is_file():
            (out / row["path"]).unlink()
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
    seed and counts by the same ``engines`` (default: every installed one) is already there;
    one that :func:`rendered_for` left partial is completed (what it made is kept)."""
    wanted = {"positive": count, "confusable": count if confusables is None else confusables}
    engines = engines or installed_engines()
    old = report_of(folder, phrase, seed, wanted, engines)
    if not old:
        synthesize(phrase, folder, count, seed, confusables, progress, engines)
    elif old.get("partial"):
        add_renderings(folder, phrase, count, seed, engines, range(count), progress, False)
    return manifest_rows(folder)


def report_of(folder: Path, phrase: str, seed: int, wanted: dict, engines: list[str]) -> dict:
    """``folder/report.json`` if it is a rendering of this phrase, seed, counts and engines,
    else {} (also when it is not a report this module wrote: the folder is rendered again)."""
    report = folder / "report.json"
    try:
        old = json.loads(report.read_text()) if report.is_file() else {}
        rejected = old.get("rejected_numbers", {})
        if not (isinstance(rejected, dict) and all(k.isdigit() for k in rejected)):
            raise ValueError(f"rejected_numbers {str(rejected)[:80]!r} is not "
                             "{number: reason}")
    except (ValueError, AttributeError) as e:
        log.warning("%s is not a rendering report (%s): rendering again", report, e)
        return {}
    same = (old.get("phrase"), old.get("seed"), old.get("requested"), old.get("engines")) == \
        (phrase, seed, wanted, engines)
    return old if same else {}


def manifest_rows(folder: Path) -> list[dict]:
    """The rows of ``folder/manifest.jsonl`` whose "path" names a file inside ``folder`` and
    that have a "label" (others, which this module never writes, are left out with a
    warning)."""
    root, rows = folder.resolve(), []
    for n, line in enumerate((folder / "manifest.jsonl").read_text().splitlines(), 1):
        try:
            row = json.loads(line)
            if not (root / row["path"]).resolve().is_relative_to(root):
                raise ValueError(f"path {row['path']!r} is outside {folder}")
            if not isinstance(row.get("label"), str):
                raise ValueError("no label")
            rows.append(row)
        except (ValueError, KeyError, TypeError) as e:
            if line.strip():
                log.warning("%s line %d left out: %s", folder / "manifest.jsonl", n, e)
    return rows


def rendered_for(phrase: str, folder: Path, count: int, seed: int,
                 wanted: list[tuple[int, ...]], split, progress=iter,
                 engines: list[str] | None = None) -> int:
    """Make in ``folder`` only the positive renderings of ``phrase`` that training will use,
    of the ``count`` (:func:`planned_jobs`: the same voices) a whole rendering would make:
    for each tuple of rendering numbers in ``wanted`` (a :class:`kws.train.sequences.Slot`'s),
    in order, until one in the training split (``split(path)``) is made; and every one of the
    validation split (validation scores them). Renderings made before are kept and reused.
    Returns how many are there."""
    engines = engines or installed_engines()
    if not report_of(folder, phrase, seed, {"positive": count, "confusable": 0}, engines):
        forget(folder)
    jobs, _ = planned_jobs(phrase, count, seed, 0, engines)
    splits = [split(folder / "positive" / rendering_name(i, voice.id))
              for i, (_, _, voice) in enumerate(jobs)]
    todo = {i for i, where in enumerate(splits) if where == "val"}
    while True:
        made, rejected = add_renderings(folder, phrase, count, seed, engines, todo, progress)
        firsts = (next((i for i in numbers if splits[i] == "train" and i not in rejected), None)
                  for numbers in wanted)
        todo = {i for i in firsts if i is not None} - made
        if not todo:
            return len(made)


def add_renderings(folder: Path, phrase: str, count: int, seed: int, engines: list[str],
                   numbers, progress=iter, partial: bool = True) -> tuple[set[int], dict]:
    """Add the positive renderings ``numbers`` of the ``count`` that :func:`planned_jobs`
    plans to ``folder`` (those made or rejected before are not tried again) and write its
    manifest and report (partial unless ``partial`` is False or it was whole already).
    Returns the numbers made and {number: why} of those rejected, so far."""
    requested = {"positive": count, "confusable": 0}
    old = report_of(folder, phrase, seed, requested, engines)
    rows = manifest_rows(folder) if old else []
    rejected = {int(i): why for i, why in old.get("rejected_numbers", {}).items()}
    todo = sorted(set(numbers) - {rendering_number(row["path"]) for row in rows} - set(rejected))
    if todo or not old:
        log.info("%s: rendering %d of %d", phrase, len(todo), count)
        jobs, factors = planned_jobs(phrase, count, seed, 0, engines)
        new_rows, new_rejected = render_jobs(jobs, factors, folder, {"positive": phrase}, todo,
                                             progress)
        rows, rejected = rows + new_rows, rejected | new_rejected
        whole = old and not old.get("partial")
        write_rendering(folder, phrase, seed, engines, requested, rows, rejected,
                        partial=partial and not whole)
    return {rendering_number(row["path"]) for row in rows}, rejected


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
    installed engine but ``[data] auxiliary_skip_engines`` (made in ``$KWS_CACHE/synth`` and
    shared by every phrase; with ``[data] auxiliary_render = "drawn"``, only those the feature
    pool draws, and the validation split's: :func:`rendered_for`).

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
    dirs |= {kw: tuple(str(cfg.resolve(d).resolve()) for d in real)
             for kw, real in cfg.data.auxiliary_dirs.items() if kw != name}
    auxiliary = tuple(kw for kw in dirs if kw != name)
    data = dataclasses.replace(
        cfg.data, keyword_dirs=dict(dirs), holdout={},
        negative_dirs=tuple(str(cfg.resolve(d).resolve()) for d in cfg.data.negative_dirs),
        confusable_dirs=(str((folder / "confusable").resolve()),),
        eval_negative_dirs=tuple(str(cfg.resolve(d).resolve())
                                 for d in cfg.data.eval_negative_dirs),
        noise_dirs=tuple(str(cfg.resolve(d).resolve()) for d in cfg.data.noise_dirs))
    out = dataclasses.replace(cfg, data=data, model=dataclasses.replace(
        cfg.model, keywords=(name,), auxiliary=auxiliary))
    if not n_aux:
        return out
    # auxiliary_render = "drawn": the renderings the feature pool draws are known now, only
    # those are made (a draw's law is the same as over all n_aux; kws.train.sequences.Slot)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    slots = [slot for rank in range(world)
             for batch in keyword_slots(out, auxiliary, cfg.train.seed, rank)
             for slot in batch]
    for a, kw in enumerate(auxiliary):
        voices_of = cache_dir() / "synth" / f"{kw}-{seed}-{n_aux}"
        if slots:
            rendered_for(kw.replace("_", " "), voices_of, n_aux, seed,
                         [slot.renderings for slot in slots if slot.auxiliary == a],
                         lambda path, kw=kw: split_of(path, kw, out), progress, aux_engines)
        else:
            rendered(kw.replace("_", " "), voices_of, n_aux, seed, 0, progress, aux_engines)
        dirs[kw] += (str((voices_of / "positive").resolve()),)
    return dataclasses.replace(out, data=dataclasses.replace(out.data, keyword_dirs=dirs))
