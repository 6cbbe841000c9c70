"""Using a trained model: predict on images, export to ONNX or TorchScript."""
