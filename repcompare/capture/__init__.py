"""Model specs and checkpoints, layer discovery and selection, activation capture."""
