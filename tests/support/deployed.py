"""Contracts deployed for many tests on Ape's fork, safe under Ape's snapshots.

Ape reverts the chain to a snapshot after each test, and when a wider-scoped fixture first appears in the middle
of a module it reverts further back (a "rebase"), which can take away contracts a module- or session-scoped
fixture deployed while keeping that fixture's cached value: a test then meets a deployment file whose addresses
have no code ("no contract code at the TeeRegistry address"). :class:`Kept` keeps such a value for as long as it
is alive on chain and sets it up again when it is not; call :meth:`Kept.get` from a function-scoped fixture, so
each test checks (an ``eth_getCode`` call or a few), as the payer set-up does.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

from og_settle._deploy import load_deployment

__all__ = ["Kept", "kept_contract", "kept_og_settle", "kept_payers", "kept_settled_by"]

T = TypeVar("T")


class Kept(Generic[T]):
    """A value set up on chain by ``make``, made again whenever ``alive(value)`` says a revert took it away."""

    def __init__(self, make: Callable[[], T], alive: Callable[[T], bool]) -> None:
        self._make = make
        self._alive = alive
        self._value: T | None = None

    def get(self) -> T:
        """The value, after setting it up again if the chain no longer holds it."""
        if self._value is None or not self._alive(self._value):
            self._value = self._make()
        return self._value


def kept_contract(chain: Any, make: Callable[[], Any]) -> Kept[Any]:
    """An Ape contract deployed by ``make``, deployed again when its address has no code."""
    return Kept(make, lambda contract: _has_code(chain, contract.address))


def kept_settled_by(chain: Any, deploy: Callable[[], Any], *, admin: Any, settler: Any) -> Kept[Any]:
    """A batcher contract made by ``deploy`` (administered by ``admin``), ``settler`` granted its SETTLER_ROLE;
    deployed again when its address has no code."""
    from eth_utils import keccak

    def make() -> Any:
        contract = deploy()
        contract.grantRole(keccak(text="SETTLER_ROLE"), settler.address, sender=admin)
        return contract

    return kept_contract(chain, make)


def kept_payers(chain: Any, opg: Any, label: bytes, *, count: int = 50) -> Kept[list[Any]]:
    """``count`` fresh payers (keys ``keccak256(label + b" %d" % i)``), each holding 1 ETH and 1,000 OPG and
    approved for 100 OPG through ``ensure_opg_approval`` (web3 + eth-account); set up again when the last one no
    longer holds OPG."""
    from eth_account import Account

    from og_settle._hex import keccak256
    from og_settle._permit2 import ensure_opg_approval
    from tests.support.tokens import deal_opg

    one = 10**18

    def make() -> list[Any]:
        web3 = chain.provider.web3
        accounts = [Account.from_key(keccak256(label + b" %d" % i)) for i in range(count)]
        for account in accounts:
            chain.provider.make_request("anvil_setBalance", [account.address, hex(one)])
            deal_opg(chain.provider, opg, account.address, 1_000 * one)
            result = ensure_opg_approval(100 * one, private_key=account.key, web3=web3, token=opg.address)
            assert result.allowance_after == 100 * one
        return accounts

    return Kept(make, lambda accounts: opg.balanceOf(accounts[-1].address) > 0)


def kept_og_settle(chain: Any, deployer: Any, relayer: Any, tmp_path_factory: Any) -> Kept[Path]:
    """og-settle deployed by ``deployer`` (an Ape account) with ``relayer`` holding the relayer role, each time in a
    new temporary folder; the value is the deployment file."""
    from og_settle._deploy import deploy
    from scripts.deploy import ApeSender

    def make() -> Path:
        out_dir = tmp_path_factory.mktemp("deployments")
        deployed = deploy(ApeSender(deployer), relayers=[relayer.address], out_dir=out_dir)
        return out_dir / f"{deployed.chain_id}.json"

    return Kept(make, lambda path: all(_has_code(chain, a) for a in load_deployment(path).contracts().values()))


def _has_code(chain: Any, address: str) -> bool:
    return bool(bytes(chain.provider.get_code(address)))
