"""Fixtures for the offline core: a long-lived @openzeppelin/merkle-tree worker under Node.

Each Node start costs about 100 ms, so the whole session shares one worker process (``oz_worker.js``) that
answers one JSON request per line.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

WORKER = Path(__file__).with_name("oz_worker.js")
REPO = Path(__file__).resolve().parents[2]


class OzWorker:
    """Talks to ``oz_worker.js``; ``ask`` raises if the library threw, ``ask_raw`` returns the answer as is."""

    def __init__(self) -> None:
        node = shutil.which("node")
        if node is None:
            raise RuntimeError("node is not on PATH: the cross-implementation tests need Node 18+")
        self._process = subprocess.Popen(
            [node, str(WORKER)],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )

    def ask_raw(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write(json.dumps(request) + "\n")
        self._process.stdin.flush()
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError(f"the Node worker exited (code {self._process.poll()})")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        answer = self.ask_raw(request)
        if "error" in answer:
            raise AssertionError(f"@openzeppelin/merkle-tree threw: {answer['error']}")
        return answer

    def close(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


@pytest.fixture(scope="session")
def oz() -> Iterator[OzWorker]:
    worker = OzWorker()
    yield worker
    worker.close()
