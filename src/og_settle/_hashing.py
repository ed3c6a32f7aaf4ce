"""Settlement modes: OpenGradient's names for what goes on chain, mapped to og-settle's four lanes.

The OpenGradient hashes (``input_hash``, ``output_hash``, ``tee_message_hash``) live in :mod:`og_settle.tee` and are
re-exported here for existing imports.
"""

from __future__ import annotations

import enum
from typing import Final

from og_settle._errors import InvalidInput
from og_settle.tee._hashing import input_hash, output_hash, tee_message_hash

__all__ = ["SettlementMode", "input_hash", "output_hash", "tee_message_hash"]


class SettlementMode(enum.Enum):
    """How an inference is settled on chain; the values are OpenGradient's wire strings.

    Attributes:
        PRIVATE: payment only; nothing about the inference is recorded.
        BATCH: the inference is a leaf of a batch whose Merkle root is settled (the default).
        INDIVIDUAL: the inference's hashes and signature are recorded on their own.
        METADATA: as INDIVIDUAL, with the full request/response metadata published as well.
    """

    PRIVATE = "private"
    BATCH = "batch"
    INDIVIDUAL = "individual"
    METADATA = "metadata"

    @classmethod
    def parse(cls, value: str | SettlementMode) -> SettlementMode:
        """A mode from its wire string or from one of OpenGradient's enum names (case-insensitive).

        The names follow OpenGradient's product documents, and the SDKs' wire strings keep their meaning:
        ``SETTLE`` and ``PRIVATE`` → private (the payment only: ``SETTLE`` posts no input or output hashes);
        ``SETTLE_INDIVIDUAL`` and ``INDIVIDUAL_FULL`` → individual (the hashes on chain; older SDKs sent
        ``individual`` for ``INDIVIDUAL_FULL``, whose full record goes to off-chain storage);
        ``SETTLE_BATCH`` and ``BATCH_HASHED`` → batch (a Merkle root on chain; the default);
        ``SETTLE_METADATA`` and ``SETTLE_INDIVIDUAL_WITH_METADATA`` → metadata (model, input, output and metadata).
        """
        if isinstance(value, SettlementMode):
            return value
        if not isinstance(value, str):
            raise InvalidInput(f"settlement_mode: expected a string, got {type(value).__name__}")
        key = value.lower()
        mode = _MODE_NAMES.get(key)
        if mode is None:
            known = ", ".join(sorted(_MODE_NAMES))
            raise InvalidInput(f"settlement_mode: unknown mode {value!r} (known: {known})")
        return mode


_MODE_NAMES: Final[dict[str, SettlementMode]] = {
    "private": SettlementMode.PRIVATE,
    "batch": SettlementMode.BATCH,
    "individual": SettlementMode.INDIVIDUAL,
    "metadata": SettlementMode.METADATA,
    "settle_batch": SettlementMode.BATCH,
    "batch_hashed": SettlementMode.BATCH,
    "settle": SettlementMode.PRIVATE,
    "settle_individual": SettlementMode.INDIVIDUAL,
    "settle_metadata": SettlementMode.METADATA,
    "settle_individual_with_metadata": SettlementMode.METADATA,
    "individual_full": SettlementMode.INDIVIDUAL,
}
