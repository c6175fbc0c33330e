"""Compare int8 methods on a trained checkpoint: file size, time per call, validation miss rate.

    python benchmarks/quantization.py runs/default [--out runs/quantization.json]

Methods (see export/quantize.py): float32 (reference), ``weights`` (ours: int8 per-column
weights, including the GRU's recurrent matrix), onnxruntime ``dynamic`` and ``static`` (QDQ,
calibrated on validation features). Miss rate is the mean over keywords at 0.5 false alarms per
hour on the run's validation split, positives at 10 dB SNR.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from kws.core.contract import FLOAT_FILE, MANIFEST
from kws.data import corpora as data
from kws.export.exporter import validation_report
from kws.export.graph import build_graph, weights_from_model
from kws.export.manifest import build_manifest
from kws.export.quantize import quantize_weights, quantize_with_onnxruntime
from kws.features.cache import FeatureCache
from kws.features.logmel import log_mel
from kws.metrics.evaluate import miss_at
from kws.runtime import OnnxModel
from kws.train.checkpoint import load_model


def float_weight_share(path: Path) -> float:
    """Share of weight values still stored as float32."""
    sizes = {"float": 0, "int8": 0}
    for init in onnx.load(str(path)).graph.initializer:
        arr = numpy_helper.to_array(init)
        if arr.size > 100:
            sizes["int8" if arr.dtype == np.int8 else "float"] += arr.size
    return sizes["float"] / max(1, sum(sizes.values()))


def time_per_call(model: OnnxModel, feats: np.ndarray, calls: int = 2000) -> float:
    """Microseconds per one-step call (3 frames)."""
    state = model.initial_state()
    for _ in range(100):
        model.step(feats, state)
    start = time.perf_counter()
    for _ in range(calls):
        model.step(feats, state)
    return (time.perf_counter() - start) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--out")
    args = parser.parse_args()
    model, cfg = load_model(args.run)
    utts = data.collect(cfg)
    val = data.load_split(utts, "val", cfg.model.keywords, cfg.frontend.sample_rate)
    noise = data.load_noise(cfg)
    featurize = FeatureCache(cfg.frontend)
    feats = [log_mel(w[:48000], cfg.frontend) for _, w in val.negatives[:40]]
    calib = [f[None, :len(f) - len(f) % 3] for f in feats if len(f) >= 3]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "float"
        base.mkdir()
        float_graph = build_graph(weights_from_model(model))
        onnx.save(float_graph, str(base / FLOAT_FILE))
        for method in ("float32", "weights", "dynamic", "static"):
            folder = Path(tmp) / method
            folder.mkdir()
            path = folder / FLOAT_FILE  # each folder holds one model under the float name
            if method == "float32":
                shutil.copy(base / FLOAT_FILE, path)
            elif method == "weights":
                onnx.save(quantize_weights(float_graph), str(path))
            else:
                try:
                    quantize_with_onnxruntime(base / FLOAT_FILE, path, method, calib,
                                              (1, 1, cfg.model.hidden))
                except Exception as e:  # noqa: BLE001 - report what the tool could not do
                    results[method] = {"error": f"{type(e).__name__}: {e}"}
                    continue
            (folder / MANIFEST).write_text(json.dumps(build_manifest(folder, cfg, [FLOAT_FILE],
                                                                     {})))
            runtime = OnnxModel(folder, FLOAT_FILE)
            report, _ = validation_report(folder, FLOAT_FILE, cfg, val, noise, featurize)
            results[method] = {
                "bytes": path.stat().st_size,
                "float_weight_share": round(float_weight_share(path), 3),
                "us_per_step_call": round(time_per_call(runtime, calib[0][0, :3]), 1),
                "val_miss_at_0.5_fa_per_hour": round(miss_at(report), 4),
            }
            print(method, results[method], flush=True)
    text = json.dumps({"run": args.run, "methods": results}, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
