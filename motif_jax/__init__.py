"""Motif in JAX: reinforcement learning on NetHack with intrinsic rewards from LLM preferences."""

__version__ = "0.1.0"
