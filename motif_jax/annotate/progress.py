"""A rich progress bar showing pairs/s and ETA, and the end-of-run summary table."""

from __future__ import annotations

import contextlib
import time
from typing import Callable, Iterator

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)
from rich.table import Table
from rich.text import Text

from motif_jax.data.dataset import Label


class RateColumn(ProgressColumn):
    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.1f} pairs/s" if speed else "- pairs/s", style="progress.data.speed")


@contextlib.contextmanager
def progress_bar(total: int, description: str, enabled: bool = True,
                 line_every_s: float = 30.0) -> Iterator[Callable[[int], None]]:
    """Yields ``advance(n)``: a live bar on a terminal, a plain line every ``line_every_s`` seconds
    otherwise (batch-job logs), nothing when disabled."""
    if not enabled:
        yield lambda n: None
        return
    console = Console(stderr=True)
    if not console.is_terminal:
        yield _line_reporter(total, description, console, line_every_s)
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), RateColumn(),
               TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task(description, total=total)
        yield lambda n: progress.advance(task, n)


def _line_reporter(total: int, description: str, console: Console, every_s: float):
    start = last = time.perf_counter()
    done = 0

    def advance(n: int) -> None:
        nonlocal done, last
        done += n
        now = time.perf_counter()
        if now - last >= every_s or done >= total:
            last = now
            rate = done / max(now - start, 1e-9)
            eta = (total - done) / rate if rate > 0 else float("inf")
            console.print(f"{description}: {done}/{total} pairs, {rate:.2f} pairs/s, ETA {eta:.0f} s",
                          highlight=False)
    return advance


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
        rows += [("identical captions (tie, no call)", stats.identical),
                 ("answered from cache", stats.cache_hits), ("unique pairs asked", stats.asked),
                 ("LLM requests", stats.requests), ("retried", stats.retried),
                 ("parse failures", f"{stats.failed} ({stats.failure_rate:.1%})")]
    rows.append(("pairs/s", f"{stats.pairs_per_second:.1f}"))
    for key, value in rows:
        table.add_row(key, str(value), "")
    return table
