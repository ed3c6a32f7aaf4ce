"""A local replica of Base Sepolia (chain id 84532, the default) or Base mainnet (8453): anvil in OP-stack mode,
the genuine Permit2 at its canonical address, an 18-decimal OPG stand-in at that network's OPG address and a
6-decimal USDC stand-in (EIP-3009, EIP-2612) at its USDC address, both with balances for the dev accounts, and
stand-ins for the canonical x402 Permit2 proxies at their addresses."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import sha3

from og_settle._errors import ToolchainError
from og_settle._networks import (
    DEFAULT_NETWORK,
    DETERMINISTIC_DEPLOYER,
    OPG_DECIMALS,
    PERMIT2_ADDRESS,
    PERMIT2_SALT,
    USDC_DECIMALS,
    X402_EXACT_PERMIT2_PROXY,
    X402_UPTO_PERMIT2_PROXY,
    Network,
)
from og_settle.replica._rpc import JsonRpc
from og_settle.replica._toolchain import (
    anvil_executable,
    compile_permit2,
    compile_replica_contract,
    compile_replica_opg,
)

DEV_MNEMONIC = "test test test test test test test test test test test junk"
DEV_ACCOUNT_COUNT = 10
OPG_PER_DEV_ACCOUNT = 1_000_000 * 10**OPG_DECIMALS
USDC_PER_DEV_ACCOUNT = 1_000_000 * 10**USDC_DECIMALS
_STARTUP_TIMEOUT_S = 30.0
# OpenZeppelin ERC20 (non-upgradeable) storage layout: _balances at slot 0, _totalSupply at slot 2.
_ERC20_BALANCES_SLOT = 0
_ERC20_TOTAL_SUPPLY_SLOT = 2
# OpenZeppelin 5's ReentrancyGuard keeps its status at this ERC-7201 slot; its constructor writes NOT_ENTERED (1).
_REENTRANCY_GUARD_SLOT = "0x9b779b17422d0df92223018b32b4d1fa46e071723d6817e2486d003becc55f00"
_REENTRANCY_NOT_ENTERED = 1
# The stand-ins for the canonical x402 proxies: (address, source, contract).
_X402_PROXY_STAND_INS = (
    (X402_EXACT_PERMIT2_PROXY, "contracts/replica/StandInX402ExactProxy.sol", "StandInX402ExactProxy"),
    (X402_UPTO_PERMIT2_PROXY, "contracts/replica/StandInX402UptoProxy.sol", "StandInX402UptoProxy"),
)


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


# Listening ports come from below the kernel's ephemeral range: a port the kernel hands out for outgoing
# connections can be taken again by the time a child process binds it (a busy test run opens thousands), and
# a node that dies on "address in use" only shows as a start-up timeout. Ape's own "auto" port is in that range.
_LISTEN_PORTS = range(20_000, 32_000)


def _ephemeral_ports() -> range:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return range(int(low), int(high) + 1)
    except (OSError, ValueError):
        return range(32_768, 61_000)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now and outside the kernel's range for outgoing connections."""
    ephemeral = _ephemeral_ports()
    candidates = [port for port in _LISTEN_PORTS if port not in ephemeral]
    for port in random.sample(candidates, min(len(candidates), 64)):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        chosen: int = sock.getsockname()[1]
        return chosen


FORK_NODE_ENV: Final = "APE_FOUNDRY_HOST"
"""Where ape-foundry reads the fork node's URL when it connects."""


def fork_node_host() -> str:
    """The URL for Ape's fork node (``APE_FOUNDRY_HOST``): a port of :func:`free_port`, so ape-foundry does not
    draw one at random from the ephemeral range itself."""
    return f"http://127.0.0.1:{free_port()}"


@dataclass(frozen=True, slots=True)
class ReplicaInfo:
    """What a running replica holds.

    Attributes:
        rpc_url: the node's HTTP JSON-RPC endpoint.
        chain_id: the network's chain id (84532 for Base Sepolia, 8453 for Base).
        permit2: Permit2's canonical address.
        opg: OPG's address on the network (the replica's stand-in token).
        dev_accounts: the unlocked dev accounts, each funded with ETH and OPG.
        startup_seconds: wall time from spawning anvil to a fully installed replica.
        network: the short name of the network replicated (``"base-sepolia"`` or ``"base"``).
        x402_exact_proxy: the canonical x402 exact proxy's address (a stand-in on the replica).
        x402_upto_proxy: the canonical x402 upto proxy's address (a stand-in on the replica).
        dev_keys: the dev accounts' private keys (0x hex, same order), from anvil's well-known test mnemonic.
        usdc: USDC's address on the network (the replica's stand-in token, ``ReplicaUSDC``).
    """

    rpc_url: str
    chain_id: int
    permit2: str
    opg: str
    dev_accounts: tuple[str, ...]
    startup_seconds: float
    network: str = DEFAULT_NETWORK.name
    x402_exact_proxy: str = X402_EXACT_PERMIT2_PROXY
    x402_upto_proxy: str = X402_UPTO_PERMIT2_PROXY
    dev_keys: tuple[str, ...] = ()
    usdc: str = DEFAULT_NETWORK.usdc


def dev_account_keys(accounts: tuple[str, ...]) -> tuple[str, ...]:
    """The private keys of anvil's dev ``accounts``, derived from ``DEV_MNEMONIC`` as anvil derives them
    (BIP-44 ``m/44'/60'/0'/0/i``). Public knowledge: for local chains only.

    Raises:
        ToolchainError: a derived address is not the node's account (anvil changed its derivation).
    """
    from eth_account import Account

    Account.enable_unaudited_hdwallet_features()
    keys = []
    for index, address in enumerate(accounts):
        account = Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")
        if account.address.lower() != address.lower():
            raise ToolchainError(f"dev account {index}: derived {account.address}, anvil reports {address}")
        keys.append("0x" + bytes(account.key).hex())
    return tuple(keys)


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


def start_anvil(
    port: int, extra_args: tuple[str, ...] = (), chain_id: int = DEFAULT_NETWORK.chain_id
) -> tuple[AnvilProcess, JsonRpc]:
    """Start anvil with ``chain_id`` (Base Sepolia's by default) in OP-stack mode and wait until it answers."""
    log_dir = Path(tempfile.mkdtemp(prefix="og-settle-anvil-"))
    args = [
        str(anvil_executable()),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--chain-id",
        str(chain_id),
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


def install_opg(rpc: JsonRpc, holders: tuple[str, ...], amount: int, address: str = DEFAULT_NETWORK.opg) -> str:
    """Put the OPG stand-in's runtime code at OPG's ``address`` and credit ``amount`` to each holder."""
    if rpc.call("eth_getCode", address, "latest") not in ("0x", "0x0"):
        return address
    rpc.call("anvil_setCode", address, "0x" + compile_replica_opg().runtime.hex())
    _credit(rpc, address, holders, amount)
    return address


def install_usdc(rpc: JsonRpc, holders: tuple[str, ...], amount: int, network: Network = DEFAULT_NETWORK) -> str:
    """Put the USDC stand-in (``contracts/replica/ReplicaUSDC.sol``) at ``network``'s USDC address, with its
    EIP-712 name (an immutable: the constructor runs in an ``eth_call`` whose returned runtime code is set), and
    credit ``amount`` to each holder."""
    from eth_abi.abi import encode

    usdc = network.asset("USDC")
    if rpc.call("eth_getCode", usdc.address, "latest") not in ("0x", "0x0"):
        return usdc.address
    initcode = compile_replica_contract("contracts/replica/ReplicaUSDC.sol", "ReplicaUSDC", runs=200).initcode
    initcode += encode(["string"], [usdc.eip712_name])
    runtime = rpc.call("eth_call", {"data": "0x" + initcode.hex(), "gas": hex(10_000_000)}, "latest")
    if runtime in ("0x", "0x0"):
        raise ToolchainError("ReplicaUSDC: its constructor returned no runtime code")
    rpc.call("anvil_setCode", usdc.address, runtime)
    _credit(rpc, usdc.address, holders, amount)
    return usdc.address


def _credit(rpc: JsonRpc, address: str, holders: tuple[str, ...], amount: int) -> None:
    """Write ``amount`` into each holder's balance and the total supply of the OpenZeppelin ERC-20 at ``address``."""
    word = "0x" + amount.to_bytes(32, "big").hex()
    for holder in holders:
        rpc.call("anvil_setStorageAt", address, _mapping_slot(holder, _ERC20_BALANCES_SLOT), word)
    total = "0x" + (amount * len(holders)).to_bytes(32, "big").hex()
    rpc.call("anvil_setStorageAt", address, "0x" + _ERC20_TOTAL_SUPPLY_SLOT.to_bytes(32, "big").hex(), total)


def install_x402_proxies(rpc: JsonRpc) -> tuple[str, str]:
    """Put the stand-ins for the canonical x402 exact and upto Permit2 proxies at the canonical addresses.

    The originals are CREATE2-deployed with the x402 project's initcode, which no registry ships, so our initcode
    cannot land there. Instead each stand-in's constructor runs in an ``eth_call`` (with Permit2's canonical
    address, as on every chain), and the runtime code it returns, Permit2 immutable included, is set at the
    canonical address; the reentrancy guard's storage gets the value its constructor writes."""
    guard = "0x" + _REENTRANCY_NOT_ENTERED.to_bytes(32, "big").hex()
    for address, source, name in _X402_PROXY_STAND_INS:
        if rpc.call("eth_getCode", address, "latest") not in ("0x", "0x0"):
            continue
        initcode = compile_replica_contract(source, name).initcode + bytes.fromhex(PERMIT2_ADDRESS[2:]).rjust(32, b"\0")
        runtime = rpc.call("eth_call", {"data": "0x" + initcode.hex(), "gas": hex(5_000_000)}, "latest")
        if runtime in ("0x", "0x0"):
            raise ToolchainError(f"{name}: its constructor returned no runtime code")
        rpc.call("anvil_setCode", address, runtime)
        rpc.call("anvil_setStorageAt", address, _REENTRANCY_GUARD_SLOT, guard)
    return X402_EXACT_PERMIT2_PROXY, X402_UPTO_PERMIT2_PROXY


@contextmanager
def running_replica(port: int | None = None, network: Network = DEFAULT_NETWORK) -> Iterator[ReplicaInfo]:
    """Start a replica of ``network`` (Base Sepolia by default), install the canonical contracts, yield what is
    where, and stop it on exit."""
    started = time.monotonic()
    anvil, rpc = start_anvil(port if port is not None else free_port(), chain_id=network.chain_id)
    try:
        accounts = tuple(rpc.call("eth_accounts"))
        install_permit2(rpc, accounts[0])
        install_opg(rpc, accounts, OPG_PER_DEV_ACCOUNT, network.opg)
        usdc = install_usdc(rpc, accounts, USDC_PER_DEV_ACCOUNT, network)
        exact, upto = install_x402_proxies(rpc)
        yield ReplicaInfo(
            rpc_url=rpc.url,
            chain_id=int(rpc.call("eth_chainId"), 16),
            permit2=PERMIT2_ADDRESS,
            opg=network.opg,
            dev_accounts=accounts,
            startup_seconds=time.monotonic() - started,
            network=network.name,
            x402_exact_proxy=exact,
            x402_upto_proxy=upto,
            dev_keys=dev_account_keys(accounts),
            usdc=usdc,
        )
    finally:
        anvil.stop()


def upstream_rpc_override(network: Network = DEFAULT_NETWORK) -> str | None:
    """A real RPC URL for ``network`` from its environment variable (``BASE_SEPOLIA_RPC_URL`` for Base Sepolia),
    which replaces the replica as upstream."""
    return os.environ.get(network.rpc_env) or None
