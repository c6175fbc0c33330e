"""Build the streaming ONNX graph of a :class:`kws.train.model.KeywordModel` from its weights.

The GRU is written out as MatMul/Add/Sigmoid/Tanh inside a ``Scan`` over model steps (not the
built-in ``GRU`` op, which onnxruntime cannot quantize), so every weight matrix is a plain 2-D
initializer that :mod:`kws.export.quantize` can store as int8. A model of N members (a merged
ensemble) runs N GRUs side by side as one batched MatMul, with no weight between members:

    features (1,T,M) -Reshape-> (T, S*M) -MatMul,Add,Relu-> (T, N*P) -> (N, T, P)
      -MatMul ih (N,P,3H), Add-> gate inputs (T, N, 1, 3H)
    Scan over T with state h (N,1,H):
        gh = h Whh + bhh;  r,z = sigmoid(gi_rz + gh_rz);  n = tanh(gi_n + r * gh_n)
        h' = n + z * (h - n)
    hidden (T, N*H) -MatMul,Add,Softmax-> drop "none" -> scores (1,T,K)

``ih_w`` and ``hh_w`` are stored stacked, ``(P, N*3H)`` and ``(H, N*3H)`` (member i in columns
``i*3H..``), and reshaped to ``(N, P, 3H)`` and ``(N, H, 3H)`` in the graph. The feature
normalization (mean/std) is folded into the first MatMul.
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
    """Model weights in graph layout (float32): matrices are ``(inputs, outputs)``; N members of
    P projections and H units each.

    Attributes:
        proj_w, proj_b: ``(S*M, N*P)``, ``(N*P,)`` with the feature normalization folded in.
        ih_w, ih_b: ``(P, N*3H)``, ``(N*3H,)``: member i's columns ``i*3H..``, gate order r, z,
            n (as torch.nn.GRU).
        hh_w, hh_b: ``(H, N*3H)``, ``(N*3H,)`` likewise.
        out_w, out_b: ``(N*H, K+1+A)``, ``(K+1+A,)``; column 0 is "none", A auxiliary classes
            after the K keywords (scored in the softmax, never output).
        n_mels, step_frames: feature bands and frames per step.
        keywords: K, the classes output after "none" (``None``: every one).
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
    keywords: int | None = None

    @property
    def unit(self) -> int:
        """H: GRU units per member."""
        return self.hh_w.shape[0]

    @property
    def members(self) -> int:
        return self.hh_w.shape[1] // (3 * self.unit)

    @property
    def n_keywords(self) -> int:
        return self.out_w.shape[1] - 1 if self.keywords is None else self.keywords


def weights_from_model(model) -> Weights:
    """Extract (and fold) the weights of a torch ``KeywordModel``."""
    sd = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    s, n = model.step_frames, model.cfg.members
    mean, std = np.tile(sd["feat_mean"], s), np.tile(sd["feat_std"], s)
    w = sd["proj.weight"].T  # (S*M, N*P)
    proj_w = w / std[:, None]
    proj_b = sd["proj.bias"] - (mean / std) @ w

    def stacked(name: str) -> np.ndarray:
        return np.concatenate([sd[f"grus.{i}.{name}"].T for i in range(n)], axis=1)

    def biases(name: str) -> np.ndarray:
        return np.concatenate([sd[f"grus.{i}.{name}"] for i in range(n)])

    return Weights(proj_w.astype(np.float32), proj_b.astype(np.float32),
                   stacked("weight_ih_l0"), biases("bias_ih_l0"),
                   stacked("weight_hh_l0"), biases("bias_hh_l0"),
                   sd["out.weight"].T.copy(), sd["out.bias"], model.n_mels, s,
                   len(model.cfg.keywords))


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
    h = arrays["hh_w"].shape[0]
    out = {"feat_mean": np.zeros(n_mels, np.float32), "feat_std": np.ones(n_mels, np.float32),
           "proj.weight": arrays["proj_w"].T.copy(), "proj.bias": arrays["proj_b"],
           "out.weight": arrays["out_w"].T.copy(), "out.bias": arrays["out_b"]}
    for i in range(arrays["hh_w"].shape[1] // (3 * h)):
        cols = slice(3 * h * i, 3 * h * (i + 1))
        out |= {f"grus.{i}.weight_ih_l0": arrays["ih_w"][:, cols].T.copy(),
                f"grus.{i}.bias_ih_l0": arrays["ih_b"][cols],
                f"grus.{i}.weight_hh_l0": arrays["hh_w"][:, cols].T.copy(),
                f"grus.{i}.bias_hh_l0": arrays["hh_b"][cols]}
    return out


def _gru_body(n: int, h: int) -> onnx.GraphProto:
    """One step of N GRUs on (N, 1, ...) tensors; ``hh3``, ``hh_b3`` come from the outer graph."""
    nodes = [
        helper.make_node("MatMul", ["h", "hh3"], ["gh0"]),
        helper.make_node("Add", ["gh0", "hh_b3"], ["gh"]),
        helper.make_node("Split", ["gi", "split_rz_n"], ["gi_rz", "gi_n"], axis=2),
        helper.make_node("Split", ["gh", "split_rz_n"], ["gh_rz", "gh_n"], axis=2),
        helper.make_node("Add", ["gi_rz", "gh_rz"], ["rz_pre"]),
        helper.make_node("Sigmoid", ["rz_pre"], ["rz"]),
        helper.make_node("Split", ["rz", "split_r_z"], ["r", "z"], axis=2),
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
        [helper.make_tensor_value_info("h", TensorProto.FLOAT, [n, 1, h]),
         helper.make_tensor_value_info("gi", TensorProto.FLOAT, [n, 1, 3 * h])],
        [helper.make_tensor_value_info("h_new", TensorProto.FLOAT, [n, 1, h]),
         helper.make_tensor_value_info("h_out", TensorProto.FLOAT, [n, 1, h])])


def _members_first(source: str, shape: str, out: str) -> list[onnx.NodeProto]:
    """Nodes that reshape ``source`` to ``shape`` ``(A, N, B)`` and put the member axis first:
    ``out`` is ``(N, A, B)``."""
    return [helper.make_node("Reshape", [source, shape], [f"{out}_by_member"]),
            helper.make_node("Transpose", [f"{out}_by_member"], [out], perm=[1, 0, 2])]


def build_graph(w: Weights, name: str = "kws") -> onnx.ModelProto:
    """The float32 streaming-step model (see the module docstring)."""
    n, h, k = w.members, w.unit, w.n_keywords
    p = w.ih_w.shape[0]
    consts = {
        "stack_shape": np.array([-1, w.step_frames * w.n_mels], np.int64),
        "members_shape": np.array([-1, n, p], np.int64),
        "ih_shape": np.array([p, n, 3 * h], np.int64),
        "hh_shape": np.array([h, n, 3 * h], np.int64),
        "bias_shape": np.array([n, 1, 3 * h], np.int64),
        "unit_shape": np.array([n, 1, h], np.int64),
        "state_shape": np.array([1, 1, n * h], np.int64),
        "hidden_shape": np.array([-1, n * h], np.int64),
        "split_rz_n": np.array([2 * h, h], np.int64),
        "split_r_z": np.array([h, h], np.int64),
        "axis0": np.array([0], np.int64), "axis1": np.array([1], np.int64),
        "axis2": np.array([2], np.int64),
        "kw_first": np.array([1], np.int64), "kw_end": np.array([k + 1], np.int64),
    }
    arrays = {m: getattr(w, m) for m in ("proj_w", "proj_b", "ih_w", "ih_b", "hh_w", "hh_b",
                                         "out_w", "out_b")}
    initializers = [numpy_helper.from_array(v, m) for m, v in {**arrays, **consts}.items()]
    nodes = [
        helper.make_node("Reshape", [INPUT_FEATURES, "stack_shape"], ["stacked"]),
        helper.make_node("MatMul", ["stacked", "proj_w"], ["proj0"]),
        helper.make_node("Add", ["proj0", "proj_b"], ["proj1"]),
        helper.make_node("Relu", ["proj1"], ["proj"]),
        *_members_first("proj", "members_shape", "proj_ntp"),
        *_members_first("ih_w", "ih_shape", "ih3"),
        helper.make_node("MatMul", ["proj_ntp", "ih3"], ["gates0"]),
        helper.make_node("Reshape", ["ih_b", "bias_shape"], ["ih_b3"]),
        helper.make_node("Add", ["gates0", "ih_b3"], ["gates_ntg"]),
        helper.make_node("Transpose", ["gates_ntg"], ["gates_tng"], perm=[1, 0, 2]),
        helper.make_node("Unsqueeze", ["gates_tng", "axis2"], ["gates"]),
        *_members_first("hh_w", "hh_shape", "hh3"),
        helper.make_node("Reshape", ["hh_b", "bias_shape"], ["hh_b3"]),
        helper.make_node("Reshape", [INPUT_STATE, "unit_shape"], ["h0"]),
        helper.make_node("Scan", ["h0", "gates"], ["h_last", "hidden_seq"], num_scan_inputs=1,
                         body=_gru_body(n, h)),
        helper.make_node("Reshape", ["h_last", "state_shape"], [OUTPUT_STATE]),
        helper.make_node("Reshape", ["hidden_seq", "hidden_shape"], ["hidden"]),
        helper.make_node("MatMul", ["hidden", "out_w"], ["logits0"]),
        helper.make_node("Add", ["logits0", "out_b"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=-1),
        helper.make_node("Slice", ["probs", "kw_first", "kw_end", "axis1"], ["kw_probs"]),
        helper.make_node("Unsqueeze", ["kw_probs", "axis0"], [OUTPUT_SCORES]),
    ]
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info(INPUT_FEATURES, TensorProto.FLOAT, [1, "T", w.n_mels]),
         helper.make_tensor_value_info(INPUT_STATE, TensorProto.FLOAT, [1, 1, n * h])],
        [helper.make_tensor_value_info(OUTPUT_SCORES, TensorProto.FLOAT, [1, "steps", k]),
         helper.make_tensor_value_info(OUTPUT_STATE, TensorProto.FLOAT, [1, 1, n * h])],
        initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="kws")
    model.ir_version = 9
    onnx.checker.check_model(model)
    return model
