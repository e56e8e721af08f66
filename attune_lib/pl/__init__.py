"""Plots, scanpy-style; every function returns the matplotlib Figure."""

from ._basic import embedding, qc, savefig

__all__ = ["embedding", "qc", "savefig"]
