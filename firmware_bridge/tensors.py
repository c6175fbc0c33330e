"""The model blob: int8 weights and float scales/biases in the layout the C runtime parses.

Layout (little-endian, every offset 4-byte aligned)::

    u32 magic "KWSM", u32 version 1, u32 features (S*M), u32 proj P, u32 hidden H, u32 keywords K
    int8 proj_w (P, S*M) | ih_w (3H, P) | hh_w (3H, H) | out_w (K+1, H)   (outputs, inputs)
    zero padding to 4 bytes
    f32 proj_s (P) proj_b (P) ih_s (3H) ih_b (3H) hh_s (3H) hh_b (3H) out_s (K+1) out_b (K+1)
    f32 thresholds (K)

Weights and scales are read from ``model.int8.onnx`` (the very values onnxruntime runs).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kws.contract import INT8_FILE, Manifest

MAGIC, VERSION = 0x4D53574B, 1
LAYERS = ("proj", "ih", "hh", "out")


@dataclass(frozen=True)
class Tensors:
    """int8 weights (outputs, inputs), per-output scales and biases of each layer."""

    weights: dict[str, np.ndarray]
    scales: dict[str, np.ndarray]
    biases: dict[str, np.ndarray]
    thresholds: np.ndarray

    @property
    def shape(self) -> tuple[int, int, int, int]:
        proj = self.weights["proj"]
        return (proj.shape[1], proj.shape[0], self.weights["hh"].shape[1],
                self.weights["out"].shape[0] - 1)


def read_tensors(manifest: Manifest) -> Tensors:
    """Weights, scales and biases from the manifest's folder's int8 ONNX file."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(manifest.path_of(INT8_FILE)))
    arrays = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    missing = [f"{n}_w_int8" for n in LAYERS if f"{n}_w_int8" not in arrays]
    if missing:
        raise ValueError(f"{manifest.path_of(INT8_FILE)}: no int8 weights {missing}; export it "
                         "with the default 'weights' quantization")
    thresholds = np.array([manifest.thresholds[k] for k in manifest.keywords], np.float32)
    return Tensors({n: np.ascontiguousarray(arrays[f"{n}_w_int8"].T) for n in LAYERS},
                   {n: arrays[f"{n}_w_scale"].astype(np.float32) for n in LAYERS},
                   {n: arrays[f"{n}_b"].astype(np.float32) for n in LAYERS}, thresholds)


def pack(t: Tensors) -> bytes:
    """The blob bytes (see the module docstring)."""
    head = struct.pack("<6I", MAGIC, VERSION, *t.shape)
    ints = b"".join(t.weights[n].astype(np.int8).tobytes() for n in LAYERS)
    ints += bytes(-len(ints) % 4)
    floats = b"".join(np.concatenate([t.scales[n], t.biases[n]]).astype("<f4").tobytes()
                      for n in LAYERS)
    return head + ints + floats + t.thresholds.astype("<f4").tobytes()


def crc32(data: bytes) -> int:
    return zlib.crc32(data) & 0xFFFFFFFF


def load_blob(folder: str | Path) -> bytes:
    from kws.contract import load_manifest

    return pack(read_tensors(load_manifest(folder)))
