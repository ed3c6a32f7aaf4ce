// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ITeeRegistry} from "./interfaces/ITeeRegistry.sol";
import {RsaPss} from "./libraries/RsaPss.sol";
import {TeeKeys} from "./libraries/TeeKeys.sol";
import {TeeRegistrationHash} from "./libraries/TeeRegistrationHash.sol";

/// @title TeeRegistry
/// @notice Approved enclave measurements and the TEE signing keys (secp256k1 or RSA) registered under them. See
/// ITeeRegistry.
contract TeeRegistry is ITeeRegistry, AccessControl, EIP712 {
    using TeeRegistrationHash for TeeRegistration;
    using TeeRegistrationHash for RsaTeeRegistration;

    /// @inheritdoc ITeeRegistry
    bytes32 public constant ADMIN_ROLE = keccak256("ADMIN_ROLE");
    /// @inheritdoc ITeeRegistry
    bytes32 public constant OPERATOR_ROLE = keccak256("OPERATOR_ROLE");
    /// @inheritdoc ITeeRegistry
    uint256 public constant MAX_ENDPOINT_LENGTH = 256;
    /// @inheritdoc ITeeRegistry
    uint256 public constant MAX_VERSION_LENGTH = 64;
    /// @inheritdoc ITeeRegistry
    uint256 public constant MAX_HEARTBEAT_WINDOW = 7 days;
    /// @inheritdoc ITeeRegistry
    bytes32 public constant TEE_REGISTRATION_TYPEHASH = TeeRegistrationHash.TEE_REGISTRATION_TYPEHASH;
    /// @inheritdoc ITeeRegistry
    bytes32 public constant RSA_TEE_REGISTRATION_TYPEHASH = TeeRegistrationHash.RSA_TEE_REGISTRATION_TYPEHASH;
    /// @inheritdoc ITeeRegistry
    bytes32 public constant HEARTBEAT_TYPEHASH = TeeRegistrationHash.HEARTBEAT_TYPEHASH;

    /// @dev OpenGradient's liveness window.
    uint32 private constant _DEFAULT_HEARTBEAT_WINDOW = 1800;
    uint256 private constant _PCR_LENGTH = 48;

    /// @dev A measurement's details; its status lives in `_statusOf[index]` so that signature checks need only two
    /// storage reads: the TEE's first slot and its measurement's status.
    struct MeasurementRecord {
        uint32 index;
        uint8 teeType;
        uint64 approvedAt;
        string version;
    }

    /// @dev Slot 0 holds everything a signature check and a heartbeat need. `key` is the signer address of a
    /// secp256k1 TEE, or the data contract holding an RSA TEE's DER key (TeeKeys).
    struct TeeRecord {
        address key;
        bool enabled;
        KeyType keyType;
        DisabledBy disabledBy;
        uint32 measurementIndex;
        uint40 lastHeartbeat;
        address operator;
        uint40 registeredAt;
        address paymentAddress;
        bytes32 measurement;
        bytes32 attestationHash;
        bytes32 tlsCertificateHash;
        string endpoint;
    }

    mapping(bytes32 measurement => MeasurementRecord) private _measurements;
    mapping(uint32 index => MeasurementStatus) private _statusOf;
    uint32 private _measurementCount;
    uint32 private _heartbeatWindow;

    mapping(uint8 teeType => string name) private _teeTypeNames;
    mapping(bytes32 teeId => TeeRecord) private _tees;
    mapping(address signer => bytes32 teeId) private _teeIdOfSigner;
    /// @dev Registered ids in registration order (overall, per type, per operator); ids are never removed or reused.
    bytes32[] private _teeIds;
    mapping(uint8 teeType => bytes32[]) private _teeIdsByType;
    mapping(address operator => bytes32[]) private _teeIdsByOwner;

    constructor(address admin) EIP712("OG TEE Registry", "1") {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(ADMIN_ROLE, admin);
        _heartbeatWindow = _DEFAULT_HEARTBEAT_WINDOW;
        _addTeeType(0, "LLMProxy", admin);
        _addTeeType(1, "IntelTdx", admin);
        _addTeeType(2, "AmdSevSnp", admin);
        _addTeeType(3, "AwsNitro", admin);
        _addTeeType(4, "IntelSgx", admin);
    }

    // --- TEE types and measurements --------------------------------------------------------------------------------

    /// @inheritdoc ITeeRegistry
    function addTeeType(uint8 teeType, string calldata name) external onlyRole(ADMIN_ROLE) {
        _addTeeType(teeType, name, msg.sender);
    }

    /// @inheritdoc ITeeRegistry
    function teeTypeName(uint8 teeType) external view returns (string memory) {
        return _teeTypeNames[teeType];
    }

    /// @inheritdoc ITeeRegistry
    function approveMeasurement(bytes32 measurement, uint8 teeType, string calldata version)
        external
        onlyRole(ADMIN_ROLE)
    {
        _approveMeasurement(measurement, teeType, version);
    }

    /// @inheritdoc ITeeRegistry
    function approvePcrs(
        bytes calldata pcr0,
        bytes calldata pcr1,
        bytes calldata pcr2,
        uint8 teeType,
        string calldata version
    ) external onlyRole(ADMIN_ROLE) returns (bytes32 pcrHash) {
        pcrHash = computePcrHash(pcr0, pcr1, pcr2);
        _approveMeasurement(pcrHash, teeType, version);
    }

    /// @inheritdoc ITeeRegistry
    function computePcrHash(bytes calldata pcr0, bytes calldata pcr1, bytes calldata pcr2)
        public
        pure
        returns (bytes32)
    {
        if (pcr0.length != _PCR_LENGTH) revert InvalidPcrLength(0, pcr0.length);
        if (pcr1.length != _PCR_LENGTH) revert InvalidPcrLength(1, pcr1.length);
        if (pcr2.length != _PCR_LENGTH) revert InvalidPcrLength(2, pcr2.length);
        return keccak256(abi.encodePacked(pcr0, pcr1, pcr2));
    }

    /// @inheritdoc ITeeRegistry
    function revokeMeasurement(bytes32 measurement) external onlyRole(ADMIN_ROLE) {
        uint32 index = _measurements[measurement].index;
        MeasurementStatus status = _statusOf[index];
        if (index == 0 || status != MeasurementStatus.Approved) revert MeasurementNotApproved(measurement, status);
        _statusOf[index] = MeasurementStatus.Revoked;
        emit MeasurementRevoked(measurement, msg.sender);
    }

    // --- registration --------------------------------------------------------------------------------------------

    /// @inheritdoc ITeeRegistry
    function registerTee(TeeRegistration calldata registration, bytes calldata proofOfPossession)
        external
        onlyRole(OPERATOR_ROLE)
        returns (bytes32 teeId)
    {
        if (registration.publicKey.length != 64) revert InvalidPublicKeyLength(registration.publicKey.length);
        uint32 measurementIndex = _checkRegistration(
            registration.measurement, registration.attestationHash, registration.paymentAddress, registration.endpoint
        );
        address signer;
        (teeId, signer) = TeeKeys.secp256k1IdAndSigner(registration.publicKey);
        if (_tees[teeId].keyType != KeyType.None) revert TeeAlreadyRegistered(teeId);
        address recovered = TeeKeys.recover(_hashTypedDataV4(registration.hash(teeId, msg.sender)), proofOfPossession);
        if (recovered != signer) revert InvalidProofOfPossession(teeId, recovered);

        _store(teeId, signer, KeyType.Secp256k1, measurementIndex, registration.measurement);
        TeeRecord storage tee = _tees[teeId];
        tee.paymentAddress = registration.paymentAddress;
        tee.attestationHash = registration.attestationHash;
        tee.endpoint = registration.endpoint;
        _teeIdOfSigner[signer] = teeId;
        _emitRegistered(teeId, signer, registration);
    }

    /// @inheritdoc ITeeRegistry
    function registerRsaTee(RsaTeeRegistration calldata registration, bytes calldata proofOfPossession)
        external
        onlyRole(OPERATOR_ROLE)
        returns (bytes32 teeId)
    {
        TeeKeys.RsaKeyLayout memory layout = TeeKeys.parseRsaPublicKey(registration.publicKey);
        uint32 measurementIndex = _checkRegistration(
            registration.measurement, registration.attestationHash, registration.paymentAddress, registration.endpoint
        );
        teeId = keccak256(registration.publicKey);
        if (_tees[teeId].keyType != KeyType.None) revert TeeAlreadyRegistered(teeId);
        bytes32 digest = _hashTypedDataV4(registration.hash(teeId, msg.sender));
        RsaPss.PssError reason =
            TeeKeys.verifyRsaCalldata(registration.publicKey, layout, digest, proofOfPossession);
        if (reason != RsaPss.PssError.None) revert InvalidRsaProofOfPossession(teeId, reason);

        address store = TeeKeys.storeRsaKey(registration.publicKey, layout);
        _store(teeId, store, KeyType.Rsa, measurementIndex, registration.measurement);
        TeeRecord storage tee = _tees[teeId];
        tee.paymentAddress = registration.paymentAddress;
        tee.attestationHash = registration.attestationHash;
        if (registration.tlsCertificateHash != bytes32(0)) tee.tlsCertificateHash = registration.tlsCertificateHash;
        tee.endpoint = registration.endpoint;
        _emitRsaRegistered(teeId, registration);
    }

    // --- heartbeat ---------------------------------------------------------------------------------------------------

    /// @inheritdoc ITeeRegistry
    function heartbeat(bytes32 teeId, uint256 timestamp, bytes calldata signature) external {
        TeeRecord storage tee = _tees[teeId];
        KeyType keyType = tee.keyType;
        if (keyType == KeyType.None) revert TeeNotRegistered(teeId);
        if (!tee.enabled || _statusOf[tee.measurementIndex] != MeasurementStatus.Approved) revert TeeNotActive(teeId);
        if (timestamp > block.timestamp) revert HeartbeatInFuture(timestamp, block.timestamp);
        uint256 window = _heartbeatWindow;
        uint256 oldest = block.timestamp > window ? block.timestamp - window : 0;
        if (timestamp < oldest) revert HeartbeatTooOld(timestamp, oldest);
        uint256 last = tee.lastHeartbeat;
        if (timestamp <= last) revert HeartbeatNotNewer(timestamp, last);
        if (keyType == KeyType.Rsa) {
            RsaPss.PssError reason =
                TeeKeys.verifyRsa(tee.key, keccak256(abi.encodePacked(teeId, timestamp)), signature);
            if (reason != RsaPss.PssError.None) revert InvalidHeartbeatSignature(teeId, reason);
        } else {
            bytes32 digest = _hashTypedDataV4(TeeRegistrationHash.heartbeatHash(teeId, timestamp));
            address recovered = TeeKeys.recover(digest, signature);
            if (recovered != tee.key) revert InvalidHeartbeatSigner(teeId, recovered);
        }
        tee.lastHeartbeat = uint40(timestamp);
        emit HeartbeatReceived(teeId, timestamp, msg.sender);
    }

    /// @inheritdoc ITeeRegistry
    function setHeartbeatWindow(uint256 window) external onlyRole(ADMIN_ROLE) {
        if (window == 0 || window > MAX_HEARTBEAT_WINDOW) revert InvalidHeartbeatWindow(window, MAX_HEARTBEAT_WINDOW);
        _heartbeatWindow = uint32(window);
        emit HeartbeatWindowUpdated(window, msg.sender);
    }

    /// @inheritdoc ITeeRegistry
    function heartbeatWindow() external view returns (uint256) {
        return _heartbeatWindow;
    }

    // --- disable / enable --------------------------------------------------------------------------------------------

    /// @inheritdoc ITeeRegistry
    function disableTee(bytes32 teeId) external {
        TeeRecord storage tee = _registered(teeId);
        bool admin = hasRole(ADMIN_ROLE, msg.sender);
        if (!admin && msg.sender != tee.operator) revert NotTeeOperatorOrAdmin(teeId, msg.sender);
        if (!tee.enabled) revert TeeAlreadyDisabled(teeId);
        tee.enabled = false;
        tee.disabledBy = admin ? DisabledBy.Admin : DisabledBy.Operator;
        emit TeeDisabled(teeId, msg.sender);
    }

    /// @inheritdoc ITeeRegistry
    function enableTee(bytes32 teeId) external {
        TeeRecord storage tee = _registered(teeId);
        if (!hasRole(ADMIN_ROLE, msg.sender)) {
            if (msg.sender != tee.operator) revert NotTeeOperatorOrAdmin(teeId, msg.sender);
            if (!hasRole(OPERATOR_ROLE, msg.sender)) revert OperatorRoleRequired(teeId, msg.sender);
            if (tee.disabledBy == DisabledBy.Admin) revert TeeDisabledByAdmin(teeId);
        }
        if (tee.enabled) revert TeeAlreadyEnabled(teeId);
        MeasurementStatus status = _statusOf[tee.measurementIndex];
        if (status != MeasurementStatus.Approved) revert MeasurementNotApproved(tee.measurement, status);
        tee.enabled = true;
        tee.disabledBy = DisabledBy.None;
        emit TeeEnabled(teeId, msg.sender);
    }

    // --- views -------------------------------------------------------------------------------------------------------

    /// @inheritdoc ITeeRegistry
    function isActive(bytes32 teeId) public view returns (bool) {
        TeeRecord storage tee = _tees[teeId];
        return tee.enabled && _statusOf[tee.measurementIndex] == MeasurementStatus.Approved;
    }

    /// @inheritdoc ITeeRegistry
    function isLive(bytes32 teeId) external view returns (bool) {
        return isActive(teeId) && _fresh(_tees[teeId].lastHeartbeat);
    }

    /// @inheritdoc ITeeRegistry
    function activeSigner(bytes32 teeId) external view returns (address) {
        TeeRecord storage tee = _tees[teeId];
        if (
            !tee.enabled || tee.keyType != KeyType.Secp256k1
                || _statusOf[tee.measurementIndex] != MeasurementStatus.Approved
        ) return address(0);
        return tee.key;
    }

    /// @inheritdoc ITeeRegistry
    function checkRsaSignature(bytes32 teeId, bytes32 message, bytes calldata signature, uint256 maxHeartbeatAge)
        external
        view
        returns (RsaCheck check, RsaPss.PssError reason, uint256 lastHeartbeat)
    {
        TeeRecord storage tee = _tees[teeId];
        (address store, bool enabled, KeyType keyType, uint32 measurementIndex, uint40 last) =
            (tee.key, tee.enabled, tee.keyType, tee.measurementIndex, tee.lastHeartbeat);
        lastHeartbeat = last;
        if (keyType == KeyType.Secp256k1) return (RsaCheck.NotRsaKey, reason, lastHeartbeat);
        if (!enabled || _statusOf[measurementIndex] != MeasurementStatus.Approved) {
            return (RsaCheck.TeeNotActive, reason, lastHeartbeat);
        }
        if (maxHeartbeatAge != 0 && block.timestamp > last + maxHeartbeatAge) {
            return (RsaCheck.TeeNotLive, reason, lastHeartbeat);
        }
        reason = TeeKeys.verifyRsa(store, message, signature);
        check = reason == RsaPss.PssError.None ? RsaCheck.Valid : RsaCheck.InvalidSignature;
    }

    /// @inheritdoc ITeeRegistry
    function keyTypeOf(bytes32 teeId) external view returns (KeyType) {
        return _tees[teeId].keyType;
    }

    /// @inheritdoc ITeeRegistry
    function teePublicKey(bytes32 teeId) external view returns (KeyType keyType, bytes memory publicKey) {
        TeeRecord storage tee = _tees[teeId];
        keyType = tee.keyType;
        if (keyType == KeyType.Rsa) publicKey = TeeKeys.rsaPublicKey(tee.key);
    }

    /// @inheritdoc ITeeRegistry
    function getTee(bytes32 teeId) external view returns (Tee memory) {
        TeeRecord storage tee = _tees[teeId];
        return Tee({
            keyType: tee.keyType,
            signer: tee.keyType == KeyType.Secp256k1 ? tee.key : address(0),
            enabled: tee.enabled,
            disabledBy: tee.disabledBy,
            teeType: _measurements[tee.measurement].teeType,
            registeredAt: tee.registeredAt,
            lastHeartbeat: tee.lastHeartbeat,
            operator: tee.operator,
            measurement: tee.measurement,
            attestationHash: tee.attestationHash,
            tlsCertificateHash: tee.tlsCertificateHash,
            paymentAddress: tee.paymentAddress,
            endpoint: tee.endpoint
        });
    }

    /// @inheritdoc ITeeRegistry
    function signerOf(bytes32 teeId) external view returns (address) {
        TeeRecord storage tee = _tees[teeId];
        return tee.keyType == KeyType.Secp256k1 ? tee.key : address(0);
    }

    /// @inheritdoc ITeeRegistry
    function measurementOf(bytes32 teeId) external view returns (bytes32) {
        return _tees[teeId].measurement;
    }

    /// @inheritdoc ITeeRegistry
    function getMeasurement(bytes32 measurement) external view returns (Measurement memory) {
        MeasurementRecord storage record = _measurements[measurement];
        if (record.index == 0) return Measurement(MeasurementStatus.None, 0, 0, "");
        return Measurement(_statusOf[record.index], record.teeType, record.approvedAt, record.version);
    }

    /// @inheritdoc ITeeRegistry
    function teeIdOfSigner(address signer) external view returns (bytes32) {
        return _teeIdOfSigner[signer];
    }

    /// @inheritdoc ITeeRegistry
    function teeCount() external view returns (uint256) {
        return _teeIds.length;
    }

    /// @inheritdoc ITeeRegistry
    function activeTeeIds(uint256 offset, uint256 limit) external view returns (bytes32[] memory ids) {
        return _activePage(_teeIds, offset, limit);
    }

    /// @inheritdoc ITeeRegistry
    function teeCountByType(uint8 teeType) external view returns (uint256) {
        return _teeIdsByType[teeType].length;
    }

    /// @inheritdoc ITeeRegistry
    function activeTeeIdsByType(uint8 teeType, uint256 offset, uint256 limit)
        external
        view
        returns (bytes32[] memory ids)
    {
        return _activePage(_teeIdsByType[teeType], offset, limit);
    }

    /// @inheritdoc ITeeRegistry
    function teeCountByOwner(address operator) external view returns (uint256) {
        return _teeIdsByOwner[operator].length;
    }

    /// @inheritdoc ITeeRegistry
    function activeTeeIdsByOwner(address operator, uint256 offset, uint256 limit)
        external
        view
        returns (bytes32[] memory ids)
    {
        return _activePage(_teeIdsByOwner[operator], offset, limit);
    }

    // --- internals ---------------------------------------------------------------------------------------------------

    function _addTeeType(uint8 teeType, string memory name, address admin) private {
        uint256 length = bytes(name).length;
        if (length == 0 || length > MAX_VERSION_LENGTH) revert InvalidTeeTypeName(length, MAX_VERSION_LENGTH);
        if (bytes(_teeTypeNames[teeType]).length != 0) revert TeeTypeAlreadyDefined(teeType);
        _teeTypeNames[teeType] = name;
        emit TeeTypeAdded(teeType, name, admin);
    }

    function _approveMeasurement(bytes32 measurement, uint8 teeType, string calldata version) private {
        if (measurement == bytes32(0)) revert InvalidMeasurement(measurement);
        if (bytes(_teeTypeNames[teeType]).length == 0) revert InvalidTeeType(teeType);
        uint256 versionLength = bytes(version).length;
        if (versionLength == 0 || versionLength > MAX_VERSION_LENGTH) {
            revert InvalidVersionLength(versionLength, MAX_VERSION_LENGTH);
        }
        MeasurementRecord storage record = _measurements[measurement];
        if (record.index != 0) {
            if (_statusOf[record.index] == MeasurementStatus.Revoked) revert MeasurementWasRevoked(measurement);
            revert MeasurementAlreadyApproved(measurement);
        }
        uint32 index = ++_measurementCount;
        record.index = index;
        record.teeType = teeType;
        record.approvedAt = uint64(block.timestamp);
        record.version = version;
        _statusOf[index] = MeasurementStatus.Approved;
        emit MeasurementApproved(measurement, teeType, msg.sender, version);
    }

    /// @dev The checks both registrations share; returns the measurement's index.
    function _checkRegistration(
        bytes32 measurement,
        bytes32 attestationHash,
        address paymentAddress,
        string calldata endpoint
    ) private view returns (uint32 measurementIndex) {
        measurementIndex = _measurements[measurement].index;
        MeasurementStatus status = _statusOf[measurementIndex];
        if (measurementIndex == 0 || status != MeasurementStatus.Approved) {
            revert MeasurementNotApproved(measurement, status);
        }
        if (attestationHash == bytes32(0)) revert InvalidAttestationHash(attestationHash);
        if (paymentAddress == address(0)) revert InvalidPaymentAddress(paymentAddress);
        uint256 endpointLength = bytes(endpoint).length;
        if (endpointLength == 0 || endpointLength > MAX_ENDPOINT_LENGTH) {
            revert InvalidEndpointLength(endpointLength, MAX_ENDPOINT_LENGTH);
        }
    }

    /// @dev Writes the fields every key type shares and indexes the TEE; it starts enabled and live.
    function _store(bytes32 teeId, address key, KeyType keyType, uint32 measurementIndex, bytes32 measurement)
        private
    {
        TeeRecord storage tee = _tees[teeId];
        tee.key = key;
        tee.enabled = true;
        tee.keyType = keyType;
        tee.measurementIndex = measurementIndex;
        tee.lastHeartbeat = uint40(block.timestamp);
        tee.operator = msg.sender;
        tee.registeredAt = uint40(block.timestamp);
        tee.measurement = measurement;
        _teeIds.push(teeId);
        _teeIdsByType[_measurements[measurement].teeType].push(teeId);
        _teeIdsByOwner[msg.sender].push(teeId);
    }

    function _fresh(uint256 lastHeartbeat) private view returns (bool) {
        return block.timestamp <= lastHeartbeat + _heartbeatWindow;
    }

    function _activePage(bytes32[] storage list, uint256 offset, uint256 limit)
        private
        view
        returns (bytes32[] memory ids)
    {
        uint256 total = list.length;
        uint256 end = offset >= total ? offset : (limit > total - offset ? total : offset + limit);
        ids = new bytes32[](end - offset);
        uint256 count;
        for (uint256 i = offset; i < end; ++i) {
            bytes32 teeId = list[i];
            if (isActive(teeId)) ids[count++] = teeId;
        }
        assembly ("memory-safe") {
            mstore(ids, count)
        }
    }

    /// @dev Emits TeeRegistered (a separate frame keeps registerTee's stack shallow).
    function _emitRegistered(bytes32 teeId, address signer, TeeRegistration calldata registration) private {
        emit TeeRegistered(
            teeId,
            signer,
            registration.measurement,
            msg.sender,
            registration.attestationHash,
            registration.paymentAddress,
            registration.endpoint,
            registration.publicKey
        );
    }

    /// @dev Emits RsaTeeRegistered.
    function _emitRsaRegistered(bytes32 teeId, RsaTeeRegistration calldata registration) private {
        emit RsaTeeRegistered(
            teeId,
            msg.sender,
            registration.measurement,
            registration.attestationHash,
            registration.tlsCertificateHash,
            registration.paymentAddress,
            registration.endpoint,
            registration.publicKey
        );
    }

    /// @dev The TEE, after checking it exists.
    function _registered(bytes32 teeId) private view returns (TeeRecord storage tee) {
        tee = _tees[teeId];
        if (tee.keyType == KeyType.None) revert TeeNotRegistered(teeId);
    }
}
