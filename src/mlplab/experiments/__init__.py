"""Experiments over many runs: reproducing the classic tutorials' results."""
