"""``kws eval``: run one or more engines over the same audio and write their reports side by side.

Every engine (:mod:`kws.eval.engines`) sees exactly the same mixed positives and negatives, and
reads its scores with its own decision rule unless the options say otherwise. Reports are
written by :mod:`kws.eval.report`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from kws.core.audio import find_audio, load_audio, load_many
from kws.core.config import Config, load_config
from kws.core.extras import require
from kws.data import corpora
from kws.eval.engines import Engine, load_engine, with_rule
from kws.eval.report import (
    markdown_table,
    plot_det,
    resolution_note,
    safe_name,
    summary_json,
    write_report,
)
from kws.metrics.evaluate import evaluate, evaluate_stream, prepare_positives

SCORES_FILE = "scores.npz"  # beside each engine's report.json

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalOptions:
    """What ``kws eval`` evaluates, on what audio (see ``kws eval --help``).

    Attributes:
        models: engine specs (:func:`kws.eval.engines.load_engine`).
        config: run config whose split gives negatives (and positives unless ``positives``);
            None: the first model's own config, if it has one.
        split: which split of that config.
        positives: (keyword, folder) pairs of positive clips.
        ranges: keyword -> (first, last) numbered files of its positives.
        negatives: folders of negative audio (added to the split's).
        noise: folder of noise mixed into positives at ``snr_db``.
        stream, labels, keyword: one long labelled recording instead (Picovoice format).
        smoothing_steps, min_steps, refractory_s: decision settings in place of each engine's.
        out: report folder.
        exclude: folders whose files are never used as negatives (a phrase's own recordings
            when the config's split holds them among other wake words).
        verifier: read exported models that have a verifier as the cascade (False: the first
            stage alone).
    """

    models: tuple[str, ...]
    config: Path | None = None
    split: str = "test"
    positives: tuple[tuple[str, Path], ...] = ()
    ranges: dict[str, tuple[int, int]] = field(default_factory=dict)
    negatives: tuple[Path, ...] = ()
    noise: Path | None = None
    snr_db: float = 10.0
    stream: Path | None = None
    labels: Path | None = None
    keyword: str | None = None
    smoothing_steps: int | None = None
    min_steps: int | None = None
    refractory_s: float | None = None
    out: Path = Path("eval")
    seed: int = 0
    exclude: tuple[Path, ...] = ()
    verifier: bool = True


def parse_ranges(specs: list[str]) -> dict[str, tuple[int, int]]:
    """``KEYWORD=FIRST-LAST`` specs -> {keyword: (first, last)}."""
    out = {}
    for spec in specs:
        kw, _, span = spec.partition("=")
        a, _, b = span.partition("-")
        if not (kw and a.isdigit() and b.isdigit() and int(a) <= int(b)):
            raise ValueError(f"--range {spec!r}: expected KEYWORD=FIRST-LAST, e.g. alexa=150-199")
        out[kw] = (int(a), int(b))
    return out


def in_range(path: Path, span: tuple[int, int] | None) -> bool:
    return span is None or (path.stem.isdigit() and span[0] <= int(path.stem) <= span[1])


def gather_audio(opts: EvalOptions, keywords: tuple[str, ...], cfg: Config | None
                 ) -> tuple[dict, list, list, dict]:
    """Positives per keyword, negatives, noise, and a description of where they came from."""
    ranges = opts.ranges
    sources: dict = {"positives": {}, "negatives": [], "noise": None}
    positives: dict[str, list] = {kw: [] for kw in keywords}
    negatives: list = []
    if cfg is not None:  # the config's split: its negatives, and positives unless --positive
        split = corpora.load_split(corpora.collect(cfg), opts.split, keywords,
                                   cfg.frontend.sample_rate)
        negatives += [(p, w) for p, w in split.negatives
                      if not corpora.inside(p, list(opts.exclude))]
        sources["negatives"].append(f"config split '{opts.split}'")
        if opts.exclude:
            sources["excluded"] = [str(folder) for folder in opts.exclude]
        if not opts.positives:
            for kw in keywords:
                positives[kw] = [(p, w) for p, w in split.positives.get(kw, [])
                                 if in_range(p, ranges.get(kw))]
                sources["positives"][kw] = f"config split '{opts.split}'"
    for kw, folder in opts.positives:
        if kw not in positives:
            raise ValueError(f"--positive {kw}=...: keyword not in the model {keywords}")
        paths = [p for p in find_audio(folder) if in_range(p, ranges.get(kw))]
        positives[kw] += load_many(paths).clips
        sources["positives"].setdefault(kw, []).append(str(folder))
    for folder in opts.negatives:
        negatives += load_many(find_audio(folder)).clips
        sources["negatives"].append(str(folder))
    noise = []
    if opts.noise:
        noise = [w for _, w in load_many(find_audio(opts.noise)).clips]
        sources["noise"] = {"folder": str(opts.noise), "snr_db": opts.snr_db}
    if ranges:
        sources["ranges"] = {k: list(v) for k, v in ranges.items()}
    return positives, negatives, noise, sources


def load_engines(opts: EvalOptions) -> list[Engine]:
    return [with_rule(load_engine(spec, opts.verifier), opts.smoothing_steps, opts.min_steps,
                      opts.refractory_s)
            for spec in opts.models]


def run_eval(opts: EvalOptions) -> list[dict]:
    """Evaluate every model on the same audio; write one folder per engine (its report and
    ``scores.npz``, :class:`kws.metrics.scores.Scores`) plus a side-by-side ``summary.md``,
    ``summary.json`` and ``det.png`` in ``opts.out``."""
    require("matplotlib", "eval", "kws eval (its DET plots)")
    engines = load_engines(opts)
    if opts.stream:
        return run_stream_eval(opts, engines)
    cfg = load_config(opts.config) if opts.config else engines[0].config
    keywords = tuple(dict.fromkeys(kw for e in engines for kw in e.keywords))
    positives, negatives, noise, sources = gather_audio(opts, keywords, cfg)
    if not negatives:
        raise ValueError("no negative audio: give --negatives DIR or a config with a test split")
    clips = prepare_positives(positives, keywords, noise, opts.snr_db if noise else None,
                              opts.seed)
    reports, curves = [], {}
    for i, engine in enumerate(engines):
        own = [c for c in clips if keywords[c.keyword] in engine.keywords]
        remap = {keywords.index(kw): j for j, kw in enumerate(engine.keywords)}
        own = [type(c)(c.path, remap[c.keyword], c.wave, c.start_s, c.end_s) for c in own]
        report, det, scores = evaluate(engine.scorer, engine.timing, engine.keywords, own,
                                       negatives, engine.rule,
                                       progress=progress_bar(engine.name[-30:]))
        report.update(engine=engine.name, sources=sources)
        folder = opts.out / f"{i}-{safe_name(engine.name)}"
        write_report(report, det, engine.keywords, folder, safe_name(engine.name))
        scores.save(folder / SCORES_FILE)
        for j, kw in enumerate(engine.keywords):
            if report["positive_clips"].get(kw):
                curves[f"{safe_name(engine.name)}:{kw}"] = (det.fa_per_hour[:, j],
                                                           det.miss_rate[:, j])
        reports.append(report)
        log.info("%s -> %s", engine.name, folder)
    return finish(opts, reports, curves, f"{reports[0]['negative_hours']:.2f} h of negatives")


def finish(opts: EvalOptions, reports: list[dict], curves: dict, title: str) -> list[dict]:
    """The side-by-side files, and the resolution warning."""
    hours = reports[0]["negative_hours"]
    plot_det(curves, opts.out / "det.png", title, hours)
    (opts.out / "summary.md").write_text(markdown_table(reports))
    (opts.out / "summary.json").write_text(summary_json(reports))
    note = resolution_note(hours)
    if note:
        log.warning("%s", note)
    return reports


def progress_bar(name: str):
    """A progress wrapper for one engine's pass over the audio (silent when not a terminal)."""
    tqdm = require("tqdm", "eval", "kws eval").tqdm
    return lambda items: tqdm(items, desc=name, leave=False, disable=None)


def parse_labels(path) -> list[tuple[float, float]]:
    """Keyword occurrences from a label file: one ``start, end`` line (seconds) per keyword, as
    in the Picovoice wake-word benchmark. Blank lines and ``#`` comments are skipped.

    Raises:
        ValueError: a malformed line, naming the file and line number.
    """
    out = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            text = line.split("#", 1)[0].strip()
            if not text:
                continue
            parts = [p.strip() for p in text.replace("\t", ",").split(",")]
            try:
                start, end = (float(p) for p in parts)
            except ValueError:
                raise ValueError(f"{path}:{number}: expected 'start, end' in seconds, got "
                                 f"{line.strip()!r}") from None
            if not 0 <= start < end:
                raise ValueError(f"{path}:{number}: need 0 <= start < end, got {start}, {end}")
            out.append((start, end))
    return out


def run_stream_eval(opts: EvalOptions, engines: list[Engine]) -> list[dict]:
    """``--stream FILE --labels FILE --keyword KW``: every engine on one labelled recording."""
    if not opts.labels or not opts.keyword:
        raise ValueError("--stream needs --labels FILE and --keyword NAME")
    labels = parse_labels(opts.labels)
    wave = load_audio(opts.stream)
    reports, curves = [], {}
    for i, engine in enumerate(engines):
        if opts.keyword not in engine.keywords:
            raise ValueError(f"{engine.name} has no keyword {opts.keyword!r} "
                             f"({list(engine.keywords)})")
        report, det = evaluate_stream(engine.scorer, engine.timing, opts.keyword,
                                      engine.keywords.index(opts.keyword), str(opts.stream),
                                      wave, labels, engine.rule)
        report.update(engine=engine.name)
        write_report(report, det, (opts.keyword,), opts.out / f"{i}-{safe_name(engine.name)}",
                     safe_name(engine.name))
        curves[safe_name(engine.name)] = (det.fa_per_hour[:, 0], det.miss_rate[:, 0])
        reports.append(report)
    return finish(opts, reports, curves, f"{Path(opts.stream).name} ({len(labels)} keywords)")
