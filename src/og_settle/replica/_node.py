"""A local replica of Base Sepolia: anvil with chain id 84532 in OP-stack mode, the genuine Permit2 at its
canonical address, and an 18-decimal OPG at OPG's real address with balances for the dev accounts."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import sha3

from og_settle._addresses import (
    BASE_SEPOLIA_CHAIN_ID,
    DETERMINISTIC_DEPLOYER,
    OPG_ADDRESS,
    OPG_DECIMALS,
    PERMIT2_ADDRESS,
    PERMIT2_SALT,
)
from og_settle._errors import ToolchainError
from og_settle.replica._rpc import JsonRpc
from og_settle.replica._toolchain import anvil_executable, compile_permit2, compile_replica_opg

DEV_MNEMONIC = "test test test test test test test test test test test junk"
DEV_ACCOUNT_COUNT = 10
OPG_PER_DEV_ACCOUNT = 1_000_000 * 10**OPG_DECIMALS
_STARTUP_TIMEOUT_S = 30.0
# OpenZeppelin ERC20 (non-upgradeable) storage layout: _balances at slot 0, _totalSupply at slot 2.
_ERC20_BALANCES_SLOT = 0
_ERC20_TOTAL_SUPPLY_SLOT = 2


def _keccak(data: bytes) -> bytes:
    digest: bytes = sha3.keccak_256(data).digest()
    return digest


def create2_address(deployer: str, salt: bytes, initcode: bytes) -> str:
    """The address CREATE2 gives ``initcode`` deployed by ``deployer`` with ``salt`` (checksummed)."""
    digest = _keccak(b"\xff" + bytes.fromhex(deployer[2:]) + salt + _keccak(initcode))
    return to_checksum(digest[12:])


def to_checksum(raw: bytes) -> str:
    hex_address = raw.hex()
    hashed = _keccak(hex_address.encode()).hex()
    return "0x" + "".join(c.upper() if int(hashed[i], 16) >= 8 else c for i, c in enumerate(hex_address))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that the OS reports free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True, slots=True)
class ReplicaInfo:
    """What a running replica holds.

    Attributes:
        rpc_url: the node's HTTP JSON-RPC endpoint.
        chain_id: always 84532.
        permit2: Permit2's canonical address.
        opg: OPG's Base Sepolia address.
        dev_accounts: the unlocked dev accounts, each funded with ETH and OPG.
        startup_seconds: wall time from spawning anvil to a fully installed replica.
    """

    rpc_url: str
    chain_id: int
    permit2: str
    opg: str
    dev_accounts: tuple[str, ...]
    startup_seconds: float


class AnvilProcess:
    """One anvil child process whose output is kept in a log file for error reports."""

    def __init__(self, args: list[str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            args, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )

    def tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def start_anvil(port: int, extra_args: tuple[str, ...] = ()) -> tuple[AnvilProcess, JsonRpc]:
    """Start anvil as Base Sepolia (chain id 84532, --optimism) and wait until it answers."""
    log_dir = Path(tempfile.mkdtemp(prefix="og-settle-anvil-"))
    args = [
        str(anvil_executable()),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--chain-id",
        str(BASE_SEPOLIA_CHAIN_ID),
        "--optimism",
        "--mnemonic",
        DEV_MNEMONIC,
        "--accounts",
        str(DEV_ACCOUNT_COUNT),
        *extra_args,
    ]
    anvil = AnvilProcess(args, log_dir / "anvil.log")
    rpc = JsonRpc(f"http://127.0.0.1:{port}")
    # Short probes: something else may hold the port and accept without ever answering.
    probe = JsonRpc(rpc.url, timeout=0.5)
    deadline = time.monotonic() + _STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if anvil.process.poll() is not None:
            break
        if probe.is_up():
            return anvil, rpc
        time.sleep(0.05)
    anvil.stop()
    raise ToolchainError(
        f"anvil did not start on port {port} (exit code {anvil.process.returncode}); its last output:\n"
        + (anvil.tail() or "(no output)")
    )


def install_permit2(rpc: JsonRpc, sender: str) -> str:
    """CREATE2-deploy the genuine Permit2 through the deterministic deployer with its canonical salt.

    Landing at the canonical address proves the local build is byte-identical to the deployed Permit2."""
    if rpc.call("eth_getCode", PERMIT2_ADDRESS, "latest") not in ("0x", "0x0"):
        return PERMIT2_ADDRESS
    permit2 = compile_permit2()
    predicted = create2_address(DETERMINISTIC_DEPLOYER, PERMIT2_SALT, permit2.initcode)
    if predicted != PERMIT2_ADDRESS:
        raise ToolchainError(f"Permit2 build is not canonical: CREATE2 address {predicted} != {PERMIT2_ADDRESS}")
    tx = rpc.call(
        "eth_sendTransaction",
        {
            "from": sender,
            "to": DETERMINISTIC_DEPLOYER,
            "data": "0x" + (PERMIT2_SALT + permit2.initcode).hex(),
            "gas": hex(5_000_000),
        },
    )
    rpc.wait_for_receipt(tx)
    if rpc.call("eth_getCode", PERMIT2_ADDRESS, "latest") in ("0x", "0x0"):
        raise ToolchainError("the deterministic deployer did not create Permit2 at its canonical address")
    return PERMIT2_ADDRESS


def _mapping_slot(key_address: str, slot: int) -> str:
    key = bytes.fromhex(key_address[2:]).rjust(32, b"\0")
    return "0x" + _keccak(key + slot.to_bytes(32, "big")).hex()


def install_opg(rpc: JsonRpc, holders: tuple[str, ...], amount: int) -> str:
    """Put the OPG stand-in's runtime code at OPG's address and credit ``amount`` to each holder."""
    if rpc.call("eth_getCode", OPG_ADDRESS, "latest") not in ("0x", "0x0"):
        return OPG_ADDRESS
    rpc.call("anvil_setCode", OPG_ADDRESS, "0x" + compile_replica_opg().runtime.hex())
    word = "0x" + amount.to_bytes(32, "big").hex()
    for holder in holders:
        rpc.call("anvil_setStorageAt", OPG_ADDRESS, _mapping_slot(holder, _ERC20_BALANCES_SLOT), word)
    total = "0x" + (amount * len(holders)).to_bytes(32, "big").hex()
    rpc.call("anvil_setStorageAt", OPG_ADDRESS, "0x" + _ERC20_TOTAL_SUPPLY_SLOT.to_bytes(32, "big").hex(), total)
    return OPG_ADDRESS


@contextmanager
def running_replica(port: int | None = None) -> Iterator[ReplicaInfo]:
    """Start a replica, install the canonical contracts, yield what is where, and stop it on exit."""
    started = time.monotonic()
    anvil, rpc = start_anvil(port if port is not None else free_port())
    try:
        accounts = tuple(rpc.call("eth_accounts"))
        install_permit2(rpc, accounts[0])
        install_opg(rpc, accounts, OPG_PER_DEV_ACCOUNT)
        yield ReplicaInfo(
            rpc_url=rpc.url,
            chain_id=int(rpc.call("eth_chainId"), 16),
            permit2=PERMIT2_ADDRESS,
            opg=OPG_ADDRESS,
            dev_accounts=accounts,
            startup_seconds=time.monotonic() - started,
        )
    finally:
        anvil.stop()


def upstream_rpc_override() -> str | None:
    """A real Base Sepolia RPC URL from ``BASE_SEPOLIA_RPC_URL``, which replaces the replica as upstream."""
    return os.environ.get("BASE_SEPOLIA_RPC_URL") or None
