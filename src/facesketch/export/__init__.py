"""Exports of trained generators: the light safetensors export (both generators + config) and ONNX (one generator)."""
