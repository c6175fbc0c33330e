"""Build the streaming ONNX graph of a :class:`kws.model.KeywordModel` from its weights.

The GRU is written out as MatMul/Add/Sigmoid/Tanh inside a ``Scan`` over model steps (not the
built-in ``GRU`` op, which onnxruntime cannot quantize), so every weight matrix is a plain
initializer that :mod:`kws.export.quantize` can store as int8:

    features (1,T,M) -Reshape-> (N, S*M) -MatMul,Add,Relu-> (N,P) -MatMul,Add-> gate inputs (N,3H)
    Scan over N with state h (1,H):
        gh = h Whh + bhh;  r,z = sigmoid(gi_rz + gh_rz);  n = tanh(gi_n + r * gh_n)
        h' = n + z * (h - n)
    hidden (N,H) -MatMul,Add,Softmax-> drop "none" -> scores (1,N,K)

The feature normalization (mean/std) is folded into the first MatMul.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from kws.core.contract import INPUT_FEATURES, INPUT_STATE, OPSET, OUTPUT_SCORES, OUTPUT_STATE

MATRICES = ("proj_w", "ih_w", "hh_w", "out_w")


@dataclass(frozen=True)
class Weights:
    """Model weights in graph layout (float32): matrices are ``(inputs, outputs)``.

    Attributes:
        proj_w, proj_b: ``(S*M, P)``, ``(P,)`` with the feature normalization folded in.
        ih_w, ih_b: ``(P, 3H)``, ``(3H,)``; gate order r, z, n (as torch.nn.GRU).
        hh_w, hh_b: ``(H, 3H)``, ``(3H,)``.
        out_w, out_b: ``(H, K+1)``, ``(K+1,)``; column 0 is "none".
        n_mels, step_frames: feature bands and frames per step.
    """

    proj_w: np.ndarray
    proj_b: np.ndarray
    ih_w: np.ndarray
    ih_b: np.ndarray
    hh_w: np.ndarray
    hh_b: np.ndarray
    out_w: np.ndarray
    out_b: np.ndarray
    n_mels: int
    step_frames: int

    @property
    def hidden(self) -> int:
        return self.hh_w.shape[0]

    @property
    def n_keywords(self) -> int:
        return self.out_w.shape[1] - 1


def weights_from_model(model) -> Weights:
    """Extract (and fold) the weights of a torch ``KeywordModel``."""
    sd = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    s = model.step_frames
    mean, std = np.tile(sd["feat_mean"], s), np.tile(sd["feat_std"], s)
    w = sd["proj.weight"].T  # (S*M, P)
    proj_w = w / std[:, None]
    proj_b = sd["proj.bias"] - (mean / std) @ w
    return Weights(proj_w.astype(np.float32), proj_b.astype(np.float32),
                   sd["gru.weight_ih_l0"].T.copy(), sd["gru.bias_ih_l0"],
                   sd["gru.weight_hh_l0"].T.copy(), sd["gru.bias_hh_l0"],
                   sd["out.weight"].T.copy(), sd["out.bias"], model.n_mels, s)


def state_dict_from_export(path: Path, n_mels: int) -> dict[str, np.ndarray]:
    """A ``KeywordModel`` state dict (numpy arrays) from an exported float graph of ``n_mels``
    feature bands: the inverse of :func:`weights_from_model`, with the feature normalization
    left folded into the projection (mean 0, std 1). For fine-tuning an exported model whose run
    folder is gone."""
    arrays = {i.name: numpy_helper.to_array(i).astype(np.float32)
              for i in onnx.load(str(path)).graph.initializer}
    missing = [n for n in MATRICES + ("proj_b", "ih_b", "hh_b", "out_b") if n not in arrays]
    if missing:
        raise ValueError(f"{path}: no float weights {missing} (the float model.onnx of kws "
                         "export is needed)")
    return {"feat_mean": np.zeros(n_mels, np.float32), "feat_std": np.ones(n_mels, np.float32),
            "proj.weight": arrays["proj_w"].T.copy(), "proj.bias": arrays["proj_b"],
            "gru.weight_ih_l0": arrays["ih_w"].T.copy(), "gru.bias_ih_l0": arrays["ih_b"],
            "gru.weight_hh_l0": arrays["hh_w"].T.copy(), "gru.bias_hh_l0": arrays["hh_b"],
            "out.weight": arrays["out_w"].T.copy(), "out.bias": arrays["out_b"]}


def _gru_body(hidden: int) -> onnx.GraphProto:
    h = hidden
    nodes = [
        helper.make_node("MatMul", ["h", "hh_w"], ["gh0"]),
        helper.make_node("Add", ["gh0", "hh_b"], ["gh"]),
        helper.make_node("Split", ["gi", "split_rz_n"], ["gi_rz", "gi_n"], axis=1),
        helper.make_node("Split", ["gh", "split_rz_n"], ["gh_rz", "gh_n"], axis=1),
        helper.make_node("Add", ["gi_rz", "gh_rz"], ["rz_pre"]),
        helper.make_node("Sigmoid", ["rz_pre"], ["rz"]),
        helper.make_node("Split", ["rz", "split_r_z"], ["r", "z"], axis=1),
        helper.make_node("Mul", ["r", "gh_n"], ["r_gh_n"]),
        helper.make_node("Add", ["gi_n", "r_gh_n"], ["n_pre"]),
        helper.make_node("Tanh", ["n_pre"], ["n"]),
        helper.make_node("Sub", ["h", "n"], ["h_minus_n"]),
        helper.make_node("Mul", ["z", "h_minus_n"], ["z_h_minus_n"]),
        helper.make_node("Add", ["n", "z_h_minus_n"], ["h_new"]),
        helper.make_node("Identity", ["h_new"], ["h_out"]),
    ]
    return helper.make_graph(
        nodes, "gru_step",
        [helper.make_tensor_value_info("h", TensorProto.FLOAT, [1, h]),
         helper.make_tensor_value_info("gi", TensorProto.FLOAT, [1, 3 * h])],
        [helper.make_tensor_value_info("h_new", TensorProto.FLOAT, [1, h]),
         helper.make_tensor_value_info("h_out", TensorProto.FLOAT, [1, h])])


def build_graph(w: Weights, name: str = "kws") -> onnx.ModelProto:
    """The float32 streaming-step model (see the module docstring)."""
    h, k = w.hidden, w.n_keywords
    consts = {
        "stack_shape": np.array([-1, w.step_frames * w.n_mels], np.int64),
        "split_rz_n": np.array([2 * h, h], np.int64),
        "split_r_z": np.array([h, h], np.int64),
        "axis0": np.array([0], np.int64), "axis1": np.array([1], np.int64),
        "kw_first": np.array([1], np.int64), "kw_end": np.array([k + 1], np.int64),
    }
    arrays = {n: getattr(w, n) for n in ("proj_w", "proj_b", "ih_w", "ih_b", "hh_w", "hh_b",
                                         "out_w", "out_b")}
    initializers = [numpy_helper.from_array(v, n) for n, v in {**arrays, **consts}.items()]
    nodes = [
        helper.make_node("Reshape", [INPUT_FEATURES, "stack_shape"], ["stacked"]),
        helper.make_node("MatMul", ["stacked", "proj_w"], ["proj0"]),
        helper.make_node("Add", ["proj0", "proj_b"], ["proj1"]),
        helper.make_node("Relu", ["proj1"], ["proj"]),
        helper.make_node("MatMul", ["proj", "ih_w"], ["gates0"]),
        helper.make_node("Add", ["gates0", "ih_b"], ["gates1"]),
        helper.make_node("Unsqueeze", ["gates1", "axis1"], ["gates"]),
        helper.make_node("Squeeze", [INPUT_STATE, "axis0"], ["h0"]),
        helper.make_node("Scan", ["h0", "gates"], ["h_last", "hidden_seq"], num_scan_inputs=1,
                         body=_gru_body(h)),
        helper.make_node("Unsqueeze", ["h_last", "axis0"], [OUTPUT_STATE]),
        helper.make_node("Squeeze", ["hidden_seq", "axis1"], ["hidden"]),
        helper.make_node("MatMul", ["hidden", "out_w"], ["logits0"]),
        helper.make_node("Add", ["logits0", "out_b"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=-1),
        helper.make_node("Slice", ["probs", "kw_first", "kw_end", "axis1"], ["kw_probs"]),
        helper.make_node("Unsqueeze", ["kw_probs", "axis0"], [OUTPUT_SCORES]),
    ]
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info(INPUT_FEATURES, TensorProto.FLOAT, [1, "T", w.n_mels]),
         helper.make_tensor_value_info(INPUT_STATE, TensorProto.FLOAT, [1, 1, h])],
        [helper.make_tensor_value_info(OUTPUT_SCORES, TensorProto.FLOAT, [1, "steps", k]),
         helper.make_tensor_value_info(OUTPUT_STATE, TensorProto.FLOAT, [1, 1, h])],
        initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="kws")
    model.ir_version = 9
    onnx.checker.check_model(model)
    return model
