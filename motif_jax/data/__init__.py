"""Pairs datasets: the memory-mapped reader (ours and the original Motif layout), label files, and the writer.

`motif collect` lives in :mod:`motif_jax.data.collect` (logic) and :mod:`motif_jax.data.collect_cli` (CLI).
"""

from motif_jax.data.dataset import (
    SCHEMA_VERSION,
    DatasetWriter,
    Label,
    PairsDataset,
    ShardedArray,
    decode_message,
    open_dataset,
)
from motif_jax.data.transitions import transition_text

__all__ = [
    "open_dataset",
    "decode_message",
    "PairsDataset",
    "ShardedArray",
    "DatasetWriter",
    "SCHEMA_VERSION",
    "Label",
    "transition_text",
]
