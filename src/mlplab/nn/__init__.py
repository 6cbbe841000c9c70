"""Networks: model specs, the tutorials' presets, weight init, and the tensors-only scratch
network."""
