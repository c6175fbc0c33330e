"""``kws`` commands that run a model on audio: detect, listen, serve, bench, info. They need
only the base install (plus the ``mic`` or ``serve`` extra for listen and serve)."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

log = logging.getLogger("kws")


def load_models(args: argparse.Namespace, folders: list) -> list:
    """(model, decision rule, verifier or None) for each folder (None: the bundled model), with
    the shared options applied; a --threshold must name a keyword of one of them. A model
    with a verifier uses it unless --no-verifier: thresholds and budgets are then the
    cascade's, and the rule's settings the first stage's."""
    from kws.runtime import OnnxModel, Spotter, model_rule
    from kws.runtime.cascade import Verifier

    models = [OnnxModel(folder) for folder in folders]
    thresholds = dict(args.threshold)
    known = {kw for m in models for kw in m.keywords}
    unknown = sorted(set(thresholds) - known)
    if unknown:
        raise ValueError(f"thresholds for unknown keyword(s) {unknown}; the model(s) have "
                         f"{sorted(known)}")
    out = []
    for model in models:
        own = {k: v for k, v in thresholds.items() if k in model.keywords}
        verifier = None
        if model.manifest.verifier and not args.no_verifier:
            verifier = Verifier(model.manifest, own, args.max_fa_per_hour, args.refractory)
            own, budget = {}, None
        else:
            budget = args.max_fa_per_hour
        rule = model_rule(model.manifest, own, budget, args.smoothing, args.min_steps,
                          args.refractory)
        Spotter(model, rule, args.steps_per_call, verifier)  # fail now on a bad setting
        out.append((model, rule, verifier))
    return out


def load_spotting(args: argparse.Namespace):
    """(model, a factory of fresh spotters) from the shared options, checked before any
    audio."""
    from kws.runtime import Spotter

    ((model, rule, verifier),) = load_models(args, [args.model])
    return model, lambda: Spotter(model, rule, args.steps_per_call, verifier)


def cmd_detect(args: argparse.Namespace) -> int:
    from kws.apps.detect import detect_files
    from kws.runtime import default_model_dir

    files = args.files or [default_model_dir() / "demo.flac"]
    if args.scores and len(files) != 1:
        raise ValueError("--scores writes one file's scores: give exactly one FILE")
    _, new_spotter = load_spotting(args)
    return detect_files(files, new_spotter, args.chunk_ms, args.scores)


def cmd_listen(args: argparse.Namespace) -> int:
    from kws.apps.detect import emit
    from kws.apps.listen import ListenConfig, Listener, list_devices

    if args.list_devices:
        print(list_devices())
        return 0
    device = int(args.device) if args.device and args.device.isdigit() else args.device
    _, new_spotter = load_spotting(args)
    cfg = ListenConfig(device, args.block_ms, args.exec_cmd, args.save_detections,
                       args.max_seconds, args.rate)
    listener = Listener(new_spotter(), cfg, emit)
    listener.install_signal_handlers()
    listener.run()
    return 0

def cmd_serve(args: argparse.Namespace) -> int:
    import asyncio

    from kws.apps.wyoming import ServeConfig, WakeService, serve
    from kws.core.contract import MANIFEST

    if args.debug:
        logging.getLogger().setLevel(logging.DEBUG)
    folders = list(args.model)
    for parent in map(Path, args.custom_model_dir):
        if not parent.is_dir():
            raise FileNotFoundError(f"--custom-model-dir {parent}: no such folder")
        found = sorted(p for p in parent.iterdir() if (p / MANIFEST).is_file())
        if not found:
            raise ValueError(f"--custom-model-dir {parent}: no exported model folder inside")
        folders += found
    cfg = ServeConfig(args.uri, args.max_connections, args.idle_timeout, args.read_timeout,
                      args.zeroconf)
    service = WakeService(load_models(args, folders or [None]), args.steps_per_call)
    try:
        asyncio.run(serve(service, cfg))
    except KeyboardInterrupt:
        log.info("stopped")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from kws.apps.bench import run_bench, write

    model, new_spotter = load_spotting(args)
    result = run_bench(model, new_spotter, args.seconds, args.paced_seconds, args.vs)
    print(write(result, args.out))
    return 0

def cmd_info(args: argparse.Namespace) -> int:
    from kws.core.contract import load_manifest
    from kws.core.decision import BUDGET_CONFIDENCE, budget_resolution
    from kws.runtime import default_model_dir

    manifest = load_manifest(args.model or default_model_dir())
    if args.json:
        print(json.dumps(dict(manifest.raw, folder=str(manifest.folder)), indent=2))
        return 0
    raw, rule, v = manifest.raw, manifest.rule, manifest.verifier
    hours = manifest.calibration_hours
    lines = [f"model: {manifest.folder}",
             "keywords (default threshold): " + ", ".join(
                 f"{kw} ({t:g})" for kw, t in rule.thresholds.items()),
             f"decision rule: {rule.describe()}",
             f"frontend: {manifest.frontend.kind}, one model step every "
             f"{manifest.step_s * 1000:g} ms",
             "calibration: " + (f"{hours:.3g} h of negative audio (--max-fa-per-hour shown "
                                f"from {budget_resolution(hours):.3g} FA/h at "
                                f"{100 * BUDGET_CONFIDENCE:g}% confidence)" if hours
                                else "none recorded"),
             f"parameters: {raw.get('parameters', '?')}, multiply-accumulates per second of "
             f"audio: {raw.get('macs_per_second', '?')}",
             "verifier: " + (f"{v.folder}/ (first stage fires at " + ", ".join(
                 f"{kw} {t:g}" for kw, t in v.gate.items()) + f"; the verifier reads "
                 f"{v.window_s:g} s, decides {v.delay_s:g} s later at " + ", ".join(
                 f"{kw} {t:g}" for kw, t in v.thresholds.items()) + ")" if v else "none"),
             "files: " + ", ".join(f"{name} ({info.get('bytes', 0) / 1024:.1f} KiB)"
                                   for name, info in manifest.files.items())]
    lines += ["data sources:"] + [f"  {s.get('dataset')} ({s.get('license')}): {s.get('path')}"
                                  for s in raw.get("data_sources", [])]
    print("\n".join(lines))
    return 0
