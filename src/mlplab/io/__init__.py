"""Files: atomic writes, the safetensors codec, checkpoints and run directories."""
