"""Real-time factor of the streaming frontend on one core.

    python benchmarks/frontend.py [--seconds 60] [--chunk-ms 20] [--kind speech_embedding]

Feeds synthetic audio in chunks to the streaming frontend (log-mel with the bundled model's
settings, running mean normalisation included; or the speech embedding) and prints, per chunk
size, processing time / audio duration (the real-time factor; lower is better). Pins BLAS/FFT to one
thread and the process to one CPU where the OS allows.
"""

from __future__ import annotations

import argparse
import json
import os
import time

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import numpy as np  # noqa: E402

from kws.core.config import SPEECH_EMBEDDING, FrontendConfig  # noqa: E402
from kws.core.contract import load_manifest  # noqa: E402
from kws.features import streaming_frontend  # noqa: E402
from kws.runtime import default_model_dir  # noqa: E402

FRONTENDS = {"log_mel": load_manifest(default_model_dir()).frontend,
             "speech_embedding": FrontendConfig(kind="speech_embedding", **SPEECH_EMBEDDING)}


def real_time_factor(wave: np.ndarray, chunk: int, cfg: FrontendConfig, repeats: int = 3
                     ) -> float:
    """Best-of-``repeats`` seconds of compute per second of audio for one chunk size."""
    best = float("inf")
    for _ in range(repeats):
        fe = streaming_frontend(cfg)
        start = time.perf_counter()
        for i in range(0, len(wave), chunk):
            fe.accept(wave[i:i + chunk])
        best = min(best, time.perf_counter() - start)
    return best / (len(wave) / 16000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--chunk-ms", type=float, nargs="+", default=[10, 20, 80, 1000])
    parser.add_argument("--kind", choices=sorted(FRONTENDS), default="log_mel")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    wave = (np.random.default_rng(0).standard_normal(int(args.seconds * 16000)) * 0.1
            ).astype(np.float32)
    results = {f"{ms:g} ms": real_time_factor(wave, int(ms * 16), FRONTENDS[args.kind])
               for ms in args.chunk_ms}
    print(json.dumps({"benchmark": f"streaming {args.kind} frontend real-time factor (1 core)",
                      "audio_s": args.seconds, "rtf": results}, indent=2))


if __name__ == "__main__":
    main()
