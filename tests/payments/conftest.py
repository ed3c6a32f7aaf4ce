"""Payments fixtures: one PaymentFacilitator per module, hostile test tokens, and a payment signer."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from og_settle import PERMIT2_ADDRESS
from og_settle._deploy import Deployment, deploy
from og_settle._permit2 import Permit2Authorization, sign_authorization

Sign = Callable[..., tuple[Permit2Authorization, bytes]]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "gas: records figures in the committed gas snapshot")


@pytest.fixture(scope="module")
def facilitator(project: Any, deployer: Any) -> Any:
    return project.PaymentFacilitator.deploy(PERMIT2_ADDRESS, sender=deployer)


@pytest.fixture(scope="module")
def payee(accounts: Any) -> Any:
    """The x402 ``payTo``: the inference provider's address."""
    return accounts[8]


@pytest.fixture
def now(chain: Any) -> int:
    return int(chain.pending_timestamp)


@pytest.fixture
def sign(facilitator: Any, opg: Any, payee: Any, chain_id: int, now: int, permit2_approved: None) -> Sign:
    """``sign(payer, **overrides) -> (authorization, signature)``: an exact OPG payment to ``payee`` by default.

    Overrides are Permit2Authorization fields; ``key``/``chain_id``/``permit2`` change how it is signed.
    """
    counter = iter(range(1, 10**9))

    def make(account: Any, *, key: Any = None, sign_chain_id: int | None = None, **fields: Any) -> Any:
        values: dict[str, Any] = {
            "owner": account.address,
            "token": opg.address,
            "amount": 10**18,
            "spender": facilitator.address,
            "nonce": (int.from_bytes(account.address.encode(), "big") << 40) + next(counter) * 997,
            "deadline": now + 3600,
            "to": payee.address,
            "valid_after": now - 600,
        }
        values.update(fields)
        values["nonce"] %= 2**256
        authorization = Permit2Authorization(**values)
        signature = sign_authorization(
            authorization,
            account.private_key if key is None else key,
            chain_id if sign_chain_id is None else sign_chain_id,
        )
        return authorization, signature

    return make


@pytest.fixture(scope="module")
def deployment_file(
    deployer: Any,
    tmp_path_factory: pytest.TempPathFactory,
    payers: list[Any],
    payer: Any,
    payee: Any,
    stranger: Any,
    relayer: Any,
    opg: Any,
    permit2: Any,
    chain_id: int,
) -> Path:
    """og-settle deployed once per module (``deploy``, as the CLI does). It also pulls in every wider-scoped
    fixture the facilitator tests use, so that they set up before the first test's snapshot (Ape's isolation
    wants wider scopes first)."""
    from scripts.deploy import ApeSender

    out_dir = tmp_path_factory.mktemp("deployments")
    deployed = deploy(ApeSender(deployer), relayers=[relayer.address], out_dir=out_dir)
    return out_dir / f"{deployed.chain_id}.json"


@pytest.fixture
def deployment(deployment_file: Path) -> Deployment:
    return Deployment.from_json(deployment_file.read_text())


@pytest.fixture
def rpc_url(chain: Any) -> str:
    """The fork's JSON-RPC URL, for servers and CLIs under test."""
    return str(chain.provider.http_uri)
