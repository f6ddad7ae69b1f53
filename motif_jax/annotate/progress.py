"""The end-of-run summary table of `motif annotate` (its progress bar is ``motif_jax.progress``)."""

from __future__ import annotations

from rich.table import Table

from motif_jax.data.dataset import Label


def summary_table(stats, llm: bool = True) -> Table:
    """Label counts over the chunk and, for LLM annotators, where the answers came from."""
    table = Table(title=f"annotator {stats.name}", show_header=True)
    table.add_column("label")
    table.add_column("pairs", justify="right")
    table.add_column("share", justify="right")
    total = max(1, sum(stats.label_counts.values()))
    for label in Label:
        count = stats.label_counts.get(label, 0)
        table.add_row(f"{label.value} {label.name.lower()}", str(count), f"{count / total:.1%}")
    table.add_section()
    rows = [("annotated now", stats.annotated), ("done before", stats.already_done)]
    if llm:
        rows += [
            ("identical captions (tie, no call)", stats.identical),
            ("answered from cache", stats.cache_hits),
            ("unique pairs asked", stats.asked),
            ("LLM requests", stats.requests),
            ("retried", stats.retried),
            ("parse failures", f"{stats.failed} ({stats.failure_rate:.1%})"),
        ]
    rows.append(("pairs/s", f"{stats.pairs_per_second:.1f}"))
    for key, value in rows:
        table.add_row(key, str(value), "")
    return table
