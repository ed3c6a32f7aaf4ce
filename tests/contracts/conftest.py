"""Module-scoped deployments of the TeeRegistry and SettlementRegistry, and a registered stand-in TEE.

Roles: ``admin`` holds DEFAULT_ADMIN_ROLE and ADMIN_ROLE on both contracts, ``operator`` (accounts[8]) holds
OPERATOR_ROLE on the TeeRegistry, ``relayer`` holds RELAYER_ROLE on the SettlementRegistry. The stand-in TEE key is
the session ``tee`` key, registered under an approved Intel TDX measurement.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount

from og_settle._attestation import (
    IndividualSettlement,
    InferenceAttestation,
    MetadataSettlement,
    TeeKey,
    TeeRegistration,
    settlement_domain,
    tee_registry_domain,
)
from og_settle._eip712 import Eip712Domain
from og_settle._hex import keccak256

MAX_AGE = 3600
MAX_FUTURE_DRIFT = 300
TDX = 1  # ITeeRegistry.TeeType.IntelTdx
NITRO = 3  # ITeeRegistry.TeeType.AwsNitro
MEASUREMENT = keccak256(b"og-tee-gateway tdx measurement v1")
ATTESTATION_HASH = keccak256(b"tdx quote for the stand-in TEE")
ENDPOINT = "https://tee-1.og-settle.test"


@dataclass
class Deployment:
    """What the contract tests need in one place."""

    registry: Any  # TeeRegistry
    settlement: Any  # SettlementRegistry
    registry_domain: Eip712Domain
    domain: Eip712Domain
    tee: TeeKey
    admin: Any
    operator: Any
    relayer: Any

    def registration(self, key: TeeKey, *, measurement: bytes = MEASUREMENT, endpoint: str = ENDPOINT) -> Any:
        return TeeRegistration(key.public_key, measurement, ATTESTATION_HASH, self.operator.address, endpoint)

    def register(self, key: TeeKey, *, measurement: bytes = MEASUREMENT) -> Any:
        """Register ``key`` under ``measurement`` by the operator; returns the receipt."""
        registration = self.registration(key, measurement=measurement)
        proof = key.sign_registration(self.registry_domain, registration, self.operator.address)
        return self.registry.registerTee(registration.as_abi(), proof, sender=self.operator)

    def individual(
        self, *, key: TeeKey | None = None, timestamp: int, payer: str, seed: bytes = b"0"
    ) -> tuple[IndividualSettlement, bytes]:
        key = key or self.tee
        settlement = IndividualSettlement(
            key.tee_id, keccak256(b"in" + seed), keccak256(b"out" + seed), timestamp, payer
        )
        return settlement, key.sign_individual(self.domain, settlement)

    def metadata(
        self, *, key: TeeKey | None = None, timestamp: int, payer: str, size: int = 1024, seed: bytes = b"0"
    ) -> tuple[MetadataSettlement, bytes]:
        key = key or self.tee
        half = max(size // 2, 1)
        record = MetadataSettlement(
            key.tee_id,
            timestamp,
            payer,
            "openai/gpt-4.1",
            (b'{"messages":[{"role":"user","content":"' + seed + b'"}]}').ljust(half, b" "),
            (b"The answer is " + seed).ljust(half, b"."),
            b'{"temperature":0}',
        )
        return record, key.sign_metadata(self.domain, record)

    def leaf_signature(self, key: TeeKey, tee_id: bytes, input_hash: bytes, output_hash: bytes, ts: int) -> bytes:
        return key.sign_inference(self.domain, InferenceAttestation(tee_id, input_hash, output_hash, ts))


@contextmanager
def isolated(chain: Any) -> Iterator[None]:
    """Like ``chain.isolate()``, but the snapshot is restored even when the body raises, so that a failing
    Hypothesis example cannot leak state into the next one (which Hypothesis would report as flaky)."""
    snapshot = chain.snapshot()
    try:
        yield
    finally:
        chain.restore(snapshot)


@pytest.fixture(scope="session")
def operator(accounts: Any) -> Any:
    return accounts[8]


@pytest.fixture(scope="session")
def tee_key(tee: LocalAccount) -> TeeKey:
    return TeeKey(bytes(tee.key))


@pytest.fixture(scope="module")
def deployment(
    project: Any,
    deployer: Any,
    admin: Any,
    operator: Any,
    relayer: Any,
    payer: Any,
    stranger: Any,
    chain_id: int,
    tee_key: TeeKey,
) -> Deployment:
    # payer and stranger are requested here so that every session fixture the tests use is set up before the
    # deployment, which keeps Ape's per-scope snapshots valid (no state leaks between tests).
    registry = project.TeeRegistry.deploy(admin, sender=deployer)
    settlement = project.SettlementRegistry.deploy(registry, admin, MAX_AGE, MAX_FUTURE_DRIFT, sender=deployer)
    registry.grantRole(registry.OPERATOR_ROLE(), operator, sender=admin)
    settlement.grantRole(settlement.RELAYER_ROLE(), relayer, sender=admin)
    registry.approveMeasurement(MEASUREMENT, TDX, "og-tee-gateway v1", sender=admin)
    deployment = Deployment(
        registry=registry,
        settlement=settlement,
        registry_domain=tee_registry_domain(chain_id, registry.address),
        domain=settlement_domain(chain_id, settlement.address),
        tee=tee_key,
        admin=admin,
        operator=operator,
        relayer=relayer,
    )
    deployment.register(tee_key)
    return deployment


@pytest.fixture(scope="module")
def d_gas(deployment: Deployment, relayer: Any) -> Deployment:
    """The deployment, with one settlement of each kind done so that the measured calls see warm-state costs
    representative of a live registry (non-zero counters slot), as on a chain where settlement is ongoing."""
    return deployment
