"""The torch-free runtime: an exported model (engine), per-stream state, the decision rule on
a stream (detector), and the spotter that joins them.

    model = OnnxModel("path/to/model")        # load once, share between streams
    spotter = Spotter(model)                  # per microphone / file / client
    for chunk in audio:                       # int16 or float32, any size
        for detection in spotter.process(chunk):
            print(detection)

It imports nothing from training, export or evaluation, and never torch.
"""

from kws.runtime.detector import Detection, Detector, model_rule
from kws.runtime.engine import OnnxModel, default_model_dir
from kws.runtime.spotter import Spotter
from kws.runtime.stream import Stream

__all__ = ["Detection", "Detector", "OnnxModel", "Spotter", "Stream", "default_model_dir",
           "model_rule"]
