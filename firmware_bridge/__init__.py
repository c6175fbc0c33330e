"""The exported int8 model on a microcontroller: C code generation, host verification, and the
host side of the serial protocol. Reads only the exported artifacts (int8 ONNX + manifest)."""
