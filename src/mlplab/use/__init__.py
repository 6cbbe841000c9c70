"""Using a trained model: predict on images, export to ONNX, torch.export (.pt2) or TorchScript."""
