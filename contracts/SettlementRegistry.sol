// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {ISettlementRegistry} from "./interfaces/ISettlementRegistry.sol";
import {ITeeRegistry} from "./interfaces/ITeeRegistry.sol";
import {InferenceHash} from "./libraries/InferenceHash.sol";
import {RsaPss} from "./libraries/RsaPss.sol";

/// @title SettlementRegistry
/// @notice Individual, batch-Merkle and metadata settlement of TEE inferences. See ISettlementRegistry.
contract SettlementRegistry is ISettlementRegistry, AccessControl, Pausable, EIP712 {
    using InferenceHash for IndividualSettlement;
    using InferenceHash for MetadataSettlement;
    using InferenceHash for InferenceLeaf;

    /// @inheritdoc ISettlementRegistry
    bytes32 public constant ADMIN_ROLE = keccak256("ADMIN_ROLE");
    /// @inheritdoc ISettlementRegistry
    bytes32 public constant RELAYER_ROLE = keccak256("RELAYER_ROLE");
    /// @inheritdoc ISettlementRegistry
    uint256 public constant MAX_DA_POINTER_LENGTH = 256;
    /// @inheritdoc ISettlementRegistry
    uint256 public constant MAX_METADATA_SIZE = 64 * 1024;
    /// @inheritdoc ISettlementRegistry
    uint256 public constant MAX_WINDOW = 30 days;
    /// @inheritdoc ISettlementRegistry
    bytes32 public constant INFERENCE_TYPEHASH = InferenceHash.INFERENCE_TYPEHASH;
    /// @inheritdoc ISettlementRegistry
    bytes32 public constant INDIVIDUAL_SETTLEMENT_TYPEHASH = InferenceHash.INDIVIDUAL_SETTLEMENT_TYPEHASH;
    /// @inheritdoc ISettlementRegistry
    bytes32 public constant METADATA_SETTLEMENT_TYPEHASH = InferenceHash.METADATA_SETTLEMENT_TYPEHASH;

    /// @inheritdoc ISettlementRegistry
    ITeeRegistry public immutable teeRegistry;

    /// @dev The pause flag, the timestamp window and the batch counters share one slot: every settlement checks the
    /// flag and (individual/metadata) reads the window or (batch) bumps the counters, so one cold SLOAD serves all.
    /// Individual and metadata settlements are deliberately not counted on chain: a counter update costs a warm
    /// SSTORE (2,900 gas) per settlement, which would put an individual settlement over its 70k gas budget; their
    /// count is the number of IndividualSettled / MetadataSettled events.
    /// (OpenZeppelin Pausable's own `_paused` slot is left unused: `paused()`, `_pause()` and `_unpause()` are
    /// overridden to use this flag, and Pausable's modifiers, events and errors are kept.)
    struct State {
        bool paused;
        uint32 maxHeartbeatAge;
        uint32 maxAge;
        uint32 maxFutureDrift;
        uint32 batches;
        uint64 inferencesInBatches;
    }

    State private _state;
    mapping(bytes32 root => Batch) private _batches;
    mapping(bytes32 digest => Settlement) private _settlements;

    constructor(ITeeRegistry registry, address admin, uint256 maxAge, uint256 maxFutureDrift)
        EIP712("OG Settlement Registry", "1")
    {
        if (address(registry).code.length == 0) revert InvalidTeeRegistry(address(registry));
        teeRegistry = registry;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(ADMIN_ROLE, admin);
        _setTimestampWindow(maxAge, maxFutureDrift, admin);
    }

    /// @inheritdoc ISettlementRegistry
    function recordBatch(bytes32 root, uint256 size, bytes calldata daPointer)
        external
        whenNotPaused
        onlyRole(RELAYER_ROLE)
        returns (uint256 batchId)
    {
        if (root == bytes32(0)) revert InvalidBatchRoot(root);
        if (size == 0 || size > type(uint32).max) revert InvalidBatchSize(size);
        if (daPointer.length == 0 || daPointer.length > MAX_DA_POINTER_LENGTH) {
            revert InvalidDaPointerLength(daPointer.length, MAX_DA_POINTER_LENGTH);
        }
        uint32 existing = _batches[root].batchId;
        if (existing != 0) revert BatchRootAlreadyRecorded(root, existing);

        State memory state = _state;
        uint32 id = ++state.batches;
        state.inferencesInBatches += uint64(size);
        _state = state;
        _batches[root] =
            Batch({relayer: msg.sender, batchId: id, size: uint32(size), recordedAt: uint32(block.timestamp)});
        emit BatchRecorded(id, root, msg.sender, size, daPointer);
        return id;
    }

    /// @inheritdoc ISettlementRegistry
    function settleIndividual(IndividualSettlement calldata settlement, bytes calldata signature)
        external
        whenNotPaused
        onlyRole(RELAYER_ROLE)
        returns (bytes32 digest)
    {
        if (settlement.payer == address(0)) revert InvalidPayer(settlement.payer);
        State memory state = _state;
        _checkTimestamp(settlement.timestamp, state);
        digest = _hashTypedDataV4(settlement.hash());
        if (_settlements[digest].kind != SettlementKind.None) revert SettlementAlreadyRecorded(digest);
        _checkTeeSignature(settlement.teeId, digest, signature);

        _settlements[digest] =
            Settlement({kind: SettlementKind.Individual, recordedAt: uint64(block.timestamp), relayer: msg.sender});
        emit IndividualSettled(
            digest,
            settlement.teeId,
            settlement.payer,
            settlement.inputHash,
            settlement.outputHash,
            settlement.timestamp,
            msg.sender
        );
    }

    /// @inheritdoc ISettlementRegistry
    function settleOpenGradient(OpenGradientSettlement calldata settlement, bytes calldata signature)
        external
        whenNotPaused
        onlyRole(RELAYER_ROLE)
        returns (bytes32 digest)
    {
        if (settlement.payer == address(0)) revert InvalidPayer(settlement.payer);
        if (settlement.daPointer.length > MAX_DA_POINTER_LENGTH) {
            revert InvalidDaPointerLength(settlement.daPointer.length, MAX_DA_POINTER_LENGTH);
        }
        State memory state = _state;
        _checkTimestamp(settlement.timestamp, state);
        bytes32 message =
            InferenceHash.openGradientMessage(settlement.inputHash, settlement.outputHash, settlement.timestamp);
        digest = InferenceHash.openGradientDigest(settlement.teeId, message);
        if (_settlements[digest].kind != SettlementKind.None) revert SettlementAlreadyRecorded(digest);
        _checkRsaSignature(settlement.teeId, message, signature, state.maxHeartbeatAge);

        _settlements[digest] =
            Settlement({kind: SettlementKind.OpenGradient, recordedAt: uint64(block.timestamp), relayer: msg.sender});
        emit OpenGradientSettled(
            digest,
            settlement.teeId,
            settlement.payer,
            settlement.inputHash,
            settlement.outputHash,
            settlement.timestamp,
            msg.sender,
            settlement.daPointer
        );
    }

    /// @inheritdoc ISettlementRegistry
    function settleMetadata(MetadataSettlement calldata record, bytes calldata signature)
        external
        whenNotPaused
        onlyRole(RELAYER_ROLE)
        returns (bytes32 digest)
    {
        uint256 size = bytes(record.modelId).length + record.input.length + record.output.length
            + record.metadata.length;
        if (size > MAX_METADATA_SIZE) revert MetadataTooLarge(size, MAX_METADATA_SIZE);
        if (record.payer == address(0)) revert InvalidPayer(record.payer);
        State memory state = _state;
        _checkTimestamp(record.timestamp, state);
        (bytes32 structHash, bytes32 inputHash, bytes32 outputHash) = record.hash();
        digest = _hashTypedDataV4(structHash);
        if (_settlements[digest].kind != SettlementKind.None) revert SettlementAlreadyRecorded(digest);
        _checkTeeSignature(record.teeId, digest, signature);

        _settlements[digest] =
            Settlement({kind: SettlementKind.Metadata, recordedAt: uint64(block.timestamp), relayer: msg.sender});
        _emitMetadataSettled(digest, inputHash, outputHash, record);
    }

    /// @inheritdoc ISettlementRegistry
    function setTimestampWindow(uint256 maxAge, uint256 maxFutureDrift) external onlyRole(ADMIN_ROLE) {
        _setTimestampWindow(maxAge, maxFutureDrift, msg.sender);
    }

    /// @inheritdoc ISettlementRegistry
    function setMaxHeartbeatAge(uint256 maxAge) external onlyRole(ADMIN_ROLE) {
        if (maxAge > MAX_WINDOW) revert InvalidMaxHeartbeatAge(maxAge, MAX_WINDOW);
        _state.maxHeartbeatAge = uint32(maxAge);
        emit LivenessRequirementUpdated(maxAge, msg.sender);
    }

    /// @inheritdoc ISettlementRegistry
    function maxHeartbeatAge() external view returns (uint256) {
        return _state.maxHeartbeatAge;
    }

    /// @inheritdoc ISettlementRegistry
    function pause() external onlyRole(ADMIN_ROLE) {
        _pause();
    }

    /// @inheritdoc ISettlementRegistry
    function unpause() external onlyRole(ADMIN_ROLE) {
        _unpause();
    }

    /// @notice True while settlement is paused.
    function paused() public view override returns (bool) {
        return _state.paused;
    }

    /// @inheritdoc ISettlementRegistry
    function timestampWindow() external view returns (uint256 maxAge, uint256 maxFutureDrift) {
        return (_state.maxAge, _state.maxFutureDrift);
    }

    /// @inheritdoc ISettlementRegistry
    function getBatch(bytes32 root) external view returns (Batch memory) {
        return _batches[root];
    }

    /// @inheritdoc ISettlementRegistry
    function getSettlement(bytes32 digest) external view returns (Settlement memory) {
        return _settlements[digest];
    }

    /// @inheritdoc ISettlementRegistry
    function isSettled(bytes32 digest) external view returns (bool) {
        return _settlements[digest].kind != SettlementKind.None;
    }

    /// @inheritdoc ISettlementRegistry
    function counters() external view returns (Counters memory) {
        State memory state = _state;
        return Counters({batches: state.batches, inferencesInBatches: state.inferencesInBatches});
    }

    /// @inheritdoc ISettlementRegistry
    function leafHash(InferenceLeaf calldata leaf) external pure returns (bytes32) {
        return leaf.leafHash();
    }

    /// @inheritdoc ISettlementRegistry
    function inferenceDigest(bytes32 teeId, bytes32 inputHash, bytes32 outputHash, uint256 timestamp)
        external
        view
        returns (bytes32)
    {
        return _hashTypedDataV4(InferenceHash.inferenceStructHash(teeId, inputHash, outputHash, timestamp));
    }

    /// @inheritdoc ISettlementRegistry
    function individualDigest(IndividualSettlement calldata settlement) external view returns (bytes32) {
        return _hashTypedDataV4(settlement.hash());
    }

    /// @inheritdoc ISettlementRegistry
    function metadataDigest(MetadataSettlement calldata record) external view returns (bytes32) {
        (bytes32 structHash,,) = record.hash();
        return _hashTypedDataV4(structHash);
    }

    /// @inheritdoc ISettlementRegistry
    function openGradientMessage(bytes32 inputHash, bytes32 outputHash, uint256 timestamp)
        external
        pure
        returns (bytes32)
    {
        return InferenceHash.openGradientMessage(inputHash, outputHash, timestamp);
    }

    /// @inheritdoc ISettlementRegistry
    function openGradientDigest(bytes32 teeId, bytes32 inputHash, bytes32 outputHash, uint256 timestamp)
        external
        pure
        returns (bytes32)
    {
        bytes32 message = InferenceHash.openGradientMessage(inputHash, outputHash, timestamp);
        return InferenceHash.openGradientDigest(teeId, message);
    }

    /// @inheritdoc ISettlementRegistry
    function verifyInclusion(bytes32 root, InferenceLeaf calldata leaf, bytes32[] calldata proof)
        external
        view
        returns (bool)
    {
        if (_batches[root].batchId == 0) return false;
        return MerkleProof.verifyCalldata(proof, root, leaf.leafHash());
    }

    /// @inheritdoc ISettlementRegistry
    function verifyMultiInclusion(
        bytes32 root,
        InferenceLeaf[] calldata leaves,
        bytes32[] calldata proof,
        bool[] calldata proofFlags
    ) external view returns (bool) {
        // An empty leaf list would "prove" the root itself (proof = [root]); it proves no inference.
        if (_batches[root].batchId == 0 || leaves.length == 0) return false;
        bytes32[] memory hashes = new bytes32[](leaves.length);
        for (uint256 i; i < leaves.length; ++i) {
            hashes[i] = leaves[i].leafHash();
        }
        return MerkleProof.multiProofVerifyCalldata(proof, proofFlags, root, hashes);
    }

    /// @inheritdoc ISettlementRegistry
    function verifyInferenceSignature(bytes32 root, InferenceLeaf calldata leaf, bytes32[] calldata proof)
        external
        view
        returns (uint256 batchId, address signer)
    {
        batchId = _batches[root].batchId;
        if (batchId == 0) revert UnknownBatchRoot(root);
        bytes32 hashed = leaf.leafHash();
        if (!MerkleProof.verifyCalldata(proof, root, hashed)) revert InvalidInclusionProof(root, hashed);
        if (teeRegistry.keyTypeOf(leaf.teeId) == ITeeRegistry.KeyType.Rsa) {
            bytes32 message = InferenceHash.openGradientMessage(leaf.inputHash, leaf.outputHash, leaf.timestamp);
            _checkRsaSignature(leaf.teeId, message, leaf.teeSignature, 0);
            return (batchId, address(0));
        }
        bytes32 digest = _hashTypedDataV4(
            InferenceHash.inferenceStructHash(leaf.teeId, leaf.inputHash, leaf.outputHash, leaf.timestamp)
        );
        signer = _checkTeeSignature(leaf.teeId, digest, leaf.teeSignature);
    }

    /// @dev Reverts unless `timestamp` is within [now - maxAge, now + maxFutureDrift].
    function _checkTimestamp(uint256 timestamp, State memory state) private view {
        uint256 oldest = block.timestamp > state.maxAge ? block.timestamp - state.maxAge : 0;
        if (timestamp < oldest) revert TimestampTooOld(timestamp, oldest);
        uint256 latest = block.timestamp + state.maxFutureDrift;
        if (timestamp > latest) revert TimestampInFuture(timestamp, latest);
    }

    /// @dev Reverts unless `teeId` is active and `signature` over `digest` recovers to its signer. The registry call
    /// is a view (STATICCALL) to an immutable, trusted contract.
    function _checkTeeSignature(bytes32 teeId, bytes32 digest, bytes calldata signature)
        private
        view
        returns (address signer)
    {
        signer = teeRegistry.activeSigner(teeId);
        if (signer == address(0)) revert TeeNotActive(teeId);
        (address recovered,,) = ECDSA.tryRecoverCalldata(digest, signature);
        if (recovered != signer) revert InvalidTeeSignature(teeId, recovered);
    }

    /// @dev Reverts unless `teeId` is an active RSA TEE (with a heartbeat at most `heartbeatAge` old, unless 0) whose
    /// RSA-PSS signature over `message` is `signature`. The registry call is a view (STATICCALL) to an immutable,
    /// trusted contract.
    function _checkRsaSignature(bytes32 teeId, bytes32 message, bytes calldata signature, uint256 heartbeatAge)
        private
        view
    {
        (ITeeRegistry.RsaCheck check, RsaPss.PssError reason, uint256 lastHeartbeat) =
            teeRegistry.checkRsaSignature(teeId, message, signature, heartbeatAge);
        if (check == ITeeRegistry.RsaCheck.Valid) return;
        if (check == ITeeRegistry.RsaCheck.TeeNotActive) revert TeeNotActive(teeId);
        if (check == ITeeRegistry.RsaCheck.NotRsaKey) revert NotRsaTee(teeId);
        if (check == ITeeRegistry.RsaCheck.TeeNotLive) revert TeeNotLive(teeId, lastHeartbeat);
        revert InvalidRsaTeeSignature(teeId, reason);
    }

    function _pause() internal override whenNotPaused {
        _state.paused = true;
        emit Paused(msg.sender);
    }

    function _unpause() internal override whenPaused {
        _state.paused = false;
        emit Unpaused(msg.sender);
    }

    function _setTimestampWindow(uint256 maxAge, uint256 maxFutureDrift, address admin) private {
        if (maxAge > MAX_WINDOW || maxFutureDrift > MAX_WINDOW) revert InvalidTimestampWindow(maxAge, maxFutureDrift);
        _state.maxAge = uint32(maxAge);
        _state.maxFutureDrift = uint32(maxFutureDrift);
        emit TimestampWindowUpdated(maxAge, maxFutureDrift, admin);
    }

    function _emitMetadataSettled(
        bytes32 digest,
        bytes32 inputHash,
        bytes32 outputHash,
        MetadataSettlement calldata record
    ) private {
        emit MetadataSettled(
            digest,
            record.teeId,
            record.payer,
            inputHash,
            outputHash,
            record.timestamp,
            msg.sender,
            record.modelId,
            record.input,
            record.output,
            record.metadata
        );
    }
}
