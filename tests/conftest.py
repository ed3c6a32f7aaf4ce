"""Session-wide fixtures: roles, canonical contracts, the gas snapshot, and Hypothesis profiles.

The suite runs under ``ape test`` on ``base:sepolia-fork:foundry``. The fork's upstream is the local replica
started by ``og-settle chain exec`` (``make test``), or the real Base Sepolia when ``BASE_SEPOLIA_RPC_URL``
is set. Ape isolates every test function with a snapshot; Hypothesis examples isolate themselves with
``chain.isolate()`` because Hypothesis does not re-run function-scoped fixtures per example.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from hypothesis import HealthCheck, settings

from og_settle import OPG_ADDRESS, PERMIT2_ADDRESS
from og_settle.replica import compile_permit2
from tests.support.gas import GasSnapshot
from tests.support.tokens import deal_opg
from tests.support.upstream import ensure_upstream

# A plain `ape test` (no `og-settle chain exec`): start the replica as the fork's upstream before Ape connects.
ensure_upstream()

settings.register_profile(
    "fast",
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.register_profile(
    "ci",
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    print_blob=True,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "fast"))

# Signer leases (og_settle._lease) of this test session and the processes it starts: every replica has the same
# dev keys and chain id, so concurrent test runs on one machine must not see each other's leases.
os.environ.setdefault("OG_SETTLE_LEASE_DIR", tempfile.mkdtemp(prefix="og-settle-test-leases-"))

# A fixed key for the stand-in TEE: it plays an enclave's signing key in tests only.
TEE_PRIVATE_KEY = "0x" + "7e" * 32
OPG_PER_PAYER = 10_000 * 10**18


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``replica_only`` tests skip themselves when the upstream is the real Base Sepolia."""
    if on_replica():
        return
    skip = pytest.mark.skip(reason="replica-only set-up: the real chain already has this")
    for item in items:
        if "replica_only" in item.keywords:
            item.add_marker(skip)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "replica_only: needs the local replica as the fork's upstream")
    config.addinivalue_line("markers", "gas: records figures in gas-snapshot.json (OG_SETTLE_GAS_SNAPSHOT=update)")


def on_replica() -> bool:
    return os.environ.get("OG_SETTLE_REPLICA") == "1"


@pytest.fixture(scope="session")
def deployer(accounts: Any) -> Any:
    return accounts[0]


@pytest.fixture(scope="session")
def relayer(accounts: Any) -> Any:
    return accounts[1]


@pytest.fixture(scope="session")
def admin(accounts: Any) -> Any:
    return accounts[2]


@pytest.fixture(scope="session")
def payers(accounts: Any) -> list[Any]:
    return [accounts[i] for i in range(3, 8)]


@pytest.fixture(scope="session")
def payer(payers: list[Any]) -> Any:
    return payers[0]


@pytest.fixture(scope="session")
def stranger(accounts: Any) -> Any:
    return accounts[9]


@pytest.fixture(scope="session")
def tee() -> LocalAccount:
    """The stand-in TEE signing key (secp256k1). In production this key never leaves an enclave."""
    account: LocalAccount = Account.from_key(TEE_PRIVATE_KEY)
    return account


@pytest.fixture(scope="session")
def chain_id(chain: Any) -> int:
    return int(chain.chain_id)


@pytest.fixture(scope="session")
def permit2() -> Any:
    """The genuine Permit2, with the full ABI of our source build (its interfaces omit the errors)."""
    from ape import Contract

    return Contract(PERMIT2_ADDRESS, abi=compile_permit2().abi)


@pytest.fixture(scope="session")
def opg(project: Any, chain: Any) -> Any:
    """OPG at the chain's address (Base Sepolia's by default; Base's on a Base fork): the replica's stand-in, or
    the real token on a real-chain fork."""
    from og_settle import BASE

    return project.ReplicaOPG.at(BASE.opg if int(chain.chain_id) == BASE.chain_id else OPG_ADDRESS)


@pytest.fixture(scope="session")
def usdc(project: Any, chain: Any) -> Any:
    """USDC at the chain's address (Base Sepolia's by default; Base's on a Base fork): the replica's stand-in
    ReplicaUSDC (EIP-3009, EIP-2612), or the real token on a real-chain fork."""
    from og_settle import BASE, BASE_SEPOLIA

    return project.ReplicaUSDC.at((BASE if int(chain.chain_id) == BASE.chain_id else BASE_SEPOLIA).usdc)


# Chain set-up below is function-scoped and idempotent on purpose: a session fixture's transactions can be
# rolled back by the per-test snapshot that happened to be open when it first ran, leaving a cached fixture
# whose state is gone. Re-checking costs a few eth_calls per test.
@pytest.fixture
def funded_payers(opg: Any, payers: list[Any], chain: Any) -> list[Any]:
    """Every payer holds at least OPG_PER_PAYER."""
    for account in payers:
        if opg.balanceOf(account) < OPG_PER_PAYER:
            deal_opg(chain.provider, opg, account.address, OPG_PER_PAYER)
    return payers


@pytest.fixture
def permit2_approved(opg: Any, funded_payers: list[Any]) -> None:
    """Every payer is funded and has approved Permit2 for OPG, as OpenGradient's ensure_opg_approval does."""
    for account in funded_payers:
        if opg.allowance(account, PERMIT2_ADDRESS) < 2**255:
            opg.approve(PERMIT2_ADDRESS, 2**256 - 1, sender=account)


# autouse: a session fixture first requested after a module's deployment makes Ape rebase its snapshots, which
# reverted that deployment under a gas test (InvalidIsolationWarning, then ContractNotFoundError) in full runs.
@pytest.fixture(scope="session", autouse=True)
def gas_snapshot() -> Iterator[GasSnapshot]:
    """Named gas figures, checked against ``gas-snapshot.json`` at the end of the session."""
    snapshot = GasSnapshot.load()
    yield snapshot
    snapshot.finish()


# Reverting an anvil snapshot rewinds its clock to the snapshot's time, which no real chain does: a run more than
# ten minutes old then settles in blocks stamped minutes in the past, and a payload signed with the wall clock
# (`payment sign` and the stock SDKs set validAfter = now - 600) is "not yet valid". Each module and each test
# starts with the chain's clock moved forward to the wall clock (never back), inside Ape's isolation snapshot.
# (Ape's chain manager is taken from `ape`, not from the `chain` fixture, which some modules override.)
def _clock_to_wall(chain: Any) -> None:
    now = int(time.time())
    if int(chain.provider.get_block("latest").timestamp) < now - 1:
        chain.provider.make_request("anvil_setTime", [now])


@pytest.fixture(scope="module", autouse=True)
def _module_clock() -> None:
    import ape

    _clock_to_wall(ape.chain)


@pytest.fixture(autouse=True)
def _test_clock() -> None:
    import ape

    _clock_to_wall(ape.chain)
