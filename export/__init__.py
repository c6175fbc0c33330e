"""Turn a trained checkpoint into the files a device runs: float and int8 ONNX + a manifest."""
