// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ITeeRegistry} from "./interfaces/ITeeRegistry.sol";
import {TeeRegistrationHash} from "./libraries/TeeRegistrationHash.sol";

/// @title TeeRegistry
/// @notice Approved enclave measurements and the TEE signing keys registered under them. See ITeeRegistry.
contract TeeRegistry is ITeeRegistry, AccessControl, EIP712 {
    using TeeRegistrationHash for TeeRegistration;

    /// @inheritdoc ITeeRegistry
    bytes32 public constant ADMIN_ROLE = keccak256("ADMIN_ROLE");
    /// @inheritdoc ITeeRegistry
    bytes32 public constant OPERATOR_ROLE = keccak256("OPERATOR_ROLE");
    /// @inheritdoc ITeeRegistry
    uint256 public constant MAX_ENDPOINT_LENGTH = 256;
    /// @inheritdoc ITeeRegistry
    uint256 public constant MAX_VERSION_LENGTH = 64;
    /// @inheritdoc ITeeRegistry
    bytes32 public constant TEE_REGISTRATION_TYPEHASH = TeeRegistrationHash.TEE_REGISTRATION_TYPEHASH;

    /// @dev A measurement's details; its status lives in `_statusOf[index]` so that the hot path
    /// (`activeSigner`) needs only two storage reads: the TEE's first slot and its measurement's status.
    struct MeasurementRecord {
        uint32 index;
        TeeType teeType;
        uint64 approvedAt;
        string version;
    }

    /// @dev Slot 0 holds everything `activeSigner` needs.
    struct TeeRecord {
        address signer;
        bool enabled;
        uint40 registeredAt;
        uint32 measurementIndex;
        address operator;
        address paymentAddress;
        bytes32 measurement;
        bytes32 attestationHash;
        string endpoint;
    }

    mapping(bytes32 measurement => MeasurementRecord) private _measurements;
    mapping(uint32 index => MeasurementStatus) private _statusOf;
    uint32 private _measurementCount;

    mapping(bytes32 teeId => TeeRecord) private _tees;
    mapping(address signer => bytes32 teeId) private _teeIdOfSigner;
    /// @dev Registered ids in registration order; ids are never removed or reused, so a plain array is the set.
    bytes32[] private _teeIds;

    constructor(address admin) EIP712("OG TEE Registry", "1") {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(ADMIN_ROLE, admin);
    }

    /// @inheritdoc ITeeRegistry
    function approveMeasurement(bytes32 measurement, TeeType teeType, string calldata version)
        external
        onlyRole(ADMIN_ROLE)
    {
        if (measurement == bytes32(0)) revert InvalidMeasurement(measurement);
        if (teeType == TeeType.None) revert InvalidTeeType(teeType);
        uint256 versionLength = bytes(version).length;
        if (versionLength == 0 || versionLength > MAX_VERSION_LENGTH) {
            revert InvalidVersionLength(versionLength, MAX_VERSION_LENGTH);
        }
        MeasurementRecord storage record = _measurements[measurement];
        MeasurementStatus status = _statusOf[record.index];
        if (record.index != 0) {
            if (status == MeasurementStatus.Revoked) revert MeasurementWasRevoked(measurement);
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

    /// @inheritdoc ITeeRegistry
    function revokeMeasurement(bytes32 measurement) external onlyRole(ADMIN_ROLE) {
        uint32 index = _measurements[measurement].index;
        MeasurementStatus status = _statusOf[index];
        if (index == 0 || status != MeasurementStatus.Approved) revert MeasurementNotApproved(measurement, status);
        _statusOf[index] = MeasurementStatus.Revoked;
        emit MeasurementRevoked(measurement, msg.sender);
    }

    /// @inheritdoc ITeeRegistry
    function registerTee(TeeRegistration calldata registration, bytes calldata proofOfPossession)
        external
        onlyRole(OPERATOR_ROLE)
        returns (bytes32 teeId)
    {
        if (registration.publicKey.length != 64) revert InvalidPublicKeyLength(registration.publicKey.length);
        uint32 measurementIndex = _measurements[registration.measurement].index;
        MeasurementStatus status = _statusOf[measurementIndex];
        if (measurementIndex == 0 || status != MeasurementStatus.Approved) {
            revert MeasurementNotApproved(registration.measurement, status);
        }
        if (registration.attestationHash == bytes32(0)) revert InvalidAttestationHash(registration.attestationHash);
        if (registration.paymentAddress == address(0)) revert InvalidPaymentAddress(registration.paymentAddress);
        uint256 endpointLength = bytes(registration.endpoint).length;
        if (endpointLength == 0 || endpointLength > MAX_ENDPOINT_LENGTH) {
            revert InvalidEndpointLength(endpointLength, MAX_ENDPOINT_LENGTH);
        }
        address signer;
        (teeId, signer) = TeeRegistrationHash.teeIdAndSigner(registration.publicKey);
        if (_tees[teeId].signer != address(0)) revert TeeAlreadyRegistered(teeId);
        bytes32 digest = _hashTypedDataV4(registration.hash(teeId, msg.sender));
        (address recovered,,) = ECDSA.tryRecoverCalldata(digest, proofOfPossession);
        if (recovered != signer) revert InvalidProofOfPossession(teeId, recovered);

        TeeRecord storage tee = _tees[teeId];
        tee.signer = signer;
        tee.enabled = true;
        tee.registeredAt = uint40(block.timestamp);
        tee.measurementIndex = measurementIndex;
        tee.operator = msg.sender;
        tee.paymentAddress = registration.paymentAddress;
        tee.measurement = registration.measurement;
        tee.attestationHash = registration.attestationHash;
        tee.endpoint = registration.endpoint;
        _teeIdOfSigner[signer] = teeId;
        _teeIds.push(teeId);
        _emitRegistered(teeId, signer, registration);
    }

    /// @inheritdoc ITeeRegistry
    function disableTee(bytes32 teeId) external {
        TeeRecord storage tee = _operatedTee(teeId);
        if (!tee.enabled) revert TeeAlreadyDisabled(teeId);
        tee.enabled = false;
        emit TeeDisabled(teeId, msg.sender);
    }

    /// @inheritdoc ITeeRegistry
    function enableTee(bytes32 teeId) external {
        TeeRecord storage tee = _operatedTee(teeId);
        if (tee.enabled) revert TeeAlreadyEnabled(teeId);
        MeasurementStatus status = _statusOf[tee.measurementIndex];
        if (status != MeasurementStatus.Approved) revert MeasurementNotApproved(tee.measurement, status);
        tee.enabled = true;
        emit TeeEnabled(teeId, msg.sender);
    }

    /// @inheritdoc ITeeRegistry
    function isActive(bytes32 teeId) public view returns (bool) {
        TeeRecord storage tee = _tees[teeId];
        return tee.enabled && _statusOf[tee.measurementIndex] == MeasurementStatus.Approved;
    }

    /// @inheritdoc ITeeRegistry
    function activeSigner(bytes32 teeId) external view returns (address) {
        TeeRecord storage tee = _tees[teeId];
        if (!tee.enabled || _statusOf[tee.measurementIndex] != MeasurementStatus.Approved) return address(0);
        return tee.signer;
    }

    /// @inheritdoc ITeeRegistry
    function getTee(bytes32 teeId) external view returns (Tee memory) {
        TeeRecord storage tee = _tees[teeId];
        return Tee({
            signer: tee.signer,
            enabled: tee.enabled,
            registeredAt: tee.registeredAt,
            operator: tee.operator,
            measurement: tee.measurement,
            attestationHash: tee.attestationHash,
            paymentAddress: tee.paymentAddress,
            endpoint: tee.endpoint
        });
    }

    /// @inheritdoc ITeeRegistry
    function signerOf(bytes32 teeId) external view returns (address) {
        return _tees[teeId].signer;
    }

    /// @inheritdoc ITeeRegistry
    function measurementOf(bytes32 teeId) external view returns (bytes32) {
        return _tees[teeId].measurement;
    }

    /// @inheritdoc ITeeRegistry
    function getMeasurement(bytes32 measurement) external view returns (Measurement memory) {
        MeasurementRecord storage record = _measurements[measurement];
        if (record.index == 0) return Measurement(MeasurementStatus.None, TeeType.None, 0, "");
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
        uint256 total = _teeIds.length;
        uint256 end = offset >= total ? offset : (limit > total - offset ? total : offset + limit);
        ids = new bytes32[](end - offset);
        uint256 count;
        for (uint256 i = offset; i < end; ++i) {
            bytes32 teeId = _teeIds[i];
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

    /// @dev The TEE, after checking it exists and the caller is its operator or an admin.
    function _operatedTee(bytes32 teeId) private view returns (TeeRecord storage tee) {
        tee = _tees[teeId];
        if (tee.signer == address(0)) revert TeeNotRegistered(teeId);
        if (msg.sender != tee.operator && !hasRole(ADMIN_ROLE, msg.sender)) {
            revert NotTeeOperatorOrAdmin(teeId, msg.sender);
        }
    }
}
