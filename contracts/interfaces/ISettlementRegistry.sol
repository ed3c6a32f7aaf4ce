// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {RsaPss} from "../libraries/RsaPss.sol";
import {ITeeRegistry} from "./ITeeRegistry.sol";

/// @title ISettlementRegistry
/// @notice Records settled TEE inferences in three modes and answers proofs against what was really settled.
///  1. individual: one inference (teeId, inputHash, outputHash, timestamp, payer), with the TEE's EIP-712 signature
///     verified on chain; its EIP-712 digest is stored once.
///  2. batch: a relayer records the Merkle root of a batch of inference leaves (OpenGradient's format); inclusion
///     proofs are checked against stored roots only.
///  3. metadata: the full record (model id, input bytes, output bytes, extra metadata); the hashes are computed on
///     chain, the TEE's signature is verified, the data goes to an event and only the record digest is stored.
/// @dev Security assumptions and decisions:
///  - Signatures (TEE, modes 1 and 3, and batch leaves in `verifyInferenceSignature`) are EIP-712 under the domain
///    {name: "OG Settlement Registry", version: "1", chainId, verifyingContract: this}, so a signature is valid on one
///    chain and one deployment only (no cross-chain or cross-deployment replay). Recovery uses OpenZeppelin ECDSA,
///    which rejects high-s and non-65-byte signatures, so signatures are not malleable; even so, replay protection
///    does not rest on the signature bytes: the EIP-712 digest of the signed struct is what is recorded once.
///  - The payer IS part of the signed individual and metadata structs: the TEE (which sees the x402 payment) binds
///    the payer, so a relayer cannot re-attribute an inference to another payer.
///  - The three modes use three different type hashes, so a signature made for one mode cannot be settled in
///    another. The same inference may be both in a batch and settled individually; nothing links the modes.
///  - Batch roots are trusted from RELAYER_ROLE: leaves are not iterated on chain (that is what keeps a batch at a
///    constant cost). The relayer is trusted to include only TEE-signed inferences; `verifyInferenceSignature` lets
///    anyone check a leaf's TEE signature on chain.
///  - Timestamps (modes 1 and 3) must lie in [block.timestamp - maxAge, block.timestamp + maxFutureDrift].
///  - Pausing (ADMIN_ROLE) stops every state change of settlement; views keep working.
///  - No tokens are held or moved, so there are no reentrancy, fee-on-transfer or token-code concerns here; the only
///    external call is a view call to the immutable TeeRegistry.
///  - OpenGradient's individual settlement (`settleOpenGradient`) takes OpenGradient's own signed message: an RSA TEE's
///    RSASSA-PSS signature (SHA-256, MGF1-SHA-256, 32-byte salt) over the 32 bytes
///    `keccak256(inputHash ‖ outputHash ‖ uint256 timestamp)`, checked on chain through the TEE registry
///    (`checkRsaSignature`, over the modexp and sha256 precompiles). What that signature does NOT cover, and what
///    follows: the payer (OpenGradient's `ethAddress`) and the DA pointer are asserted by RELAYER_ROLE, not by the TEE;
///    the chain and this contract (OpenGradient's format has no domain), so the same signed inference can also be
///    recorded on another chain or deployment, where it states the same fact. Replay protection here is the digest
///    `keccak256(teeId ‖ message)`, recorded once: it covers exactly what was signed (and by which TEE), never the
///    unsigned payer or pointer, so a relayer cannot settle one signed inference twice under two payers. PSS
///    signatures are randomised, so the digest never includes the signature. When `maxHeartbeatAge` is non-zero
///    (OpenGradient: 1,800 s), the TEE must also be live: its last accepted heartbeat at most that many seconds old.
///  - `settleIndividualBatch` settles many individual and OpenGradient records in one transaction (packed calldata,
///    TEE ids shared). Each item runs in its own call to `settleBatchItem` (callable only by the registry itself) with
///    the batch's fixed gas cap, checked against the 63/64 rule before each call, so a failing item reverts only its
///    own effects and is reported by SettlementItemFailed with its named error; an item is checked exactly as the
///    single-record function checks it and recorded under the same digest. At most MAX_BATCH_ITEMS items.
///  - Unbounded calldata is capped: batch data-availability pointers at MAX_DA_POINTER_LENGTH bytes, metadata
///    records at MAX_METADATA_SIZE bytes in total.
///
///  Merkle trees: OpenZeppelin's MerkleProof warns that leaf values that are 64 bytes long before hashing must be
///  avoided (or a hash other than keccak256 used for leaves), because the concatenation of a sorted pair of internal
///  nodes could be reinterpreted as a leaf, letting an attacker "prove" an internal node as a leaf. This registry
///  never accepts a raw 64-byte value as a leaf: the contract itself computes every leaf hash from the typed
///  record as keccak256(bytes.concat(keccak256(abi.encode(teeId, inputHash, outputHash, teeSignature, timestamp))))
///  (the StandardMerkleTree "double-hashed" leaf). An internal node is keccak256(a ‖ b) of two 32-byte children; a
///  leaf hash is keccak256 of a 32-byte value. For a forged record to land on an internal node, keccak256 of its
///  32-byte inner hash would have to equal keccak256 of a 64-byte concatenation: a keccak256 collision between
///  inputs of different lengths. Moreover the ABI encoding of a leaf is at least 7 words (the dynamic `bytes` adds an
///  offset and a length word), never 64 bytes.
///
///  Leaf format (OpenGradient's batch format): an OpenZeppelin StandardMerkleTree over
///  [bytes32 teeId, bytes32 inputHash, bytes32 outputHash, bytes teeSignature, uint256 timestamp] with double-hashed
///  leaves and sorted-pair internal nodes. For an RSA TEE, teeSignature is the raw RSA-PSS signature bytes (base64
///  decoded) over OpenGradient's message; for a secp256k1 TEE, the 65-byte EIP-712 `Inference` signature.
interface ISettlementRegistry {
    /// @notice One inference as it appears in a batch leaf.
    /// @param teeId The TEE that produced it.
    /// @param inputHash keccak256 of the request (OpenGradient: UTF-8 of json.dumps(request, sort_keys=True)).
    /// @param outputHash keccak256 of the completion text (or of json.dumps(tool_calls, sort_keys=True)).
    /// @param teeSignature The TEE's signature; for secp256k1 TEEs, a 65-byte signature over the EIP-712
    ///        `Inference` struct (see INFERENCE_TYPEHASH); for RSA TEEs (OpenGradient's), the RSA-PSS signature over
    ///        keccak256(inputHash ‖ outputHash ‖ uint256 timestamp). `verifyInferenceSignature` checks either.
    /// @param timestamp The TEE's timestamp (seconds).
    struct InferenceLeaf {
        bytes32 teeId;
        bytes32 inputHash;
        bytes32 outputHash;
        bytes teeSignature;
        uint256 timestamp;
    }

    /// @notice An individual settlement, as signed by the TEE (EIP-712 `IndividualSettlement`).
    struct IndividualSettlement {
        bytes32 teeId;
        bytes32 inputHash;
        bytes32 outputHash;
        uint256 timestamp;
        address payer;
    }

    /// @notice A full-record settlement, as signed by the TEE (EIP-712 `MetadataSettlement`). In EIP-712 the dynamic
    /// members are encoded as their keccak256, so the signed struct commits to inputHash = keccak256(input) and
    /// outputHash = keccak256(output), the same hashes the other modes use when `input` is the UTF-8 of
    /// json.dumps(request, sort_keys=True) and `output` the completion text (OpenGradient's conventions).
    /// @param teeId The TEE that produced it.
    /// @param timestamp The TEE's timestamp (seconds).
    /// @param payer Who paid for the inference.
    /// @param modelId The model identifier, for example "openai/gpt-4.1".
    /// @param input The request bytes.
    /// @param output The response bytes.
    /// @param metadata Extra metadata (opaque bytes, for example JSON).
    struct MetadataSettlement {
        bytes32 teeId;
        uint256 timestamp;
        address payer;
        string modelId;
        bytes input;
        bytes output;
        bytes metadata;
    }

    /// @notice OpenGradient's individual settlement, as its TEE gateway produces it. Only inputHash, outputHash and
    /// timestamp are covered by the TEE's RSA-PSS signature (with the TEE implied by its key); see the contract notes.
    /// @param teeId The RSA TEE (keccak256 of its DER public key).
    /// @param inputHash keccak256 of the canonical request.
    /// @param outputHash keccak256 of the output text (or of the tool calls' JSON).
    /// @param timestamp The TEE's timestamp (seconds).
    /// @param payer Who paid (OpenGradient's `ethAddress`), asserted by the relayer.
    /// @param daPointer Where the full record is stored (for example a Walrus blob id), 0..MAX_DA_POINTER_LENGTH bytes;
    ///        asserted by the relayer.
    struct OpenGradientSettlement {
        bytes32 teeId;
        bytes32 inputHash;
        bytes32 outputHash;
        uint256 timestamp;
        address payer;
        bytes daPointer;
    }

    /// @notice What is stored per batch root, packed in one storage slot.
    /// @param relayer Who recorded it.
    /// @param batchId Sequential id, starting at 1 (0 = not recorded).
    /// @param size Number of leaves.
    /// @param recordedAt Block timestamp of recording.
    struct Batch {
        address relayer;
        uint32 batchId;
        uint32 size;
        uint32 recordedAt;
    }

    /// @notice Kind of a recorded settlement digest.
    enum SettlementKind {
        None,
        Individual,
        Metadata,
        OpenGradient
    }

    /// @notice What is stored per settlement digest, packed in one slot.
    /// @param kind Individual, Metadata or OpenGradient (None = not recorded).
    /// @param recordedAt Block timestamp of recording.
    /// @param relayer Who recorded it (the TEE, payer and hashes are in the event).
    struct Settlement {
        SettlementKind kind;
        uint64 recordedAt;
        address relayer;
    }

    /// @notice Running batch totals; they always equal what the BatchRecorded events describe. Individual and
    /// metadata settlements are not counted on chain (a counter write would cost 2,900 gas per settlement); count
    /// their events instead, and look each digest up with `getSettlement`.
    /// @param batches Number of batch roots recorded (= the last batch id).
    /// @param inferencesInBatches Sum of the sizes of recorded batches.
    struct Counters {
        uint32 batches;
        uint64 inferencesInBatches;
    }

    /// @notice A batch root was recorded.
    event BatchRecorded(
        uint256 indexed batchId, bytes32 indexed root, address indexed relayer, uint256 size, bytes daPointer
    );
    /// @notice An individual settlement was recorded.
    event IndividualSettled(
        bytes32 indexed digest,
        bytes32 indexed teeId,
        address indexed payer,
        bytes32 inputHash,
        bytes32 outputHash,
        uint256 timestamp,
        address relayer
    );
    /// @notice A metadata settlement was recorded; the full data lives only in this event.
    event MetadataSettled(
        bytes32 indexed digest,
        bytes32 indexed teeId,
        address indexed payer,
        bytes32 inputHash,
        bytes32 outputHash,
        uint256 timestamp,
        address relayer,
        string modelId,
        bytes input,
        bytes output,
        bytes metadata
    );
    /// @notice An OpenGradient individual settlement (RSA TEE) was recorded.
    event OpenGradientSettled(
        bytes32 indexed digest,
        bytes32 indexed teeId,
        address indexed payer,
        bytes32 inputHash,
        bytes32 outputHash,
        uint256 timestamp,
        address relayer,
        bytes daPointer
    );
    /// @notice Item `index` of a `settleIndividualBatch` was not settled; the other items are unaffected.
    /// @param index The item's position in the batch (0-based).
    /// @param reason The item's revert data: one of this contract's named errors (for example
    ///        `InvalidTeeSignature(teeId, recovered)`, `SettlementAlreadyRecorded(digest)`, `TimestampTooOld(ts, oldest)`,
    ///        `TeeNotActive(teeId)`), or `ItemOutOfGas(gasCap)` when the item used up its gas cap.
    event SettlementItemFailed(uint256 indexed index, bytes reason);
    /// @notice The heartbeat age OpenGradient settlements require changed (0: liveness not required).
    event LivenessRequirementUpdated(uint256 maxHeartbeatAge, address indexed admin);
    /// @notice The timestamp window changed.
    event TimestampWindowUpdated(uint256 maxAge, uint256 maxFutureDrift, address indexed admin);

    /// @notice The TEE registry passed to the constructor has no code.
    error InvalidTeeRegistry(address registry);
    /// @notice The root is zero.
    error InvalidBatchRoot(bytes32 root);
    /// @notice The batch size is zero or does not fit in uint32.
    error InvalidBatchSize(uint256 size);
    /// @notice The data-availability pointer is empty or longer than MAX_DA_POINTER_LENGTH.
    error InvalidDaPointerLength(uint256 length, uint256 max);
    /// @notice This root was already recorded, as batch `batchId`.
    error BatchRootAlreadyRecorded(bytes32 root, uint256 batchId);
    /// @notice This root was never recorded.
    error UnknownBatchRoot(bytes32 root);
    /// @notice The inclusion proof does not lead from the leaf to the root.
    error InvalidInclusionProof(bytes32 root, bytes32 leafHash);
    /// @notice The TEE is unknown, disabled, or its measurement is revoked.
    error TeeNotActive(bytes32 teeId);
    /// @notice The signature does not recover to the TEE's registered signer (address(0) if unrecoverable:
    /// wrong length, high s, bad v).
    error InvalidTeeSignature(bytes32 teeId, address recovered);
    /// @notice The TEE's RSA-PSS signature does not verify (`reason`: why, see RsaPss.PssError).
    error InvalidRsaTeeSignature(bytes32 teeId, RsaPss.PssError reason);
    /// @notice The TEE is not an RSA TEE (OpenGradient's message needs one).
    error NotRsaTee(bytes32 teeId);
    /// @notice Liveness is required and the TEE's last heartbeat is older than maxHeartbeatAge.
    error TeeNotLive(bytes32 teeId, uint256 lastHeartbeat);
    /// @notice The required heartbeat age is longer than MAX_WINDOW.
    error InvalidMaxHeartbeatAge(uint256 maxHeartbeatAge, uint256 max);
    /// @notice This settlement digest was already recorded.
    error SettlementAlreadyRecorded(bytes32 digest);
    /// @notice The timestamp is older than block.timestamp - maxAge (`oldest`).
    error TimestampTooOld(uint256 timestamp, uint256 oldest);
    /// @notice The timestamp is later than block.timestamp + maxFutureDrift (`latest`).
    error TimestampInFuture(uint256 timestamp, uint256 latest);
    /// @notice The payer is the zero address.
    error InvalidPayer(address payer);
    /// @notice The metadata record is larger than MAX_METADATA_SIZE (sum of modelId, input, output, metadata bytes).
    error MetadataTooLarge(uint256 size, uint256 max);
    /// @notice The packed batch is malformed at byte `offset` (truncated item, unknown item kind, TEE index out of
    /// range, no items).
    error MalformedSettlementBatch(uint256 offset);
    /// @notice The batch has more than `max` items.
    error TooManySettlementItems(uint256 max);
    /// @notice Before item `index`, less gas was left (`available`) than its cap needs under the 63/64 rule
    /// (`required`): the transaction was sent with too little gas, so the whole batch reverts.
    error InsufficientGasForItem(uint256 index, uint256 available, uint256 required);
    /// @notice Reported (in SettlementItemFailed) for an item that used up its gas cap.
    error ItemOutOfGas(uint256 gasCap);
    /// @notice `settleBatchItem` is the batch's own isolation boundary; only the registry itself may call it.
    error OnlySelf(address caller);
    /// @notice The timestamp window is out of range (each bound at most MAX_WINDOW).
    error InvalidTimestampWindow(uint256 maxAge, uint256 maxFutureDrift);

    /// @notice Role that pauses/unpauses and sets the timestamp window.
    function ADMIN_ROLE() external view returns (bytes32);
    /// @notice Role that records batches and settles individual and metadata records.
    function RELAYER_ROLE() external view returns (bytes32);
    /// @notice Most items one `settleIndividualBatch` carries (the settled mask has one bit per item).
    function MAX_BATCH_ITEMS() external view returns (uint256);
    /// @notice Item kind of a packed batch: an EIP-712 `IndividualSettlement` with a secp256k1 TEE's signature.
    function ITEM_INDIVIDUAL() external view returns (uint8);
    /// @notice Item kind of a packed batch: an OpenGradient settlement with an RSA TEE's RSA-PSS signature.
    function ITEM_OPEN_GRADIENT() external view returns (uint8);
    /// @notice Longest accepted data-availability pointer, in bytes.
    function MAX_DA_POINTER_LENGTH() external view returns (uint256);
    /// @notice Largest accepted metadata record: bytes of modelId + input + output + metadata together (64 KiB).
    function MAX_METADATA_SIZE() external view returns (uint256);
    /// @notice Largest accepted maxAge or maxFutureDrift, in seconds.
    function MAX_WINDOW() external view returns (uint256);
    /// @notice How old, at most, an RSA TEE's last heartbeat may be for `settleOpenGradient` (seconds; 0 = liveness
    /// not required). Kept here, in the slot every settlement reads anyway, rather than read from the TEE registry.
    function maxHeartbeatAge() external view returns (uint256);
    /// @notice `Inference(bytes32 teeId,bytes32 inputHash,bytes32 outputHash,uint256 timestamp)`: what an ECDSA TEE
    /// signs for a batch leaf's `teeSignature`.
    function INFERENCE_TYPEHASH() external view returns (bytes32);
    /// @notice `IndividualSettlement(bytes32 teeId,bytes32 inputHash,bytes32 outputHash,uint256 timestamp,address payer)`.
    function INDIVIDUAL_SETTLEMENT_TYPEHASH() external view returns (bytes32);
    /// @notice `MetadataSettlement(bytes32 teeId,uint256 timestamp,address payer,string modelId,bytes input,bytes output,bytes metadata)`.
    function METADATA_SETTLEMENT_TYPEHASH() external view returns (bytes32);

    /// @notice The TEE registry consulted for active TEEs and their signers (immutable).
    function teeRegistry() external view returns (ITeeRegistry);

    /// @notice Records a batch root. Only RELAYER_ROLE, when not paused.
    /// @param root The StandardMerkleTree root of the batch.
    /// @param size Number of leaves (1 .. 2^32-1).
    /// @param daPointer Where the tree's standard-v1 dump is published (URI or blob id), 1..MAX_DA_POINTER_LENGTH bytes.
    /// @return batchId The new sequential batch id.
    /// @dev Reverts InvalidBatchRoot, InvalidBatchSize, InvalidDaPointerLength, BatchRootAlreadyRecorded. Emits
    /// BatchRecorded. Constant cost whatever the batch size.
    function recordBatch(bytes32 root, uint256 size, bytes calldata daPointer) external returns (uint256 batchId);

    /// @notice Records one inference signed by an active TEE. Only RELAYER_ROLE, when not paused.
    /// @param settlement The signed struct.
    /// @param signature The TEE's 65-byte signature over the EIP-712 digest of `settlement`.
    /// @return digest The EIP-712 digest, now recorded.
    /// @dev Reverts InvalidPayer, TimestampTooOld, TimestampInFuture, TeeNotActive, InvalidTeeSignature,
    /// SettlementAlreadyRecorded. Emits IndividualSettled.
    function settleIndividual(IndividualSettlement calldata settlement, bytes calldata signature)
        external
        returns (bytes32 digest);

    /// @notice Records one inference signed by an active RSA TEE in OpenGradient's format. Only RELAYER_ROLE, when
    /// not paused.
    /// @param settlement The inference, payer and DA pointer.
    /// @param signature The TEE's RSA-PSS signature over keccak256(inputHash ‖ outputHash ‖ uint256 timestamp).
    /// @return digest keccak256(teeId ‖ message), now recorded (see `openGradientDigest`).
    /// @dev Reverts InvalidPayer, InvalidDaPointerLength, TimestampTooOld, TimestampInFuture,
    /// SettlementAlreadyRecorded, TeeNotActive, NotRsaTee, TeeNotLive (when maxHeartbeatAge != 0),
    /// InvalidRsaTeeSignature. Emits
    /// OpenGradientSettled.
    function settleOpenGradient(OpenGradientSettlement calldata settlement, bytes calldata signature)
        external
        returns (bytes32 digest);

    /// @notice Settles many individual records in one transaction, each isolated: an item that fails (bad signature,
    /// already settled, timestamp outside the window, TEE not active or not live, zero payer, out of gas) emits
    /// SettlementItemFailed with its named reason and leaves the others alone. Only RELAYER_ROLE, when not paused.
    /// @param batch Packed, big-endian, no padding:
    ///  header: `uint32 itemGas` (each item's gas cap) ‖ `uint8 teeCount` ‖ `bytes32 teeId` × teeCount;
    ///  then items until the end, each: `uint8 kind` (ITEM_INDIVIDUAL or ITEM_OPEN_GRADIENT) ‖ `uint8 teeIndex` ‖
    ///  `bytes32 inputHash` ‖ `bytes32 outputHash` ‖ `uint64 timestamp` ‖ `address payer` ‖
    ///  (ITEM_OPEN_GRADIENT only: `uint16 daLength` ‖ daPointer) ‖ `uint16 signatureLength` ‖ signature.
    ///  The TEE table is shared by the batch's items; an item's fields mean what they mean in `settleIndividual`
    ///  and `settleOpenGradient`, and it is recorded under the same digest (so the two paths exclude each other).
    /// @return settledMask Bit i is set when item i was settled.
    /// @return count The number of items.
    /// @dev Each item runs in a call to `settleBatchItem` with exactly `itemGas` gas; before each, the batch
    /// checks that gasleft() covers itemGas under the 63/64 rule plus a reserve, and reverts the whole batch with
    /// InsufficientGasForItem otherwise, so an item never fails for want of gas the caller withheld. Reverts
    /// MalformedSettlementBatch, TooManySettlementItems, InsufficientGasForItem. Emits IndividualSettled /
    /// OpenGradientSettled (with the caller as relayer) or SettlementItemFailed per item.
    function settleIndividualBatch(bytes calldata batch) external returns (uint256 settledMask, uint256 count);

    /// @notice One item of `settleIndividualBatch`, run in its own call frame so that its failure reverts only its
    /// own effects. Callable only by the registry itself (reverts OnlySelf).
    /// @param teeId The item's TEE (from the batch's table).
    /// @param item The packed item (see `settleIndividualBatch`).
    /// @param relayer The batch's caller, recorded as the item's relayer.
    /// @return digest The recorded digest.
    function settleBatchItem(bytes32 teeId, bytes calldata item, address relayer) external returns (bytes32 digest);

    /// @notice Records a full record signed by an active TEE; the data is emitted, only the digest is stored.
    /// Only RELAYER_ROLE, when not paused.
    /// @return digest The EIP-712 digest, now recorded.
    /// @dev Reverts MetadataTooLarge, InvalidPayer, TimestampTooOld, TimestampInFuture, TeeNotActive,
    /// InvalidTeeSignature, SettlementAlreadyRecorded. Emits MetadataSettled.
    function settleMetadata(MetadataSettlement calldata record, bytes calldata signature)
        external
        returns (bytes32 digest);

    /// @notice Sets the accepted timestamp window. Only ADMIN_ROLE.
    /// @dev Reverts InvalidTimestampWindow. Emits TimestampWindowUpdated.
    function setTimestampWindow(uint256 maxAge, uint256 maxFutureDrift) external;

    /// @notice Sets how old, at most, an RSA TEE's last heartbeat may be for `settleOpenGradient` (0 = not required;
    /// OpenGradient's window is 1,800 s). Only ADMIN_ROLE.
    /// @dev Reverts InvalidMaxHeartbeatAge. Emits LivenessRequirementUpdated.
    function setMaxHeartbeatAge(uint256 maxAge) external;

    /// @notice Stops all settlement. Only ADMIN_ROLE.
    function pause() external;

    /// @notice Resumes settlement. Only ADMIN_ROLE.
    function unpause() external;

    /// @notice The current window: (maxAge, maxFutureDrift) in seconds.
    function timestampWindow() external view returns (uint256 maxAge, uint256 maxFutureDrift);

    /// @notice The stored batch for `root` (batchId 0 if never recorded).
    function getBatch(bytes32 root) external view returns (Batch memory);

    /// @notice The stored settlement for `digest` (kind None if never recorded).
    function getSettlement(bytes32 digest) external view returns (Settlement memory);

    /// @notice True when `digest` was recorded (individual or metadata).
    function isSettled(bytes32 digest) external view returns (bool);

    /// @notice The running totals.
    function counters() external view returns (Counters memory);

    /// @notice The double-hashed StandardMerkleTree leaf hash of `leaf`.
    function leafHash(InferenceLeaf calldata leaf) external pure returns (bytes32);

    /// @notice EIP-712 digests, as the TEE signs them (for off-chain tooling and lookups).
    function inferenceDigest(bytes32 teeId, bytes32 inputHash, bytes32 outputHash, uint256 timestamp)
        external
        view
        returns (bytes32);
    /// @notice EIP-712 digest of an individual settlement (the key it is recorded under).
    function individualDigest(IndividualSettlement calldata settlement) external view returns (bytes32);
    /// @notice EIP-712 digest of a metadata settlement (the key it is recorded under).
    function metadataDigest(MetadataSettlement calldata record) external view returns (bytes32);
    /// @notice OpenGradient's signed message: keccak256(inputHash ‖ outputHash ‖ uint256 timestamp).
    function openGradientMessage(bytes32 inputHash, bytes32 outputHash, uint256 timestamp)
        external
        pure
        returns (bytes32);
    /// @notice The key an OpenGradient settlement is recorded under: keccak256(teeId ‖ openGradientMessage(...)).
    function openGradientDigest(bytes32 teeId, bytes32 inputHash, bytes32 outputHash, uint256 timestamp)
        external
        pure
        returns (bytes32);

    /// @notice True when `root` was recorded and `proof` proves `leaf` in it. False otherwise (never reverts).
    function verifyInclusion(bytes32 root, InferenceLeaf calldata leaf, bytes32[] calldata proof)
        external
        view
        returns (bool);

    /// @notice True when `root` was recorded and the multiproof proves all `leaves` in it. `leaves` must be in the
    /// order the multiproof uses (OpenZeppelin's getMultiProof().leaves). False otherwise; a structurally
    /// malformed multiproof reverts with OpenZeppelin's MerkleProofInvalidMultiproof().
    function verifyMultiInclusion(
        bytes32 root,
        InferenceLeaf[] calldata leaves,
        bytes32[] calldata proof,
        bool[] calldata proofFlags
    ) external view returns (bool);

    /// @notice The complete on-chain proof that "TEE X produced output Y for input Z, and it was settled in batch B":
    /// `root` was recorded, `proof` proves `leaf` in it, the leaf's TEE is active in the registry, and
    /// `leaf.teeSignature` is that TEE's signature over the leaf's fields: for a secp256k1 TEE its EIP-712 `Inference`
    /// signature, for an RSA TEE (OpenGradient's) its RSA-PSS signature over
    /// keccak256(inputHash ‖ outputHash ‖ uint256 timestamp), the raw signature bytes OpenGradient's leaves carry.
    /// Liveness is not required: the inference lies in the past.
    /// @return batchId The batch the inference was settled in.
    /// @return signer The TEE's signer address for a secp256k1 TEE; address(0) for an RSA TEE.
    /// @dev Reverts UnknownBatchRoot, InvalidInclusionProof, TeeNotActive, InvalidTeeSignature (secp256k1),
    /// InvalidRsaTeeSignature (RSA). Fails closed: a TEE disabled or revoked later no longer verifies.
    function verifyInferenceSignature(bytes32 root, InferenceLeaf calldata leaf, bytes32[] calldata proof)
        external
        view
        returns (uint256 batchId, address signer);
}
