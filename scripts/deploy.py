"""``ape run deploy``: deterministic CREATE2 deployment of og-settle on the connected network.

    ape run deploy --network base:sepolia-fork:foundry          # on a fork of the replica (see README)
    ape run deploy --network base:sepolia:node --account NAME   # the real Base Sepolia

Addresses are predicted before anything is sent (same on every chain for the same admin); a re-run detects
what already exists and only sends what is missing. Writes ``deployments/<chain id>.json``.
"""

from __future__ import annotations

from pathlib import Path

import click
from ape import chain
from ape.cli import ConnectedProviderCommand, account_option, network_option

from og_settle._deploy import DeploymentSender, deploy, plan_deployment


class ApeSender:
    """Sends through an Ape account on the connected provider."""

    def __init__(self, account: object) -> None:
        self._account: object = account

    @property
    def address(self) -> str:
        return str(self._account.address)  # type: ignore[attr-defined]  # any Ape AccountAPI

    def chain_id(self) -> int:
        return int(chain.chain_id)

    def code_at(self, address: str) -> bytes:
        return bytes(chain.provider.get_code(address))

    def call(self, to: str, data: bytes) -> bytes:
        return bytes(chain.provider.web3.eth.call({"to": to, "data": data}))

    def send(self, to: str, data: bytes) -> str:
        receipt = self._account.transfer(to, 0, data=data)  # type: ignore[attr-defined]
        return str(receipt.txn_hash)


@click.command(cls=ConnectedProviderCommand)
@network_option()
@account_option()
@click.option("--admin", default=None, help="admin of the registries (default: the deploying account)")
@click.option("--relayer", "relayers", multiple=True, help="grant the relayer role (repeatable)")
@click.option("--operator", "operators", multiple=True, help="grant the TEE operator role (repeatable)")
@click.option("--out-dir", type=click.Path(path_type=Path), default=Path("deployments"), show_default=True)
@click.option("--dry-run", is_flag=True, help="print the predicted addresses and send nothing")
def cli(
    account: object,
    admin: str | None,
    relayers: tuple[str, ...],
    operators: tuple[str, ...],
    out_dir: Path,
    dry_run: bool,
) -> None:
    sender: DeploymentSender = ApeSender(account)
    if dry_run:
        for plan in plan_deployment(admin or sender.address):
            click.echo(f"{plan.name:<19} {plan.address}  salt 0x{plan.salt.hex()}")
        return
    deployment = deploy(sender, admin=admin, relayers=relayers, operators=operators, out_dir=out_dir, log=click.echo)
    click.echo(deployment.to_json())
