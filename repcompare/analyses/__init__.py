"""Orchestration of capture, storage and similarity math into results (no printing)."""
