"""``ape run export_artifacts``: write the committed ABI + bytecode files the package ships."""

from __future__ import annotations

import json
from pathlib import Path

import click
from ape import project

from og_settle._artifacts import DEPLOYABLE_CONTRACTS

TARGET = Path(__file__).resolve().parents[1] / "src" / "og_settle" / "_artifacts"


def artifact_json(name: str) -> str:
    contract_type = getattr(project, name).contract_type
    body = {
        "contractName": name,
        "abi": [item.model_dump(mode="json", by_alias=True) for item in contract_type.abi],
        "initcode": contract_type.deployment_bytecode.bytecode,
        "runtime": contract_type.runtime_bytecode.bytecode,
    }
    return json.dumps(body, indent=1, sort_keys=True) + "\n"


@click.command()
def cli() -> None:
    for name in DEPLOYABLE_CONTRACTS:
        path = TARGET / f"{name}.json"
        path.write_text(artifact_json(name), encoding="utf-8")
        click.echo(f"wrote {path.relative_to(TARGET.parents[2])}")
