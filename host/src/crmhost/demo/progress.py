"""Plain-text progress bars on stderr (no dependency): one line, redrawn in place on a TTY.

When stderr is not a terminal (CI logs, a pipe) a bar prints a line only every 10% and at the
end, so logs stay short and readable.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress", "say"]

_WIDTH = 30


def say(message: str, *, stream: TextIO | None = None) -> None:
    """One line of narration on stderr."""
    out = stream or sys.stderr
    print(message, file=out, flush=True)


class Progress:
    """A bar for ``total`` units of work: ``update(done)`` redraws it, ``close()`` ends the line.

    Args:
        label: what is being counted ("HubSpot contacts").
        total: the number that means done (0 shows a bare counter).
        stream: where to draw (stderr by default).
    """

    def __init__(self, label: str, total: int, *, stream: TextIO | None = None) -> None:
        self.label = label
        self.total = max(total, 0)
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.started = time.monotonic()
        self.done = 0
        self._last_decile = -1
        self._closed = False

    def _line(self) -> str:
        elapsed = time.monotonic() - self.started
        if self.total:
            frac = min(self.done / self.total, 1.0)
            filled = int(frac * _WIDTH)
            bar = "#" * filled + "." * (_WIDTH - filled)
            return f"  {self.label:<34} [{bar}] {self.done:>7,}/{self.total:,} {elapsed:6.1f}s"
        return f"  {self.label:<34} {self.done:>7,} {elapsed:6.1f}s"

    def update(self, done: int) -> None:
        """Show ``done`` units finished."""
        self.done = done
        if self.tty:
            self.stream.write("\r" + self._line())
            self.stream.flush()
            return
        decile = int(10 * min(done / self.total, 1.0)) if self.total else 0
        if decile > self._last_decile:
            self._last_decile = decile
            self.stream.write(self._line() + "\n")
            self.stream.flush()

    def close(self) -> None:
        """Finish the bar's line (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self.tty:
            self.stream.write("\r" + self._line() + "\n")
        elif self._last_decile < 10:
            self.stream.write(self._line() + "\n")
        self.stream.flush()
