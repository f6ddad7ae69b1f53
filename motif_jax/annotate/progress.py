"""A rich progress bar showing pairs/s and ETA, and the end-of-run summary table."""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)
from rich.table import Table
from rich.text import Text

from motif_jax.annotate.verdict import LABEL_NAMES


class RateColumn(ProgressColumn):
    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.1f} pairs/s" if speed else "- pairs/s", style="progress.data.speed")


@contextlib.contextmanager
def progress_bar(total: int, description: str, enabled: bool = True) -> Iterator[Callable[[int], None]]:
    """Yields ``advance(n)``; a no-op when disabled (tests, logs)."""
    if not enabled:
        yield lambda n: None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), RateColumn(),
               TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True)) as progress:
        task = progress.add_task(description, total=total)
        yield lambda n: progress.advance(task, n)


def summary_table(stats) -> Table:
    """Label counts over the chunk and where the answers came from."""
    table = Table(title=f"annotator {stats.name}", show_header=True)
    table.add_column("label")
    table.add_column("pairs", justify="right")
    table.add_column("share", justify="right")
    total = max(1, sum(stats.label_counts.values()))
    for label, name in LABEL_NAMES.items():
        count = stats.label_counts.get(label, 0)
        table.add_row(f"{label} {name}", str(count), f"{count / total:.1%}")
    table.add_section()
    rows = [("annotated now", stats.annotated), ("done before", stats.already_done),
            ("identical captions (tie, no call)", stats.identical),
            ("answered from cache", stats.cache_hits), ("unique pairs asked", stats.asked),
            ("LLM requests", stats.requests), ("retried", stats.retried),
            ("parse failures", f"{stats.failed} ({stats.failure_rate:.1%})"),
            ("pairs/s", f"{stats.pairs_per_second:.1f}")]
    for key, value in rows:
        table.add_row(key, str(value), "")
    return table
