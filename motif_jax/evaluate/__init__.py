"""Evaluation and reporting: `motif evaluate` (episodes → JSON + table, ttyrec → GIF) and `motif plot`
(learning curves)."""
