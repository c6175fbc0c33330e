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

from kws.core.contract import INT8_FILE, Manifest, load_manifest
from kws.firmware.onnx_reader import read_initializers

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
    """Weights, scales and biases from the manifest's folder's int8 ONNX file, checked against
    each other and the manifest (bands per step, keywords, state size).

    Raises:
        ValueError: the file lacks int8 weights or their shapes do not fit together.
    """
    path = manifest.path_of(INT8_FILE)
    arrays = read_initializers(path)
    names = [f"{n}_{part}" for n in LAYERS for part in ("w_int8", "w_scale", "b")]
    missing = [name for name in names if name not in arrays]
    if missing:
        raise ValueError(f"{path}: no int8 weights {missing}; export it with the default "
                         "'weights' quantization")
    hh = arrays["hh_w_int8"]
    if hh.ndim != 2 or hh.shape[1] != 3 * hh.shape[0]:
        raise ValueError(f"{path}: an ensemble of {hh.shape[1] // max(1, 3 * hh.shape[0])} GRUs "
                         "side by side; the firmware runs single models")
    t = Tensors({n: np.ascontiguousarray(arrays[f"{n}_w_int8"].T) for n in LAYERS},
                {n: arrays[f"{n}_w_scale"].astype(np.float32) for n in LAYERS},
                {n: arrays[f"{n}_b"].astype(np.float32) for n in LAYERS},
                np.array([manifest.thresholds[k] for k in manifest.keywords], np.float32))
    features, proj, hidden, keywords = t.shape
    want = {"proj": (proj, features), "ih": (3 * hidden, proj), "hh": (3 * hidden, hidden),
            "out": (keywords + 1, hidden)}
    fits = all(t.weights[n].shape == want[n] and t.weights[n].dtype == np.int8
               and t.scales[n].shape == t.biases[n].shape == (want[n][0],) for n in LAYERS)
    expected = (manifest.step_frames * manifest.frontend.n_mels, manifest.state_shape[-1],
                len(manifest.keywords))
    if not fits or (features, hidden, keywords) != expected:
        raise ValueError(f"{path}: weight shapes {[t.weights[n].shape for n in LAYERS]} do not "
                         f"fit together or the manifest (features, hidden, keywords "
                         f"{expected})")
    return t


def blob_shape(blob: bytes) -> tuple[int, int, int, int]:
    """(features, proj, hidden, keywords) from a blob's header."""
    return struct.unpack_from("<4I", blob, 8)


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
    """The blob of an exported model folder."""
    return pack(read_tensors(load_manifest(folder)))
