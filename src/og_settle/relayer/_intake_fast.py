"""Intake's fast path: secp256k1 TEEs' batch (and private) leaves checked in C, Python the judge of every other line.

``og_settle._intake_native.verify_leaves`` takes only lines in one plain form whose every check passes (shape, time
window, the TEE registry's active secp256k1 signer, the low-s signature recovering to it) and gives their staged
rows directly: the same row, leaf hash and payload text :func:`og_settle.relayer._intake.parse_record` and
``staged_row`` give for them (tests compare the two on varied and malformed lines). Every line it does not take goes
through the Python code, which gives the reason a line is refused. The signature recovery calls coincurve's
libsecp256k1 (the library the Python path uses) through the function addresses its cffi module exposes.

Without the native module or coincurve, without a TEE directory, or with signature checks turned off, there is no
fast path and every line is judged by Python.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Final

from og_settle._attestation import INFERENCE_TYPE, settlement_domain
from og_settle._hex import keccak256, to_checksum_address
from og_settle.relayer._intake_checks import IntakeConfig
from og_settle.relayer._states import ItemKind, ItemState, Lane
from og_settle.relayer._store_intake import StagedRow
from og_settle.tee import KeyType

__all__ = ["FastLeaves", "fast_leaves"]

# (first line number, lines) -> each line's staged row, or None where Python must judge it.
FastLeaves = Callable[[int, list[str | bytes]], list[StagedRow | None]]

_INFERENCE_TYPEHASH: Final = keccak256(INFERENCE_TYPE.encode())


def _secp() -> tuple[int, int, int, int, int] | None:
    """The addresses of coincurve's libsecp256k1 context and the three functions the native check calls, or None if
    this coincurve does not expose them (then Python checks every line)."""
    try:
        from coincurve._libsecp256k1 import ffi, lib  # type: ignore[import-not-found]  # cffi, no stubs
        from coincurve.context import GLOBAL_CONTEXT

        def address(value: object) -> int:
            return int(ffi.cast("uintptr_t", value))

        return (
            address(GLOBAL_CONTEXT.ctx),
            address(ffi.addressof(lib, "secp256k1_ecdsa_recoverable_signature_parse_compact")),
            address(ffi.addressof(lib, "secp256k1_ecdsa_recover")),
            address(ffi.addressof(lib, "secp256k1_ec_pubkey_serialize")),
            int(lib.SECP256K1_EC_UNCOMPRESSED),
        )
    except (ImportError, AttributeError):  # pragma: no cover - coincurve 21 has them all
        return None


def _signer_for(config: IntakeConfig) -> Callable[[bytes], bytes | None]:
    """The 20-byte signer the Python path compares a leaf's recovered address with, or None where that is not a
    plain secp256k1 address check (no active key, an RSA key, a signer not in checksummed form)."""

    def signer_for(tee_id: bytes) -> bytes | None:
        assert config.tee_directory is not None
        key = config.tee_directory.active_key(tee_id)
        if key is None or key.key_type is not KeyType.SECP256K1:
            return None
        # RegisteredTeeKey.verify: the public key's signer when there is one, else the registered address
        signer = getattr(key.public_key, "signer", None) if key.public_key is not None else key.signer
        if not isinstance(signer, str) or len(signer) != 42 or not signer.startswith("0x"):
            return None
        try:
            raw = bytes.fromhex(signer[2:])
        except ValueError:
            return None
        return raw if to_checksum_address(raw) == signer else None

    return signer_for


def fast_leaves(config: IntakeConfig, name: str, now: float) -> FastLeaves | None:
    """The fast path for ``config`` (records named ``<name>:<line>``, checked against ``now``), or None."""
    if config.tee_directory is None or not config.verify_tee_signatures:
        return None
    try:
        from og_settle import _intake_native
    except ImportError:  # pragma: no cover - a build without the C extension
        return None
    secp = _secp()
    if secp is None:  # pragma: no cover
        return None
    domain = settlement_domain(config.deployment.chain_id, config.deployment.settlement_registry)
    # in_window refuses timestamp > now + drift and timestamp < now - age; for integers these bounds are the same
    highest = math.floor(now + config.max_future_drift_seconds)
    lowest = math.ceil(now - config.max_age_seconds)
    params = (
        b"\x19\x01" + domain.separator(),
        _INFERENCE_TYPEHASH,
        max(lowest, 0),
        min(highest, 10**15 - 1),
        config.max_record_bytes,
        ItemKind.INFERENCE.value,
        Lane.BATCH.value,
        Lane.PRIVATE.value,
        ItemState.RECEIVED.value,
    )
    signer_for = _signer_for(config)
    verify = _intake_native.verify_leaves

    def leaves(first_line: int, lines: list[str | bytes]) -> list[StagedRow | None]:
        return verify(lines, first_line, name, params, signer_for, secp)

    return leaves
