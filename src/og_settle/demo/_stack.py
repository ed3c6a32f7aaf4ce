"""A whole og-settle stack on a fresh replica, every part a real process: the chain, the facilitator, the gateway.

:func:`running_stack` starts a replica of the named network (``base`` for OpenGradient's SDK, ``base-sepolia``
for the stock x402 SDK), deploys the contracts, registers the stand-in TEE's RSA key on the TeeRegistry, and runs
``og-settle facilitator serve`` and ``og-settle gateway serve`` as subprocesses on free loopback ports. The
relayer runs on demand (:meth:`Stack.run_relayer`). Logs go to files in the work folder. The HTTP demo, the
gateway tests and the gateway benchmark all run on it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from og_settle._deploy import Deployment, Web3Sender, deploy
from og_settle._networks import network
from og_settle._permit2 import ensure_opg_approval
from og_settle.gateway import StandInTee

_OG_SETTLE = [sys.executable, "-m", "og_settle.cli"]
API_KEY = "og-settle-demo-settle-key"  # the facilitator's /settle bearer key, this stack only


def dev_keys(count: int) -> list[str]:
    from eth_account import Account

    from og_settle.replica import DEV_MNEMONIC

    Account.enable_unaudited_hdwallet_features()
    return [
        "0x" + bytes(Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}").key).hex()
        for i in range(count)
    ]


def address_of(key: str) -> str:
    from eth_account import Account

    return str(Account.from_key(key).address)


@dataclass
class _Process:
    """A started og-settle server: its first stdout line is the JSON start line."""

    popen: subprocess.Popen[str]
    start: dict[str, Any]
    log: Path

    def stop(self) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        return int(self.popen.returncode)

    def log_lines(self) -> list[dict[str, Any]]:
        lines = []
        for text in self.log.read_text(errors="replace").splitlines():
            if text.startswith("{"):
                try:
                    lines.append(json.loads(text))
                except json.JSONDecodeError:
                    continue
        return lines


def start_process(argv: Sequence[str], log: Path, env: Mapping[str, str], timeout: float = 90.0) -> _Process:
    """Run ``og-settle ARGV --json`` and wait for its start line (the process's stderr goes to ``log``)."""
    child_env = {**os.environ, **env}
    handle: IO[str] = log.open("w")
    popen = subprocess.Popen(
        [*_OG_SETTLE, *argv, "--json"], stdout=subprocess.PIPE, stderr=handle, text=True, env=child_env
    )
    handle.close()
    assert popen.stdout is not None
    deadline = time.monotonic() + timeout
    line = ""
    while time.monotonic() < deadline:
        line = popen.stdout.readline()
        if line or popen.poll() is not None:
            break
    if not line.startswith("{"):
        popen.kill()
        popen.wait()
        raise RuntimeError(f"og-settle {argv[0]} did not start: {line!r}; log:\n{log.read_text()[-3000:]}")
    return _Process(popen, json.loads(line), log)


@dataclass
class Stack:
    """What :func:`running_stack` started.

    Attributes:
        rpc_url: the replica's RPC URL.
        network: the network name (``base`` or ``base-sepolia``).
        deployment: the deployed contracts.
        deployment_path: the deployment file.
        tee: the stand-in TEE (its key is registered on chain).
        keys: dev account keys: 0 deployer/admin, 1 relayer, 2 operator (TEE owner, payTo), 3 facilitator, 4+ payers
            (payer 0 has not approved Permit2, as a new SDK user; payers 1-5 have).
        work: the work folder (queue, blobs, dumps, logs).
        facilitator: the facilitator process.
        gateway: the gateway process.
    """

    rpc_url: str
    network: str
    deployment: Deployment
    deployment_path: Path
    tee: StandInTee
    keys: list[str]
    work: Path
    facilitator: _Process
    gateway: _Process
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def gateway_url(self) -> str:
        return str(self.gateway.start["url"])

    @property
    def facilitator_url(self) -> str:
        return str(self.facilitator.start["url"])

    @property
    def pay_to(self) -> str:
        return address_of(self.keys[2])

    @property
    def queue(self) -> Path:
        return self.work / "queue.sqlite"

    def payer_key(self, index: int) -> str:
        return self.keys[4 + index]

    def run_relayer(self, timeout: float = 180.0) -> subprocess.CompletedProcess[str]:
        """``og-settle relayer run --drain --exit-when-done`` over the gateway's queue."""
        return subprocess.run(
            [
                *_OG_SETTLE,
                "relayer",
                "run",
                "--network",
                self.network,
                "--db",
                str(self.queue),
                "--deployment",
                str(self.deployment_path),
                "--rpc",
                self.rpc_url,
                "--drain",
                "--exit-when-done",
                "--poll",
                "0.1",
                "--blobs",
                str(self.work / "blobs"),
            ],
            env={**os.environ, "OG_SETTLE_RELAYER_KEY": self.keys[1], **_own_leases(self.work)},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def register_stand_in_tee(
    rpc_url: str, deployment: Deployment, tee: StandInTee, admin_key: str, operator_key: str
) -> None:
    """Register the stand-in TEE's RSA key on the TeeRegistry, as an operator registers an OpenGradient enclave:
    the admin approves a measurement (here a label, for there is no enclave), and the operator submits the DER key
    with the key's own RSA-PSS proof of possession over the registry's EIP-712 digest."""
    from eth_account import Account

    from og_settle._attestation import RsaTeeRegistration, tee_registry_domain
    from og_settle._hex import keccak256
    from og_settle.clients import TeeRegistryClient, TxSender, make_web3

    w3 = make_web3(rpc_url)
    registry = TeeRegistryClient(w3, deployment.tee_registry)
    admin = TxSender(w3, Account.from_key(admin_key), chain_id=deployment.chain_id)
    operator = TxSender(w3, Account.from_key(operator_key), chain_id=deployment.chain_id)
    measurement = keccak256(b"og-settle gateway STAND-IN TEE (no enclave, no attestation)")
    admin.send(registry.approve_measurement_call(measurement, 0, "stand-in"))
    registration = RsaTeeRegistration(
        public_key=tee.public_key_der,
        measurement=measurement,
        attestation_hash=keccak256(b"stand-in: no attestation report"),
        tls_certificate_hash=bytes(32),
        payment_address=operator.address,
        endpoint="http://127.0.0.1/stand-in",
    )
    digest = tee_registry_domain(deployment.chain_id, deployment.tee_registry).digest(
        registration.struct_hash(operator.address)
    )
    operator.send(registry.register_rsa_tee_call(registration, tee.key.sign(digest)))


@contextmanager
def running_stack(
    work: Path, network_name: str, *, register_tee: bool = True, gateway_args: Sequence[str] = ()
) -> Iterator[Stack]:
    """Everything, on a fresh replica of ``network_name``; stopped on exit."""
    from og_settle.replica import running_replica

    keys = dev_keys(10)
    net = network(network_name)
    work.mkdir(parents=True, exist_ok=True)
    with running_replica(network=net) as replica, ExitStack() as stop:
        relayer, operator, settler = (address_of(k) for k in keys[1:4])
        deployment = deploy(
            Web3Sender(replica.rpc_url, keys[0]),
            relayers=[relayer],
            operators=[operator],
            out_dir=work / "deployments",
            log=lambda line: None,
        )
        deployment_path = work / "deployments" / f"{deployment.chain_id}.json"
        for key in keys[5:]:
            ensure_opg_approval(10**24, private_key=key, rpc_url=replica.rpc_url, token=net.opg)
        tee = StandInTee.load_or_create(work / "tee.pem")
        registered: str | None = None
        if register_tee:
            register_stand_in_tee(replica.rpc_url, deployment, tee, keys[0], keys[2])
        else:
            registered = "this stack did not register its TEE"
        facilitator = start_process(
            [
                "facilitator",
                "serve",
                "--network",
                net.name,
                "--deployment",
                str(deployment_path),
                "--rpc",
                replica.rpc_url,
                "--port",
                "0",
                "--key-env",
                "OG_GW_TEST_SETTLER_KEY",
                *_facilitator_auth_args(),
            ],
            work / "facilitator.log",
            {"OG_GW_TEST_SETTLER_KEY": keys[3], "OG_GW_TEST_API_KEYS": API_KEY, **_own_leases(work)},
        )
        stop.callback(facilitator.stop)
        gateway = start_process(
            [
                "gateway",
                "serve",
                "--facilitator",
                str(facilitator.start["url"]),
                "--facilitator-key-env",
                "OG_GW_TEST_API_KEY",
                "--network",
                net.name,
                "--pay-to",
                operator,
                "--tee-key",
                str(work / "tee.pem"),
                "--queue",
                str(work / "queue.sqlite"),
                "--deployment",
                str(deployment_path),
                "--blobs",
                str(work / "blobs"),
                "--port",
                "0",
                *gateway_args,
            ],
            work / "gateway.log",
            {"OG_GW_TEST_API_KEY": API_KEY},
        )
        stop.callback(gateway.stop)
        del settler
        yield Stack(
            rpc_url=replica.rpc_url,
            network=net.name,
            deployment=deployment,
            deployment_path=deployment_path,
            tee=tee,
            keys=keys,
            work=work,
            facilitator=facilitator,
            gateway=gateway,
            extra={"tee_not_registered": registered},
        )


def _facilitator_auth_args() -> list[str]:
    """``/settle`` authentication flags, when this checkout's facilitator has them (issue 9 item 8)."""
    from og_settle.cli import build_parser

    serve = build_parser().parse_known_args(["facilitator", "serve", "--deployment", "x", "--rpc", "y"])[0]
    return ["--api-keys-env", "OG_GW_TEST_API_KEYS"] if hasattr(serve, "api_keys_env") else []


def _own_leases(work: Path) -> dict[str, str]:
    """Signer leases are keyed by chain id and address, and every local replica shares both with other runs on this
    machine: a lease folder of this stack's own keeps its signers apart from theirs."""
    from og_settle._lease import LEASE_DIR_ENV

    return {LEASE_DIR_ENV: str(work / "leases")}
