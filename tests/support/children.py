"""Servers run as child processes, the way an operator runs them: started, read, and stopped with SIGTERM.

Every og-settle server (``chain up``, ``facilitator serve``, ``gateway serve``) and the x402 reference facilitator
print one JSON line once they listen. :func:`json_child` starts such a command, waits for that line and yields it
with the process; on exit it sends SIGTERM and waits (killing after ``stop_timeout``). Standard error goes to a
log file, whose last lines name the cause when the command exits before its start line.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class ChildFailed(RuntimeError):
    """The child exited (or printed something else) before its JSON start line."""


@dataclass(frozen=True, slots=True)
class Child:
    """A started server: its JSON start line and its process."""

    start: dict[str, Any]
    process: subprocess.Popen[str]


@contextmanager
def json_child(
    name: str, argv: Sequence[str], log: Path, env: Mapping[str, str] | None = None, stop_timeout: float = 20
) -> Iterator[Child]:
    with log.open("w") as err:
        process = subprocess.Popen(
            list(argv), env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=err, text=True
        )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        try:
            start = json.loads(line)
        except json.JSONDecodeError:
            if not line:
                process.wait(timeout=stop_timeout)
            tail = " | ".join(log.read_text().strip().splitlines()[-3:]) or line.strip() or "no output"
            raise ChildFailed(f"{name} did not start (exit {process.poll()}): {tail}") from None
        yield Child(start, process)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=stop_timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout is not None:
            process.stdout.close()
