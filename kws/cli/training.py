"""``kws`` commands that make, check and measure models: data, record, synth, train, mine,
review, finetune, export, verify, eval, firmware.

Each imports what it needs (torch, matplotlib, ...) only when it runs and says which extra to
install when it is missing.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

log = logging.getLogger("kws")


def cmd_train(args: argparse.Namespace) -> int:
    from kws.core.config import load_config
    from kws.core.extras import require

    require("torch", "train", "kws train")
    from kws.train.run import train

    cfg = load_config(args.config)
    out = Path(args.out or Path("runs") / Path(args.config).stem)
    if args.keyword:
        from kws.synth.synthesize import synthetic_config

        # the rendering is data: it follows [data] seed, so another training seed (or
        # ensemble member) reuses it
        cfg = synthetic_config(cfg, args.keyword, out / "synth", args.synth_count, cfg.data.seed,
                               progress_bar("synthesising", args))
    elif cfg.data.synth_positives or cfg.data.synth_confusables:
        from kws.synth.synthesize import with_synthetic_voices

        cfg = with_synthetic_voices(cfg, out / "synth", progress_bar("synthesising", args))
    result = train(cfg, out, resume=args.resume, progress=not args.quiet)
    print(json.dumps({"run": str(out), "best_val_miss": result["best"],
                      "parameters": result["parameters"],
                      "train_seconds": round(result["train_seconds"], 1)}))
    return 0


def cmd_distill(args: argparse.Namespace) -> int:
    """kws distill TEACHER CONFIG -o OUT: a log-mel student of a speech-embedding teacher."""
    from kws.core.config import load_config
    from kws.core.extras import require

    require("torch", "train", "kws distill")
    from kws.train.distill import distill

    result = distill(args.teacher, load_config(args.config), args.out, progress=not args.quiet,
                     resume=args.resume)
    print(json.dumps({"run": str(args.out), "teacher": result["teacher"],
                      "best_val_miss": result["best"], "parameters": result["parameters"],
                      "train_seconds": round(result["train_seconds"], 1)}))
    return 0


def cmd_finetune(args: argparse.Namespace) -> int:
    """kws finetune MODEL --negatives DIR -o OUT: fine-tune, export, compare."""
    import dataclasses

    from kws.core.checks import build
    from kws.core.config import load_config
    from kws.core.contract import MANIFEST, load_manifest
    from kws.core.extras import require

    require("torch", "train", "kws finetune")
    from kws.core.config import ModelConfig
    from kws.eval.compare import compare, markdown
    from kws.export.exporter import export_model
    from kws.export.graph import state_dict_from_export
    from kws.train.checkpoint import load_model
    from kws.train.finetune import finetune

    source, out = Path(args.model), Path(args.out)
    if (source / MANIFEST).is_file():
        if not args.config:
            raise ValueError("an exported model needs --config: the training data to keep it "
                             "from forgetting (e.g. the config it was trained with)")
        manifest = load_manifest(source)
        init = state_dict_from_export(source / "model.onnx", manifest.frontend.n_mels)
        model_cfg = build(ModelConfig, manifest.raw.get("model", {}), "model")
        own = dataclasses.replace(load_config(args.config), model=model_cfg,
                                  frontend=manifest.frontend,
                                  decision=dataclasses.replace(manifest.rule, thresholds={}))
        before = source
    else:
        model, own = load_model(source)
        init = model.state_dict()
        if args.config:
            own = dataclasses.replace(load_config(args.config), model=own.model,
                                      frontend=own.frontend, decision=own.decision)
        before = out / "before"
        export_model(source, before)
    result = finetune(own, init, args.negatives, out / "run", args.epochs, args.lr,
                      progress=not args.quiet)
    export_model(out / "run", out / "model")
    report = compare(before, out / "model", own, args.negatives, args.split)
    report["activations"] = result["activations"]
    (out / "finetune.json").write_text(json.dumps(report, indent=2))
    print(markdown(report))
    print(f"fine-tuned model: {out / 'model'}")
    return 0


def cmd_mine(args: argparse.Namespace) -> int:
    """kws mine MODEL -o DIR: the hardest training negatives, saved as false alarms."""
    import dataclasses

    from kws.core.config import load_config
    from kws.core.extras import require

    require("torch", "train", "kws mine")
    from kws.train.checkpoint import load_model
    from kws.train.mining import mine

    model, cfg = load_model(args.model)
    if args.config:
        cfg = dataclasses.replace(load_config(args.config), model=cfg.model,
                                  frontend=cfg.frontend, decision=cfg.decision)
    saved = mine(model, cfg, args.out, args.count, args.split, progress_bar("mining", args))
    print(f"{len(saved)} false alarms in {args.out}: kws finetune {args.model} --negatives "
          f"{args.out} -o OUT")
    return 0


def progress_bar(name: str, args: argparse.Namespace):
    """A tqdm wrapper for a long loop (none with --quiet or without tqdm)."""
    try:
        from tqdm import tqdm
    except ImportError:
        return iter
    return lambda items: tqdm(items, desc=name, disable=None if not args.quiet else True)


def cmd_synth(args: argparse.Namespace) -> int:
    from kws.synth.synthesize import synthesize

    report = synthesize(args.phrase, args.out, args.count, args.seed, args.confusables,
                        progress_bar("synthesising", args))
    print(json.dumps(report, indent=2))
    return 0

def cmd_eval(args: argparse.Namespace) -> int:
    from kws.eval.harness import EvalOptions, parse_ranges, run_eval
    from kws.eval.report import markdown_table

    opts = EvalOptions(tuple(args.model), args.config, args.split, tuple(args.positive),
                       parse_ranges(args.ranges), tuple(args.negatives), args.noise, args.snr,
                       args.stream, args.labels, args.keyword, args.smoothing, args.min_steps,
                       args.refractory, args.out, args.seed, tuple(args.exclude),
                       not args.no_verifier)
    print(markdown_table(run_eval(opts)))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from kws.core.extras import require

    require("torch", "train", "kws export")
    from kws.export.exporter import VerificationError, export_model

    try:
        report = export_model(args.source, args.out)
    except VerificationError as e:
        print(e)
        return 1
    print(report)
    return 0


def cmd_cascade(args: argparse.Namespace) -> int:
    from kws.core.config import load_config
    from kws.core.extras import require

    require("onnx", "eval", "kws cascade")
    from kws.eval.report import markdown_table
    from kws.export.cascade import build_cascade

    report = build_cascade(Path(args.first), Path(args.verifier), load_config(args.config),
                           Path(args.out), args.gate_fa_per_hour, args.window_s, args.delay_s)
    print(markdown_table([dict(report, engine=f"{args.out} (validation)")]))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from kws.core.extras import require

    require("onnx", "eval", "kws verify")
    from kws.export.verify import verify_folder

    report = verify_folder(Path(args.model_dir))
    print(report)
    return 0 if report.ok else 1

def cmd_record(args: argparse.Namespace) -> int:
    from kws.apps.record import RecordConfig, Recorder
    from kws.core.checks import check_keyword_name

    check_keyword_name(args.keyword, "KEYWORD")
    device = int(args.device) if args.device and args.device.isdigit() else args.device
    cfg = RecordConfig(args.keyword, args.out, args.count, args.seconds, args.pause,
                       args.max_takes, device, args.rate)
    written = Recorder(cfg).run()
    return 0 if len(written) == cfg.count else 1


def cmd_review(args: argparse.Namespace) -> int:
    from kws.apps.review import read_activations, review

    if args.list:
        for activation in read_activations(args.folder):
            print(activation.line())
        return 0

    def ask(prompt: str) -> str:
        try:
            return input(prompt)
        except EOFError:
            return "q"

    review(args.folder, ask, sys.stdout, play=not args.no_play)
    return 0

def cmd_firmware(args: argparse.Namespace) -> int:
    """``kws firmware MODEL_DIR -o OUT`` or ``kws firmware verify MODEL_DIR [AUDIO...]``."""
    if args.target[0] == "verify":
        from kws.firmware.verify import verify_firmware
        from kws.runtime import default_model_dir

        if len(args.target) < 2:
            raise ValueError("usage: kws firmware verify MODEL_DIR [AUDIO...]")
        clips = [Path(p) for p in args.target[2:]] or [default_model_dir() / "demo.flac"]
        report = verify_firmware(Path(args.target[1]), clips)
        print(report)
        return 0 if report.ok else 1
    from kws.firmware.emit import emit

    if len(args.target) != 1 or not args.out:
        raise ValueError("usage: kws firmware MODEL_DIR -o OUTDIR")
    out = emit(Path(args.target[0]), Path(args.out))
    print((out / "README.md").read_text())
    return 0

def byte_progress(name: str):
    """A progress callback for downloads: a tqdm bar when tqdm is there (the eval and train
    extras), else a log line every 10%."""
    try:
        from tqdm import tqdm
    except ImportError:
        tqdm = None
    state = {"bar": None, "logged": -1}

    def update(done: int, total: int) -> None:
        if tqdm is not None:
            if state["bar"] is None:
                state["bar"] = tqdm(total=total or None, initial=done, unit="B",
                                    unit_scale=True, desc=name, disable=None)
            state["bar"].update(done - state["bar"].n)
        elif total and (tenth := 10 * done // total) > state["logged"]:
            state["logged"] = tenth
            log.info("%s: %d of %d MB", name, done // 10**6, total // 10**6)
    return update


def cmd_data(args: argparse.Namespace) -> int:
    from kws.core.config import load_config
    from kws.core.corpus_paths import data_root
    from kws.data.catalog import catalog

    corpora = catalog(args.catalog)
    if args.action == "list":
        for c in corpora.values():
            size = f"{c.size / 1e6:,.0f} MB" if c.size else "size unknown"
            check = "sha256 published" if c.sha256 else "no published checksum"
            print(f"{c.name}\n  {c.title}\n  licence: {c.license}; {size}; {check}\n"
                  f"  {c.url}" + (f"\n  about: {c.homepage}" if c.homepage else ""))
        return 0
    root = Path(args.out) if args.out else data_root()
    if args.action == "get":
        from kws.data.download import get

        unknown = [n for n in args.names if n not in corpora]
        if unknown:
            raise ValueError(f"unknown corpus {unknown}; kws data list shows {sorted(corpora)}")
        for name in args.names:
            folder = get(corpora[name], root, args.sha256, args.accept_unverified,
                         byte_progress(name))
            print(f"{name}: {folder}")
        return 0
    from kws.data.check import report

    text, ok = report(root, corpora, load_config(args.config) if args.config else None)
    print(text)
    return 0 if ok else 1
