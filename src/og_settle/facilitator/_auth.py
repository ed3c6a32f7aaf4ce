"""Who may call ``/settle``: bearer API keys, loaded from a file or an environment variable.

A key file holds one key per line (blank lines and ``#`` comments ignored); an environment variable holds one
key or several separated by commas. Keys are compared in constant time, as SHA-256 digests, so neither their
content nor their length leaks through timing. The x402 SDK sends them with ``create_headers``::

    HTTPFacilitatorClientSync(FacilitatorConfig(url=..., create_headers=lambda: {
        "verify": {}, "settle": {"Authorization": "Bearer <key>"}, "supported": {}}))
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Final

from og_settle._errors import InvalidInput

__all__ = ["ApiKeys"]

# A key shorter than this is guessable; refuse it at start-up rather than serve with it.
MIN_KEY_LENGTH: Final = 16


class ApiKeys:
    """A set of accepted bearer keys."""

    def __init__(self, keys: Iterable[str]) -> None:
        digests = set()
        for key in keys:
            if len(key) < MIN_KEY_LENGTH:
                raise InvalidInput(f"api key: at least {MIN_KEY_LENGTH} characters are required, got {len(key)}")
            digests.add(hashlib.sha256(key.encode()).digest())
        if not digests:
            raise InvalidInput("api keys: none given")
        self._digests = tuple(digests)

    def __len__(self) -> int:
        return len(self._digests)

    @classmethod
    def load(cls, *, file: Path | None = None, env: str | None = None) -> ApiKeys:
        """Keys from ``file`` (one per line) and/or the environment variable ``env`` (comma-separated)."""
        keys: list[str] = []
        if file is not None:
            try:
                text = file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as err:
                raise InvalidInput(f"--api-keys-file: cannot read {file}: {err}") from None
            keys += [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
            if not keys:
                raise InvalidInput(f"--api-keys-file: {file} holds no key")
        if env is not None:
            value = os.environ.get(env, "")
            if not value.strip():
                raise InvalidInput(f"--api-keys-env: environment variable {env} is not set")
            keys += [part.strip() for part in value.split(",") if part.strip()]
        return cls(keys)

    @staticmethod
    def bearer(authorization: str | None) -> str | None:
        """The key in an ``Authorization: Bearer <key>`` header value, if it holds one."""
        if authorization is None:
            return None
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return token.strip()

    def accepts(self, authorization: str | None) -> bool:
        """Whether an ``Authorization`` header value carries one of the keys (``Bearer <key>``)."""
        token = self.bearer(authorization)
        if token is None:
            return False
        digest = hashlib.sha256(token.encode()).digest()
        found = False
        for known in self._digests:  # no early exit: the time taken does not say which key matched
            found |= hmac.compare_digest(digest, known)
        return found
