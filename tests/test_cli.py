"""The command line: every option says what it does, the version, and errors without
tracebacks."""

import argparse
import subprocess
import sys

from kws import __version__
from kws.cli import build_parser


def subparsers(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            yield from action.choices.items()


def test_every_option_of_every_command_has_help():
    parser = build_parser()
    missing = [f"kws {name} {action.dest}" for name, sub in subparsers(parser)
               for action in sub._actions
               if not isinstance(action, argparse._HelpAction) and not action.help]
    missing += [f"kws {a.dest}" for a in parser._actions if not a.help]
    assert missing == []
    commands = dict(subparsers(parser))
    assert set(commands) == {"train", "synth", "eval", "export", "verify", "detect", "listen",
                             "serve", "bench", "firmware", "info"}


def test_version_and_a_bad_value_without_a_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "kws", "--version"], capture_output=True,
                          text=True)
    assert proc.stdout.strip() == f"kws {__version__}"
    proc = subprocess.run([sys.executable, "-m", "kws", "detect", "--max-fa-per-hour", "-1"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "max_fa_per_hour is -1.0; allowed: > 0" in proc.stderr
    assert "Traceback" not in proc.stderr
