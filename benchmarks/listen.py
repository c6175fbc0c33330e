"""CPU share and resident memory of ``kws listen`` while it listens.

    python benchmarks/listen.py [--device pulse] [--seconds 60] [-- extra kws listen options]

Starts ``kws listen`` on an input device, waits until it listens, then samples its CPU time and
resident memory from /proc for ``--seconds``. Needs a working input device (a microphone, or a
PulseAudio null-sink monitor as in tests/test_listen.py). Linux only.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time


def proc_cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def proc_rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("extra", nargs="*", help="more kws listen options (after --)")
    args = parser.parse_args()
    cmd = [sys.executable, "-m", "kws.cli", "listen", *args.extra]
    if args.device:
        cmd += ["--device", args.device]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    while "listening on" not in (line := proc.stderr.readline()):
        if not line and proc.poll() is not None:
            raise SystemExit(f"kws listen did not start: {proc.stderr.read()}")
    time.sleep(2.0)  # let start-up work settle
    cpu0, wall0 = proc_cpu_seconds(proc.pid), time.monotonic()
    peak_rss = 0.0
    while time.monotonic() - wall0 < args.seconds:
        time.sleep(1.0)
        peak_rss = max(peak_rss, proc_rss_mb(proc.pid))
    share = (proc_cpu_seconds(proc.pid) - cpu0) / (time.monotonic() - wall0)
    proc.terminate()
    proc.wait(timeout=10)
    print(json.dumps({"benchmark": "kws listen while listening", "device": args.device,
                      "seconds": args.seconds, "cpu_share_one_core": share,
                      "peak_rss_mb": peak_rss}, indent=2))


if __name__ == "__main__":
    main()
