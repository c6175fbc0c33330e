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
    result = train(cfg, out, resume=args.resume, progress=not args.quiet)
    print(json.dumps({"run": str(out), "best_val_miss": result["best"],
                      "parameters": result["parameters"],
                      "train_seconds": round(result["train_seconds"], 1)}))
    return 0


def parse_positive(spec: str) -> tuple[str, Path]:
    keyword, sep, folder = spec.partition("=")
    if not sep or not keyword or not folder:
        raise argparse.ArgumentTypeError(f"--positive {spec!r}: expected KEYWORD=FOLDER")
    return keyword, Path(folder)


def cmd_eval(args: argparse.Namespace) -> int:
    from kws.harness import run_eval

    run_eval(args)
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
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="miss rate at false alarms per hour, delay, DET plot")
    p.add_argument("--model", action="append", required=True,
                   help="a run folder / checkpoint (.pt) or an exported model folder; repeat to "
                        "compare several on the same audio")
    p.add_argument("--config", help="take positives/negatives from this config's split "
                                    "(default: the first model's own config)")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--positive", action="append", type=parse_positive, default=[],
                   metavar="KEYWORD=FOLDER", help="positive clips (instead of the config split)")
    p.add_argument("--range", dest="ranges", action="append", default=[], metavar="KW=A-B",
                   help="only numbered positive files A..B of KW (e.g. alexa=150-199)")
    p.add_argument("--negatives", action="append", type=Path, default=[],
                   help="folder of negative audio (repeatable; added to the split's)")
    p.add_argument("--noise", type=Path, help="folder of noise mixed into positives")
    p.add_argument("--snr", type=float, default=10.0, help="SNR in dB for --noise (default 10)")
    p.add_argument("--refractory", type=float, default=2.0, help="seconds (default 2)")
    p.add_argument("-o", "--out", type=Path, default=Path("eval"), help="report folder")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_eval)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as e:
        log.error("%s", e)
        return 2


if __name__ == "__main__":
    sys.exit(main())
