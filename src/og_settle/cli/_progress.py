"""Progress of long work on stderr, never on stdout (which carries the commands' data).

On a terminal it is one line redrawn in place; elsewhere (a log file, CI), when asked for with ``--progress``, it
is a plain line every few seconds. Small jobs show nothing unless asked.
"""

from __future__ import annotations

import time
from typing import TextIO

# Inputs smaller than this show no progress unless asked (a 1 MB file is read in a blink).
AUTO_MIN_BYTES = 1_000_000
_TTY_EVERY = 0.1
_LOG_EVERY = 2.0


class Progress:
    """How far a job got through ``total`` bytes (0: unknown), on ``stream``.

    Args:
        label: what runs, e.g. ``reading leaves``.
        total: the job's size in bytes, 0 when unknown (stdin).
        stream: where to write (stderr).
        forced: ``--progress``: show it even when the stream is not a terminal or the job is small.
    """

    def __init__(self, label: str, total: int, stream: TextIO, *, forced: bool = False) -> None:
        self._label = label
        self._total = total
        self._stream = stream
        self._tty = stream.isatty()
        self._enabled = forced or (self._tty and total >= AUTO_MIN_BYTES)
        self._last = 0.0
        self._drawn = False

    @property
    def enabled(self) -> bool:
        """Whether anything is shown (callers skip their bookkeeping otherwise)."""
        return self._enabled

    def update(self, done: int, note: str = "") -> None:
        now = time.monotonic()
        if not self._enabled or now - self._last < (_TTY_EVERY if self._tty else _LOG_EVERY):
            return
        self._last = now
        if self._total > 0:
            fraction = min(done / self._total, 1.0)
            filled = int(fraction * 30)
            shown = f"[{'#' * filled}{'.' * (30 - filled)}] {fraction:4.0%}" if self._tty else f"{fraction:.0%}"
        else:
            shown = f"{done / 1e6:,.1f} MB"
        self._write(f"{self._label} {shown}{' ' + note if note else ''}")

    def status(self, text: str) -> None:
        if self._enabled:
            self._write(text)

    def close(self) -> None:
        if self._enabled and self._tty and self._drawn:
            self._stream.write("\r\033[K")
            self._stream.flush()

    def _write(self, text: str) -> None:
        self._stream.write(f"\r{text}\033[K" if self._tty else f"og-settle: {text}\n")
        self._stream.flush()
        self._drawn = True
