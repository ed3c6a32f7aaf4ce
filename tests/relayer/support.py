"""A live chain for relayer tests: our own anvil replica (real Permit2, OPG), og-settle deployed with
``og_settle._deploy.deploy``, a registered stand-in TEE, payers approved for Permit2, and record factories.

The relayer tests run their own anvil (not Ape's fork) because the fault tests cut the node off (a relay,
``tests.support.outage``) and run the relayer as a separate process against it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_keys import keys

from og_settle._attestation import (
    IndividualSettlement,
    InferenceAttestation,
    MetadataSettlement,
    TeeKey,
    TeeRegistration,
    settlement_domain,
    tee_registry_domain,
)
from og_settle._deploy import Deployment, Web3Sender, deploy
from og_settle._hex import keccak256, to_hex
from og_settle._networks import BASE_SEPOLIA_CAIP2, OPG_ADDRESS
from og_settle._permit2 import ensure_opg_approval
from og_settle._x402 import PaymentRequirements, create_payment_payload
from og_settle.replica import DEV_MNEMONIC
from og_settle.replica._node import (
    OPG_PER_DEV_ACCOUNT,
    AnvilProcess,
    install_opg,
    install_permit2,
    start_anvil,
)

Account.enable_unaudited_hdwallet_features()

TEE_KEY = TeeKey(bytes.fromhex("7e" * 32))
TEE_ID = TEE_KEY.tee_id
_TEE_SIGNER = keys.PrivateKey(TEE_KEY.private_key)
_SECP256K1_HALF_N = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0
MEASUREMENT = keccak256(b"og-tee-gateway tdx measurement (relayer tests)")
ROOT = Path(__file__).resolve().parents[2]
OG_SETTLE = str(ROOT / ".venv" / "bin" / "og-settle")


def dev_key(index: int) -> str:
    """The private key of anvil dev account ``index`` (from the replica's mnemonic)."""
    account = Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")
    return "0x" + bytes(account.key).hex()


# A deployment for tests that verify records without a chain (the addresses only enter the EIP-712 domain).
OFFLINE_DEPLOYMENT = Deployment(
    chain_id=84532,
    admin="0x" + "11" * 20,
    tee_registry="0x" + "22" * 20,
    settlement_registry="0x" + "33" * 20,
    payment_facilitator="0x" + "44" * 20,
)
DEPLOYER_KEY = dev_key(0)
RELAYER_KEY = dev_key(1)
PAYER_KEYS = [dev_key(i) for i in (3, 4, 5)]
PAY_TO = Account.from_key(dev_key(6)).address


@dataclass
class LiveChain:
    """A running anvil with og-settle deployed.

    Attributes:
        rpc_url: the node.
        port: its port.
        anvil: the process (for stopping it).
        deployment: what is where.
        deployment_path: the deployment JSON file.
    """

    rpc_url: str
    port: int
    anvil: AnvilProcess
    deployment: Deployment
    deployment_path: Path

    def web3(self) -> Any:
        from og_settle.clients import make_web3

        return make_web3(self.rpc_url)


def start_chain(workdir: Path, *, port: int | None = None, relayer_keys: Sequence[str] = ()) -> LiveChain:
    """Start anvil, install Permit2 and OPG, deploy og-settle, register the TEE, approve Permit2 for payers.
    The relayer role goes to RELAYER_KEY's account and those of ``relayer_keys``."""
    from og_settle.replica import free_port

    port = port or free_port()
    anvil, rpc = start_anvil(port)
    try:
        accounts = tuple(rpc.call("eth_accounts"))
        install_permit2(rpc, accounts[0])
        install_opg(rpc, accounts, OPG_PER_DEV_ACCOUNT)
        url = f"http://127.0.0.1:{port}"
        sender = Web3Sender(url, DEPLOYER_KEY)
        relayers = list(dict.fromkeys(Account.from_key(k).address for k in (RELAYER_KEY, *relayer_keys)))
        deployment = deploy(sender, relayers=relayers, operators=[sender.address], out_dir=workdir / "deployments")
        _register_tee(url, deployment)
        for key in PAYER_KEYS:
            ensure_opg_approval(2**255, private_key=key, rpc_url=url, approve_amount=2**256 - 1)
    except BaseException:
        anvil.stop()
        raise
    return LiveChain(
        rpc_url=url,
        port=port,
        anvil=anvil,
        deployment=deployment,
        deployment_path=workdir / "deployments" / f"{deployment.chain_id}.json",
    )


def _register_tee(url: str, deployment: Deployment) -> None:
    from og_settle.clients import ContractCall, TxSender, make_web3

    w3 = make_web3(url)
    admin = TxSender(w3, Account.from_key(DEPLOYER_KEY))
    selector = keccak256(b"approveMeasurement(bytes32,uint8,string)")[:4]
    from eth_abi.abi import encode

    admin.send(
        ContractCall(
            deployment.tee_registry,
            selector + encode(["bytes32", "uint8", "string"], [MEASUREMENT, 1, "relayer-tests v1"]),
            "approveMeasurement",
        )
    )
    registration = TeeRegistration(
        TEE_KEY.public_key, MEASUREMENT, keccak256(b"attestation report"), admin.address, "https://tee.test"
    )
    proof = TEE_KEY.sign_registration(
        tee_registry_domain(deployment.chain_id, deployment.tee_registry), registration, admin.address
    )
    register = keccak256(b"registerTee((bytes,bytes32,bytes32,address,string),bytes)")[:4]
    admin.send(
        ContractCall(
            deployment.tee_registry,
            register + encode(["(bytes,bytes32,bytes32,address,string)", "bytes"], [registration.as_abi(), proof]),
            "registerTee",
        )
    )


@contextmanager
def live_chain(workdir: Path, **kwargs: Any) -> Iterator[LiveChain]:
    chain = start_chain(workdir, **kwargs)
    try:
        yield chain
    finally:
        chain.anvil.stop()


# -- records ---------------------------------------------------------------------------------------------------


def inference_record(
    deployment: Deployment, index: int, *, mode: str = "batch", payer: str | None = None, now: int | None = None
) -> dict[str, Any]:
    """A TEE-signed inference record in the relayer's JSONL form (distinct per ``index``)."""
    timestamp = (int(time.time()) if now is None else now) - 60
    input_hash = keccak256(b"request %d" % index)
    output_hash = keccak256(b"response %d" % index)
    domain = settlement_domain(deployment.chain_id, deployment.settlement_registry)
    payer = payer or Account.from_key(PAYER_KEYS[index % len(PAYER_KEYS)]).address
    record: dict[str, Any] = {"kind": "inference", "mode": mode, "ref": f"inf-{index}"}
    record["tee_id"] = to_hex(TEE_ID)
    record["timestamp"] = timestamp
    if mode in ("batch", "private"):
        attestation = InferenceAttestation(TEE_ID, input_hash, output_hash, timestamp)
        signature = _fast_sign(domain.digest(attestation.struct_hash()))
        record.update(input_hash=to_hex(input_hash), output_hash=to_hex(output_hash))
    elif mode == "individual":
        settlement = IndividualSettlement(TEE_KEY.tee_id, input_hash, output_hash, timestamp, payer)
        signature = TEE_KEY.sign_individual(domain, settlement)
        record.update(input_hash=to_hex(input_hash), output_hash=to_hex(output_hash), payer=payer)
    elif mode == "metadata":
        request = json.dumps({"messages": [{"role": "user", "content": f"question {index}"}]}, sort_keys=True)
        answer = f"answer {index}"
        meta = MetadataSettlement(
            TEE_KEY.tee_id, timestamp, payer, "openai/gpt-4.1", request.encode(), answer.encode(), b'{"tokens":7}'
        )
        signature = TEE_KEY.sign_metadata(domain, meta)
        record.update(model="openai/gpt-4.1", input=request, output=answer, metadata_hex=to_hex(b'{"tokens":7}'))
        record["payer"] = payer
    else:
        raise ValueError(mode)
    record["tee_signature"] = to_hex(signature)
    return record


def _fast_sign(digest: bytes) -> bytes:
    """The TEE's 65-byte signature over ``digest``, without TeeKey's self-check (which recovers the signer, about
    10 ms in pure Python): the relayer's intake and the registry check these signatures anyway."""
    signature = _TEE_SIGNER.sign_msg_hash(digest)
    if signature.s > _SECP256K1_HALF_N:  # eth-keys signs low-s; keep the registry's rule explicit
        return TEE_KEY.sign_digest(digest)
    return signature.r.to_bytes(32, "big") + signature.s.to_bytes(32, "big") + bytes([27 + signature.v])


def requirements(amount: int, *, timeout: int = 3600) -> PaymentRequirements:
    return PaymentRequirements(
        scheme="exact",
        network=BASE_SEPOLIA_CAIP2,
        amount=amount,
        asset=OPG_ADDRESS,
        pay_to=PAY_TO,
        max_timeout_seconds=timeout,
        extra={"assetTransferMethod": "permit2", "name": "OPG", "version": "1"},
    )


def payment_record(
    deployment: Deployment, index: int, *, amount: int = 10**15, now: int | None = None, timeout: int = 3600
) -> dict[str, Any]:
    """A signed x402 exact payment (Permit2, real signature) in the relayer's JSONL form."""
    reqs = requirements(amount, timeout=timeout)
    payload = create_payment_payload(
        reqs,
        PAYER_KEYS[index % len(PAYER_KEYS)],
        spender=deployment.payment_facilitator,
        now=now,
        nonce=(1 << 200) + index,
        permit2=deployment.permit2,
    )
    return {
        "kind": "payment",
        "ref": f"pay-{index}",
        "paymentPayload": payload.to_json(),
        "paymentRequirements": reqs.to_json(),
    }


def write_jsonl(path: Path, records: list[Any]) -> Path:
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write((record if isinstance(record, str) else json.dumps(record)) + "\n")
    return path


# -- processes -------------------------------------------------------------------------------------------------


def cli(
    *args: str, input_text: str | None = None, timeout: float = 120.0, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``og-settle ARGS`` to completion (``env``: variables to add or override)."""
    return subprocess.run(
        [OG_SETTLE, *args],
        input=input_text,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_env(env),
        check=False,
    )


# Signer leases of this test process's relayers (the dev keys are the same in every replica, so test runs on one
# machine must not see each other's leases).
_LEASE_DIR = tempfile.mkdtemp(prefix="og-settle-test-leases-")


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["OG_SETTLE_RELAYER_KEY"] = RELAYER_KEY
    env["OG_SETTLE_HOME"] = str(ROOT)
    env["OG_SETTLE_LEASE_DIR"] = _LEASE_DIR
    env.update(extra or {})
    return env


def spawn_relayer(
    db: Path | str,
    chain: LiveChain,
    *extra: str,
    env: dict[str, str] | None = None,
    log_path: Path,
    rpc_url: str | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``og-settle relayer run`` in the background (on the chain's node, or ``rpc_url``); its JSON log lines
    go to ``log_path``."""
    handle = log_path.open("ab")
    return subprocess.Popen(
        [OG_SETTLE, "relayer", "run", "--db", str(db), "--rpc", rpc_url or chain.rpc_url, *extra],
        stdout=handle,
        stderr=handle,
        env=_env(env),
        stdin=subprocess.DEVNULL,
    )


def read_events(log_path: Path) -> list[dict[str, Any]]:
    events = []
    for line in log_path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return events


def python() -> str:
    return sys.executable


def wait_until(what: str, condition: Callable[[], Any], *, timeout: float, context: str | Callable[[], str]) -> None:
    """Poll ``condition`` until it holds; after ``timeout`` seconds fail naming ``what`` and ``context`` (or what
    ``context()`` gives then, for example a log's tail)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            detail = context() if callable(context) else context
            raise AssertionError(f"timed out after {timeout}s waiting for {what} ({detail})")
        time.sleep(0.02)
