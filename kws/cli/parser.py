"""The ``kws`` argument parser: every command, its options with units and defaults, and the
parsing of ``KEYWORD=VALUE`` options."""

from __future__ import annotations

import argparse
from pathlib import Path

from kws import __version__
from kws.cli.spotting import cmd_bench, cmd_detect, cmd_info, cmd_listen, cmd_serve
from kws.cli.training import (
    cmd_cascade,
    cmd_data,
    cmd_distill,
    cmd_eval,
    cmd_export,
    cmd_finetune,
    cmd_firmware,
    cmd_mine,
    cmd_record,
    cmd_review,
    cmd_synth,
    cmd_train,
    cmd_verify,
)


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
                        "the model's: those of --max-fa-per-hour 0.5)")
    p.add_argument("--max-fa-per-hour", type=float, metavar="RATE",
                   help="false-alarm budget per hour per keyword: thresholds from the model's "
                        "calibration table instead of its defaults (--threshold still wins)")
    p.add_argument("--no-verifier", action="store_true",
                   help="run only the first stage of a model folder that has a verifier (as "
                        "the microcontroller does), at its own thresholds")
    add_rule_settings(p, "the model's own rule, the one its thresholds were calibrated with; "
                         "the bundled model's: 2 s, 1, 1")
    p.add_argument("--steps-per-call", type=int, default=None, metavar="STEPS",
                   help="model steps per onnxruntime call (default: about 90 ms of steps: 3 of "
                        "a log-mel model's 30 ms, 1 of a speech embedding model's 80 ms; 1 for "
                        "the lowest latency, 60 ms less at a third more CPU)")

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

    p = sub.add_parser("distill", help="train a log-mel student (the microcontroller's model "
                                       "family) to follow a speech-embedding teacher")
    p.add_argument("teacher", help="the teacher's run folder or checkpoint (e.g. from kws train "
                                   "--keyword)")
    p.add_argument("config", help="the student's TOML config (e.g. configs/student.toml); the "
                                  "data and keywords are the teacher's")
    p.add_argument("-o", "--out", type=Path, required=True, help="the student's run folder")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in OUT")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_distill)

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
    p.add_argument("--split", choices=("val", "test"), default="val",
                   help="held-out split of the config to compare before and after on (default "
                        "val: decide there; test only for a last look once decided)")
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
    p.add_argument("-o", "--out", type=Path, required=True,
                   help="output folder (an earlier rendering there, as its manifest lists it, "
                        "is replaced; other files stay)")
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
    p.add_argument("--no-verifier", action="store_true",
                   help="evaluate the first stage alone of models that have a verifier")
    p.add_argument("--seed", type=int, default=0, help="noise draws (default 0)")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("export", help="float + int8 ONNX, manifest, verification")
    p.add_argument("source", help="run folder (best.pt inside) or checkpoint .pt")
    p.add_argument("-o", "--out", required=True,
                   help="output model folder (written only when verification passes)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("cascade", help="a model folder whose events a verifier checks: the "
                       "first stage fires at a lower threshold, the verifier decides")
    p.add_argument("first", help="exported first-stage model folder (the small model)")
    p.add_argument("verifier", help="exported verifier model folder (same keywords)")
    p.add_argument("--config", required=True, type=Path,
                   help="the first stage's training config: its validation split calibrates "
                        "the cascade")
    p.add_argument("-o", "--out", required=True, help="output model folder")
    p.add_argument("--gate-fa-per-hour", type=float, default=30.0, metavar="RATE",
                   help="the first stage fires at its thresholds for this budget (default 30, "
                        "chosen on validation for the bundled model)")
    p.add_argument("--window-s", type=float, default=2.0, metavar="SECONDS",
                   help="audio the verifier reads per event (default 2)")
    p.add_argument("--delay-s", type=float, default=0.5, metavar="SECONDS",
                   help="how long after the first stage's event the verifier decides "
                        "(default 0.5)")
    p.set_defaults(func=cmd_cascade)

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
