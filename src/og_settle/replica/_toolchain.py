"""Locates the project's pinned Node-side tools (node, anvil, solc-js) and compiles with them, offline.

Everything comes from the npm packages pinned in the project's ``package.json``; nothing is downloaded at
run time. Compiler output is cached under ``.cache/solc`` keyed by the hash of the full standard-JSON input.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from og_settle._errors import ToolchainError

MIN_NODE_MAJOR = 20
_TOOLCHAIN_PACKAGE_NAME = "og-settle-toolchain"
_OUTPUTS = ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]


def project_root() -> Path:
    """The og-settle checkout: ``$OG_SETTLE_HOME``, else the nearest parent of cwd or of this file that
    holds the toolchain's ``package.json``."""
    if home := os.environ.get("OG_SETTLE_HOME"):
        return Path(home).resolve()
    for start in (Path.cwd(), Path(__file__).resolve().parent):
        for candidate in (start, *start.parents):
            manifest = candidate / "package.json"
            if manifest.is_file() and _TOOLCHAIN_PACKAGE_NAME in manifest.read_text(encoding="utf-8"):
                return candidate
    raise ToolchainError(
        "cannot find the og-settle checkout (a package.json named og-settle-toolchain); "
        "run from inside it or set OG_SETTLE_HOME"
    )


def node_executable() -> str:
    """Path of a Node.js that is new enough, or a one-line ToolchainError saying what is wrong."""
    node = shutil.which("node")
    if node is None:
        raise ToolchainError(f"Node.js {MIN_NODE_MAJOR}+ is required but `node` is not on PATH")
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=False).stdout.strip()
    try:
        major = int(version.lstrip("v").split(".")[0])
    except ValueError:
        raise ToolchainError(f"cannot read the Node.js version from {version!r}") from None
    if major < MIN_NODE_MAJOR:
        raise ToolchainError(f"Node.js {MIN_NODE_MAJOR}+ is required, found {version} at {node}")
    return node


def anvil_executable() -> Path:
    """The anvil binary from the pinned ``@foundry-rs/anvil-linux-amd64`` npm package."""
    if override := os.environ.get("OG_SETTLE_ANVIL"):
        return Path(override)
    path = project_root() / "node_modules" / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"
    if not path.is_file():
        raise ToolchainError(f"anvil not found at {path}: run `make setup` (npm ci) first")
    return path


def solc_binary_dir() -> Path:
    """The folder of ``solc-v<version>`` shims that py-solc-x (``SOLCX_BINARY_PATH``) accepts."""
    return project_root() / "toolchain" / "solc"


@dataclass(frozen=True, slots=True)
class CompiledContract:
    """One contract out of a solc standard-JSON compilation.

    Attributes:
        name: contract name.
        abi: the JSON ABI.
        initcode: creation bytecode (constructor arguments not appended).
        runtime: deployed bytecode.
    """

    name: str
    abi: list[dict[str, Any]]
    initcode: bytes
    runtime: bytes


def compile_standard_json(
    solc_version: str,
    standard_input: dict[str, Any],
    base_path: Path,
    include_paths: tuple[Path, ...] = (),
    *,
    what: str = "contracts",
    expected: str = "seconds",
) -> dict[str, Any]:
    """Run a standard-JSON compilation through the solc-js shim, cached on the exact input.

    A compilation that is not cached says so on stderr first (``what`` it compiles and roughly how long it takes,
    ``expected``), then every 30 seconds while it runs, then how long it took."""
    node_executable()
    shim = solc_binary_dir() / f"solc-v{solc_version}"
    if not shim.is_file():
        raise ToolchainError(f"no solc shim for version {solc_version} at {shim}")
    encoded = json.dumps(standard_input, sort_keys=True)
    key = hashlib.sha256(f"{solc_version}\n{encoded}".encode()).hexdigest()[:24]
    cache = project_root() / ".cache" / "solc" / f"{key}.json"
    if cache.is_file():
        cached: dict[str, Any] = json.loads(cache.read_text(encoding="utf-8"))
        return cached
    args = [str(shim), "--standard-json", "--base-path", str(base_path)]
    for include in include_paths:
        args += ["--include-path", str(include)]
    returncode, stdout, stderr = _run_with_progress(args, encoded, f"{what} with solc-js {solc_version}", expected)
    if returncode != 0:
        raise ToolchainError(f"solc {solc_version} failed: {stderr.strip()[-2000:]}")
    output: dict[str, Any] = json.loads(stdout)
    errors = [e for e in output.get("errors", []) if e.get("severity") == "error"]
    if errors:
        raise ToolchainError(f"solc {solc_version}: " + "; ".join(e["formattedMessage"] for e in errors)[:4000])
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp")
    tmp.write_text(json.dumps(output), encoding="utf-8")
    tmp.replace(cache)
    return output


def _run_with_progress(
    args: list[str], stdin: str, what: str, expected: str, every: float = 30.0
) -> tuple[int, str, str]:
    """Run a compiler process, telling the user on stderr what runs, how long it should take, and that it still runs."""
    started = time.monotonic()
    _say(f"compiling {what} (first run only, cached in .cache/solc; {expected})")
    process = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pending: str | None = stdin
    while True:
        try:
            stdout, stderr = process.communicate(pending, timeout=every)
            break
        except subprocess.TimeoutExpired:
            pending = None  # handed over already; communicate() goes on writing it
            _say(f"still compiling {what}: {time.monotonic() - started:.0f} s so far")
    _say(f"compiled {what} in {time.monotonic() - started:.0f} s")
    return process.returncode, stdout, stderr


def _say(line: str) -> None:
    print(f"og-settle: {line}", file=sys.stderr, flush=True)


def extract_contract(output: dict[str, Any], source: str, name: str) -> CompiledContract:
    """Pick one contract out of a standard-JSON output."""
    try:
        entry = output["contracts"][source][name]
    except KeyError:
        raise ToolchainError(f"{source}:{name} is not in the compiler output") from None
    return CompiledContract(
        name=name,
        abi=entry["abi"],
        initcode=bytes.fromhex(entry["evm"]["bytecode"]["object"]),
        runtime=bytes.fromhex(entry["evm"]["deployedBytecode"]["object"]),
    )


_IMPORT_RE = re.compile(r"""^\s*import\s+(?:[^"';]*?\s+from\s+)?["']([^"']+)["']""", re.MULTILINE)


def _import_closure(root: Path, entry: str, remappings: dict[str, str]) -> dict[str, dict[str, str]]:
    """Every source ``entry`` imports, transitively, keyed by its source unit name.

    solc numbers AST nodes in the order it parses sources, and via-IR code generation depends on those
    numbers. Handing solc the whole closure up front, as Foundry does, reproduces the canonical bytecode;
    letting solc discover imports through a callback does not."""
    sources: dict[str, dict[str, str]] = {}
    pending = [entry]
    while pending:
        unit = pending.pop()
        if unit in sources:
            continue
        text = (root / unit).read_text(encoding="utf-8")
        sources[unit] = {"content": text}
        for target in _IMPORT_RE.findall(text):
            prefix = next((p for p in remappings if target.startswith(p)), None)
            if prefix is not None:
                pending.append(remappings[prefix] + target[len(prefix) :])
            elif target.startswith("."):
                pending.append(posixpath.normpath(posixpath.join(posixpath.dirname(unit), target)))
            else:
                pending.append(target)
    return dict(sorted(sources.items()))


def compile_permit2() -> CompiledContract:
    """Compile the genuine Permit2 from its published sources with the settings of the canonical deployment
    (solc 0.8.17, via-IR, 1,000,000 optimizer runs, no metadata hash), so its initcode hash matches."""
    root = project_root() / "node_modules" / "@uniswap" / "v4-periphery" / "lib" / "permit2"
    remappings = {"solmate/": "lib/solmate/"}
    entry = "src/Permit2.sol"
    standard_input = {
        "language": "Solidity",
        "sources": _import_closure(root, entry, remappings),
        "settings": {
            "viaIR": True,
            "optimizer": {"enabled": True, "runs": 1_000_000},
            "metadata": {"bytecodeHash": "none"},
            "remappings": [f"{k}={v}" for k, v in remappings.items()],
            "outputSelection": {entry: {"Permit2": _OUTPUTS}},
        },
    }
    output = compile_standard_json(
        "0.8.17", standard_input, root, what="the genuine Permit2 (via-IR, 1M runs)", expected="about 1 to 4 minutes"
    )
    return extract_contract(output, entry, "Permit2")


# The project's own remappings, as ape-config.yaml gives them to Ape (OpenZeppelin and Permit2's interfaces).
_PROJECT_REMAPPINGS = {
    "@openzeppelin/contracts/": "node_modules/@openzeppelin/contracts/",
    "permit2/interfaces/": "node_modules/@uniswap/v4-periphery/lib/permit2/src/interfaces/",
}


def compile_replica_contract(source: str, name: str, runs: int = 20_000) -> CompiledContract:
    """Compile one of the replica's stand-ins (``contracts/replica/…``) with the project compiler and, by
    default, the settings ``ape-config.yaml`` uses (solc 0.8.30, cancun, 20,000 optimizer runs)."""
    root = project_root()
    standard_input = {
        "language": "Solidity",
        "sources": _import_closure(root, source, _PROJECT_REMAPPINGS),
        "settings": {
            "optimizer": {"enabled": True, "runs": runs},
            "evmVersion": "cancun",
            "remappings": [f"{k}={v}" for k, v in _PROJECT_REMAPPINGS.items()],
            "outputSelection": {source: {name: _OUTPUTS}},
        },
    }
    output = compile_standard_json("0.8.30", standard_input, root, what=name, expected="about 5 to 30 seconds")
    return extract_contract(output, source, name)


def compile_replica_opg() -> CompiledContract:
    """Compile the replica's OPG stand-in (``contracts/replica/ReplicaOPG.sol``)."""
    return compile_replica_contract("contracts/replica/ReplicaOPG.sol", "ReplicaOPG", runs=200)
