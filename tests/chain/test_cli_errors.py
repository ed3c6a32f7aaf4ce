"""A user's mistake is one line on stderr and exit code 2, never a traceback: the ``og-settle`` process itself, run
for every command that takes ``--rpc-url`` against a node that is down, a deployment file without code behind it,
and every private-key variable holding something that is not a key."""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from og_settle._deploy import Deployment
from og_settle.cli import build_parser
from tests.support.deployed import Kept, kept_og_settle

DEV_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"  # anvil's account 0
HASH = "0x" + "11" * 32
ADDRESS = "0x" + "22" * 20

# Each command taking --rpc-url, with the rest of a valid command line ({d} = a deployment file, {w} = a folder
# holding req.json, pay.json and receipt.json). `relayer run` is left out on purpose: it waits for its node (tested in
# tests/relayer/test_faults.py).
TEE_REGISTER = ["tee", "register", "--deployment", "{d}", "--tee-key-env", "TEE_KEY", "--measurement", HASH]
TEE_REGISTER += ["--endpoint", "https://enclave.example"]
COMMANDS: dict[str, list[str]] = {
    "deploy": ["deploy", "--out-dir", "{w}/out"],
    "facilitator serve": ["facilitator", "serve", "--deployment", "{d}", "--no-auth", "--port", "0"],
    "payment verify": ["payment", "verify", "{w}/pay.json", "--requirements", "{w}/req.json"],
    "payment sign": ["payment", "sign", "{w}/req.json", "--key-env", "OG_SETTLE_PAYER_KEY", "--gasless"],
    "permit2 approve": ["permit2", "approve", "--amount", "max"],
    "facilitator receipt verify": ["facilitator", "receipt", "verify", "{w}/receipt.json"],
    "relayer submit": ["relayer", "submit", "--db", "{w}/queue.sqlite", "--deployment", "{d}", "{w}/req.json"],
    "status batch": ["status", "batch", HASH, "--deployment", "{d}"],
    "status inference": ["status", "inference", HASH, "--deployment", "{d}"],
    "status payment": ["status", "payment", ADDRESS, "1", "--deployment", "{d}"],
    "tee register": [*TEE_REGISTER, "--payment-address", ADDRESS, "--attestation-hash", HASH],
    "tee approve": ["tee", "approve", "--deployment", "{d}", "--measurement", HASH, "--type", "0", "--version", "v1"],
    "tee heartbeat": ["tee", "heartbeat", "--deployment", "{d}", "--tee-key-env", "TEE_KEY"],
    "tee list": ["tee", "list", "--deployment", "{d}"],
    "tee show": ["tee", "show", "--deployment", "{d}", HASH],
}
WAITS_FOR_ITS_NODE = {"relayer run"}


def _rpc_commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[str]:
    if any("--rpc-url" in action.option_strings for action in parser._actions):
        yield " ".join(path)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _rpc_commands(sub, (*path, name))


def og_settle(argv: list[str], env: Mapping[str, str] | None = None, cwd: Path | None = None) -> Any:
    """Run the installed command line as a user would, with the dev keys in its environment."""
    keys = {
        "OG_SETTLE_DEPLOYER_KEY": DEV_KEY,
        "OG_SETTLE_RELAYER_KEY": DEV_KEY,
        "OG_SETTLE_PAYER_KEY": DEV_KEY,
        "OG_SETTLE_OPERATOR_KEY": DEV_KEY,
        "TEE_KEY": "0x" + "33" * 32,
    }
    full = {**os.environ, **keys, **(env or {})}
    full.pop("OG_SETTLE_RPC_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "og_settle.cli", *argv], capture_output=True, text=True, timeout=120, env=full, cwd=cwd
    )


def assert_one_line_error(done: Any, *needles: str) -> None:
    assert done.returncode == 2, (done.returncode, done.stdout[-500:], done.stderr[-2000:])
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("og-settle: error: ")
    for needle in needles:
        assert needle in lines[0]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # closed again: nothing listens there


@pytest.fixture(scope="module")
def kept_deployment(chain: Any, deployer: Any, relayer: Any, tmp_path_factory: pytest.TempPathFactory) -> Kept[Path]:
    return kept_og_settle(chain, deployer, relayer, tmp_path_factory)


@pytest.fixture
def deployment_file(kept_deployment: Kept[Path]) -> Path:
    """The deployment file, its contracts checked to be on chain for this test (see tests.support.deployed)."""
    return kept_deployment.get()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """requirements and a payment signed for them, written by the command line (offline), and a receipt."""
    folder = tmp_path_factory.mktemp("cli")
    requirements = og_settle(["payment", "requirements", "--scheme", "exact", "--amount", "1", "--pay-to", ADDRESS])
    assert requirements.returncode == 0, requirements.stderr
    (folder / "req.json").write_text(requirements.stdout)
    signed = og_settle(["payment", "sign", str(folder / "req.json"), "--key-env", "OG_SETTLE_PAYER_KEY"])
    assert signed.returncode == 0, signed.stderr
    (folder / "pay.json").write_text(signed.stdout)
    receipt = {
        "kind": "og-settle/receipt/v1",
        "network": "eip155:84532",
        "transaction": HASH,
        "blockNumber": 1,
        "blockHash": HASH,
        "logIndex": 0,
        "asset": ADDRESS,
        "payer": ADDRESS,
        "payTo": ADDRESS,
        "amount": "1",
        "scheme": "exact",
        "paymentId": HASH,
        "payloadDigest": HASH,
        "settledAt": "2026-11-29T12:00:00Z",
    }
    (folder / "receipt.json").write_text(json.dumps(receipt))
    return folder


def _argv(command: str, deployment: Path, workdir: Path, rpc_url: str) -> list[str]:
    argv = [word.format(d=deployment, w=workdir) for word in COMMANDS[command]]
    return [*argv, "--rpc-url", rpc_url]


def test_the_table_covers_every_command_taking_rpc_url() -> None:
    assert set(_rpc_commands(build_parser())) == set(COMMANDS) | WAITS_FOR_ITS_NODE


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_node_that_is_down_is_one_line(command: str, deployment_file: Path, workdir: Path) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    done = og_settle(_argv(command, deployment_file, workdir, url))
    assert_one_line_error(done, "--rpc-url", url)  # the flag and the URL, whatever the wording
    assert not (workdir / "queue.sqlite").exists()  # a failed submit leaves no queue behind
    assert not (workdir / "out").exists()  # deploy wrote nothing


def test_an_rpc_url_that_is_not_http_is_one_line(deployment_file: Path, workdir: Path) -> None:
    done = og_settle(_argv("status batch", deployment_file, workdir, "ws://127.0.0.1:1"))
    assert_one_line_error(done, "--rpc-url: expected an http(s):// URL")


def _deployment_without_code(chain_id: int, folder: Path) -> Path:
    """A deployment file for this chain naming addresses where nothing is deployed."""
    nowhere = Deployment(
        chain_id=chain_id,
        admin=ADDRESS,
        tee_registry="0x" + "44" * 20,
        settlement_registry="0x" + "55" * 20,
        payment_facilitator="0x" + "66" * 20,
    )
    path = folder / "gone.json"
    path.write_text(nowhere.to_json())
    return path


NO_CODE = ["facilitator serve", "relayer submit", "status batch", "status payment", "tee list"]


@pytest.mark.parametrize("command", NO_CODE)
def test_a_deployment_without_code_is_one_line(command: str, chain: Any, workdir: Path, tmp_path: Path) -> None:
    """The file of a deployment the chain does not hold (a restarted replica, another admin): named, not
    answered "not settled"."""
    path = _deployment_without_code(int(chain.chain_id), tmp_path)
    done = og_settle(_argv(command, path, workdir, str(chain.provider.http_uri)))
    assert_one_line_error(done, str(path), "no contract code at the TeeRegistry address 0x4444", "og-settle deploy")
    assert not (workdir / "queue.sqlite").exists()


def test_relayer_run_refuses_a_deployment_without_code(chain: Any, tmp_path: Path) -> None:
    _deployment_without_code(int(chain.chain_id), tmp_path)
    argv = ["relayer", "run", "--db", str(tmp_path / "q.sqlite"), "--deployment", str(tmp_path / "gone.json")]
    done = og_settle([*argv, "--rpc-url", str(chain.provider.http_uri), "--exit-when-done"])
    assert_one_line_error(done, "no contract code at the TeeRegistry address")
    assert not (tmp_path / "q.sqlite").exists()


BAD_KEYS = {
    "too short": ("0x1234", "expected 0x + 64 hex digits, found 4 characters"),
    "not hex": ("0x" + "zz" * 32, "a character that is not a hex digit"),
    "zero": ("0x" + "00" * 32, "not a valid secp256k1 private key"),
    "above the curve order": ("0x" + "ff" * 32, "not a valid secp256k1 private key"),
    "unset": ("", "is not set"),
}
# Every command reading a private key from the environment: its argv, the variable, the option naming it.
RELAYER_KEY, PAYER_KEY = "OG_SETTLE_RELAYER_KEY", "OG_SETTLE_PAYER_KEY"
KEYED = {
    "deploy": (["deploy", "--out-dir", "{w}/out"], "OG_SETTLE_DEPLOYER_KEY", "--key-env"),
    "relayer run": (["relayer", "run", "--db", "{w}/q.sqlite", "--deployment", "{d}"], RELAYER_KEY, "--key-env"),
    "facilitator serve": (["facilitator", "serve", "--deployment", "{d}", "--no-auth"], RELAYER_KEY, "--key-env"),
    "permit2 approve": (["permit2", "approve", "--amount", "max"], PAYER_KEY, "--key-env"),
    "tee approve": (COMMANDS["tee approve"], "OG_SETTLE_OPERATOR_KEY", "--sender-key-env"),
    "payment sign": (["payment", "sign", "{w}/req.json", "--key-env", PAYER_KEY], PAYER_KEY, "--key-env"),
}


@pytest.mark.parametrize("bad", sorted(BAD_KEYS))
@pytest.mark.parametrize("command", sorted(KEYED))
def test_a_bad_private_key_is_one_line_that_does_not_echo_it(
    command: str, bad: str, chain: Any, deployment_file: Path, workdir: Path
) -> None:
    template, variable, option = KEYED[command]
    value, message = BAD_KEYS[bad]
    argv = [word.format(d=deployment_file, w=workdir) for word in template]
    if command != "payment sign":
        argv += ["--rpc-url", str(chain.provider.http_uri)]
    done = og_settle(argv, env={variable: value})
    assert_one_line_error(done, f"{option}: ", variable, message)
    if len(value) > 6:
        assert value[2:] not in done.stderr
    assert not (workdir / "q.sqlite").exists()
    assert not (workdir / "out").exists()


def test_every_key_option_is_covered() -> None:
    """Each command with a --key-env or --sender-key-env option is in KEYED (a new one must join the test)."""
    keyed = {
        " ".join(path)
        for path, parser in _all_parsers(build_parser())
        if {"--key-env", "--sender-key-env"} & {flag for action in parser._actions for flag in action.option_strings}
    }
    # tee register and heartbeat take the same --sender-key-env through the same code as tee approve;
    # facilitator keys add's --key-env holds an API bearer key, not a private key.
    assert keyed - set(KEYED) <= {"tee register", "tee heartbeat", "facilitator keys add"}


def _all_parsers(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _all_parsers(sub, (*path, name))
