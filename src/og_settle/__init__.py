"""og-settle: on-chain settlement for paid, TEE-verified LLM inference."""

from og_settle._addresses import (
    BASE_SEPOLIA_CHAIN_ID,
    DETERMINISTIC_DEPLOYER,
    OPG_ADDRESS,
    OPG_DECIMALS,
    PERMIT2_ADDRESS,
)
from og_settle._attestation import (
    Eip712Domain,
    IndividualSettlement,
    InferenceAttestation,
    MetadataSettlement,
    TeeKey,
    TeeRegistration,
    settlement_domain,
    tee_id_for,
    tee_registry_domain,
    tee_signer_for,
)
from og_settle._errors import InvalidInput, InvariantViolation, ToolchainError
from og_settle._hashing import SettlementMode, input_hash, output_hash, tee_message_hash
from og_settle._merkle import (
    OG_LEAF_ENCODING,
    STANDARD_V1,
    TEE_SIGNATURE_MAX_BYTES,
    InferenceLeaf,
    MultiProof,
    StandardMerkleTree,
    leaf_hash,
    verify_multiproof,
)

__all__ = [
    "BASE_SEPOLIA_CHAIN_ID",
    "DETERMINISTIC_DEPLOYER",
    "OG_LEAF_ENCODING",
    "OPG_ADDRESS",
    "OPG_DECIMALS",
    "PERMIT2_ADDRESS",
    "STANDARD_V1",
    "TEE_SIGNATURE_MAX_BYTES",
    "Eip712Domain",
    "IndividualSettlement",
    "InferenceAttestation",
    "InferenceLeaf",
    "InvalidInput",
    "InvariantViolation",
    "MetadataSettlement",
    "MultiProof",
    "SettlementMode",
    "StandardMerkleTree",
    "TeeKey",
    "TeeRegistration",
    "ToolchainError",
    "input_hash",
    "leaf_hash",
    "output_hash",
    "settlement_domain",
    "tee_id_for",
    "tee_message_hash",
    "tee_registry_domain",
    "tee_signer_for",
    "verify_multiproof",
]
