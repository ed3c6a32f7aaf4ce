"""Interop fixtures: og-settle's facilitator as a real subprocess on loopback, and the stock SDKs' environments.

``og-settle facilitator serve`` is started the way an operator starts it: a child process pointed at the fork's
RPC, with the settling key in ``OG_SETTLE_RELAYER_KEY``, bearer keys in a file, a SQLite store in the test's
temporary folder, and port 0. Each test gets its own server: Ape reverts the chain after every test, so a
server (and its local nonce) must not outlive one. The stock SDKs run in their own environments
(:mod:`tests.support.sdk_envs`) and talk to it over HTTP only.
"""

from __future__ import annotations

import json
import secrets
import sys
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from og_settle._lease import LEASE_DIR_ENV
from tests.support import sdk_envs
from tests.support.children import json_child
from tests.support.deployed import Kept, kept_og_settle

KEY_ENV = "OG_SETTLE_RELAYER_KEY"


@dataclass(frozen=True, slots=True)
class RunningFacilitator:
    """A started ``og-settle facilitator serve``: its URL, its /settle bearer key and its JSON start line."""

    url: str
    api_key: str
    start: dict[str, Any]

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=30) as response:
            return json.loads(response.read())


@contextmanager
def running_facilitator(
    deployment_file: Path, rpc_url: str, settler_key: str, folder: Path, extra: Sequence[str] = ()
) -> Iterator[RunningFacilitator]:
    """``og-settle facilitator serve`` as a child process, with a fresh bearer key and SQLite store in ``folder``."""
    api_key = secrets.token_urlsafe(24)
    keys = folder / "api-keys"
    keys.write_text(api_key + "\n")
    argv = [sys.executable, "-m", "og_settle.cli", "facilitator", "serve", "--json"]
    argv += ["--deployment", str(deployment_file), "--rpc", rpc_url, "--api-keys-file", str(keys)]
    argv += ["--store", str(folder / "settlements.sqlite3"), *extra]
    log = folder / "facilitator.log"
    # Signer leases are keyed by chain id and address, and every local replica of a network shares its chain id
    # and dev keys: a lease folder of its own keeps this replica's facilitator apart from other replicas' on the
    # same machine (another test run, a benchmark), while still holding the lease for anything sharing `folder`.
    env = {KEY_ENV: settler_key, LEASE_DIR_ENV: str(folder / "leases")}
    with json_child("og-settle facilitator serve", argv, log, env) as child:
        yield RunningFacilitator(child.start["url"], api_key, child.start)


@pytest.fixture(scope="session")
def x402_env() -> sdk_envs.SdkEnv:
    return sdk_envs.python_env("x402", progress=True)


@pytest.fixture(scope="session")
def x402_npm_env() -> sdk_envs.SdkEnv:
    return sdk_envs.node_env("x402-npm", progress=True)


@pytest.fixture(scope="session")
def opengradient_env() -> sdk_envs.SdkEnv:
    return sdk_envs.python_env("opengradient", progress=True)


@pytest.fixture(scope="module")
def payee(accounts: Any) -> Any:
    """The x402 ``payTo``: the resource server's address."""
    return accounts[8]


@pytest.fixture(scope="module")
def kept_deployment(
    chain: Any,
    deployer: Any,
    tmp_path_factory: pytest.TempPathFactory,
    payers: list[Any],
    payee: Any,
    relayer: Any,
    opg: Any,
    permit2: Any,
    chain_id: int,
) -> Kept[Path]:
    """og-settle deployed once per module (again if a snapshot revert took it away); wider-scoped fixtures are
    pulled in first (Ape's isolation wants it)."""
    return kept_og_settle(chain, deployer, relayer, tmp_path_factory)


@pytest.fixture
def deployment_file(kept_deployment: Kept[Path]) -> Path:
    """The deployment file, its contracts checked to be on chain for this test."""
    return kept_deployment.get()


@pytest.fixture
def facilitator(
    deployment_file: Path, chain: Any, relayer: Any, permit2_approved: None, tmp_path: Path
) -> Iterator[RunningFacilitator]:
    with running_facilitator(deployment_file, str(chain.provider.http_uri), relayer.private_key, tmp_path) as running:
        yield running


@pytest.fixture
def batching_facilitator(
    deployment_file: Path, chain: Any, relayer: Any, permit2_approved: None, tmp_path: Path
) -> Iterator[RunningFacilitator]:
    """The same server gathering concurrent stock ``/settle`` calls for up to a second into one transaction."""
    rpc = str(chain.provider.http_uri)
    with running_facilitator(
        deployment_file, rpc, relayer.private_key, tmp_path, ["--batch-window-ms", "1000"]
    ) as running:
        yield running
