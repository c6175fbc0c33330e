"""The command line: every option says what it does, the version, and errors without
tracebacks."""

import argparse
import subprocess
import sys

from kws import __version__
from kws.cli import build_parser


def subparsers(parser: argparse.ArgumentParser, prefix: str = ""):
    """(name, parser) of every command, nested ones too ("data get")."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield prefix + name, sub
                yield from subparsers(sub, prefix + name + " ")


def test_every_option_of_every_command_has_help():
    parser = build_parser()
    missing = [f"kws {name} {action.dest}" for name, sub in subparsers(parser)
               for action in sub._actions
               if not isinstance(action, argparse._HelpAction) and not action.help]
    missing += [f"kws {a.dest}" for a in parser._actions if not a.help]
    assert missing == []
    commands = dict(subparsers(parser))
    assert set(commands) == {"train", "synth", "eval", "export", "verify", "detect", "listen",
                             "serve", "bench", "firmware", "info", "data", "data list",
                             "data get", "data check", "record", "review", "finetune",
                             "mine", "distill", "cascade"}


def test_version_and_a_bad_value_without_a_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "kws", "--version"], capture_output=True,
                          text=True)
    assert proc.stdout.strip() == f"kws {__version__}"
    proc = subprocess.run([sys.executable, "-m", "kws", "detect", "--max-fa-per-hour", "-1"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "max_fa_per_hour is -1.0; allowed: > 0" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_the_example_systemd_units_run_valid_commands():
    """docs/systemd: each ExecStart is a kws command line this parser accepts."""
    import shlex
    from pathlib import Path

    units = sorted((Path(__file__).resolve().parents[1] / "docs" / "systemd").glob("*.service"))
    assert [u.name for u in units] == ["kws-listen.service", "kws-serve.service"]
    for unit in units:
        (line,) = [ln for ln in unit.read_text().splitlines() if ln.startswith("ExecStart=")]
        argv = shlex.split(line.removeprefix("ExecStart="))
        assert argv[0].endswith("/bin/kws")
        args = build_parser().parse_args(argv[1:])
        assert args.command == unit.stem.removeprefix("kws-")
