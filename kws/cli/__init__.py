"""The ``kws`` command: parses arguments into the library's dataclasses and calls it.

Commands that need an extra (torch for train/export, matplotlib for eval, ...) import it only
when they run and say which extra to install when it is missing, so the runtime commands work on
a device with only the base install.
"""

from __future__ import annotations

import logging
import os
import signal
import sys

from kws.cli.parser import build_parser

log = logging.getLogger("kws")


def exit_on_sigterm(signum: int, frame) -> None:
    """SIGTERM (``kill``, ``timeout``, a service manager) ends a command as Ctrl-C does: by
    an exception, so ``finally`` blocks and ``atexit`` stop the helper programs it started
    (festival) instead of leaving them running."""
    raise SystemExit(128 + signum)


def default_sigterm() -> None:
    """SIGTERM ends this process at once (its default action)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def exit_cleanly_on_sigterm() -> None:
    """Install :func:`exit_on_sigterm` in this process, and the default action (end at once)
    in the processes it forks: a pool worker that took SIGTERM between its last check for
    signals and a blocking wait would otherwise wait for ever, and the pool's ``terminate``
    with it (seen once: ``kws train`` hung after its last ensemble member)."""
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, exit_on_sigterm)
        os.register_at_fork(after_in_child=default_sigterm)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    exit_cleanly_on_sigterm()  # listen and serve set their own
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        return int(args.func(args) or 0)
    except (ValueError, OSError, RuntimeError) as e:  # ManifestError, ConfigError, MissingExtra
        log.error("%s", e)
        return 2


__all__ = ["build_parser", "main"]
