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


def skills_table(done, llm: bool = True) -> Table:
    """One row per skill of a `--skills` run: its label counts and what this run did."""
    table = Table(title="annotated skills", show_header=True)
    for column in ("skill", *(label.name.lower() for label in Label), "annotated now", "done before"):
        table.add_column(column, justify="left" if column == "skill" else "right")
    if llm:
        table.add_column("asked", justify="right")
        table.add_column("parse failures", justify="right")
    for skill, stats in done:
        counts = [str(stats.label_counts.get(label, 0)) for label in Label]
        extra = [str(stats.asked), str(stats.failed)] if llm else []
        table.add_row(skill, *counts, str(stats.annotated), str(stats.already_done), *extra)
    return table
