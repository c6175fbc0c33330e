"""``kws eval``: run one or more engines over the same audio and write their reports side by side.

An :class:`Engine` is a name, its keywords, its step timing and a scorer (see
:mod:`kws.evaluate`). Engines come from a training run / checkpoint (torch) or an exported model
folder (onnxruntime, no torch). Every engine sees exactly the same mixed positives and negatives.
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from kws import data
from kws.audio import find_audio, load_many
from kws.config import Config, DecisionConfig, to_dict
from kws.evaluate import (FA_TARGETS, Scorer, Timing, evaluate, evaluate_stream, plot_det,
                          prepare_positives, write_report)
from kws.metrics import decided

log = logging.getLogger(__name__)


@dataclass
class Engine:
    """Something that turns audio into per-step keyword scores."""

    name: str
    keywords: tuple[str, ...]
    timing: Timing
    scorer: Scorer
    config: Config | None = None
    new_stream: Callable | None = None  # streaming form (accept(int16) -> scores), for bench
    decision: DecisionConfig = field(default_factory=DecisionConfig)  # how to read ``scorer``


def load_engine(spec: str) -> Engine:
    """A checkpoint (``.pt`` or a run folder with ``best.pt``), an exported model folder
    (``model.json`` inside), or a peer engine ``openwakeword:KEYWORD`` /
    ``microwakeword:KEYWORD``."""
    if spec.split(":", 1)[0] in ("openwakeword", "microwakeword"):
        from kws.peers import load_peer

        return load_peer(spec)
    path = Path(spec)
    if (path / "model.json").is_file():
        from kws.runtime.session import load_exported_engine

        return load_exported_engine(path)
    if path.suffix == ".pt" or (path / "best.pt").is_file():
        from kws.cli import need_torch

        need_torch()
        from kws.train import load_model, timing_of, torch_scorer

        model, cfg = load_model(path)
        return Engine(str(path), cfg.model.keywords, timing_of(cfg), torch_scorer(model, cfg),
                      cfg, decision=cfg.decision)
    raise FileNotFoundError(f"{spec}: not a checkpoint (.pt), a run folder with best.pt, or an "
                            "exported model folder with model.json")


def with_decision(engine: Engine, smoothing_steps: int | None, min_steps: int | None
                  ) -> Engine:
    """``engine`` scoring through :func:`kws.metrics.decision_track`, so that its events are
    those of ``kws detect --smoothing S --min-steps M``; a setting that is None is the engine's
    own (a model's calibrated rule, 1 for other engines). The result's ``decision`` is the rule
    applied, and its scorer applies no further one."""
    own = engine.decision
    rule = DecisionConfig(smoothing_steps or own.smoothing_steps, min_steps or own.min_steps)
    scorer = decided(engine.scorer, rule.smoothing_steps, rule.min_steps)
    return replace(engine, scorer=scorer, decision=rule)


def parse_ranges(specs: list[str]) -> dict[str, tuple[int, int]]:
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


def gather_audio(args: argparse.Namespace, keywords: tuple[str, ...], cfg: Config | None
                 ) -> tuple[dict, list, list, dict]:
    """Positives per keyword, negatives, noise, and a description of where they came from."""
    ranges = parse_ranges(args.ranges)
    sources: dict = {"positives": {}, "negatives": [], "noise": None}
    positives: dict[str, list] = {kw: [] for kw in keywords}
    negatives: list = []
    if cfg is not None:  # the config's split: its negatives, and positives unless --positive
        split = data.load_split(data.collect(cfg), args.split, keywords,
                                cfg.frontend.sample_rate)
        negatives += split.negatives
        sources["negatives"].append(f"config split '{args.split}'")
        if not args.positive:
            for kw in keywords:
                positives[kw] = [(p, w) for p, w in split.positives.get(kw, [])
                                 if in_range(p, ranges.get(kw))]
                sources["positives"][kw] = f"config split '{args.split}'"
    for kw, folder in args.positive:
        if kw not in positives:
            raise ValueError(f"--positive {kw}=...: keyword not in the model {keywords}")
        paths = [p for p in find_audio(folder) if in_range(p, ranges.get(kw))]
        positives[kw] += load_many(paths).clips
        sources["positives"].setdefault(kw, []).append(str(folder))
    for folder in args.negatives:
        negatives += load_many(find_audio(folder)).clips
        sources["negatives"].append(str(folder))
    noise = []
    if args.noise:
        noise = [w for _, w in load_many(find_audio(args.noise)).clips]
        sources["noise"] = {"folder": str(args.noise), "snr_db": args.snr}
    if ranges:
        sources["ranges"] = {k: list(v) for k, v in ranges.items()}
    return positives, negatives, noise, sources


def run_eval(args: argparse.Namespace) -> list[dict]:
    """Evaluate every ``--model`` on the same audio; write one folder per engine plus a
    side-by-side ``summary.md`` and ``det.png`` in ``args.out``."""
    engines = [with_decision(load_engine(spec), args.smoothing, args.min_steps)
               for spec in args.model]
    if args.stream:
        return run_stream_eval(args, engines)
    cfg = engines[0].config
    if args.config:
        from kws.config import load_config

        cfg = load_config(args.config)
    keywords = tuple(dict.fromkeys(kw for e in engines for kw in e.keywords))
    positives, negatives, noise, sources = gather_audio(args, keywords, cfg)
    if not negatives:
        raise ValueError("no negative audio: give --negatives DIR or a config with a test split")
    clips = prepare_positives(positives, keywords, noise, args.snr if noise else None, args.seed)
    reports = []
    curves = {}
    for i, engine in enumerate(engines):
        own = [c for c in clips if keywords[c.keyword] in engine.keywords]
        remap = {keywords.index(kw): j for j, kw in enumerate(engine.keywords)}
        own = [type(c)(c.path, remap[c.keyword], c.wave, c.start_s, c.end_s) for c in own]
        bar = progress_bar(engine.name[-30:])
        report, det = evaluate(engine.scorer, engine.timing, engine.keywords, own, negatives,
                               args.refractory, FA_TARGETS, progress=bar)
        report.update(engine=engine.name, sources=sources, decision=to_dict(engine.decision))
        folder = args.out / f"{i}-{safe_name(engine.name)}"
        write_report(report, det, engine.keywords, folder, title=engine.name)
        for j, kw in enumerate(engine.keywords):
            curves[f"{safe_name(engine.name)}:{kw}"] = (det.fa_per_hour[:, j],
                                                       det.miss_rate[:, j])
        reports.append(report)
        log.info("%s -> %s", engine.name, folder)
    plot_det(curves, args.out / "det.png", f"{reports[0]['negative_hours']:.2f} h of negatives")
    (args.out / "summary.md").write_text(markdown_table(reports))
    (args.out / "summary.json").write_text(summary_json(reports))
    return reports


def progress_bar(name: str):
    """A progress wrapper for one engine's pass over the audio (silent when not a terminal)."""
    from tqdm import tqdm

    return lambda items: tqdm(items, desc=name, leave=False, disable=None)


def run_stream_eval(args: argparse.Namespace, engines: list[Engine]) -> list[dict]:
    """``--stream FILE --labels FILE --keyword KW``: every engine on one labelled recording."""
    from kws.audio import load_audio
    from kws.metrics import parse_labels

    if not args.labels or not args.keyword:
        raise ValueError("--stream needs --labels FILE and --keyword NAME")
    labels = parse_labels(args.labels)
    wave = load_audio(args.stream)
    reports, curves = [], {}
    for i, engine in enumerate(engines):
        if args.keyword not in engine.keywords:
            raise ValueError(f"{engine.name} has no keyword {args.keyword!r} "
                             f"({list(engine.keywords)})")
        report, det = evaluate_stream(engine.scorer, engine.timing, args.keyword,
                                      engine.keywords.index(args.keyword), str(args.stream),
                                      wave, labels, args.refractory)
        report.update(engine=engine.name, decision=to_dict(engine.decision))
        write_report(report, det, (args.keyword,), args.out / f"{i}-{safe_name(engine.name)}",
                     title=engine.name)
        curves[engine.name] = (det.fa_per_hour[:, 0], det.miss_rate[:, 0])
        reports.append(report)
    plot_det(curves, args.out / "det.png", f"{args.stream} ({len(labels)} keywords)")
    (args.out / "summary.md").write_text(markdown_table(reports))
    (args.out / "summary.json").write_text(summary_json(reports))
    return reports


def safe_name(name: str) -> str:
    """A folder name for an engine: its last path part, ':' replaced."""
    return (Path(name).name or "model").replace(":", "-")


def markdown_table(reports: list[dict]) -> str:
    """Miss rate at 0.1 / 0.5 / 1 FA/h and delay per engine and keyword."""
    head = ("| engine | keyword | clips | miss @0.1 FA/h | miss @0.5 FA/h | miss @1 FA/h | "
            "delay median / p95 (s) | real-time factor |\n|---|---|---|---|---|---|---|---|\n")
    rows = []
    for r in reports:
        for kw, v in r["keywords"].items():
            miss = [percent(v["at_fa_per_hour"][f"{t:g}"]["miss_rate"]) for t in FA_TARGETS]
            d = v["delay_s"]
            delay = "-" if d["median"] is None else f"{d['median']:.2f} / {d['p95']:.2f}"
            rows.append(f"| {safe_name(r['engine'])} | {kw} | {r['positive_clips'][kw]} | "
                        + " | ".join(miss) + f" | {delay} | {r['real_time_factor']:.4f} |")
    neg = reports[0]
    rules = {rule_text(r.get("decision")) for r in reports}
    rule = rules.pop() if len(rules) == 1 else "; ".join(
        f"{safe_name(r['engine'])}: {rule_text(r.get('decision'))}" for r in reports)
    foot = (f"\nNegatives: {neg['negative_hours']:.2f} h in {neg['negative_files']} files. "
            f"{neg['event_rule']}; refractory {neg['refractory_s']} s; "
            + rule + ". Real-time factor: CPU "
            "seconds per second of negative audio, offline scoring in this process.\n")
    return head + "\n".join(rows) + "\n" + foot


def rule_text(decision: dict | None) -> str:
    """How raw scores became the event track (``kws detect``'s options)."""
    if not decision or decision["smoothing_steps"] == decision["min_steps"] == 1:
        return "raw scores"
    text = ("raw scores" if decision["smoothing_steps"] == 1
            else f"scores averaged over {decision['smoothing_steps']} steps")
    if decision["min_steps"] > 1:
        text += f", at the threshold for {decision['min_steps']} steps in a row"
    return text


def percent(rate: float | None) -> str:
    return "-" if rate is None else f"{100 * rate:.1f}%"


def summary_json(reports: list[dict]) -> str:
    return json.dumps([{k: v for k, v in r.items() if k != "false_alarms"} for r in reports],
                      indent=2, default=lambda x: float(x) if isinstance(x, np.floating) else x)
