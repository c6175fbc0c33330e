"""The ``kws`` command: parses arguments into the library's dataclasses and calls it.

Commands that need an extra (torch for train/export, matplotlib for eval, ...) import it only
when they run and say which extra to install when it is missing, so the runtime commands work on
a device with only the base install.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from kws import __version__

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


def cmd_finetune(args: argparse.Namespace) -> int:
    """kws finetune MODEL --negatives DIR -o OUT: fine-tune, export, compare."""
    import dataclasses

    from kws.core.config import build, load_config
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
    report = compare(before, out / "model", own, args.negatives)
    report["activations"] = result["activations"]
    (out / "finetune.json").write_text(json.dumps(report, indent=2))
    print(markdown({k: v for k, v in report.items() if k in ("before", "after")}))
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


def parse_pair(spec: str, option: str, example: str) -> tuple[str, str]:
    """``KEY=VALUE`` -> (key, value), or an argparse error naming the option."""
    key, sep, value = spec.partition("=")
    if not sep or not key or not value:
        raise argparse.ArgumentTypeError(f"{option} {spec!r}: expected {example}")
    return key, value


def parse_positive(spec: str) -> tuple[str, Path]:
    keyword, folder = parse_pair(spec, "--positive", "KEYWORD=FOLDER")
    return keyword, Path(folder)


def parse_threshold(spec: str) -> tuple[str, float]:
    keyword, value = parse_pair(spec, "--threshold", "KEYWORD=VALUE, e.g. alexa=0.7")
    try:
        return keyword, float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--threshold {spec!r}: {value!r} is not a number; "
                                         "expected KEYWORD=VALUE, e.g. alexa=0.7") from None


def cmd_eval(args: argparse.Namespace) -> int:
    from kws.eval.harness import EvalOptions, parse_ranges, run_eval
    from kws.eval.report import markdown_table

    opts = EvalOptions(tuple(args.model), args.config, args.split, tuple(args.positive),
                       parse_ranges(args.ranges), tuple(args.negatives), args.noise, args.snr,
                       args.stream, args.labels, args.keyword, args.smoothing, args.min_steps,
                       args.refractory, args.out, args.seed, tuple(args.exclude))
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


def cmd_verify(args: argparse.Namespace) -> int:
    from kws.core.extras import require

    require("onnx", "eval", "kws verify")
    from kws.export.verify import verify_folder

    report = verify_folder(Path(args.model_dir))
    print(report)
    return 0 if report.ok else 1


def add_rule_settings(p: argparse.ArgumentParser, default: str) -> None:
    """--refractory, --smoothing and --min-steps: the decision rule's settings."""
    p.add_argument("--refractory", type=float, metavar="SECONDS",
                   help="seconds after a keyword's score falls from an event before it can fire "
                        f"again (default: {default})")
    p.add_argument("--smoothing", type=int, metavar="STEPS",
                   help=f"moving average of the score over this many model steps, 1 = none "
                        f"(default: {default})")
    p.add_argument("--min-steps", type=int, metavar="STEPS",
                   help=f"model steps in a row at/above the threshold (default: {default})")


def add_rule_options(p: argparse.ArgumentParser, models: bool = False) -> None:
    """The model and decision options shared by detect, listen, serve and bench (``models``:
    several models, as kws serve runs)."""
    if models:
        p.add_argument("--model", action="append", default=[], metavar="DIR",
                       help="exported model folder (repeatable; default: the bundled model "
                            "unless --custom-model-dir gives some)")
        p.add_argument("--custom-model-dir", action="append", default=[], metavar="DIR",
                       help="a folder of exported model folders: every one inside is served "
                            "(repeatable)")
    else:
        p.add_argument("--model", help="exported model folder (default: the bundled model)")
    p.add_argument("--threshold", action="append", type=parse_threshold, default=[],
                   metavar="KEYWORD=VALUE",
                   help="score threshold for one keyword, 0 < VALUE <= 1 (repeatable; default: "
                        "the model's, calibrated at 0.5 false alarms per hour)")
    p.add_argument("--max-fa-per-hour", type=float, metavar="RATE",
                   help="false-alarm budget per hour per keyword: thresholds from the model's "
                        "calibration table instead of its defaults (--threshold still wins)")
    add_rule_settings(p, "the model's own rule, the one its thresholds were calibrated with; "
                         "the bundled model's: 2 s, 1, 1")
    p.add_argument("--steps-per-call", type=int, default=None, metavar="STEPS",
                   help="model steps per onnxruntime call (default: about 90 ms of steps: 3 of "
                        "a log-mel model's 30 ms, 1 of a speech embedding model's 80 ms; 1 for "
                        "the lowest latency, 60 ms less at a third more CPU)")


def load_models(args: argparse.Namespace, folders: list) -> list:
    """(model, decision rule) for each folder (None: the bundled model), with the shared
    options applied; a --threshold must name a keyword of one of them."""
    from kws.runtime import OnnxModel, Spotter, model_rule

    models = [OnnxModel(folder) for folder in folders]
    thresholds = dict(args.threshold)
    known = {kw for m in models for kw in m.keywords}
    unknown = sorted(set(thresholds) - known)
    if unknown:
        raise ValueError(f"thresholds for unknown keyword(s) {unknown}; the model(s) have "
                         f"{sorted(known)}")
    out = []
    for model in models:
        rule = model_rule(model.manifest, {k: v for k, v in thresholds.items()
                                           if k in model.keywords},
                          args.max_fa_per_hour, args.smoothing, args.min_steps, args.refractory)
        Spotter(model, rule, args.steps_per_call)  # fail now on a bad setting
        out.append((model, rule))
    return out


def load_spotting(args: argparse.Namespace):
    """(model, a factory of fresh spotters) from the shared options, checked before any
    audio."""
    from kws.runtime import Spotter

    ((model, rule),) = load_models(args, [args.model])
    return model, lambda: Spotter(model, rule, args.steps_per_call)


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


def cmd_info(args: argparse.Namespace) -> int:
    from kws.core.contract import load_manifest
    from kws.runtime import default_model_dir
    from kws.runtime.detector import calibration_hours

    manifest = load_manifest(args.model or default_model_dir())
    if args.json:
        print(json.dumps(dict(manifest.raw, folder=str(manifest.folder)), indent=2))
        return 0
    raw, rule = manifest.raw, manifest.rule
    hours = calibration_hours(manifest)
    lines = [f"model: {manifest.folder}",
             "keywords (default threshold): " + ", ".join(
                 f"{kw} ({t:g})" for kw, t in rule.thresholds.items()),
             f"decision rule: {rule.describe()}",
             f"frontend: {manifest.frontend.kind}, one model step every "
             f"{manifest.step_s * 1000:g} ms",
             "calibration: " + (f"{hours:.3g} h of negative audio (one false alarm = "
                                f"{1 / hours:.3g} FA/h)" if hours else "none recorded"),
             f"parameters: {raw.get('parameters', '?')}, multiply-accumulates per second of "
             f"audio: {raw.get('macs_per_second', '?')}",
             "files: " + ", ".join(f"{name} ({info.get('bytes', 0) / 1024:.1f} KiB)"
                                   for name, info in manifest.files.items())]
    lines += ["data sources:"] + [f"  {s.get('dataset')} ({s.get('license')}): {s.get('path')}"
                                  for s in raw.get("data_sources", [])]
    print("\n".join(lines))
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
    from kws.core.config import data_root, load_config
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kws", description="Small streaming keyword spotting: "
                                     "train, export, detect, listen, serve, evaluate.")
    parser.add_argument("--version", action="version", version=f"kws {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                help="what to do (kws COMMAND --help for its options)")

    p = sub.add_parser("train", help="train a model from a TOML config")
    p.add_argument("config", help="TOML run configuration (see configs/default.toml)")
    p.add_argument("-o", "--out", help="run folder (default: runs/<config name>)")
    p.add_argument("--resume", action="store_true", help="continue from <run>/checkpoint.pt")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--keyword", metavar="PHRASE",
                   help="train for PHRASE from synthetic speech only (made with kws synth into "
                        "<run>/synth with the [data] seed, reused while it matches); the config "
                        "supplies negatives, noise and settings")
    p.add_argument("--synth-count", type=int, default=1500, metavar="N",
                   help="synthetic positives for --keyword (default 1500)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("finetune", help="train a model further on labelled false alarms, "
                                        "re-export it and compare")
    p.add_argument("model", help="a run folder / checkpoint, or an exported model folder (with "
                                 "--config)")
    p.add_argument("--negatives", type=Path, required=True, metavar="DIR",
                   help="saved activations labelled with kws review")
    p.add_argument("-o", "--out", type=Path, required=True,
                   help="output folder: run/, model/ (the new export), finetune.json")
    p.add_argument("--config", type=Path, metavar="TOML",
                   help="the training data to keep (default: the run's own config)")
    p.add_argument("--epochs", type=int, default=3, help="epochs of fine-tuning (default 3)")
    p.add_argument("--lr", type=float,
                   help="learning rate (default: a tenth of the config's)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_finetune)

    p = sub.add_parser("mine", help="save a model's highest-scoring training negatives as "
                                    "false alarms (for kws finetune)")
    p.add_argument("model", help="a run folder or checkpoint")
    p.add_argument("-o", "--out", type=Path, required=True, help="folder for the activations")
    p.add_argument("--config", type=Path, metavar="TOML",
                   help="the data to mine (default: the run's own config)")
    p.add_argument("--count", type=int, default=300,
                   help="moments to keep, the highest-scoring first (default 300)")
    p.add_argument("--split", default="train", choices=["train", "val"],
                   help="which negatives (default train; never test)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_mine)

    p = sub.add_parser("synth", help="synthetic positives and confusable negatives for a phrase")
    p.add_argument("phrase", help="the keyword as people write it, e.g. 'smart mirror'")
    p.add_argument("-o", "--out", type=Path, required=True, help="output folder")
    p.add_argument("--count", type=int, default=1000, metavar="N",
                   help="positive renderings (default 1000)")
    p.add_argument("--confusables", type=int, metavar="N",
                   help="confusable renderings (default: as many as --count)")
    p.add_argument("--seed", type=int, default=0, help="voice and text draws (default 0)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("eval", help="miss rate at false alarms per hour, delay, DET plot")
    p.add_argument("--model", action="append", required=True,
                   help="a run folder / checkpoint (.pt), an exported model folder, or "
                        "openwakeword:KW / microwakeword:KW; repeat to compare on the same audio")
    p.add_argument("--config", type=Path,
                   help="take negatives (and positives unless --positive) from this config's "
                        "split (default: the first model's own config, if it has one)")
    p.add_argument("--split", default="test", choices=["train", "val", "test"],
                   help="which split of the config (default test)")
    p.add_argument("--positive", action="append", type=parse_positive, default=[],
                   metavar="KEYWORD=FOLDER", help="positive clips (instead of the config split)")
    p.add_argument("--range", dest="ranges", action="append", default=[], metavar="KW=A-B",
                   help="only numbered positive files A..B of KW (e.g. alexa=150-199)")
    p.add_argument("--negatives", action="append", type=Path, default=[], metavar="FOLDER",
                   help="folder of negative audio (repeatable; added to the split's)")
    p.add_argument("--exclude", action="append", type=Path, default=[], metavar="FOLDER",
                   help="never use the config split's files under FOLDER as negatives "
                        "(repeatable; e.g. the recordings of the phrase being tested)")
    p.add_argument("--stream", type=Path, metavar="FILE",
                   help="one long recording to evaluate on instead (with --labels and --keyword)")
    p.add_argument("--labels", type=Path, metavar="FILE",
                   help="label file for --stream: one 'start, end' line (seconds) per keyword")
    p.add_argument("--keyword", help="the keyword the --stream labels mark")
    p.add_argument("--noise", type=Path, metavar="FOLDER", help="noise mixed into positives")
    p.add_argument("--snr", type=float, default=10.0, metavar="DB",
                   help="signal-to-noise ratio in dB for --noise, loudest frames (default 10)")
    add_rule_settings(p, "each model's own rule; for other engines 2 s, 1, 1")
    p.add_argument("-o", "--out", type=Path, default=Path("eval"),
                   help="report folder (default ./eval)")
    p.add_argument("--seed", type=int, default=0, help="noise draws (default 0)")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("export", help="float + int8 ONNX, manifest, verification")
    p.add_argument("source", help="run folder (best.pt inside) or checkpoint .pt")
    p.add_argument("-o", "--out", required=True,
                   help="output model folder (written only when verification passes)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("verify", help="check an exported model folder against its bounds")
    p.add_argument("model_dir", help="exported model folder")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("detect", help="keyword events in audio files, as JSON Lines")
    p.add_argument("files", nargs="*", type=Path,
                   help="wav/flac/ogg files (default: the bundled demo clip)")
    add_rule_options(p)
    p.add_argument("--scores", type=Path, metavar="FILE.npy",
                   help="write one file's per-step raw scores (steps x keywords) as .npy")
    p.add_argument("--chunk-ms", type=float, default=100.0, metavar="MS",
                   help="feed audio in chunks of this many ms (default 100; events do not "
                        "depend on it)")
    p.set_defaults(func=cmd_detect)

    p = sub.add_parser("listen", help="detect keywords on a live microphone (JSON Lines)")
    add_rule_options(p)
    p.add_argument("--list-devices", action="store_true", help="list input devices and exit")
    p.add_argument("--device", help="input device index or name (default: the system default)")
    p.add_argument("--block-ms", type=float, default=60.0, metavar="MS",
                   help="audio block per wake-up in ms (default 60: 1.6%% of a core instead of "
                        "3%% at 20 ms, for at most 40 ms more latency)")
    p.add_argument("--exec", dest="exec_cmd", metavar="CMD",
                   help="run CMD per detection, never through a shell (environment: "
                        "KWS_KEYWORD, KWS_SCORE, KWS_TIME)")
    p.add_argument("--save-detections", type=Path, metavar="DIR",
                   help="keep the 2 s of audio around each activation (WAV + JSON) in DIR")
    p.add_argument("--max-seconds", type=float, metavar="SECONDS",
                   help="stop after this much audio (default: run until Ctrl-C / SIGTERM)")
    p.add_argument("--rate", type=int, metavar="HZ",
                   help="record at this rate and resample (default: 16000 when the device can, "
                        "else its own rate)")
    p.set_defaults(func=cmd_listen)

    p = sub.add_parser("record", help="record your own keyword clips (16 kHz FLAC) for training")
    p.add_argument("keyword", help="the keyword's name, e.g. hey_mirror (its folder's name)")
    p.add_argument("-o", "--out", type=Path, required=True,
                   help="folder that gets KEYWORD/<n>.flac (numbering continues)")
    p.add_argument("--count", type=int, default=20, help="good takes to record (default 20)")
    p.add_argument("--seconds", type=float, default=2.0,
                   help="seconds per take (default 2)")
    p.add_argument("--pause", type=float, default=1.0, metavar="SECONDS",
                   help="count-in before each take (default 1 s)")
    p.add_argument("--max-takes", type=int, metavar="N",
                   help="stop after N takes, good or skipped (default: 3 x --count)")
    p.add_argument("--device", help="input device index or name (default: the system default)")
    p.add_argument("--rate", type=int, metavar="HZ",
                   help="record at this rate and resample to 16 kHz (default: 16000 when the "
                        "device can)")
    p.set_defaults(func=cmd_record)

    p = sub.add_parser("review", help="label saved activations: keyword or false alarm")
    p.add_argument("folder", type=Path, help="the folder of kws listen --save-detections")
    p.add_argument("--list", action="store_true", help="only list them with their labels")
    p.add_argument("--no-play", action="store_true",
                   help="do not play the audio (default: play it with paplay/aplay if there)")
    p.set_defaults(func=cmd_review)

    p = sub.add_parser("serve", help="Wyoming wake word server (Home Assistant)")
    add_rule_options(p, models=True)
    p.add_argument("--refractory-seconds", dest="refractory", type=float, metavar="SECONDS",
                   help="the same as --refractory (wyoming-openwakeword's name)")
    p.add_argument("--uri", default="tcp://127.0.0.1:10400",
                   help="tcp://HOST:PORT or unix://PATH (default tcp://127.0.0.1:10400; "
                        "tcp://0.0.0.0:10400 for other machines)")
    p.add_argument("--zeroconf", nargs="?", const="", default=None, metavar="NAME",
                   help="announce the server as _wyoming._tcp for Home Assistant to discover "
                        "(default name: kws-<MAC address>)")
    p.add_argument("--max-connections", type=int, default=32, metavar="N",
                   help="clients served at once; more are closed on arrival (default 32)")
    p.add_argument("--idle-timeout", type=float, default=300.0, metavar="SECONDS",
                   help="disconnect a client that sends nothing for this long (default 300)")
    p.add_argument("--read-timeout", type=float, default=10.0, metavar="SECONDS",
                   help="disconnect a client that leaves a message unfinished this long "
                        "(default 10)")
    p.add_argument("--debug", action="store_true", help="debug logging (as -v)")
    p.add_argument("--version", action="version", version=f"kws {__version__}",
                   help="print the version and exit")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("bench", help="latency, real-time factor, CPU and memory on this CPU")
    add_rule_options(p)
    p.add_argument("--seconds", type=float, default=60.0,
                   help="seconds of audio per chunk size (default 60)")
    p.add_argument("--paced-seconds", type=float, default=10.0,
                   help="seconds of the real-time paced run for the CPU share (default 10; 0 "
                        "skips it)")
    p.add_argument("--vs", metavar="ENGINE[:KEYWORD]",
                   help="also measure openwakeword or microwakeword (default keyword alexa) in "
                        "this run, alternating, and print the ratios")
    p.add_argument("-o", "--out", metavar="PREFIX", help="also write PREFIX.json and PREFIX.md")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("firmware", help="C sources for a microcontroller, or verify them",
                       description="kws firmware MODEL_DIR -o OUTDIR | kws firmware verify "
                                   "MODEL_DIR [AUDIO...]")
    p.add_argument("target", nargs="+", metavar="MODEL_DIR | verify MODEL_DIR [AUDIO...]",
                   help="an exported log-mel model folder; with 'verify', the audio files to "
                        "compare the compiled C with onnxruntime on (default: the demo clip)")
    p.add_argument("-o", "--out", help="output folder for the C sources")
    p.set_defaults(func=cmd_firmware)

    p = sub.add_parser("data", help="public corpora: list them, download one, check a folder")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION",
                               help="list | get NAME... | check")
    for action, text in (("list", "every corpus the configs can use: licence, size, URL"),
                         ("get", "download, verify and unpack corpora"),
                         ("check", "what a data root holds and what a config would find")):
        a = actions.add_parser(action, help=text)
        a.add_argument("--catalog", type=Path, metavar="FILE.json",
                       help="more corpora (a JSON list of name, url, sha256, strip ...)")
        if action == "list":
            continue
        a.add_argument("-o", "--out", type=Path, metavar="DIR",
                       help="data root (default: $KWS_DATA, else ~/kws-data)")
        if action == "get":
            a.add_argument("names", nargs="+", metavar="NAME", help="corpus names (kws data list)")
            a.add_argument("--sha256", metavar="HEX",
                           help="the expected SHA-256 of the archive (for a corpus with no "
                                "published one, or to override)")
            a.add_argument("--accept-unverified", action="store_true",
                           help="unpack an archive no checksum is known for")
        else:
            a.add_argument("--config", type=Path, metavar="TOML",
                           help="also check every folder this config reads (exit 1 if one is "
                                "missing or empty)")
    p.set_defaults(func=cmd_data)

    p = sub.add_parser("info", help="what a model is: keywords, thresholds, rule, sources")
    p.add_argument("--model", help="exported model folder (default: the bundled model)")
    p.add_argument("--json", action="store_true",
                   help="print the whole manifest as JSON (calibration table included)")
    p.set_defaults(func=cmd_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        return int(args.func(args) or 0)
    except (ValueError, OSError, RuntimeError) as e:  # ManifestError, ConfigError, MissingExtra
        log.error("%s", e)
        return 2


if __name__ == "__main__":
    sys.exit(main())
