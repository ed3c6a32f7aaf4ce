// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title ITeeRegistry
/// @notice Registry of approved enclave measurements and of the TEE signing keys registered under them.
/// @dev What the chain guarantees, and what it does not:
///  - Attestation reports (Intel TDX quotes, AWS Nitro documents, ...) are verified OFF-CHAIN, by the admin before a
///    measurement is approved and by the operator before a TEE is registered. The chain stores only the report's
///    hash (`attestationHash`) as a commitment that anyone can check against the published report. The chain does
///    NOT check that the report is genuine, that it names the measurement, or that its report data commits to the
///    key: that trust sits with the accounts holding ADMIN_ROLE and OPERATOR_ROLE.
///  - The chain DOES guarantee: a TEE can only be registered under a measurement that is approved at that moment;
///    the TEE's id and signer address are derived on chain from its public key, so a registration cannot bind an id
///    to a key it does not match; the key holder consented to this exact registration (operator, measurement,
///    report hash, payment address, endpoint) with an EIP-712 proof-of-possession signature; a TEE is active only
///    while it is enabled AND its measurement is still approved, so revoking a measurement disables every TEE
///    registered under it at once (O(1), no iteration), and revocation is permanent (a revoked measurement can
///    never be approved again, so revoked TEEs cannot come back by re-approval).
///
///  teeId derivation (secp256k1 keys): the operator supplies the TEE's 64-byte uncompressed public key (x ‖ y,
///  without the 0x04 prefix). `teeId = keccak256(publicKey)`, and the signer address is the last 20 bytes of that
///  same hash (the Ethereum address of the key). This mirrors OpenGradient's `teeId = keccak256(public key)`
///  (theirs hashes an RSA key's DER encoding). Python: `og_settle.tee_id_for(public_key)`.
///
///  Roles (OpenZeppelin AccessControl): DEFAULT_ADMIN_ROLE grants and revokes roles; ADMIN_ROLE approves and revokes
///  measurements and may disable or re-enable any TEE; OPERATOR_ROLE registers TEEs, and the operator that
///  registered a TEE (its "owner") may disable or re-enable it, even after losing OPERATOR_ROLE (an admin can always
///  disable it, or revoke its measurement). TEE ids are never reused: a disabled TEE can only be re-enabled, and a
///  TEE under a revoked measurement is inactive for good; a new enclave key is a new registration.
interface ITeeRegistry {
    /// @notice Kind of trusted execution environment a measurement belongs to. `None` is never valid.
    enum TeeType {
        None,
        IntelTdx,
        AmdSevSnp,
        AwsNitro,
        IntelSgx
    }

    /// @notice Lifecycle of a measurement. `Revoked` is final.
    enum MeasurementStatus {
        None,
        Approved,
        Revoked
    }

    /// @notice An enclave measurement (for example a TDX MRTD/RTMR digest or a Nitro PCR digest, hashed to 32 bytes).
    /// @param status None (unknown), Approved, or Revoked (final).
    /// @param teeType The kind of TEE this measurement is for.
    /// @param approvedAt Block timestamp of approval.
    /// @param version Human-readable version label, for example "og-tee-gateway v1.4.2".
    struct Measurement {
        MeasurementStatus status;
        TeeType teeType;
        uint64 approvedAt;
        string version;
    }

    /// @notice What an operator submits to register a TEE.
    /// @param publicKey The TEE's secp256k1 public key, 64 bytes uncompressed (x ‖ y, no 0x04 prefix).
    /// @param measurement An approved measurement the TEE runs.
    /// @param attestationHash keccak256 of the attestation report verified off-chain (non-zero).
    /// @param paymentAddress Where payments for this TEE's inferences go (non-zero).
    /// @param endpoint The TEE's public endpoint (URL), at most MAX_ENDPOINT_LENGTH bytes.
    struct TeeRegistration {
        bytes publicKey;
        bytes32 measurement;
        bytes32 attestationHash;
        address paymentAddress;
        string endpoint;
    }

    /// @notice A registered TEE, as stored.
    /// @param signer The address of the TEE's signing key (derived from the public key).
    /// @param enabled False once disabled by its operator or an admin.
    /// @param registeredAt Block timestamp of registration.
    /// @param operator The account that registered the TEE (its owner).
    /// @param measurement The measurement it was registered under.
    /// @param attestationHash keccak256 of the attestation report.
    /// @param paymentAddress Where payments for this TEE go.
    /// @param endpoint The TEE's public endpoint.
    struct Tee {
        address signer;
        bool enabled;
        uint64 registeredAt;
        address operator;
        bytes32 measurement;
        bytes32 attestationHash;
        address paymentAddress;
        string endpoint;
    }

    /// @notice A measurement was approved.
    event MeasurementApproved(
        bytes32 indexed measurement, TeeType indexed teeType, address indexed admin, string version
    );
    /// @notice A measurement was revoked; every TEE registered under it is inactive from now on.
    event MeasurementRevoked(bytes32 indexed measurement, address indexed admin);
    /// @notice A TEE was registered. Carries everything an indexer needs, including the full public key.
    event TeeRegistered(
        bytes32 indexed teeId,
        address indexed signer,
        bytes32 indexed measurement,
        address operator,
        bytes32 attestationHash,
        address paymentAddress,
        string endpoint,
        bytes publicKey
    );
    /// @notice A TEE was disabled by `by` (its operator or an admin).
    event TeeDisabled(bytes32 indexed teeId, address indexed by);
    /// @notice A TEE was re-enabled by `by` (its operator or an admin) while its measurement is approved.
    event TeeEnabled(bytes32 indexed teeId, address indexed by);

    /// @notice The measurement hash is zero.
    error InvalidMeasurement(bytes32 measurement);
    /// @notice The TEE type is `None`.
    error InvalidTeeType(TeeType teeType);
    /// @notice The version label is empty or longer than MAX_VERSION_LENGTH.
    error InvalidVersionLength(uint256 length, uint256 max);
    /// @notice The measurement is already approved.
    error MeasurementAlreadyApproved(bytes32 measurement);
    /// @notice The measurement was revoked, which is final.
    error MeasurementWasRevoked(bytes32 measurement);
    /// @notice The measurement is not approved (unknown or revoked).
    error MeasurementNotApproved(bytes32 measurement, MeasurementStatus status);
    /// @notice The public key is not 64 bytes.
    error InvalidPublicKeyLength(uint256 length);
    /// @notice The attestation report hash is zero.
    error InvalidAttestationHash(bytes32 attestationHash);
    /// @notice The payment address is zero.
    error InvalidPaymentAddress(address paymentAddress);
    /// @notice The endpoint is empty or longer than MAX_ENDPOINT_LENGTH.
    error InvalidEndpointLength(uint256 length, uint256 max);
    /// @notice The proof-of-possession signature was not made by the key being registered.
    error InvalidProofOfPossession(bytes32 teeId, address recovered);
    /// @notice A TEE with this id is already registered (ids are never reused).
    error TeeAlreadyRegistered(bytes32 teeId);
    /// @notice No TEE with this id is registered.
    error TeeNotRegistered(bytes32 teeId);
    /// @notice The caller is neither the TEE's operator nor an admin.
    error NotTeeOperatorOrAdmin(bytes32 teeId, address caller);
    /// @notice The TEE is already disabled.
    error TeeAlreadyDisabled(bytes32 teeId);
    /// @notice The TEE is already enabled.
    error TeeAlreadyEnabled(bytes32 teeId);

    /// @notice Role that approves/revokes measurements and may disable or enable any TEE.
    function ADMIN_ROLE() external view returns (bytes32);

    /// @notice Role that may register TEEs. Holders vouch that they verified the TEE's attestation report off-chain.
    function OPERATOR_ROLE() external view returns (bytes32);

    /// @notice Longest accepted endpoint, in bytes.
    function MAX_ENDPOINT_LENGTH() external view returns (uint256);

    /// @notice Longest accepted measurement version label, in bytes.
    function MAX_VERSION_LENGTH() external view returns (uint256);

    /// @notice EIP-712 type hash of the proof of possession:
    /// `TeeRegistration(bytes32 teeId,address operator,bytes32 measurement,bytes32 attestationHash,address paymentAddress,string endpoint)`
    /// signed by the TEE key under the domain {name: "OG TEE Registry", version: "1", chainId, verifyingContract}.
    function TEE_REGISTRATION_TYPEHASH() external view returns (bytes32);

    /// @notice Approves an enclave measurement. Only ADMIN_ROLE. The admin must have verified, off-chain, the
    /// attestation evidence that this measurement is the audited enclave build.
    /// @dev Reverts InvalidMeasurement (zero), InvalidTeeType (None), InvalidVersionLength, MeasurementAlreadyApproved,
    /// MeasurementWasRevoked. Emits MeasurementApproved.
    function approveMeasurement(bytes32 measurement, TeeType teeType, string calldata version) external;

    /// @notice Revokes an approved measurement, permanently. Every TEE registered under it becomes inactive at once.
    /// Only ADMIN_ROLE.
    /// @dev Reverts MeasurementNotApproved. Emits MeasurementRevoked.
    function revokeMeasurement(bytes32 measurement) external;

    /// @notice Registers a TEE signing key under an approved measurement. Only OPERATOR_ROLE; the caller becomes the
    /// TEE's operator (owner). The TEE is enabled on registration.
    /// @param registration The key, measurement, report hash, payment address and endpoint.
    /// @param proofOfPossession 65-byte ECDSA signature by the TEE key over the EIP-712 `TeeRegistration` struct with
    /// `operator = msg.sender` (so a signature cannot be replayed by another operator; ids are registered once).
    /// @return teeId keccak256(publicKey).
    /// @dev Reverts InvalidPublicKeyLength, MeasurementNotApproved, InvalidAttestationHash, InvalidPaymentAddress,
    /// InvalidEndpointLength, TeeAlreadyRegistered, InvalidProofOfPossession. Emits TeeRegistered.
    function registerTee(TeeRegistration calldata registration, bytes calldata proofOfPossession)
        external
        returns (bytes32 teeId);

    /// @notice Disables a TEE. Only its operator or ADMIN_ROLE.
    /// @dev Reverts TeeNotRegistered, NotTeeOperatorOrAdmin, TeeAlreadyDisabled. Emits TeeDisabled.
    function disableTee(bytes32 teeId) external;

    /// @notice Re-enables a disabled TEE, only while its measurement is still approved. Only its operator or ADMIN_ROLE.
    /// @dev Reverts TeeNotRegistered, NotTeeOperatorOrAdmin, TeeAlreadyEnabled, MeasurementNotApproved.
    /// Emits TeeEnabled.
    function enableTee(bytes32 teeId) external;

    /// @notice True when the TEE is registered, enabled, and its measurement is approved.
    function isActive(bytes32 teeId) external view returns (bool);

    /// @notice The TEE's signer address if it is active, else address(0). Used by the settlement registry.
    function activeSigner(bytes32 teeId) external view returns (address);

    /// @notice The stored record of a TEE (all zero if unknown).
    function getTee(bytes32 teeId) external view returns (Tee memory);

    /// @notice The TEE's signer address (address(0) if unknown), whatever its state.
    function signerOf(bytes32 teeId) external view returns (address);

    /// @notice The measurement a TEE was registered under (zero if unknown).
    function measurementOf(bytes32 teeId) external view returns (bytes32);

    /// @notice The stored record of a measurement.
    function getMeasurement(bytes32 measurement) external view returns (Measurement memory);

    /// @notice The teeId of a signer address (zero if none registered).
    function teeIdOfSigner(address signer) external view returns (bytes32);

    /// @notice Number of TEEs ever registered (active or not).
    function teeCount() external view returns (uint256);

    /// @notice The active TEEs among registered ones at positions [offset, offset + limit), in registration order.
    /// @dev Paginated because the registered set only grows: callers page through `teeCount()` entries. Each entry
    /// costs a few cold SLOADs, so keep `limit` in the low hundreds for eth_call gas caps.
    function activeTeeIds(uint256 offset, uint256 limit) external view returns (bytes32[] memory ids);
}
