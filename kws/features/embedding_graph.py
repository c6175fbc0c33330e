"""How kws's ``speech_embedding/embedding_model.onnx`` is made from openWakeWord's.

openWakeWord's graph takes exactly 76 mel frames, ``(B, 76, 32, 1)``, and returns one
embedding, ``(B, 1, 1, 96)``: a clip's embeddings, one every 8 frames, cost one run per window,
each over 76 frames of which the previous window already read 68. Its layers are convolutions
without padding in time and max-pools whose time strides multiply to 8, so the same layers
over a whole ``(B, F, 32, 1)`` sequence give, at output step ``i``, the embedding of frames
``[8 i, 8 i + 76)`` by the same arithmetic (tests: equal to the window-by-window results, and
to openWakeWord's). This module makes that graph: the input's 76 becomes any count, the two
reshapes follow, and a transpose puts time before the 96 channels; the weights are untouched.
The file it writes is the one kws ships, so kws itself never runs this; it needs the ``onnx``
package (extras train, eval, dev)::

    python -m kws.features.embedding_graph .../openwakeword/resources/models/embedding_model.onnx \\
        kws/features/speech_embedding/embedding_model.onnx
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

INPUT_RESHAPE, OUTPUT_RESHAPE = "new_shape__262", "new_shape__273"  # names in openWakeWord's graph


def sequence_graph(window_graph: Path):
    """openWakeWord's window graph (a file) -> the sequence graph (an ``onnx.ModelProto``):
    ``(B, F, 32, 1)`` mel -> ``(B, 1 + (F - 76) // 8, 96)``."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(window_graph))
    graph = model.graph
    shapes = {t.name: numpy_helper.to_array(t).tolist() for t in graph.initializer
              if t.name in (INPUT_RESHAPE, OUTPUT_RESHAPE)}  # not the weights
    if (shapes.get(INPUT_RESHAPE), shapes.get(OUTPUT_RESHAPE), graph.node[-1].op_type) != (
            [-1, 1, 76, 32], [-1, 1, 1, 96], "Reshape"):
        raise ValueError(f"{window_graph}: not openWakeWord's embedding_model.onnx "
                         "(its input or output reshape differs)")
    frames = graph.input[0].type.tensor_type.shape.dim[1]
    frames.Clear()
    frames.dim_param = "mel_frames"
    new = {INPUT_RESHAPE: [0, 1, -1, 32], OUTPUT_RESHAPE: [0, -1, 96]}
    for tensor in graph.initializer:
        if tensor.name in new:
            tensor.CopyFrom(numpy_helper.from_array(np.array(new[tensor.name], np.int64),
                                                    tensor.name))
    # the last convolution gives (B, 96, T, 1): to (B, T, 1, 96), then reshaped to (B, T, 96)
    last = graph.node[-1]
    graph.node.insert(len(graph.node) - 1, helper.make_node(
        "Transpose", [last.input[0]], ["time_major"], perm=[0, 2, 3, 1]))
    last.input[0] = "time_major"
    out = graph.output[0].type.tensor_type.shape
    out.Clear()
    for name in ("batch", "steps"):
        out.dim.add().dim_param = name
    out.dim.add().dim_value = 96
    onnx.checker.check_model(model)
    return model


def main(argv: list[str]) -> None:
    import onnx

    if len(argv) != 2:
        raise SystemExit("usage: python -m kws.features.embedding_graph WINDOW_GRAPH OUT")
    onnx.save(sequence_graph(Path(argv[0])), argv[1])


if __name__ == "__main__":
    main(sys.argv[1:])
