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
    uint256 public constant MAX_BATCH_ITEMS = 256;
    /// @inheritdoc ISettlementRegistry
    uint8 public constant ITEM_INDIVIDUAL = 0;
    /// @inheritdoc ISettlementRegistry
    uint8 public constant ITEM_OPEN_GRADIENT = 1;
    /// @dev itemGas (4) + TEE count (1).
    uint256 private constant _BATCH_HEADER = 5;
    /// @dev kind (1) + TEE index (1) + inputHash (32) + outputHash (32) + timestamp (8) + payer (20).
    uint256 private constant _ITEM_FIXED = 94;
    /// @dev Gas a batch item's call needs beyond its cap: argument encoding, the CALL itself, the result check.
    uint256 private constant _GAS_RESERVE = 10_000;

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

    /// @dev One individual or OpenGradient record's fields, whichever way they arrived (struct or packed batch).
    struct Item {
        bytes32 inputHash;
        bytes32 outputHash;
        uint256 timestamp;
        address payer;
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
        return _settleIndividual(
            settlement.teeId,
            Item(settlement.inputHash, settlement.outputHash, settlement.timestamp, settlement.payer),
            signature,
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
        return _settleOpenGradient(
            settlement.teeId,
            Item(settlement.inputHash, settlement.outputHash, settlement.timestamp, settlement.payer),
            settlement.daPointer,
            signature,
            msg.sender
        );
    }

    /// @inheritdoc ISettlementRegistry
    function settleIndividualBatch(bytes calldata batch)
        external
        whenNotPaused
        onlyRole(RELAYER_ROLE)
        returns (uint256 settledMask, uint256 count)
    {
        if (batch.length < _BATCH_HEADER) revert MalformedSettlementBatch(0);
        uint256 itemGas = uint32(bytes4(batch[0:4]));
        uint256 p = _BATCH_HEADER + 32 * uint8(batch[4]);
        if (batch.length <= p) revert MalformedSettlementBatch(batch.length);
        while (p < batch.length) {
            if (count == MAX_BATCH_ITEMS) revert TooManySettlementItems(MAX_BATCH_ITEMS);
            (uint256 end, bytes32 teeId) = _nextItem(batch, p);
            // The callee must receive the whole cap despite the 63/64 rule (EIP-150), so that running out of gas is
            // the item's own doing; otherwise the caller sent too little gas and the whole batch reverts.
            uint256 available = gasleft();
            if (available < itemGas + itemGas / 63 + _GAS_RESERVE) {
                revert InsufficientGasForItem(count, available, itemGas + itemGas / 63 + _GAS_RESERVE);
            }
            try this.settleBatchItem{gas: itemGas}(teeId, batch[p:end], msg.sender) {
                settledMask |= 1 << count;
            } catch (bytes memory reason) {
                // No revert data after using at least 15/16 of the cap: the item ran out of gas (an out-of-gas deep
                // inside leaves up to 1/64 unused per call level).
                if (reason.length == 0 && available - gasleft() >= itemGas - itemGas / 16) {
                    reason = abi.encodeWithSelector(ItemOutOfGas.selector, itemGas);
                }
                emit SettlementItemFailed(count, reason);
            }
            unchecked {
                ++count;
            }
            p = end;
        }
    }

    /// @inheritdoc ISettlementRegistry
    function settleBatchItem(bytes32 teeId, bytes calldata item, address relayer) external returns (bytes32 digest) {
        if (msg.sender != address(this)) revert OnlySelf(msg.sender);
        Item memory fields = Item(
            bytes32(item[2:34]), bytes32(item[34:66]), uint64(bytes8(item[66:74])), address(bytes20(item[74:94]))
        );
        if (uint8(item[0]) == ITEM_OPEN_GRADIENT) {
            uint256 daEnd = 96 + uint16(bytes2(item[94:96]));
            return _settleOpenGradient(teeId, fields, item[96:daEnd], item[daEnd + 2:], relayer);
        }
        return _settleIndividual(teeId, fields, item[96:], relayer);
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

    /// @dev Records one EIP-712-signed individual settlement for `relayer`; reverts with the named reason otherwise.
    function _settleIndividual(bytes32 teeId, Item memory item, bytes calldata signature, address relayer)
        private
        returns (bytes32 digest)
    {
        if (item.payer == address(0)) revert InvalidPayer(item.payer);
        State memory state = _state;
        _checkTimestamp(item.timestamp, state);
        digest = _hashTypedDataV4(
            InferenceHash.individualStructHash(teeId, item.inputHash, item.outputHash, item.timestamp, item.payer)
        );
        if (_settlements[digest].kind != SettlementKind.None) revert SettlementAlreadyRecorded(digest);
        _checkTeeSignature(teeId, digest, signature);

        _settlements[digest] =
            Settlement({kind: SettlementKind.Individual, recordedAt: uint64(block.timestamp), relayer: relayer});
        emit IndividualSettled(
            digest, teeId, item.payer, item.inputHash, item.outputHash, item.timestamp, relayer
        );
    }

    /// @dev Records one OpenGradient (RSA-PSS) settlement for `relayer`; reverts with the named reason otherwise.
    function _settleOpenGradient(
        bytes32 teeId,
        Item memory item,
        bytes calldata daPointer,
        bytes calldata signature,
        address relayer
    ) private returns (bytes32 digest) {
        if (item.payer == address(0)) revert InvalidPayer(item.payer);
        if (daPointer.length > MAX_DA_POINTER_LENGTH) {
            revert InvalidDaPointerLength(daPointer.length, MAX_DA_POINTER_LENGTH);
        }
        State memory state = _state;
        _checkTimestamp(item.timestamp, state);
        bytes32 message = InferenceHash.openGradientMessage(item.inputHash, item.outputHash, item.timestamp);
        digest = InferenceHash.openGradientDigest(teeId, message);
        if (_settlements[digest].kind != SettlementKind.None) revert SettlementAlreadyRecorded(digest);
        _checkRsaSignature(teeId, message, signature, state.maxHeartbeatAge);

        _settlements[digest] =
            Settlement({kind: SettlementKind.OpenGradient, recordedAt: uint64(block.timestamp), relayer: relayer});
        emit OpenGradientSettled(
            digest, teeId, item.payer, item.inputHash, item.outputHash, item.timestamp, relayer, daPointer
        );
    }

    /// @dev The end of the item starting at `p` and its TEE id (see ISettlementRegistry.settleIndividualBatch);
    /// reverts MalformedSettlementBatch when it runs past the batch, has an unknown kind or TEE index.
    function _nextItem(bytes calldata batch, uint256 p) private pure returns (uint256 end, bytes32 teeId) {
        end = p + _ITEM_FIXED;
        if (end + 2 > batch.length) revert MalformedSettlementBatch(p);
        uint256 kind = uint8(batch[p]);
        if (kind == ITEM_OPEN_GRADIENT) {
            end += 2 + uint16(bytes2(batch[end:end + 2]));
            if (end + 2 > batch.length) revert MalformedSettlementBatch(p);
        } else if (kind != ITEM_INDIVIDUAL) {
            revert MalformedSettlementBatch(p);
        }
        end += 2 + uint16(bytes2(batch[end:end + 2]));
        if (end > batch.length) revert MalformedSettlementBatch(p);
        uint256 tee = uint8(batch[p + 1]);
        if (tee >= uint8(batch[4])) revert MalformedSettlementBatch(p + 1);
        uint256 at = _BATCH_HEADER + 32 * tee;
        teeId = bytes32(batch[at:at + 32]);
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
