"""Data-availability blobs: batch dumps and individual payloads, stored by content, pointed to from the chain.

It sits below the relayer (which stores batch dumps here) and the gateway (which stores individual payloads),
so both use one store without importing each other.

A :class:`BlobStore` keeps bytes under an id derived from the bytes themselves, so a pointer recorded on chain
names exactly one content and anyone holding the content can check it. :class:`LocalBlobStore` is the durable
local store og-settle ships; a Walrus publisher can sit behind the same protocol later (its ``put`` would upload
to a publisher and answer Walrus's own blob id, and ``pointer`` would say ``walrus:<id>``).

Local blob ids are ``base64url(sha256(data))`` without padding: 43 characters, the shape of a Walrus blob id
(32 bytes, base64url) but *not* a Walrus id. The on-chain DA pointer is ``local-sha256:<id>``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Final, Protocol

from og_settle._errors import InvalidInput, InvariantViolation

__all__ = ["MAX_BLOB_BYTES", "BlobStore", "LocalBlobStore", "blob_id_for"]

# A batch dump of 100,000 leaves is about 60 MB; anything far beyond that is a mistake, not a blob.
MAX_BLOB_BYTES: Final = 512 * 1024 * 1024
_ID_PATTERN: Final = re.compile(r"^[A-Za-z0-9_-]{43}$")
_POINTER_PREFIX: Final = "local-sha256:"


class BlobStore(Protocol):
    """Where DA blobs go: content-addressed, durable once ``put`` returns."""

    def put(self, data: bytes) -> str:
        """Store ``data`` (idempotent) and return its blob id."""
        ...

    def get(self, blob_id: str) -> bytes:
        """The bytes stored under ``blob_id``; raises InvalidInput for an unknown or malformed id."""
        ...

    def pointer(self, blob_id: str) -> bytes:
        """The DA pointer recorded on chain for ``blob_id``."""
        ...

    def location(self, blob_id: str) -> str:
        """Where a reader fetches the blob (a file path, or a URL); it ends with ``/<blob id>``."""
        ...


def blob_id_for(data: bytes) -> str:
    """``base64url(sha256(data))`` without padding: the local store's id of ``data``."""
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode("ascii")


def _check_id(blob_id: str) -> str:
    if not isinstance(blob_id, str) or not _ID_PATTERN.match(blob_id):
        raise InvalidInput(f"blob_id: expected 43 base64url characters, got {blob_id!r}")
    return blob_id


class LocalBlobStore:
    """A directory of blobs, one file each, named by content (``<root>/<id[:2]>/<id>``).

    Writes are durable before ``put`` returns: the bytes go to a temporary file in the same directory, which
    is fsynced, renamed into place, and the directory fsynced. A crash leaves either the whole blob or no blob
    (and at worst a stray temporary file); concurrent puts of the same content are harmless.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, blob_id: str) -> Path:
        """Where the blob with ``blob_id`` lives (whether or not it exists)."""
        blob_id = _check_id(blob_id)
        return self.root / blob_id[:2] / blob_id

    def location(self, blob_id: str) -> str:
        """The blob's file path, as text."""
        return str(self.path(blob_id))

    def put(self, data: bytes) -> str:
        """Store ``data`` and return its id; storing the same bytes again does nothing."""
        if not isinstance(data, bytes | bytearray):
            raise InvalidInput(f"data: expected bytes, got {type(data).__name__}")
        if len(data) > MAX_BLOB_BYTES:
            raise InvalidInput(f"data: {len(data)} bytes is over the {MAX_BLOB_BYTES}-byte blob limit")
        blob_id = blob_id_for(bytes(data))
        target = self.path(blob_id)
        if target.exists():
            return blob_id
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_dir(target.parent)
        return blob_id

    def get(self, blob_id: str) -> bytes:
        """The stored bytes, checked against their id."""
        target = self.path(blob_id)
        try:
            data = target.read_bytes()
        except FileNotFoundError:
            raise InvalidInput(f"blob_id: no blob {blob_id} in {self.root}") from None
        if blob_id_for(data) != blob_id:
            raise InvariantViolation(f"blob {blob_id} in {self.root} does not match its content (disk corruption?)")
        return data

    def pointer(self, blob_id: str) -> bytes:
        """``local-sha256:<id>`` as bytes: what goes on chain."""
        return (_POINTER_PREFIX + _check_id(blob_id)).encode("ascii")

    @staticmethod
    def blob_id_from_pointer(pointer: bytes) -> str:
        """The blob id inside an on-chain pointer written by :meth:`pointer`."""
        try:
            text = bytes(pointer).decode("ascii")
        except (UnicodeDecodeError, binascii.Error):
            raise InvalidInput("pointer: not ASCII") from None
        if not text.startswith(_POINTER_PREFIX):
            raise InvalidInput(f"pointer: expected {_POINTER_PREFIX}<id>, got {text[:64]!r}")
        return _check_id(text[len(_POINTER_PREFIX) :])


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
