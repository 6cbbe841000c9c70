"""Data: the IDX format, the registry and where files come from, in-memory datasets, the
stateful batch sampler, normalisation and on-device augmentation."""
