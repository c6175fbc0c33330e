"""Piper voice files (VITS networks in ONNX) spoken here, their generator noise drawn from a seed.

A Piper voice is an ONNX graph with a JSON file beside it (phoneme id map, sample rate). The
graph draws its noise with ``RandomNormalLike`` nodes that onnxruntime seeds from the clock, so
the piper program never says a text the same way twice, and the same seed, code and config
rendered different files each time (docs/experiments.md, 2026-12-04). Here each such node is
replaced by the first values of a new graph input that :meth:`PiperVoice.speak` fills from its
``seed``: the same voice, text, scales and seed give the same samples. The phonemes are the ones
piper's own phonemizer writes: espeak-ng's IPA (the Debian program, run as a separate program),
decomposed into code points (NFD), each followed by the pad id, between the start and end ids;
each sentence is spoken alone, peak-normalised and quantised to 16 bits as piper does. With the
noise scales at zero the samples are the piper program's (tests/test_piper_voice.py). The piper
program itself (GPL-3.0) is neither needed nor run.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import logging
import re
import shutil
import threading
import unicodedata
from pathlib import Path

import numpy as np

from kws.synth.phonemes import ipa

log = logging.getLogger(__name__)

NOISE_VALUES = 1 << 19  # noise values per node and rendering: a 192-channel latent of 30 s
PAD, START, END = "_", "^", "$"
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
CLAUSE_END = re.compile(r"([,:;])\s+")
LOCK = threading.Lock()


def installed() -> bool:
    """Whether Piper voices can speak here: onnx to change their graph and espeak-ng for their
    phonemes (nothing is imported to find out)."""
    return importlib.util.find_spec("onnx") is not None and shutil.which("espeak-ng") is not None


def seeded_graph(model) -> tuple[object, list[str]]:
    """``model`` (an ``onnx.ModelProto``, changed in place) with every ``RandomNormalLike`` node
    replaced by the first values of a new 1-D float input, reshaped to the node's shape; returns
    (model, the new inputs' names). A node with a mean or scale other than 0 and 1 is refused."""
    from onnx import TensorProto, helper

    nodes, inputs = [], []
    for node in model.graph.node:
        if node.op_type != "RandomNormalLike":
            nodes.append(node)
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if attrs.get("mean", 0.0) != 0.0 or attrs.get("scale", 1.0) != 1.0:
            raise ValueError(f"RandomNormalLike {node.name!r} has mean {attrs.get('mean', 0.0)} "
                             f"and scale {attrs.get('scale', 1.0)}; only 0 and 1 are replaced")
        name, x = f"noise_{len(inputs)}", node.input[0]
        inputs.append(name)
        model.graph.input.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["n"]))
        steps = [("Size", [x], [f"{name}/size"]),
                 ("Reshape", [f"{name}/size", f"{name}/one"], [f"{name}/end"]),
                 ("Slice", [name, f"{name}/zero", f"{name}/end"], [f"{name}/head"]),
                 ("Shape", [x], [f"{name}/shape"]),
                 ("Reshape", [f"{name}/head", f"{name}/shape"], node.output)]
        nodes += [helper.make_node(op, ins, outs, name=f"{name}/{i}")
                  for i, (op, ins, outs) in enumerate(steps)]
        model.graph.initializer.extend([helper.make_tensor(f"{name}/one", TensorProto.INT64,
                                                           [1], [1]),
                                        helper.make_tensor(f"{name}/zero", TensorProto.INT64,
                                                           [1], [0])])
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return model, inputs


class PiperVoice:
    """One Piper voice: ``path`` (``*.onnx``) and ``path.json``, loaded once.

    Raises:
        RuntimeError: a missing or unreadable file, or a JSON file without the fields used here
            (each named with the file).
    """

    def __init__(self, path: str | Path) -> None:
        import onnx
        import onnxruntime as ort

        path = Path(path)
        try:
            config = json.loads(Path(f"{path}.json").read_text(encoding="utf-8"))
            self.ids = {str(k): [int(i) for i in v] for k, v in config["phoneme_id_map"].items()}
            self.rate = int(config["audio"]["sample_rate"])
            self.espeak_voice = str(config["espeak"]["voice"])
            self.noise_w = float(config.get("inference", {}).get("noise_w", 0.8))
            model, self.noise_inputs = seeded_graph(onnx.load(str(path)))
        except Exception as e:  # json, onnx and protobuf each raise their own types
            raise RuntimeError(f"piper voice {path} cannot be read: {e!r}") from e
        if not all(k in self.ids for k in (PAD, START, END)):
            raise RuntimeError(f"piper voice {path}.json: its phoneme_id_map lacks one of "
                               f"{PAD!r}, {START!r}, {END!r}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(model.SerializeToString(), options,
                                                providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types
            raise RuntimeError(f"piper voice {path} cannot be run: {e}") from e
        self.path = path

    def phoneme_ids(self, sentence: str) -> list[int]:
        """The voice's ids of one sentence, as piper writes them: start, each phoneme code
        point of espeak-ng's IPA (clause marks kept; one unknown to the voice is left out with
        a warning) followed by the pad, end."""
        body, end = re.fullmatch(r"(.*?)([.!?]?)", sentence.strip(), re.S).groups()
        clauses = CLAUSE_END.split(body)
        text = "".join(ipa(part, self.espeak_voice) if i % 2 == 0 else part + " "
                       for i, part in enumerate(clauses)) + end
        ids = self.ids[START] + self.ids[PAD]
        for phoneme in unicodedata.normalize("NFD", text):
            if phoneme not in self.ids:
                log.warning("piper voice %s has no phoneme %r (in %r)", self.path.name, phoneme,
                            sentence)
                continue
            ids += self.ids[phoneme] + self.ids[PAD]
        return ids + self.ids[END]

    def speak(self, text: str, length_scale: float, noise_scale: float, seed: int | tuple,
              noise_w_scale: float | None = None) -> np.ndarray:
        """``text`` spoken: ``(n,)`` int16 at :attr:`rate` Hz, each sentence alone, its noise
        drawn from ``seed`` (an int or a tuple of ints), with piper's ``length_scale``,
        ``noise_scale`` and ``noise_w`` (by default the voice's own).

        Raises:
            RuntimeError: a text with no phoneme, or one too long for :data:`NOISE_VALUES`.
        """
        rng = np.random.default_rng(seed)
        parts = []
        for sentence in filter(str.strip, SENTENCE_END.split(text)):
            ids = self.phoneme_ids(sentence)
            feeds = {"input": np.asarray([ids], np.int64),
                     "input_lengths": np.asarray([len(ids)], np.int64),
                     "scales": np.asarray([noise_scale, length_scale, self.noise_w
                                           if noise_w_scale is None else noise_w_scale],
                                          np.float32)}
            for name in self.noise_inputs:
                feeds[name] = rng.standard_normal(NOISE_VALUES, dtype=np.float32)
            try:
                audio = self.session.run(None, feeds)[0].ravel()
            except Exception as e:  # onnxruntime raises its own exception types
                raise RuntimeError(f"piper voice {self.path.name} failed on {sentence!r} "
                                   f"({len(ids)} phoneme ids): {e}") from e
            peak = float(np.max(np.abs(audio), initial=0.0))
            audio = audio / peak if peak >= 1e-8 else np.zeros_like(audio)
            parts.append((np.clip(audio, -1.0, 1.0) * 32767).astype(np.int16))
        if not parts:
            raise RuntimeError(f"piper voice {self.path.name}: no sentence in {text!r}")
        return np.concatenate(parts)


@functools.lru_cache(maxsize=None)
def _loaded(path: str) -> PiperVoice:
    return PiperVoice(path)


def voice(path: str) -> PiperVoice:
    """The loaded voice of ``path``, read once per process (renderings share it: a session's
    ``run`` is thread-safe)."""
    with LOCK:
        return _loaded(path)
