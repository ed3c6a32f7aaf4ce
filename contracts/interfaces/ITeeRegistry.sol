// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {RsaPss} from "../libraries/RsaPss.sol";

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
///  Key types (`KeyType`, one home: `libraries/TeeKeys.sol`):
///  - secp256k1 (og-settle's own TEEs): the operator supplies the 64-byte uncompressed public key (x ‖ y, no 0x04).
///    `teeId = keccak256(publicKey)`; the signer address is the last 20 bytes of that same hash. Python:
///    `og_settle.tee_id_for(public_key)`. Proof of possession: an ECDSA signature over EIP-712 `TeeRegistration`.
///  - RSA (OpenGradient's enclaves): a DER SubjectPublicKeyInfo, 2048..4096 bits, odd exponent 65537 <= e < 2^32,
///    strict DER only. `teeId = keccak256(DER)`, exactly as OpenGradient derives it. Proof of possession: an RSA-PSS
///    signature (SHA-256, MGF1-SHA-256, 32-byte salt) over the 32-byte EIP-712 digest of `RsaTeeRegistration`, whose
///    domain binds this chain id and this registry's address. The key is kept as contract code (see TeeKeys).
///
///  OpenGradient compatibility (og-evm `TEERegistry`): TEE types are admin-defined `uint8`s (0 = "LLMProxy"); a
///  measurement can be given as its three 48-byte AWS Nitro PCRs, with `pcrHash = keccak256(pcr0 ‖ pcr1 ‖ pcr2)`;
///  an RSA TEE proves liveness with `heartbeat`, an RSA-PSS signature over `keccak256(teeId ‖ uint256 timestamp)`;
///  and the registry answers active TEEs by type and by owner, and a TEE's public key. Unlike og-evm, the Nitro
///  attestation is checked off chain (there is no attestation precompile on Base): see the trust notes above.
///
///  Heartbeats: anyone may relay one (only the enclave's key can sign it). An RSA TEE signs OpenGradient's message
///  (RSA-PSS over keccak256(teeId ‖ uint256 timestamp)); a secp256k1 TEE signs the EIP-712 `Heartbeat(bytes32 teeId,
///  uint256 timestamp)` under this registry's domain, so both kinds can stay live. The signed timestamp must lie in
///  [block.timestamp - heartbeatWindow, block.timestamp] and be later than the last accepted one, so a heartbeat can
///  be used once and an old one never extends liveness. A TEE is "live" while it is active and its last heartbeat
///  (or its registration) is at most `heartbeatWindow` seconds old (default 1,800 s, as OpenGradient). OpenGradient's
///  heartbeat message binds no chain: a heartbeat signed for one chain is accepted on another, which only tells the
///  truth there too (the enclave was alive at that time). The settlement registry can require a recent heartbeat.
///
///  Roles (OpenZeppelin AccessControl): DEFAULT_ADMIN_ROLE grants and revokes roles; ADMIN_ROLE defines TEE types,
///  approves and revokes measurements, sets the heartbeat window and may disable or re-enable any TEE; OPERATOR_ROLE
///  registers TEEs. The operator that registered a TEE (its "owner") may always disable it (fail-safe), but may
///  re-enable it only while it still holds OPERATOR_ROLE and only if it, not an admin, disabled it: an admin's disable
///  sticks until an admin undoes it (audit M-3; the registry records who disabled the TEE). TEE ids are never reused:
///  a disabled TEE can only be re-enabled, and a TEE under a revoked measurement is inactive for good; a new enclave
///  key is a new registration.
interface ITeeRegistry {
    /// @notice The type of a TEE's signing key. `None` means no TEE is registered under that id.
    enum KeyType {
        None,
        Secp256k1,
        Rsa
    }

    /// @notice Who disabled a TEE last (`None` while it has never been disabled or was re-enabled).
    enum DisabledBy {
        None,
        Operator,
        Admin
    }

    /// @notice Outcome of `checkRsaSignature`.
    enum RsaCheck {
        Valid,
        TeeNotActive,
        TeeNotLive,
        NotRsaKey,
        InvalidSignature
    }

    /// @notice Lifecycle of a measurement. `Revoked` is final.
    enum MeasurementStatus {
        None,
        Approved,
        Revoked
    }

    /// @notice An enclave measurement (for example a TDX MRTD/RTMR digest or a Nitro PCR digest, hashed to 32 bytes).
    /// @param status None (unknown), Approved, or Revoked (final).
    /// @param teeType The admin-defined TEE type this measurement is for (see `addTeeType`).
    /// @param approvedAt Block timestamp of approval.
    /// @param version Human-readable version label, for example "og-tee-gateway v1.4.2".
    struct Measurement {
        MeasurementStatus status;
        uint8 teeType;
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

    /// @notice What an operator submits to register an RSA TEE (OpenGradient's enclaves).
    /// @param publicKey The TEE's RSA public key as DER SubjectPublicKeyInfo (teeId = keccak256 of these bytes).
    /// @param measurement An approved measurement the TEE runs (for Nitro: the pcrHash).
    /// @param attestationHash keccak256 of the attestation report verified off-chain (non-zero).
    /// @param tlsCertificateHash keccak256 of the TEE's TLS certificate (DER), or zero when not pinned.
    /// @param paymentAddress Where payments for this TEE's inferences go (non-zero).
    /// @param endpoint The TEE's public endpoint (URL), at most MAX_ENDPOINT_LENGTH bytes.
    struct RsaTeeRegistration {
        bytes publicKey;
        bytes32 measurement;
        bytes32 attestationHash;
        bytes32 tlsCertificateHash;
        address paymentAddress;
        string endpoint;
    }

    /// @notice A registered TEE, as stored.
    /// @param keyType The signing key's type (None: not registered).
    /// @param signer The address of a secp256k1 TEE's signing key; zero for RSA TEEs (see `teePublicKey`).
    /// @param enabled False once disabled by its operator or an admin.
    /// @param disabledBy Who disabled it last (None while enabled).
    /// @param teeType The TEE type of its measurement.
    /// @param registeredAt Block timestamp of registration.
    /// @param lastHeartbeat Signed timestamp of the last accepted heartbeat (the registration time until one arrives).
    /// @param operator The account that registered the TEE (its owner).
    /// @param measurement The measurement it was registered under.
    /// @param attestationHash keccak256 of the attestation report.
    /// @param tlsCertificateHash keccak256 of its TLS certificate, or zero.
    /// @param paymentAddress Where payments for this TEE go.
    /// @param endpoint The TEE's public endpoint.
    struct Tee {
        KeyType keyType;
        address signer;
        bool enabled;
        DisabledBy disabledBy;
        uint8 teeType;
        uint64 registeredAt;
        uint64 lastHeartbeat;
        address operator;
        bytes32 measurement;
        bytes32 attestationHash;
        bytes32 tlsCertificateHash;
        address paymentAddress;
        string endpoint;
    }

    /// @notice A TEE type was defined.
    event TeeTypeAdded(uint8 indexed teeType, string name, address indexed admin);

    /// @notice A measurement was approved.
    event MeasurementApproved(
        bytes32 indexed measurement, uint8 indexed teeType, address indexed admin, string version
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
    /// @notice An RSA TEE was registered. Carries everything an indexer needs, including the DER public key.
    event RsaTeeRegistered(
        bytes32 indexed teeId,
        address indexed operator,
        bytes32 indexed measurement,
        bytes32 attestationHash,
        bytes32 tlsCertificateHash,
        address paymentAddress,
        string endpoint,
        bytes publicKey
    );
    /// @notice A heartbeat signed at `timestamp` was accepted (relayed by `relayer`).
    event HeartbeatReceived(bytes32 indexed teeId, uint256 timestamp, address indexed relayer);
    /// @notice The heartbeat window changed.
    event HeartbeatWindowUpdated(uint256 window, address indexed admin);
    /// @notice A TEE was disabled by `by` (its operator or an admin).
    event TeeDisabled(bytes32 indexed teeId, address indexed by);
    /// @notice A TEE was re-enabled by `by` (its operator or an admin) while its measurement is approved.
    event TeeEnabled(bytes32 indexed teeId, address indexed by);

    /// @notice The measurement hash is zero.
    error InvalidMeasurement(bytes32 measurement);
    /// @notice The TEE type was never defined with `addTeeType`.
    error InvalidTeeType(uint8 teeType);
    /// @notice The TEE type is already defined.
    error TeeTypeAlreadyDefined(uint8 teeType);
    /// @notice The TEE type's name is empty or longer than MAX_VERSION_LENGTH.
    error InvalidTeeTypeName(uint256 length, uint256 max);
    /// @notice PCR number `index` is not 48 bytes (SHA-384).
    error InvalidPcrLength(uint256 index, uint256 length);
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
    /// @notice An admin disabled this TEE; only an admin may enable it again (audit M-3).
    error TeeDisabledByAdmin(bytes32 teeId);
    /// @notice The TEE's operator no longer holds OPERATOR_ROLE, so it may not enable the TEE (audit M-3).
    error OperatorRoleRequired(bytes32 teeId, address operator);
    /// @notice The RSA proof of possession does not verify under the key being registered (`reason`: why).
    error InvalidRsaProofOfPossession(bytes32 teeId, RsaPss.PssError reason);
    /// @notice The TEE is not active (disabled, or its measurement revoked).
    error TeeNotActive(bytes32 teeId);
    /// @notice The heartbeat's timestamp is later than the block's.
    error HeartbeatInFuture(uint256 timestamp, uint256 latest);
    /// @notice The heartbeat's timestamp is older than block.timestamp - heartbeatWindow (`oldest`).
    error HeartbeatTooOld(uint256 timestamp, uint256 oldest);
    /// @notice The heartbeat's timestamp is not later than the last accepted one.
    error HeartbeatNotNewer(uint256 timestamp, uint256 lastHeartbeat);
    /// @notice The RSA TEE's heartbeat signature does not verify under its key (`reason`: why).
    error InvalidHeartbeatSignature(bytes32 teeId, RsaPss.PssError reason);
    /// @notice The secp256k1 TEE's heartbeat signature recovers to another address (zero if unrecoverable).
    error InvalidHeartbeatSigner(bytes32 teeId, address recovered);
    /// @notice The heartbeat window is zero or longer than MAX_HEARTBEAT_WINDOW.
    error InvalidHeartbeatWindow(uint256 window, uint256 max);
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

    /// @notice Longest accepted measurement version label (and TEE type name), in bytes.
    function MAX_VERSION_LENGTH() external view returns (uint256);

    /// @notice Longest accepted heartbeat window, in seconds.
    function MAX_HEARTBEAT_WINDOW() external view returns (uint256);

    /// @notice EIP-712 type hash of the RSA proof of possession:
    /// `RsaTeeRegistration(bytes32 teeId,address operator,bytes32 measurement,bytes32 attestationHash,bytes32 tlsCertificateHash,address paymentAddress,string endpoint)`
    /// under the domain {name: "OG TEE Registry", version: "1", chainId, verifyingContract}. The TEE signs the 32-byte
    /// EIP-712 digest with RSASSA-PSS (SHA-256, MGF1-SHA-256, 32-byte salt).
    function RSA_TEE_REGISTRATION_TYPEHASH() external view returns (bytes32);

    /// @notice EIP-712 type hash of a secp256k1 TEE's heartbeat: `Heartbeat(bytes32 teeId,uint256 timestamp)`.
    function HEARTBEAT_TYPEHASH() external view returns (bytes32);

    /// @notice EIP-712 type hash of the proof of possession:
    /// `TeeRegistration(bytes32 teeId,address operator,bytes32 measurement,bytes32 attestationHash,address paymentAddress,string endpoint)`
    /// signed by the TEE key under the domain {name: "OG TEE Registry", version: "1", chainId, verifyingContract}.
    function TEE_REGISTRATION_TYPEHASH() external view returns (bytes32);

    /// @notice Approves an enclave measurement. Only ADMIN_ROLE. The admin must have verified, off-chain, the
    /// attestation evidence that this measurement is the audited enclave build.
    /// @dev Reverts InvalidMeasurement (zero), InvalidTeeType (undefined), InvalidVersionLength,
    /// MeasurementAlreadyApproved, MeasurementWasRevoked. Emits MeasurementApproved.
    function approveMeasurement(bytes32 measurement, uint8 teeType, string calldata version) external;

    /// @notice Approves an AWS Nitro measurement given as its three PCRs (48 bytes each), as og-evm's `approvePCR`:
    /// the measurement is `pcrHash = keccak256(pcr0 ‖ pcr1 ‖ pcr2)`. Only ADMIN_ROLE.
    /// @return pcrHash The approved measurement.
    /// @dev Reverts InvalidPcrLength, then as approveMeasurement. Emits MeasurementApproved.
    function approvePcrs(
        bytes calldata pcr0,
        bytes calldata pcr1,
        bytes calldata pcr2,
        uint8 teeType,
        string calldata version
    ) external returns (bytes32 pcrHash);

    /// @notice keccak256(pcr0 ‖ pcr1 ‖ pcr2), each PCR 48 bytes (reverts InvalidPcrLength otherwise).
    function computePcrHash(bytes calldata pcr0, bytes calldata pcr1, bytes calldata pcr2)
        external
        pure
        returns (bytes32);

    /// @notice Defines a TEE type (OpenGradient: 0 = "LLMProxy"). Only ADMIN_ROLE. Types are never removed.
    /// The registry starts with 0 "LLMProxy" and og-settle's earlier hardware kinds 1 "IntelTdx", 2 "AmdSevSnp",
    /// 3 "AwsNitro", 4 "IntelSgx".
    /// @dev Reverts TeeTypeAlreadyDefined, InvalidTeeTypeName. Emits TeeTypeAdded.
    function addTeeType(uint8 teeType, string calldata name) external;

    /// @notice The name of a TEE type ("" if undefined).
    function teeTypeName(uint8 teeType) external view returns (string memory);

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

    /// @notice Registers an RSA TEE (an OpenGradient enclave) under an approved measurement. Only OPERATOR_ROLE; the
    /// caller becomes the TEE's operator (owner). The TEE is enabled, and live, on registration.
    /// @param registration The DER key, measurement, report hash, TLS certificate hash, payment address and endpoint.
    /// @param proofOfPossession RSA-PSS signature by the TEE key over the EIP-712 digest of `RsaTeeRegistration` with
    /// `operator = msg.sender` (bound to this chain and registry; not replayable by another operator).
    /// @return teeId keccak256(publicKey), OpenGradient's teeId.
    /// @dev Reverts InvalidRsaPublicKey, InvalidRsaModulus, InvalidRsaExponent (TeeKeys), MeasurementNotApproved,
    /// InvalidAttestationHash, InvalidPaymentAddress, InvalidEndpointLength, TeeAlreadyRegistered,
    /// InvalidRsaProofOfPossession. Emits RsaTeeRegistered.
    function registerRsaTee(RsaTeeRegistration calldata registration, bytes calldata proofOfPossession)
        external
        returns (bytes32 teeId);

    /// @notice Accepts a TEE's heartbeat. An RSA TEE signs RSA-PSS over keccak256(teeId ‖ uint256 timestamp), as
    /// OpenGradient's enclaves do; a secp256k1 TEE a 65-byte ECDSA signature over the EIP-712 `Heartbeat`
    /// (HEARTBEAT_TYPEHASH). Anyone may relay it.
    /// @dev Reverts TeeNotRegistered, TeeNotActive, HeartbeatInFuture, HeartbeatTooOld, HeartbeatNotNewer,
    /// InvalidHeartbeatSignature (RSA), InvalidHeartbeatSigner (secp256k1). Emits HeartbeatReceived.
    function heartbeat(bytes32 teeId, uint256 timestamp, bytes calldata signature) external;

    /// @notice Sets the heartbeat window (seconds, 1..MAX_HEARTBEAT_WINDOW). Only ADMIN_ROLE.
    /// @dev Reverts InvalidHeartbeatWindow. Emits HeartbeatWindowUpdated.
    function setHeartbeatWindow(uint256 window) external;

    /// @notice How old a heartbeat may be, in seconds, for the TEE to count as live (default 1,800).
    function heartbeatWindow() external view returns (uint256);

    /// @notice Disables a TEE. Only its operator (with or without OPERATOR_ROLE) or ADMIN_ROLE. Records who did it.
    /// @dev Reverts TeeNotRegistered, NotTeeOperatorOrAdmin, TeeAlreadyDisabled. Emits TeeDisabled.
    function disableTee(bytes32 teeId) external;

    /// @notice Re-enables a disabled TEE, only while its measurement is still approved. ADMIN_ROLE may always; its
    /// operator only while holding OPERATOR_ROLE and only when the operator (not an admin) disabled it.
    /// @dev Reverts TeeNotRegistered, NotTeeOperatorOrAdmin, TeeAlreadyEnabled, TeeDisabledByAdmin,
    /// OperatorRoleRequired, MeasurementNotApproved. Emits TeeEnabled.
    function enableTee(bytes32 teeId) external;

    /// @notice True when the TEE is registered, enabled, and its measurement is approved.
    function isActive(bytes32 teeId) external view returns (bool);

    /// @notice True when the TEE is active and its last heartbeat (or registration) is at most heartbeatWindow old.
    function isLive(bytes32 teeId) external view returns (bool);

    /// @notice The signer address of an active secp256k1 TEE, else address(0) (also for RSA TEEs). Used by the
    /// settlement registry's ECDSA path.
    function activeSigner(bytes32 teeId) external view returns (address);

    /// @notice Checks an RSA TEE's RSA-PSS signature over the 32-byte `message` (PSS message hash = SHA-256 of it),
    /// that the TEE is active and, when `maxHeartbeatAge` is non-zero, that its last heartbeat is at most that old.
    /// Used by the settlement registry; never reverts.
    /// @return check Valid, or the first failed condition.
    /// @return reason When `check` is InvalidSignature, why the signature was rejected.
    /// @return lastHeartbeat The TEE's last heartbeat timestamp (for error reporting).
    function checkRsaSignature(bytes32 teeId, bytes32 message, bytes calldata signature, uint256 maxHeartbeatAge)
        external
        view
        returns (RsaCheck check, RsaPss.PssError reason, uint256 lastHeartbeat);

    /// @notice The key type of a TEE (None if unknown).
    function keyTypeOf(bytes32 teeId) external view returns (KeyType);

    /// @notice A TEE's public key: the DER SubjectPublicKeyInfo for RSA TEEs (OpenGradient's `getTEEPublicKey`);
    /// empty for secp256k1 TEEs, whose 64-byte key is in their TeeRegistered event (their signer: `signerOf`).
    function teePublicKey(bytes32 teeId) external view returns (KeyType keyType, bytes memory publicKey);

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

    /// @notice Number of TEEs ever registered under measurements of `teeType`.
    function teeCountByType(uint8 teeType) external view returns (uint256);

    /// @notice The active TEEs of `teeType` among positions [offset, offset + limit) of that type's registrations.
    function activeTeeIdsByType(uint8 teeType, uint256 offset, uint256 limit)
        external
        view
        returns (bytes32[] memory ids);

    /// @notice Number of TEEs ever registered by `operator`.
    function teeCountByOwner(address operator) external view returns (uint256);

    /// @notice The active TEEs registered by `operator` among positions [offset, offset + limit) of its registrations.
    function activeTeeIdsByOwner(address operator, uint256 offset, uint256 limit)
        external
        view
        returns (bytes32[] memory ids);
}
