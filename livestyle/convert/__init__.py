"""Convert phase: export to Core ML, TFLite and ONNX, quantized copies, running and verifying the exports."""
