"""Deterministic deployment of og-settle's contracts through the deterministic deployer (CREATE2).

Each contract has a documented salt, ``keccak256("og-settle/<ContractName>/v1")``. Its address depends only on
the salt and its initcode, which is the committed creation bytecode plus ABI-encoded constructor arguments:

- ``TeeRegistry(admin)``
- ``SettlementRegistry(teeRegistry, admin, maxAge, maxFutureDrift)`` with the timestamp window
  ``DEFAULT_MAX_AGE`` (3 days, room for a relayer outage) and ``DEFAULT_MAX_FUTURE_DRIFT`` (5 minutes of clock
  skew); the admin can change the window later without changing the address
- ``PaymentFacilitator(permit2)``
- ``StockPaymentBatcher(admin, exactProxy, uptoProxy)`` with the canonical x402 proxies; the relayers get its
  ``SETTLER_ROLE`` (for stock upto payloads it is the announced ``facilitatorAddress``)
- ``Eip3009Batcher(admin)``: batches of EIP-3009 ``transferWithAuthorization`` payments (USDC); the relayers get
  its ``SETTLER_ROLE``

So for a given admin the addresses are known before deployment and are the same on every chain. The
facilitator has no admin at all, so its address is the same for everyone. Deployment is idempotent: a
contract whose predicted address already has code is not deployed again, and roles already held are not
granted again. The result is written to ``<out_dir>/<chain id>.json``, merged into what that file already holds:
its relayers and operators that still hold their roles on chain stay listed, and keys og-settle does not know are
kept.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import sha3
from eth_abi.abi import encode

from og_settle._artifacts import artifact
from og_settle._errors import InvalidInput
from og_settle._networks import (
    DETERMINISTIC_DEPLOYER,
    NETWORKS,
    OPG_ADDRESS,
    PERMIT2_ADDRESS,
    X402_EXACT_PERMIT2_PROXY,
    X402_UPTO_PERMIT2_PROXY,
)
from og_settle.replica._node import create2_address

__all__ = [
    "ContractPlan",
    "Deployment",
    "DeploymentSender",
    "deploy",
    "load_deployment",
    "plan_deployment",
    "salt_for",
]


def _keccak(data: bytes) -> bytes:
    digest: bytes = sha3.keccak_256(data).digest()
    return digest


def salt_for(contract_name: str) -> bytes:
    """The documented CREATE2 salt of a contract: ``keccak256("og-settle/<name>/v1")``."""
    return _keccak(f"og-settle/{contract_name}/v1".encode())


def role_id(role_name: str) -> bytes:
    return _keccak(role_name.encode())


@dataclass(frozen=True, slots=True)
class ContractPlan:
    """One contract to place with CREATE2.

    Attributes:
        name: contract name.
        salt: CREATE2 salt.
        initcode: creation bytecode with constructor arguments appended.
        address: the address CREATE2 gives it through the deterministic deployer.
    """

    name: str
    salt: bytes
    initcode: bytes
    address: str


@dataclass(frozen=True, slots=True)
class Deployment:
    """Where og-settle lives on one chain.

    Attributes:
        chain_id: the chain.
        admin: the account holding the admin roles.
        tee_registry: TeeRegistry address.
        settlement_registry: SettlementRegistry address.
        payment_facilitator: PaymentFacilitator address.
        permit2: the canonical Permit2 the facilitator uses.
        opg: the payment token.
        relayers: accounts granted the settlement registry's relayer role (and the batcher's settler role).
        operators: accounts granted the TEE registry's operator role.
        transactions: hashes of the transactions this run sent (empty when everything existed).
        stock_payment_batcher: StockPaymentBatcher address (empty in files written before it existed).
        eip3009_batcher: Eip3009Batcher address (empty in files written before it existed).
    """

    chain_id: int
    admin: str
    tee_registry: str
    settlement_registry: str
    payment_facilitator: str
    permit2: str = PERMIT2_ADDRESS
    opg: str = OPG_ADDRESS
    relayers: tuple[str, ...] = ()
    operators: tuple[str, ...] = ()
    transactions: tuple[str, ...] = field(default=(), compare=False)
    stock_payment_batcher: str = ""
    eip3009_batcher: str = ""

    def contracts(self) -> dict[str, str]:
        """The og-settle contracts by name and address (a batcher left empty by an older file is left out)."""
        addresses = {
            "TeeRegistry": self.tee_registry,
            "SettlementRegistry": self.settlement_registry,
            "PaymentFacilitator": self.payment_facilitator,
            "StockPaymentBatcher": self.stock_payment_batcher,
        }
        return {name: address for name, address in addresses.items() if address}

    def to_json(self) -> str:
        body = asdict(self)
        body["format"] = "og-settle-deployment-v1"
        body["salts"] = {name: "0x" + salt_for(name).hex() for name in _CONTRACT_ORDER}
        body["relayers"], body["operators"] = list(self.relayers), list(self.operators)
        body["transactions"] = list(self.transactions)
        return json.dumps(body, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Deployment:
        data = json.loads(text)
        if data.get("format") != "og-settle-deployment-v1":
            raise InvalidInput(f"format: expected 'og-settle-deployment-v1', got {data.get('format')!r}")
        fields = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        for name in ("relayers", "operators", "transactions"):
            fields[name] = tuple(fields.get(name, ()))
        return cls(**fields)


_CONTRACT_ORDER = ("TeeRegistry", "SettlementRegistry", "PaymentFacilitator", "StockPaymentBatcher", "Eip3009Batcher")
DEFAULT_MAX_AGE = 3 * 24 * 3600
DEFAULT_MAX_FUTURE_DRIFT = 5 * 60


def _constructor_args(name: str, admin: str, addresses: dict[str, str]) -> bytes:
    if name == "TeeRegistry":
        return encode(["address"], [admin])
    if name == "SettlementRegistry":
        return encode(
            ["address", "address", "uint256", "uint256"],
            [addresses["TeeRegistry"], admin, DEFAULT_MAX_AGE, DEFAULT_MAX_FUTURE_DRIFT],
        )
    if name == "PaymentFacilitator":
        return encode(["address"], [PERMIT2_ADDRESS])
    if name == "StockPaymentBatcher":
        return encode(["address", "address", "address"], [admin, X402_EXACT_PERMIT2_PROXY, X402_UPTO_PERMIT2_PROXY])
    if name == "Eip3009Batcher":
        return encode(["address"], [admin])
    raise KeyError(name)


def plan_deployment(admin: str) -> list[ContractPlan]:
    """The contracts, their salts, initcodes and predicted addresses, in deployment order."""
    addresses: dict[str, str] = {}
    plans = []
    for name in _CONTRACT_ORDER:
        initcode = artifact(name).initcode + _constructor_args(name, admin, addresses)
        address = create2_address(DETERMINISTIC_DEPLOYER, salt_for(name), initcode)
        addresses[name] = address
        plans.append(ContractPlan(name=name, salt=salt_for(name), initcode=initcode, address=address))
    return plans


class DeploymentSender(Protocol):
    """How the deploy code talks to a chain: web3 with a local key, or an Ape account in ``ape run deploy``."""

    @property
    def address(self) -> str: ...

    def chain_id(self) -> int: ...

    def code_at(self, address: str) -> bytes: ...

    def call(self, to: str, data: bytes) -> bytes: ...

    def send(self, to: str, data: bytes) -> str:
        """Send a transaction, wait for a successful receipt, return its hash."""
        ...


def _selector(signature: str) -> bytes:
    return _keccak(signature.encode())[:4]


def _has_role(sender: DeploymentSender, contract: str, role: bytes, account: str) -> bool:
    data = _selector("hasRole(bytes32,address)") + encode(["bytes32", "address"], [role, account])
    return bool(int.from_bytes(sender.call(contract, data), "big"))


def deploy(
    sender: DeploymentSender,
    *,
    admin: str | None = None,
    relayers: Sequence[str] = (),
    operators: Sequence[str] = (),
    out_dir: Path | None = Path("deployments"),
    log: Callable[[str], None] = lambda line: None,
) -> Deployment:
    """Deploy (or find) the contracts, grant roles, and write ``<out_dir>/<chain id>.json``.

    Roles can only be granted here when the sender is the admin; otherwise the admin grants them later."""
    admin = admin or sender.address
    chain_id = sender.chain_id()
    plans = {plan.name: plan for plan in plan_deployment(admin)}
    target = None if out_dir is None else out_dir / f"{chain_id}.json"
    previous, extra = (None, {}) if target is None else _previous_deployment(target, admin, plans)
    if not sender.code_at(DETERMINISTIC_DEPLOYER):
        raise InvalidInput(f"the deterministic deployer {DETERMINISTIC_DEPLOYER} has no code on this chain")
    if not sender.code_at(PERMIT2_ADDRESS):
        raise InvalidInput(f"Permit2 is not deployed at {PERMIT2_ADDRESS} on this chain")
    sent: list[str] = []
    for plan in plans.values():
        if sender.code_at(plan.address):
            log(f"{plan.name:<19} {plan.address}  already deployed")
            continue
        sent.append(sender.send(DETERMINISTIC_DEPLOYER, plan.salt + plan.initcode))
        if not sender.code_at(plan.address):
            raise InvalidInput(f"{plan.name} did not land at its predicted address {plan.address}")
        log(f"{plan.name:<19} {plan.address}  deployed (tx {sent[-1]})")
    grants = [("SettlementRegistry", "RELAYER_ROLE", account) for account in relayers]
    grants += [("StockPaymentBatcher", "SETTLER_ROLE", account) for account in relayers]
    grants += [("Eip3009Batcher", "SETTLER_ROLE", account) for account in relayers]
    grants += [("TeeRegistry", "OPERATOR_ROLE", account) for account in operators]
    for contract_name, role_name, account in grants:
        contract, role = plans[contract_name].address, role_id(role_name)
        if _has_role(sender, contract, role, account):
            continue
        if sender.address.lower() != admin.lower():
            log(f"{contract_name}: {account} lacks {role_name}; the admin {admin} must grant it")
            continue
        data = _selector("grantRole(bytes32,address)") + encode(["bytes32", "address"], [role, account])
        sent.append(sender.send(contract, data))
        log(f"{contract_name:<19} granted {role_name} to {account}")
    if previous is not None:
        relayers = _still_holding(sender, previous.relayers, relayers, plans["SettlementRegistry"], "RELAYER_ROLE", log)
        operators = _still_holding(sender, previous.operators, operators, plans["TeeRegistry"], "OPERATOR_ROLE", log)
    # The payment token recorded: OPG of the named network this chain is (Base's on 8453), else Base Sepolia's.
    opg = next((n.opg for n in NETWORKS if n.chain_id == chain_id), OPG_ADDRESS)
    deployment = Deployment(
        chain_id=chain_id,
        opg=opg,
        admin=admin,
        tee_registry=plans["TeeRegistry"].address,
        settlement_registry=plans["SettlementRegistry"].address,
        payment_facilitator=plans["PaymentFacilitator"].address,
        stock_payment_batcher=plans["StockPaymentBatcher"].address,
        eip3009_batcher=plans["Eip3009Batcher"].address,
        relayers=tuple(relayers),
        operators=tuple(operators),
        transactions=tuple(sent),
    )
    if target is not None:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".json.tmp")
        body = {**extra, **json.loads(deployment.to_json())}
        tmp.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, target)
        log(f"{'updated' if previous is not None else 'wrote'} {target}")
    return deployment


def _previous_deployment(
    target: Path, admin: str, plans: dict[str, ContractPlan]
) -> tuple[Deployment | None, dict[str, Any]]:
    """The deployment file a run merges into (None when there is none), and the keys in it og-settle does not know.

    Raises:
        InvalidInput: the file is not a deployment file, or it describes another deployment (another admin, so
            other addresses) on this chain; checked before anything is sent.
    """
    if not target.exists():
        return None, {}
    previous = load_deployment(target)
    if previous.settlement_registry.lower() != plans["SettlementRegistry"].address.lower():
        raise InvalidInput(
            f"{target} describes another deployment on this chain (admin {previous.admin}); this run's admin "
            f"{admin} gives other addresses: move that file away or choose another --out-dir"
        )
    known = set(Deployment.__dataclass_fields__) | {"format", "salts"}
    extra = {key: value for key, value in json.loads(target.read_text(encoding="utf-8")).items() if key not in known}
    return previous, extra


def _still_holding(
    sender: DeploymentSender,
    listed: Sequence[str],
    given: Sequence[str],
    plan: ContractPlan,
    role_name: str,
    log: Callable[[str], None],
) -> tuple[str, ...]:
    """``given`` followed by the accounts the previous file ``listed`` that still hold the role on chain."""
    merged = list(given)
    seen = {account.lower() for account in given}
    for account in listed:
        if account.lower() in seen:
            continue
        seen.add(account.lower())
        if _has_role(sender, plan.address, role_id(role_name), account):
            merged.append(account)
        else:
            log(f"{plan.name}: {account} no longer holds {role_name} on chain; dropped from the file")
    return tuple(merged)


def load_deployment(path: Path) -> Deployment:
    try:
        return Deployment.from_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInput(f"no deployment file at {path}: deploy first (`og-settle deploy`)") from None
    except (KeyError, TypeError, json.JSONDecodeError) as err:
        raise InvalidInput(f"{path}: not a valid og-settle deployment file ({err})") from None


class Web3Sender:
    """A DeploymentSender over web3.py with a local eth-account key (the CLI and the demo use it). Transactions
    go through the clients' TxSender: gas estimate x margin, EIP-1559 fees, nonce tracking, RPC retries."""

    def __init__(self, rpc_url: str, private_key: str, gas_margin: float = 1.25) -> None:
        from eth_account import Account

        from og_settle.clients import TxSender, make_web3

        self._w3: Any = make_web3(rpc_url, timeout=60)
        self._tx = TxSender(self._w3, Account.from_key(private_key), gas_margin=gas_margin)

    @property
    def address(self) -> str:
        return self._tx.address

    def chain_id(self) -> int:
        return self._tx.chain_id

    def code_at(self, address: str) -> bytes:
        return bytes(self._w3.eth.get_code(address))

    def call(self, to: str, data: bytes) -> bytes:
        return bytes(self._w3.eth.call({"to": to, "data": data}))

    def send(self, to: str, data: bytes) -> str:
        from og_settle.clients import ContractCall

        receipt = self._tx.send(ContractCall(to=to, data=data, description=f"deploy step to {to}"), timeout=120)
        return "0x" + receipt.tx_hash.hex()
