"""The ``kws`` command: a thin layer that parses arguments and calls the library.

Commands that need torch (train, eval of checkpoints, export) import it only when they run, so
the runtime commands work on a device with only the base install.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

log = logging.getLogger("kws")

TRAIN_EXTRA_HINT = "this command needs the training extra: pip install 'kws[train]'"


def need_torch() -> None:
    """Fail with an install hint when torch is missing."""
    try:
        import torch  # noqa: F401
    except ImportError as e:
        raise SystemExit(f"kws: {TRAIN_EXTRA_HINT} ({e})") from e


def cmd_train(args: argparse.Namespace) -> int:
    need_torch()
    from kws.config import load_config
    from kws.train import train

    cfg = load_config(args.config)
    out = Path(args.out or Path("runs") / Path(args.config).stem)
    if args.keyword:
        from kws.synth import synthetic_config

        # the rendering is data: it follows [data] seed, so another training seed (or
        # ensemble member) reuses it
        cfg = synthetic_config(cfg, args.keyword, out / "synth", args.synth_count, cfg.data.seed)
    result = train(cfg, out, resume=args.resume, progress=not args.quiet)
    print(json.dumps({"run": str(out), "best_val_miss": result["best"],
                      "parameters": result["parameters"],
                      "train_seconds": round(result["train_seconds"], 1)}))
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from kws.synth import synthesize

    report = synthesize(args.phrase, args.out, args.count, args.seed, args.confusables)
    print(json.dumps(report, indent=2))
    return 0


def parse_positive(spec: str) -> tuple[str, Path]:
    keyword, sep, folder = spec.partition("=")
    if not sep or not keyword or not folder:
        raise argparse.ArgumentTypeError(f"--positive {spec!r}: expected KEYWORD=FOLDER")
    return keyword, Path(folder)


def cmd_eval(args: argparse.Namespace) -> int:
    from kws.harness import markdown_table, run_eval

    print(markdown_table(run_eval(args)))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    need_torch()
    from export.exporter import VerificationError, export_model

    try:
        report = export_model(args.source, args.out)
    except VerificationError as e:
        print(e)
        return 1
    print(report)
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from export.verify import verify_folder

    report = verify_folder(Path(args.model_dir))
    print(report)
    return 0 if report.ok else 1


def parse_threshold(spec: str) -> tuple[str, float]:
    keyword, _, value = spec.partition("=")
    try:
        number = float(value)
    except ValueError:
        number = None
    if not keyword or number is None:
        raise argparse.ArgumentTypeError(f"--threshold {spec!r}: expected KEYWORD=VALUE, e.g. "
                                         "alexa=0.7")
    return keyword, number


def add_detector_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="exported model folder (default: the bundled model)")
    p.add_argument("--threshold", action="append", type=parse_threshold, default=[],
                   metavar="KEYWORD=VALUE", help="score threshold for one keyword (0..1]")
    p.add_argument("--max-fa-per-hour", type=float,
                   help="pick thresholds from the model's calibration table instead")
    p.add_argument("--refractory", type=float, default=2.0, help="seconds (default 2)")
    p.add_argument("--smoothing", type=int, help="moving-average steps (default: the model's "
                   "rule, the one its thresholds were calibrated with; 1 for older models)")
    p.add_argument("--min-steps", type=int,
                   help="consecutive steps at/above the threshold (default: the model's rule)")
    p.add_argument("--steps-per-call", type=int, default=None,
                   help="model steps per onnxruntime call; default: about 90 ms of steps (3 of "
                        "a log-mel model's 30 ms, 1 of a speech embedding model's 80 ms), at "
                        "most 60 ms of latency for a third of the per-call overhead; 1 for the "
                        "lowest latency")


def load_runtime(args: argparse.Namespace):
    """(model, stream factory, detector factory) from the common detector options."""
    from kws.runtime import Detector, DetectorConfig, OnnxModel

    model = OnnxModel(args.model)
    cfg = DetectorConfig(dict(args.threshold), args.max_fa_per_hour, args.refractory,
                         args.smoothing, args.min_steps)
    Detector.from_manifest(model.manifest, cfg)  # validate now, before any audio
    return (model, lambda: model.create_stream(args.steps_per_call),
            lambda: Detector.from_manifest(model.manifest, cfg))


def emit(event: dict) -> None:
    """One JSON Lines event on stdout, flushed at once (scripts read it live)."""
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def detect_file(path: Path, wave, stream, detector, chunk: int):
    """Stream one file in chunks; emit its events; return its ``(steps, K)`` scores."""
    import numpy as np

    from kws.audio import chunks

    tracks = []
    pieces = [stream.accept_waveform(p) for p in chunks(wave, max(1, chunk))] + [stream.flush()]
    first = 0
    for scores in pieces:
        tracks.append(scores)
        for d in detector.process(scores, first):
            emit({"file": str(path), "keyword": d.keyword, "score": round(d.score, 4),
                  "time_s": d.time_s, "start_s": d.start_s})
        first += len(scores)
    return np.concatenate(tracks).astype(np.float32)


def cmd_detect(args: argparse.Namespace) -> int:
    import numpy as np

    from kws.audio import AudioError, load_audio
    from kws.runtime.session import default_model_dir

    files = args.files or [default_model_dir() / "demo.flac"]
    if args.scores and len(files) != 1:
        raise ValueError("--scores writes one file's scores: give exactly one FILE")
    model, new_stream, new_detector = load_runtime(args)
    chunk = int(args.chunk_ms * model.manifest.frontend.sample_rate / 1000)
    failed = 0
    for path in files:
        try:
            wave = load_audio(path, model.manifest.frontend.sample_rate)
        except AudioError as e:
            log.error("%s", e)
            failed += 1
            continue
        scores = detect_file(path, wave, new_stream(), new_detector(), chunk)
        if args.scores:
            np.save(args.scores, scores)
    return 1 if failed else 0


def cmd_listen(args: argparse.Namespace) -> int:
    from kws.daemon import ListenConfig, Listener, list_devices

    if args.list_devices:
        print(list_devices())
        return 0
    device = int(args.device) if args.device and args.device.isdigit() else args.device
    model, new_stream, new_detector = load_runtime(args)
    cfg = ListenConfig(device, args.block_ms, args.exec_cmd, args.save_detections,
                       args.max_seconds, args.rate)
    listener = Listener(model, new_stream, new_detector, cfg, emit)
    listener.install_signal_handlers()
    listener.run()
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import asyncio

    from kws.wyoming_server import serve

    model, new_stream, new_detector = load_runtime(args)
    try:
        asyncio.run(serve(model, new_stream, new_detector, args.uri))
    except KeyboardInterrupt:
        log.info("stopped")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from kws.bench import run_bench, write

    model, new_stream, new_detector = load_runtime(args)
    result = run_bench(model, new_stream, new_detector, args.seconds, args.paced_seconds,
                       args.vs)
    print(write(result, args.out))
    return 0


def cmd_firmware(args: argparse.Namespace) -> int:
    """``kws firmware MODEL_DIR -o OUT`` or ``kws firmware verify MODEL_DIR [AUDIO...]``."""
    if args.target[0] == "verify":
        from firmware_bridge.verify import verify_firmware
        from kws.runtime.session import default_model_dir

        if len(args.target) < 2:
            raise ValueError("usage: kws firmware verify MODEL_DIR [AUDIO...]")
        folder = Path(args.target[1])
        clips = [Path(p) for p in args.target[2:]]
        if not clips:
            demo = default_model_dir() / "demo.flac"
            if not demo.is_file():
                raise ValueError("give AUDIO files to verify on (keyword and negative clips)")
            clips = [demo]
        report = verify_firmware(folder, clips)
        print(report)
        return 0 if report.ok else 1
    from firmware_bridge.emit import emit

    if len(args.target) != 1 or not args.out:
        raise ValueError("usage: kws firmware MODEL_DIR -o OUTDIR")
    out = emit(Path(args.target[0]), Path(args.out))
    print((out / "README.md").read_text())
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from kws.contract import load_manifest
    from kws.runtime.session import default_model_dir

    manifest = load_manifest(args.model or default_model_dir())
    raw = dict(manifest.raw)
    if not args.full:
        raw.pop("calibration", None)
    raw["folder"] = str(manifest.folder)
    print(json.dumps(raw, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kws", description="Small streaming keyword spotting.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a model from a TOML config")
    p.add_argument("config", help="TOML run configuration (see configs/default.toml)")
    p.add_argument("-o", "--out", help="run folder (default runs/<config name>)")
    p.add_argument("--resume", action="store_true", help="continue from <run>/checkpoint.pt")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--keyword", metavar="PHRASE",
                   help="train for PHRASE from synthetic speech only (made with kws synth into "
                        "<run>/synth with the [data] seed, reused while it matches); the config "
                        "supplies negatives, noise and settings")
    p.add_argument("--synth-count", type=int, default=1500,
                   help="synthetic positives for --keyword (default 1500)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("synth", help="synthetic positives and confusable negatives for a phrase")
    p.add_argument("phrase")
    p.add_argument("-o", "--out", type=Path, required=True)
    p.add_argument("--count", type=int, default=1000, help="positive renderings")
    p.add_argument("--confusables", type=int, help="confusable renderings (default: --count)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("eval", help="miss rate at false alarms per hour, delay, DET plot")
    p.add_argument("--model", action="append", required=True,
                   help="a run folder / checkpoint (.pt), an exported model folder, or "
                        "openwakeword:KW / microwakeword:KW; repeat to compare on the same audio")
    p.add_argument("--config", help="take negatives (and positives unless --positive) from "
                                    "this config's split (default: the first model's own config)")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--positive", action="append", type=parse_positive, default=[],
                   metavar="KEYWORD=FOLDER", help="positive clips (instead of the config split)")
    p.add_argument("--range", dest="ranges", action="append", default=[], metavar="KW=A-B",
                   help="only numbered positive files A..B of KW (e.g. alexa=150-199)")
    p.add_argument("--negatives", action="append", type=Path, default=[],
                   help="folder of negative audio (repeatable; added to the split's)")
    p.add_argument("--stream", type=Path, help="one long recording to evaluate on instead "
                                                "(with --labels and --keyword)")
    p.add_argument("--labels", type=Path,
                   help="label file for --stream: one 'start, end' line (s) per keyword")
    p.add_argument("--keyword", help="the keyword the --stream labels mark")
    p.add_argument("--noise", type=Path, help="folder of noise mixed into positives")
    p.add_argument("--snr", type=float, default=10.0, help="SNR in dB for --noise (default 10)")
    p.add_argument("--refractory", type=float, default=2.0, help="seconds (default 2)")
    p.add_argument("--smoothing", type=int,
                   help="moving-average steps before the threshold, as in detect (default: "
                        "each model's own rule; 1 for other engines)")
    p.add_argument("--min-steps", type=int,
                   help="consecutive steps at/above the threshold, as in detect (default: "
                        "each model's own rule; 1 for other engines)")
    p.add_argument("-o", "--out", type=Path, default=Path("eval"), help="report folder")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("export", help="float + int8 ONNX, manifest, verification")
    p.add_argument("source", help="run folder (best.pt inside) or checkpoint .pt")
    p.add_argument("-o", "--out", required=True, help="output model folder")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("verify", help="check an exported model folder against its bounds")
    p.add_argument("model_dir")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("detect", help="keyword events in audio files, as JSON Lines")
    p.add_argument("files", nargs="*", type=Path,
                   help="wav/flac/ogg files (default: the bundled demo clip)")
    add_detector_options(p)
    p.add_argument("--scores", type=Path, help="write per-step scores (steps x keywords) .npy")
    p.add_argument("--chunk-ms", type=float, default=100.0,
                   help="feed audio in chunks of this size (results do not depend on it)")
    p.set_defaults(func=cmd_detect)

    p = sub.add_parser("listen", help="detect keywords on a live microphone (JSON Lines)")
    add_detector_options(p)
    p.add_argument("--list-devices", action="store_true", help="list input devices and exit")
    p.add_argument("--device", help="input device index or name (default: system default)")
    p.add_argument("--block-ms", type=float, default=60.0,
                   help="audio block per wake-up (default 60 ms: 1.6%% of a core instead of "
                        "3%% at 20 ms, for at most 40 ms more latency)")
    p.add_argument("--exec", dest="exec_cmd", metavar="CMD",
                   help="run CMD per detection (env KWS_KEYWORD, KWS_SCORE, KWS_TIME)")
    p.add_argument("--save-detections", type=Path, metavar="DIR",
                   help="keep the 2 s of audio around each activation (WAV + JSON)")
    p.add_argument("--max-seconds", type=float, help="stop after this much audio")
    p.add_argument("--rate", type=int, help="record at this rate (Hz) and resample (default: "
                                            "16000 when the device can, else its own rate)")
    p.set_defaults(func=cmd_listen)

    p = sub.add_parser("serve", help="Wyoming wake word server (Home Assistant)")
    add_detector_options(p)
    p.add_argument("--uri", default="tcp://127.0.0.1:10400",
                   help="tcp://HOST:PORT or unix://PATH (default tcp://127.0.0.1:10400)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("bench", help="latency, real-time factor, CPU and memory on this CPU")
    add_detector_options(p)
    p.add_argument("--seconds", type=float, default=60.0, help="audio per chunk size")
    p.add_argument("--paced-seconds", type=float, default=10.0,
                   help="real-time paced run for the CPU share (0 skips it)")
    p.add_argument("--vs", metavar="ENGINE[:KEYWORD]",
                   help="also measure openwakeword or microwakeword (default keyword alexa) in "
                        "this run, alternating, and print the ratios")
    p.add_argument("-o", "--out", help="write OUT.json and OUT.md")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("firmware", help="C sources for a microcontroller, or verify them",
                       description="kws firmware MODEL_DIR -o OUTDIR | kws firmware verify "
                                   "MODEL_DIR [AUDIO...]")
    p.add_argument("target", nargs="+", metavar="MODEL_DIR | verify MODEL_DIR [AUDIO...]")
    p.add_argument("-o", "--out", help="output folder for the C sources")
    p.set_defaults(func=cmd_firmware)

    p = sub.add_parser("info", help="the model's manifest as JSON")
    p.add_argument("--model", help="exported model folder (default: the bundled model)")
    p.add_argument("--full", action="store_true", help="include the calibration table")
    p.set_defaults(func=cmd_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, RuntimeError) as e:  # ManifestError, ConfigError
        log.error("%s", e)
        return 2


if __name__ == "__main__":
    sys.exit(main())
