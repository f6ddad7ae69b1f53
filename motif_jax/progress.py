"""One progress display for every stage: a live rich bar on a terminal, a plain line now and then when the
output is a log file (batch jobs, CI), nothing when disabled.

    with ProgressBar("collect", total=2000, unit="subsequences") as bar:
        bar.advance(3)
        bar.update(info="1,234 steps/s")
"""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class _RateColumn(ProgressColumn):
    def __init__(self, unit: str):
        super().__init__()
        self.unit = unit

    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.1f} {self.unit}/s" if speed else f"- {self.unit}/s", style="progress.data.speed")


class ProgressBar:
    """Done/total, rate, elapsed, ETA and a free ``info`` text for one task; ``restart`` reuses the bar
    for the next phase (an epoch). Not a terminal: one line every ``line_every_s`` seconds, and one at the
    end unless ``transient`` (the caller reports the result itself)."""

    def __init__(
        self,
        description: str,
        total: int,
        unit: str = "items",
        *,
        completed: int = 0,
        enabled: bool = True,
        transient: bool = False,
        line_every_s: float = 30.0,
        console: Console | None = None,
    ):
        self.description, self.total, self.unit = description, max(int(total), 0), unit
        self.done, self.info = int(completed), ""
        self.enabled, self.transient, self.line_every_s = enabled, transient, line_every_s
        self.console = console
        self._progress: Progress | None = None
        self._task = None

    def __enter__(self) -> ProgressBar:
        if not self.enabled:
            return self
        self.console = self.console or Console(stderr=True)
        if self.console.is_terminal:
            columns = (
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                _RateColumn(self.unit),
                TextColumn("{task.fields[info]}"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
            )
            self._progress = Progress(*columns, console=self.console, transient=self.transient)
            self._progress.start()
            self._task = self._progress.add_task(self.description, total=self.total, completed=self.done, info="")
        self._restart_clock()
        return self

    def _restart_clock(self) -> None:
        self._start = self._last = time.perf_counter()
        self._first = self.done

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self._progress is not None:
            self._progress.advance(self._task, n)
        elif self.enabled:
            now = time.perf_counter()
            if now - self._last >= self.line_every_s or (self.done >= self.total and not self.transient):
                self._last = now
                self._print_line(now)

    def update(self, *, description: str | None = None, info: str | None = None) -> None:
        """New description or info text (shown live on a terminal, in the next line otherwise)."""
        self.description = self.description if description is None else description
        self.info = self.info if info is None else info
        if self._progress is not None:
            self._progress.update(self._task, description=self.description, info=self.info)

    def restart(self, description: str, total: int) -> None:
        """Count again from zero towards ``total`` (the next epoch)."""
        self.description, self.total, self.done, self.info = description, int(total), 0, ""
        if self._progress is not None:
            self._progress.reset(self._task, total=self.total, description=description, info="")
        self._restart_clock()

    def _print_line(self, now: float) -> None:
        rate = (self.done - self._first) / max(now - self._start, 1e-9)
        eta = (self.total - self.done) / rate if rate > 0 else float("inf")
        info = f", {self.info}" if self.info else ""
        self.console.print(
            f"{self.description}: {self.done}/{self.total} {self.unit}, {rate:.2f} {self.unit}/s, "
            f"ETA {eta:.0f} s{info}",
            highlight=False,
        )

    def __exit__(self, *exc) -> bool:
        if self._progress is not None:
            self._progress.stop()
        return False
