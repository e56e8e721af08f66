"""Datasets: manifests resolved through pooch, readers returning MuData, and the multiome simulator."""

from ._simulate import simulate_multiome

__all__ = ["simulate_multiome"]
