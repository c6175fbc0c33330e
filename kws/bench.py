"""``kws bench``: what the full streaming path (frontend + model + detector) costs on this CPU.

Figures: per-chunk latency (median and 99th percentile, microseconds) for 10, 20 and 80 ms chunks;
real-time factor (compute seconds per audio second); CPU share while fed in real time (paced
20 ms chunks); peak resident memory; model file size; multiply-accumulates per second of audio.
Runs on one core (affinity pinned where the OS allows, onnxruntime with one thread).
"""

from __future__ import annotations

import json
import os
import resource
import time
from dataclasses import asdict, dataclass

import numpy as np

CHUNKS_MS = (10, 20, 80)


@dataclass
class ChunkFigures:
    chunk_ms: float
    median_us: float
    p99_us: float
    real_time_factor: float


def pin_one_core() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def test_audio(seconds: float, seed: int = 0) -> np.ndarray:
    """Speech-band noise with a syllable-rate envelope: what a microphone hears all day."""
    rng = np.random.default_rng(seed)
    n = int(seconds * 16000)
    t = np.arange(n) / 16000
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)
    return (0.05 * envelope * rng.standard_normal(n)).astype(np.float32)


def time_chunks(new_stream, new_detector, wave: np.ndarray, chunk_ms: float,
                repeats: int = 3) -> ChunkFigures:
    """Time every ``accept_waveform`` + ``process`` call; best of ``repeats`` passes for RTF."""
    size = int(chunk_ms * 16)
    best_total, per_call = float("inf"), None
    for _ in range(repeats):
        stream, detector = new_stream(), new_detector()
        times = np.empty((len(wave) + size - 1) // size, dtype=np.int64)
        clock = time.perf_counter_ns
        for i, start in enumerate(range(0, len(wave), size)):
            t0 = clock()
            detector.process(stream.accept_waveform(wave[start:start + size]),
                             stream.first_new_step)
            times[i] = clock() - t0
        total = times.sum() / 1e9
        if total < best_total:
            best_total, per_call = total, times
    return ChunkFigures(chunk_ms, float(np.median(per_call) / 1000),
                        float(np.percentile(per_call, 99) / 1000),
                        best_total / (len(wave) / 16000))


def paced_cpu_share(new_stream, new_detector, seconds: float, chunk_ms: float = 20) -> float:
    """Share of one core used when audio arrives in real time, like a live microphone."""
    size = int(chunk_ms * 16)
    wave = test_audio(seconds, seed=1)
    stream, detector = new_stream(), new_detector()
    cpu0, wall0 = time.process_time(), time.monotonic()
    for i, start in enumerate(range(0, len(wave), size)):
        due = wall0 + (i + 1) * chunk_ms / 1000
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        detector.process(stream.accept_waveform(wave[start:start + size]),
                         stream.first_new_step)
    return (time.process_time() - cpu0) / (time.monotonic() - wall0)


def run_bench(model, new_stream, new_detector, seconds: float = 60.0, paced_seconds: float = 10.0) -> dict:
    """All figures as a JSON-ready dict."""
    pin_one_core()
    wave = test_audio(seconds)
    chunks = [time_chunks(new_stream, new_detector, wave, ms) for ms in CHUNKS_MS]
    cpu = paced_cpu_share(new_stream, new_detector, paced_seconds) if paced_seconds > 0 else None
    manifest = model.manifest
    return {
        "model": str(manifest.folder), "file": model.file,
        "steps_per_call": new_stream().steps_per_call,
        "model_bytes": manifest.files[model.file]["bytes"],
        "macs_per_second": manifest.raw.get("macs_per_second"),
        "audio_seconds": seconds,
        "chunks": [asdict(c) for c in chunks],
        "paced_cpu_share_one_core": cpu, "paced_seconds": paced_seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def markdown(result: dict) -> str:
    lines = ["| chunk | median latency (us) | p99 latency (us) | real-time factor |",
             "|---|---|---|---|"]
    for c in result["chunks"]:
        lines.append(f"| {c['chunk_ms']:g} ms | {c['median_us']:.1f} | {c['p99_us']:.1f} | "
                     f"{c['real_time_factor']:.5f} |")
    cpu = result["paced_cpu_share_one_core"]
    lines += ["", f"- model: {result['model']}/{result['file']} ({result['model_bytes']} bytes, "
              f"{result['macs_per_second']} MACs per second of audio), "
              f"{result['steps_per_call']} model step(s) per call",
              f"- CPU share of one core at real time (20 ms chunks): "
              + ("-" if cpu is None else f"{100 * cpu:.2f}%"),
              f"- peak resident memory: {result['peak_rss_mb']:.1f} MB"]
    return "\n".join(lines) + "\n"


def write(result: dict, out: str | None) -> str:
    text = markdown(result)
    if out:
        with open(f"{out}.json", "w") as f:
            json.dump(result, f, indent=2)
        with open(f"{out}.md", "w") as f:
            f.write(text)
    return text
