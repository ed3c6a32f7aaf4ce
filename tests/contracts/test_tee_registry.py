"""TeeRegistry: measurements, registration with proof of possession, disable/enable, views; every error path."""

from __future__ import annotations

from typing import Any

import ape
import pytest

from og_settle._attestation import TEE_REGISTRATION_TYPE, TeeKey, TeeRegistration, tee_id_for, tee_signer_for
from og_settle._hex import keccak256
from tests.contracts.conftest import ATTESTATION_HASH, ENDPOINT, MEASUREMENT, NITRO, TDX, Deployment

OTHER_MEASUREMENT = keccak256(b"nitro pcr digest")
APPROVED, REVOKED = 1, 2


def new_key(n: int) -> TeeKey:
    return TeeKey(keccak256(b"tee key %d" % n))


@pytest.fixture
def d(deployment: Deployment) -> Deployment:
    return deployment


# --- measurements ---------------------------------------------------------------------------------------------------


def test_approve_measurement_stores_and_emits(d: Deployment, chain: Any) -> None:
    receipt = d.registry.approveMeasurement(OTHER_MEASUREMENT, NITRO, "nitro v2", sender=d.admin)
    assert receipt.events == [
        d.registry.MeasurementApproved(
            measurement=OTHER_MEASUREMENT, teeType=NITRO, admin=d.admin.address, version="nitro v2"
        )
    ]
    status, tee_type, approved_at, version = d.registry.getMeasurement(OTHER_MEASUREMENT)
    assert (status, tee_type, version) == (APPROVED, NITRO, "nitro v2")
    assert approved_at == chain.blocks.head.timestamp


def test_approve_measurement_errors(d: Deployment, stranger: Any) -> None:
    with ape.reverts(d.registry.AccessControlUnauthorizedAccount, account=stranger.address):
        d.registry.approveMeasurement(OTHER_MEASUREMENT, NITRO, "v", sender=stranger)
    with ape.reverts(d.registry.InvalidMeasurement, measurement=b"\x00" * 32):
        d.registry.approveMeasurement(b"\x00" * 32, NITRO, "v", sender=d.admin)
    with ape.reverts(d.registry.InvalidTeeType, teeType=200):  # never defined
        d.registry.approveMeasurement(OTHER_MEASUREMENT, 200, "v", sender=d.admin)
    with ape.reverts(d.registry.InvalidVersionLength, length=0, max=64):
        d.registry.approveMeasurement(OTHER_MEASUREMENT, NITRO, "", sender=d.admin)
    with ape.reverts(d.registry.InvalidVersionLength, length=65, max=64):
        d.registry.approveMeasurement(OTHER_MEASUREMENT, NITRO, "v" * 65, sender=d.admin)
    with ape.reverts(d.registry.MeasurementAlreadyApproved, measurement=MEASUREMENT):
        d.registry.approveMeasurement(MEASUREMENT, TDX, "again", sender=d.admin)


def test_revoke_measurement_is_final_and_deactivates_its_tees(d: Deployment) -> None:
    assert d.registry.isActive(d.tee.tee_id)
    receipt = d.registry.revokeMeasurement(MEASUREMENT, sender=d.admin)
    assert receipt.events == [d.registry.MeasurementRevoked(measurement=MEASUREMENT, admin=d.admin.address)]
    assert d.registry.getMeasurement(MEASUREMENT).status == REVOKED
    assert not d.registry.isActive(d.tee.tee_id)
    assert d.registry.activeSigner(d.tee.tee_id) == ape.utils.ZERO_ADDRESS
    assert d.registry.getTee(d.tee.tee_id).enabled  # the TEE's own flag is untouched; the measurement rules
    assert list(d.registry.activeTeeIds(0, 10)) == []
    with ape.reverts(d.registry.MeasurementWasRevoked, measurement=MEASUREMENT):
        d.registry.approveMeasurement(MEASUREMENT, TDX, "v1 again", sender=d.admin)
    with ape.reverts(d.registry.MeasurementNotApproved, measurement=MEASUREMENT, status=REVOKED):
        d.registry.revokeMeasurement(MEASUREMENT, sender=d.admin)
    d.registry.disableTee(d.tee.tee_id, sender=d.operator)
    with ape.reverts(d.registry.MeasurementNotApproved, measurement=MEASUREMENT, status=REVOKED):
        d.registry.enableTee(d.tee.tee_id, sender=d.admin)


def test_revoke_measurement_errors(d: Deployment, stranger: Any) -> None:
    with ape.reverts(d.registry.AccessControlUnauthorizedAccount, account=stranger.address):
        d.registry.revokeMeasurement(MEASUREMENT, sender=stranger)
    with ape.reverts(d.registry.MeasurementNotApproved, measurement=OTHER_MEASUREMENT, status=0):
        d.registry.revokeMeasurement(OTHER_MEASUREMENT, sender=d.admin)


# --- registration ---------------------------------------------------------------------------------------------------


def test_register_derives_id_and_signer_and_emits(d: Deployment, chain: Any) -> None:
    key = new_key(1)
    registration = d.registration(key)
    receipt = d.register(key)
    tee_id = tee_id_for(key.public_key)
    assert receipt.return_value == tee_id
    assert tee_id == keccak256(key.public_key) == key.tee_id
    assert tee_signer_for(key.public_key).lower() == "0x" + tee_id[12:].hex()
    assert receipt.events == [
        d.registry.TeeRegistered(
            teeId=tee_id,
            signer=key.address,
            measurement=MEASUREMENT,
            operator=d.operator.address,
            attestationHash=ATTESTATION_HASH,
            paymentAddress=registration.payment_address,
            endpoint=ENDPOINT,
            publicKey=key.public_key,
        )
    ]
    tee = d.registry.getTee(tee_id)
    assert tee.signer == key.address and tee.enabled and tee.operator == d.operator.address
    assert tee.registeredAt == chain.blocks.head.timestamp
    assert (tee.measurement, tee.attestationHash, tee.endpoint) == (MEASUREMENT, ATTESTATION_HASH, ENDPOINT)
    assert tee.paymentAddress == registration.payment_address
    assert d.registry.signerOf(tee_id) == key.address
    assert d.registry.measurementOf(tee_id) == MEASUREMENT
    assert d.registry.teeIdOfSigner(key.address) == tee_id
    assert d.registry.isActive(tee_id) and d.registry.activeSigner(tee_id) == key.address
    assert d.registry.teeCount() == 2
    assert list(d.registry.activeTeeIds(0, 10)) == [d.tee.tee_id, tee_id]


def test_signer_is_the_keys_ethereum_address(tee_key: TeeKey, tee: Any) -> None:
    """The derived signer is the address eth-account gives the same key, so ECDSA recovery matches it."""
    assert tee_signer_for(tee_key.public_key) == tee.address
    assert tee_id_for(b"\x04" + tee_key.public_key) == tee_key.tee_id


def test_registration_typehash_matches_python(d: Deployment) -> None:
    assert d.registry.TEE_REGISTRATION_TYPEHASH() == keccak256(TEE_REGISTRATION_TYPE.encode())
    domain = d.registry.eip712Domain()
    assert (domain.name, domain.version, domain.chainId) == ("OG TEE Registry", "1", d.registry_domain.chain_id)


def _register_raw(d: Deployment, registration: tuple[Any, ...], proof: bytes, sender: Any = None) -> Any:
    return d.registry.registerTee(registration, proof, sender=sender or d.operator)


def test_register_errors(d: Deployment, stranger: Any) -> None:
    key = new_key(2)
    good = d.registration(key)
    proof = key.sign_registration(d.registry_domain, good, d.operator.address)
    pk, m, att, pay, ep = good.as_abi()
    reg = d.registry
    with ape.reverts(reg.AccessControlUnauthorizedAccount, account=stranger.address):
        _register_raw(d, good.as_abi(), proof, stranger)
    with ape.reverts(reg.InvalidPublicKeyLength, length=65):
        _register_raw(d, (b"\x04" + pk, m, att, pay, ep), proof)
    with ape.reverts(reg.MeasurementNotApproved, measurement=OTHER_MEASUREMENT, status=0):
        _register_raw(d, (pk, OTHER_MEASUREMENT, att, pay, ep), proof)
    with ape.reverts(reg.InvalidAttestationHash, attestationHash=b"\x00" * 32):
        _register_raw(d, (pk, m, b"\x00" * 32, pay, ep), proof)
    with ape.reverts(reg.InvalidPaymentAddress, paymentAddress=ape.utils.ZERO_ADDRESS):
        _register_raw(d, (pk, m, att, ape.utils.ZERO_ADDRESS, ep), proof)
    with ape.reverts(reg.InvalidEndpointLength, length=0, max=256):
        _register_raw(d, (pk, m, att, pay, ""), proof)
    with ape.reverts(reg.InvalidEndpointLength, length=257, max=256):
        _register_raw(d, (pk, m, att, pay, "x" * 257), proof)
    with ape.reverts(reg.TeeAlreadyRegistered, teeId=d.tee.tee_id):
        d.register(d.tee)


def test_register_rejects_a_proof_not_made_by_the_key(d: Deployment, admin: Any) -> None:
    """The key must consent to this exact operator and registration; otherwise the recovered address is named."""
    key, other = new_key(3), new_key(4)
    registration = d.registration(key)
    forged = other.sign_digest(d.registry_domain.digest(registration.struct_hash(d.operator.address)))
    with ape.reverts(d.registry.InvalidProofOfPossession, teeId=key.tee_id, recovered=other.address):
        _register_raw(d, registration.as_abi(), forged)
    # A proof made for another operator does not carry over (the recovered address is then some unrelated one).
    d.registry.grantRole(d.registry.OPERATOR_ROLE(), admin, sender=admin)
    for_operator = key.sign_registration(d.registry_domain, registration, d.operator.address)
    with ape.reverts(d.registry.InvalidProofOfPossession):
        _register_raw(d, registration.as_abi(), for_operator, admin)
    # Changing any field (here the endpoint) invalidates the proof.
    changed = TeeRegistration(key.public_key, MEASUREMENT, ATTESTATION_HASH, d.operator.address, "https://evil")
    with ape.reverts(d.registry.InvalidProofOfPossession):
        _register_raw(d, changed.as_abi(), for_operator)
    with ape.reverts(d.registry.InvalidProofOfPossession, teeId=key.tee_id, recovered=ape.utils.ZERO_ADDRESS):
        _register_raw(d, registration.as_abi(), for_operator[:64])
    _register_raw(d, registration.as_abi(), for_operator)
    assert d.registry.isActive(key.tee_id)


def test_register_rejects_a_revoked_measurement(d: Deployment) -> None:
    d.registry.revokeMeasurement(MEASUREMENT, sender=d.admin)
    with ape.reverts(d.registry.MeasurementNotApproved, measurement=MEASUREMENT, status=REVOKED):
        d.register(new_key(5))


# --- disable / enable -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["operator", "admin"])
def test_operator_or_admin_disables_and_enables(d: Deployment, who: str) -> None:
    sender = getattr(d, who)
    tee_id = d.tee.tee_id
    receipt = d.registry.disableTee(tee_id, sender=sender)
    assert receipt.events == [d.registry.TeeDisabled(teeId=tee_id, by=sender.address)]
    assert not d.registry.isActive(tee_id) and d.registry.activeSigner(tee_id) == ape.utils.ZERO_ADDRESS
    assert list(d.registry.activeTeeIds(0, 10)) == []
    with ape.reverts(d.registry.TeeAlreadyDisabled, teeId=tee_id):
        d.registry.disableTee(tee_id, sender=sender)
    receipt = d.registry.enableTee(tee_id, sender=sender)
    assert receipt.events == [d.registry.TeeEnabled(teeId=tee_id, by=sender.address)]
    assert d.registry.isActive(tee_id)
    with ape.reverts(d.registry.TeeAlreadyEnabled, teeId=tee_id):
        d.registry.enableTee(tee_id, sender=sender)


def test_disable_enable_errors(d: Deployment, stranger: Any) -> None:
    unknown = keccak256(b"nobody")
    with ape.reverts(d.registry.TeeNotRegistered, teeId=unknown):
        d.registry.disableTee(unknown, sender=d.admin)
    with ape.reverts(d.registry.TeeNotRegistered, teeId=unknown):
        d.registry.enableTee(unknown, sender=d.admin)
    with ape.reverts(d.registry.NotTeeOperatorOrAdmin, teeId=d.tee.tee_id, caller=stranger.address):
        d.registry.disableTee(d.tee.tee_id, sender=stranger)
    d.registry.disableTee(d.tee.tee_id, sender=d.admin)
    with ape.reverts(d.registry.NotTeeOperatorOrAdmin, teeId=d.tee.tee_id, caller=stranger.address):
        d.registry.enableTee(d.tee.tee_id, sender=stranger)


# --- views ----------------------------------------------------------------------------------------------------------


def test_unknown_tee_and_measurement_views(d: Deployment) -> None:
    unknown = keccak256(b"nobody")
    assert not d.registry.isActive(unknown)
    assert d.registry.activeSigner(unknown) == ape.utils.ZERO_ADDRESS
    assert d.registry.signerOf(unknown) == ape.utils.ZERO_ADDRESS
    assert d.registry.measurementOf(unknown) == b"\x00" * 32
    assert d.registry.getTee(unknown).signer == ape.utils.ZERO_ADDRESS
    assert tuple(d.registry.getMeasurement(OTHER_MEASUREMENT)) == (0, 0, 0, "")


def test_active_tee_ids_pages_and_filters(d: Deployment) -> None:
    keys = [new_key(10 + i) for i in range(4)]
    for key in keys:
        d.register(key)
    d.registry.disableTee(keys[0].tee_id, sender=d.operator)
    ids = [d.tee.tee_id] + [k.tee_id for k in keys]
    assert d.registry.teeCount() == 5
    active = [ids[0], ids[2], ids[3], ids[4]]
    assert list(d.registry.activeTeeIds(0, 100)) == active
    assert list(d.registry.activeTeeIds(0, 2)) == [ids[0]]  # positions 0-1; position 1 is disabled
    assert list(d.registry.activeTeeIds(2, 2)) == [ids[2], ids[3]]
    assert list(d.registry.activeTeeIds(4, 2)) == [ids[4]]
    assert list(d.registry.activeTeeIds(5, 2)) == []
    assert list(d.registry.activeTeeIds(99, 2**256 - 1)) == []
    assert list(d.registry.activeTeeIds(1, 2**256 - 1)) == active[1:]


# --- M-3: an admin's disable sticks ---------------------------------------------------------------------------------


def test_m3_operator_cannot_undo_an_admins_disable(d: Deployment) -> None:
    """Audit M-3: after an admin disables a TEE, its operator cannot re-enable it; only an admin can."""
    tee_id = d.tee.tee_id
    d.registry.disableTee(tee_id, sender=d.admin)
    with ape.reverts(d.registry.TeeDisabledByAdmin, teeId=tee_id):
        d.registry.enableTee(tee_id, sender=d.operator)
    assert not d.registry.isActive(tee_id)
    d.registry.enableTee(tee_id, sender=d.admin)
    assert d.registry.isActive(tee_id)


def test_m3_operator_without_the_role_cannot_enable(d: Deployment) -> None:
    """Audit M-3: an operator that lost OPERATOR_ROLE cannot re-enable even a TEE it disabled itself."""
    tee_id = d.tee.tee_id
    d.registry.disableTee(tee_id, sender=d.operator)
    d.registry.revokeRole(d.registry.OPERATOR_ROLE(), d.operator, sender=d.admin)
    with ape.reverts(d.registry.OperatorRoleRequired, teeId=tee_id, operator=d.operator.address):
        d.registry.enableTee(tee_id, sender=d.operator)
    assert not d.registry.isActive(tee_id)
    # It may still disable what it operates (fail-safe), and an admin may still enable.
    d.registry.enableTee(tee_id, sender=d.admin)
    d.registry.disableTee(tee_id, sender=d.operator)
    assert not d.registry.isActive(tee_id)
