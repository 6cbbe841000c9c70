"""Pictures of what a network does, and the self-contained HTML report of a run."""
