"""livestyle: paintings into real-time video filters (Core ML, TFLite, ONNX)."""

__version__ = "0.1.0"
