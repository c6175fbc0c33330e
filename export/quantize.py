"""int8 quantization of the exported graph.

Three methods, compared by ``benchmarks/quantization.py`` (figures in the README):

* ``weights`` (the default, ours): every weight matrix stored as int8 with one symmetric scale per
  output column, restored by ``DequantizeLinear`` nodes that onnxruntime folds into constants when
  the session loads (see ``kws.core.contract.SESSION_CONFIG``). All four matrices are int8,
  including the GRU's recurrent one inside the ``Scan`` body; activations stay float32. The
  firmware bridge reads the same int8 values and scales.
* ``dynamic``: onnxruntime's ``quantize_dynamic``. It does not reach into the ``Scan`` body, so the
  recurrent matrix (half the weights) stays float32, and the per-call activation quantization is
  slower on this small model.
* ``static``: onnxruntime's ``quantize_static`` (QDQ) calibrated on real features; same limit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import onnx
from onnx import helper, numpy_helper

from kws.core.contract import INPUT_FEATURES, INPUT_STATE
from kws.export.graph import MATRICES

METHODS = ("weights", "dynamic", "static")


def quantize_columns(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-column int8: ``w ~= q * scale[None, :]`` with q in [-127, 127].

    Returns:
        (q ``(rows, cols)`` int8, scale ``(cols,)`` float32).
    """
    scale = (np.abs(w).max(axis=0) / 127.0).astype(np.float32)
    scale[scale == 0] = 1.0
    q = np.clip(np.rint(w / scale[None, :]), -127, 127).astype(np.int8)
    return q, scale


def quantize_weights(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` whose weight matrices are int8 + per-column scales (method
    ``weights``)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    dequantize = []
    for init in list(graph.initializer):
        if init.name not in MATRICES:
            continue
        q, scale = quantize_columns(numpy_helper.to_array(init))
        graph.initializer.remove(init)
        graph.initializer.extend([
            numpy_helper.from_array(q, f"{init.name}_int8"),
            numpy_helper.from_array(scale, f"{init.name}_scale")])
        dequantize.append(helper.make_node(  # no zero point: it defaults to 0 (symmetric)
            "DequantizeLinear", [f"{init.name}_int8", f"{init.name}_scale"], [init.name], axis=1))
    for node in reversed(dequantize):
        graph.node.insert(0, node)
    onnx.checker.check_model(out)
    return out


def quantize_with_onnxruntime(float_path: Path, out_path: Path, method: str,
                              calibration: list[np.ndarray] | None = None,
                              state_shape: tuple[int, ...] = ()) -> None:
    """onnxruntime's dynamic or static quantization (for comparison; see the module docstring).

    Args:
        calibration: ``(1, T, n_mels)`` feature arrays of real audio (``static`` only).
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    if method == "dynamic":
        quantize_dynamic(str(float_path), str(out_path), weight_type=QuantType.QInt8)
        return
    if method != "static":
        raise ValueError(f"method {method!r} is not one of {METHODS}")
    if not calibration:
        raise ValueError("static quantization needs calibration features")

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items: Iterator = iter(calibration)

        def get_next(self):
            feats = next(self.items, None)
            if feats is None:
                return None
            return {INPUT_FEATURES: feats, INPUT_STATE: np.zeros(state_shape, np.float32)}

    quantize_static(str(float_path), str(out_path), Reader(), weight_type=QuantType.QInt8,
                    activation_type=QuantType.QInt8, per_channel=True)
