"""Keywords from text, scored on real voices: a synthetic-only model per phrase.

    python benchmarks/zero_shot.py computer jarvis [--train] [--runs runs/zero-shot]
        [--config configs/synthetic.toml] [--negatives-config configs/default.toml]
        [--data ../shared/data] [--confusables 200] [--student configs/student.toml]

For each phrase, the model ``<runs>/<name>-model`` (with ``--train``: made first, as ``kws
train --keyword PHRASE`` and ``kws export`` would, with the recordings of all seven phrases taken
out of the training negatives; the minutes are recorded) is scored with ``kws eval``'s harness
on every real recording of the phrase, mixed with household noise at 10 dB SNR (loudest frames),
against the held-out test negatives of ``--negatives-config`` (configs/default.toml's), the
phrase's own folders and the real recordings its model learns as auxiliary keywords left out
(4.31 h for these seven phrases), with the 95% interval of the miss rate at 0.5 FA/h
(:mod:`kws.metrics.interval`). The script first checks that none of those negatives is in the
training split of the phrase's config. Confusables (``kws synth`` near-miss phrases and
sentences, with another seed than training's) are scored as their own figure: the share of
clips that fire at the 0.5 FA/h threshold; so is, for a phrase of several words, its first word
said inside ordinary sentences. No real recording of a phrase enters its training.

With ``--student``, each phrase's model is instead distilled into a log-mel student (``kws
distill``: the microcontroller's model family) in ``<runs>/<name>-student``, which is scored the
same way, on the same confusable renderings.

Adds each phrase's figures to ``<runs>/zero_shot.json`` as soon as they are measured (phrases can
be run one at a time) and prints the table of every phrase in it. Settings may be chosen on the
phrases in ``TUNING`` only; the table marks them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

from kws.core.audio import find_audio, load_many
from kws.core.config import Config, load_config
from kws.core.contract import INT8_FILE
from kws.core.decision import decision_track, level
from kws.data import corpora
from kws.eval.harness import EvalOptions, run_eval
from kws.eval.report import percent
from kws.runtime import OnnxModel
from kws.synth.phonemes import SENTENCES, sentences_with
from kws.synth.synthesize import keyword_name, rendered, speak, synthesize, synthetic_config

log = logging.getLogger("zero_shot")

# real recordings of each phrase, under --data
PHRASES = {
    "alexa": ("wake-word-benchmark/alexa",),
    "computer": ("wake-word-benchmark/computer", "precise-community/computer"),
    "jarvis": ("wake-word-benchmark/jarvis",),
    "snowboy": ("wake-word-benchmark/snowboy",),
    "athena": ("precise-community/athena",),
    "amelia": ("precise-community/amelia",),
    "hey chatterbox": ("precise-community/heychatterbox",),
}
TUNING = ("computer", "jarvis")  # the two phrases settings may be chosen on
RENDERINGS = 1500  # of the phrase, and as many confusables, that its model trains on
CONFUSABLE_SEED = 1000  # training renders with [data] seed (0): these are other renderings


def without(cfg: Config, folders: list[Path]) -> Config:
    """``cfg`` with every negative folder that is, or lies inside, one of ``folders`` removed."""
    kept = tuple(d for d in cfg.data.negative_dirs if not corpora.inside(cfg.resolve(d), folders))
    return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, negative_dirs=kept))


def training_config(config: Path, data: Path) -> Config:
    """``config`` with no phrase's real recordings (below ``data``) among its negatives: every
    phrase trains on the same negatives, so their cached features (kws.train.pool) serve them
    all."""
    every = [data / f for folders in PHRASES.values() for f in folders]
    return without(load_config(config), every)


def retargeted(cfg: Config, phrase: str, run: Path, count: int | None = None) -> Config:
    """``cfg`` retargeted to ``phrase``, its ``count`` (default :data:`RENDERINGS`) renderings
    and as many confusables in ``run/synth`` (made unless there)."""
    return synthetic_config(cfg, phrase, run / "synth", RENDERINGS if count is None else count,
                            cfg.data.seed)


def render_phrase(cfg: Config, phrase: str, run: Path) -> None:
    """Make the phrase's renderings that :func:`retargeted` trains on, unless already there."""
    rendered(phrase, run / "synth", RENDERINGS, cfg.data.seed)


def auxiliary_folders(cfg: Config, phrase: str) -> list[Path]:
    """The real recordings of the config's auxiliary keywords that a model of ``phrase`` trains
    on (:func:`kws.synth.synthesize.synthetic_config`): left out of its test negatives."""
    return [cfg.resolve(d) for kw, dirs in cfg.data.auxiliary_dirs.items()
            if kw != keyword_name(phrase) for d in dirs]


def check_disjoint(train_cfg: Config, negatives_cfg: Config, excluded: list[Path]) -> None:
    """Refuse to score on a negative file the phrase's training could have seen (every file in
    ``excluded`` is left out of the scoring)."""
    trained = {u.path.resolve() for u in corpora.collect(train_cfg) if u.split == "train"}
    tested = {u.path.resolve() for u in corpora.collect(negatives_cfg) if u.split == "test"
              and not corpora.inside(u.path, excluded)}
    shared = trained & tested
    if shared:
        raise SystemExit(f"{len(shared)} test negatives are in the training split, e.g. "
                         f"{sorted(shared)[0]}: use configs with the same [data] seed and a "
                         "negative test share in the negatives config at least the training's")


def train_phrase(cfg: Config, phrase: str, run: Path, model: Path,
                 count: int | None = None) -> float:
    """Synthesise ``count`` renderings, train and export; returns the minutes it took."""
    from kws.export.exporter import export_model
    from kws.train.run import train

    begun = time.time()
    cfg = retargeted(cfg, phrase, run, count)
    train(cfg, run, progress=sys.stderr.isatty())
    export_model(run, model)
    return (time.time() - begun) / 60


def firing(model: Path, folder: Path, threshold: float) -> tuple[int, int]:
    """(clips that fire at ``threshold``, clips) over the audio files in ``folder``."""
    engine = OnnxModel(model)
    rule = engine.manifest.rule
    clips = load_many(find_audio(folder)).clips
    fired = sum(decision_track(engine.score_audio(w), rule.smoothing_steps, rule.min_steps)[:, 0]
                .max(initial=0.0) >= level(threshold) for _, w in clips)
    return int(fired), len(clips)


def confusable_rate(model: Path, phrase: str, folder: Path, count: int,
                    threshold: float) -> tuple[int, int]:
    """(clips that fire at ``threshold``, clips) over fresh confusable renderings."""
    if not (folder / "report.json").is_file():
        synthesize(phrase, folder, 0, CONFUSABLE_SEED, count)
    return firing(model, folder / "confusable", threshold)


def first_word_rate(model: Path, phrase: str, folder: Path, count: int,
                    threshold: float) -> tuple[int, int] | None:
    """(clips that fire at ``threshold``, clips) over renderings of ordinary sentences with the
    phrase's first word inside ("hey" of "hey chatterbox"); None for a one-word phrase."""
    words = phrase.split()
    if len(words) < 2:
        return None
    if not (folder / "manifest.jsonl").is_file():
        texts = sentences_with(words[0], np.random.default_rng(CONFUSABLE_SEED), len(SENTENCES))
        speak(texts, folder, count, CONFUSABLE_SEED, "first-word")
    return firing(model, folder / "first-word", threshold)


def scored(model: Path, phrase: str, out: Path, renders: Path, own: list[Path],
           excluded: list[Path], args: argparse.Namespace) -> dict:
    """The figures of the exported ``model`` for ``phrase`` (see the module docstring) against
    the test negatives outside ``excluded``; the eval report goes to ``out``, the confusable
    renderings are made once in ``renders``."""
    name = keyword_name(phrase)
    reports = run_eval(EvalOptions(
        (str(model),), args.negatives_config, positives=tuple((name, f) for f in own),
        noise=args.data / "background-noise", snr_db=10.0, out=out, exclude=tuple(excluded)))
    figures = reports[0]["keywords"][name]
    threshold = figures["at_fa_per_hour"]["0.5"]["threshold"]
    fired, n = confusable_rate(model, phrase, renders / "confusables-test", args.confusables,
                               threshold)
    first = first_word_rate(model, phrase, renders / "first-word-test", args.confusables,
                            threshold)
    return {"clips": reports[0]["positive_clips"][name],
            "negative_hours": reports[0]["negative_hours"],
            "miss_rate": {k: v["miss_rate"] for k, v in figures["at_fa_per_hour"].items()},
            "miss_rate_95": {k: v["miss_rate_95"] for k, v in figures["at_fa_per_hour"].items()},
            "delay_s": figures["delay_s"], "confusables_fired": [fired, n],
            "first_word_fired": first, "int8_kb": (model / INT8_FILE).stat().st_size / 1000}


def student_figures(phrase: str, teacher: Path, run: Path, student: Config, own: list[Path],
                    excluded: list[Path], args: argparse.Namespace) -> dict:
    """Distil (unless done) and export a log-mel student of the phrase's teacher run, and
    score it as the teacher was scored (:func:`scored`'s ``own`` and ``excluded``)."""
    from kws.export.exporter import export_model
    from kws.train.distill import distill

    model = run.parent / f"{run.name}-model"
    minutes = None
    if not (model / "model.json").is_file():
        begun = time.time()
        distill(teacher, student, run, progress=sys.stderr.isatty())
        export_model(run, model)
        minutes = (time.time() - begun) / 60
    return {**scored(model, phrase, run / "eval", teacher, own, excluded, args),
            "train_minutes": minutes}


def record(table: Path, phrase: str, figures: dict) -> dict:
    """Add one phrase's figures to the table file right away (nothing lost if a later phrase
    fails), read again first: another run of the script may have added other phrases."""
    results = json.loads(table.read_text()) if table.is_file() else {}
    results[phrase] = {**results.get(phrase, {}), **figures}
    tmp = table.with_name(f".{table.name}.tmp")
    tmp.write_text(json.dumps(results, indent=2))
    tmp.replace(table)
    return results


def row(label: str, r: dict) -> str:
    """One markdown table row of a model's figures."""
    miss = " / ".join(percent(r["miss_rate"][k]) for k in ("0.1", "0.5", "1"))
    interval = r.get("miss_rate_95", {}).get("0.5")
    span = "-" if interval is None else f"{100 * interval[0]:.1f}-{100 * interval[1]:.1f}%"
    fired, n = r["confusables_fired"]
    delay, first = r["delay_s"]["median"], r.get("first_word_fired")
    size, minutes = r.get("int8_kb"), r.get("train_minutes")
    return (f"| {label} | {r['clips']} | {miss} | {span} | {fired}/{n} "
            f"| {'one word' if first is None else f'{first[0]}/{first[1]}'} "
            f"| {'none heard' if delay is None else f'{delay:.2f}'} "
            f"| {'-' if size is None else f'{size:.0f}'} "
            f"| {'-' if minutes is None else f'{minutes:.1f}'} |")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("phrases", nargs="+", choices=sorted(PHRASES))
    parser.add_argument("--train", action="store_true", help="make missing models first")
    parser.add_argument("--runs", type=Path, default=Path("runs/zero-shot"))
    parser.add_argument("--config", type=Path, default=Path("configs/synthetic.toml"))
    parser.add_argument("--negatives-config", type=Path, default=Path("configs/default.toml"))
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--confusables", type=int, default=200,
                        help="fresh confusable renderings per phrase (default 200)")
    parser.add_argument("--renderings", type=int, default=RENDERINGS, metavar="N",
                        help=f"renderings of the phrase, and as many confusables, that its "
                             f"model trains on (default {RENDERINGS})")
    parser.add_argument("--student", type=Path, metavar="TOML",
                        help="instead: distil each phrase's model into a log-mel student of "
                             "this config (kws distill) and score the student")
    args = parser.parse_args()
    if args.renderings < 1:
        parser.error(f"--renderings {args.renderings}: at least 1 rendering of the phrase")
    negatives_cfg = load_config(args.negatives_config)
    cfg = training_config(args.config, args.data)  # the same for every phrase
    table = args.runs / "zero_shot.json"
    args.runs.mkdir(parents=True, exist_ok=True)
    for phrase in args.phrases:
        name = keyword_name(phrase)
        own = [args.data / f for f in PHRASES[phrase]]
        run, model = args.runs / name, args.runs / f"{name}-model"
        excluded = own + auxiliary_folders(cfg, phrase)
        check_disjoint(cfg, negatives_cfg, excluded)
        minutes = None
        if not (model / "model.json").is_file():
            if not args.train:
                raise SystemExit(f"no model at {model}: run with --train")
            minutes = train_phrase(cfg, phrase, run, model, args.renderings)
        if args.student:
            figures = {"student": student_figures(phrase, run, args.runs / f"{name}-student",
                                                  load_config(args.student), own, excluded,
                                                  args)}
        else:
            figures = {"tuning": phrase in TUNING, "train_minutes": minutes,
                       **scored(model, phrase, run / "eval", run, own, excluded, args)}
        results = record(table, phrase, figures)
    print("| phrase | clips | miss @0.1 / 0.5 / 1 FA/h | 95% interval @0.5 FA/h "
          "| confusables firing @0.5 FA/h | first word in sentences firing | delay median (s) "
          "| int8 KB | minutes to make |")
    print("|---|---|---|---|---|---|---|---|---|")
    for phrase, r in results.items():
        mark = " (tuning)" if r.get("tuning") else ""
        if "miss_rate" in r:
            print(row(phrase + mark, r))
        if "student" in r:
            print(row(f"{phrase}{mark}, log-mel student", r["student"]))
    untouched = [r["miss_rate"]["0.5"] for r in results.values()
                 if "miss_rate" in r and not r.get("tuning")]
    if untouched:
        print(f"\nmedian miss at 0.5 FA/h over the {len(untouched)} untouched phrases: "
              f"{100 * np.median(untouched):.1f}%")


if __name__ == "__main__":
    main()
