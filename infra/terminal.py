"""Output that behaves in a terminal, a pipe and a CI log alike.

In a terminal: rich tables at the terminal's width and tqdm progress bars. Piped (a
CI log, `| tee`): rich's 80-column default would cut numbers to "0.00…", and tqdm
would fill the log with carriage returns, so tables get room enough for their
content and progress bars are off: the project's bars pass `disable=None` (tqdm's
"off when not a terminal"), and TQDM_DISABLE covers any bar that passes nothing."""
from __future__ import annotations

import os
import sys
import time

PIPED_WIDTH = 240  # wide enough for every table the CLI prints; rich tables never pad to it


def plain_when_piped() -> None:
    """Called once when the CLI starts."""
    if not sys.stderr.isatty():
        os.environ.setdefault("TQDM_DISABLE", "1")


def console(min_width: int = 0):
    from rich.console import Console

    if sys.stdout.isatty():
        probe = Console()
        return Console(width=max(probe.width, min_width)) if min_width else probe
    return Console(width=max(PIPED_WIDTH, min_width))


PLAIN_PROGRESS_S = 60.0  # piped output (no bar): a plain status line this often


class PlainTicker:
    """Where a progress bar is off (output piped), when the next plain status line is
    due: every `every_s` seconds, and never when `on` is false (the bar is showing, or
    progress was not asked for)."""

    def __init__(self, on: bool, every_s: float) -> None:
        self.every_s = every_s if on else None
        self._last = time.perf_counter()

    def due(self) -> bool:
        if self.every_s is None or time.perf_counter() - self._last < self.every_s:
            return False
        self._last = time.perf_counter()
        return True
