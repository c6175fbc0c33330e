"""The torch-free runtime: an exported model (engine), per-stream state, and a detector.

    model = OnnxModel("path/to/model")        # load once, share between streams
    stream = model.create_stream()            # per microphone / client
    detector = Detector.from_manifest(model.manifest, DetectorConfig())
    for chunk in audio:                        # int16 or float32, any size
        for det in detector.process(stream.accept_waveform(chunk), stream.first_new_step):
            print(det)
"""

from kws.runtime.detector import Detection, Detector, DetectorConfig
from kws.runtime.session import OnnxModel, default_model_dir
from kws.runtime.stream import Stream

__all__ = ["Detection", "Detector", "DetectorConfig", "OnnxModel", "Stream", "default_model_dir"]
