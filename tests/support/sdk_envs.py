"""The stock x402 / OpenGradient SDKs, each installed unmodified in its own environment under ``.cache/sdk-envs/``.

The published clients pin versions that clash with Ape's and with each other (``opengradient`` ships its own
fork of the ``x402`` module), so none of them is installed into the project's virtualenv. Instead:

* a **Python SDK** is a pinned requirements file in ``tests/interop/requirements/<name>.txt`` (the top-level
  requirement plus every transitive pin). :func:`python_env` builds a virtualenv for it at
  ``.cache/sdk-envs/<name>/`` and reuses it while the file (and the interpreter's version) is unchanged;
* a **Node SDK** is a folder ``tests/interop/npm/<name>/`` with its own ``package.json`` and
  ``package-lock.json``. :func:`node_env` runs ``npm ci`` into ``.cache/sdk-envs/<name>/``.

An environment is keyed by a hash of what defines it. The hash is written to ``.ready`` as the very last step of
a build, so an interrupted build is redone on the next call, and a file lock (``<name>.lock``) lets two pytest
processes, or ``make sdk-envs`` and a test run, ask for the same environment at once: the second waits and then
reuses the first's build. A failed install raises :class:`SdkEnvError` with one line naming the cause (an
unreachable registry says so); the full installer output is kept in ``.cache/sdk-envs/<name>.log``.

:func:`run_python` and :func:`run_node` run a script in an environment and return the JSON object the script
prints as its last line of standard output.

``python -m tests.support.sdk_envs [NAME ...]`` builds (or checks) every environment up front with progress
output; ``make sdk-envs`` calls it, and ``make test`` depends on that.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
INTEROP = REPO / "tests" / "interop"
REQUIREMENTS = INTEROP / "requirements"
NPM = INTEROP / "npm"
CACHE = REPO / ".cache" / "sdk-envs"

#: Python SDKs: name -> pinned requirements file.
PYTHON_SDKS: dict[str, Path] = {
    "x402": REQUIREMENTS / "x402.txt",
    "opengradient": REQUIREMENTS / "opengradient.txt",
}
#: Node SDKs: name -> folder holding package.json and package-lock.json.
NODE_SDKS: dict[str, Path] = {
    "x402-npm": NPM / "x402",
}

_REGISTRY_HINTS = (
    "connection",
    "could not fetch",
    "temporary failure in name resolution",
    "network is unreachable",
    "max retries exceeded",
    "no matching distribution",
    "could not find a version",
    "enotfound",
    "eai_again",
    "econnrefused",
    "etimedout",
    "econnreset",
    "fetch failed",
    "request to https",
)


class SdkEnvError(RuntimeError):
    """An SDK environment could not be built, or a script in it failed. The first line says what and why."""


@dataclass(frozen=True, slots=True)
class SdkEnv:
    """A built environment: ``python`` for a Python SDK, ``node_modules`` for a Node SDK."""

    name: str
    path: Path
    kind: str  # "python" | "node"
    built_seconds: float | None  # None when an existing build was reused

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    @property
    def node_modules(self) -> Path:
        return self.path / "node_modules"


def _digest(parts: Sequence[bytes]) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.hexdigest()


def _python_key(requirements: Path) -> str:
    version = ".".join(map(str, sys.version_info[:3])).encode()
    return _digest([b"python", version, requirements.read_bytes()])


def _node_key(folder: Path) -> str:
    node = shutil.which("node")
    version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip() if node else ""
    return _digest([b"node", version.encode(), *((folder / n).read_bytes() for n in _NODE_FILES)])


_NODE_FILES = ("package.json", "package-lock.json")


@contextmanager
def _locked(name: str) -> Iterator[None]:
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / f"{name}.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _ready(path: Path, key: str) -> bool:
    stamp = path / ".ready"
    return stamp.is_file() and stamp.read_text().strip() == key


def _summarise_failure(name: str, what: str, output: str, log: Path) -> SdkEnvError:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()] or lines
    last = errors[-1] if errors else "no output"
    cause = "the package registry looks unreachable: " if any(h in output.lower() for h in _REGISTRY_HINTS) else ""
    return SdkEnvError(f"sdk env {name}: {what} failed ({cause}{last[:300]}); full output in {log}")


def _run_installer(name: str, what: str, argv: list[str], log: Path, env: Mapping[str, str] | None = None) -> None:
    with log.open("a") as out:
        out.write(f"$ {' '.join(argv)}\n")
        out.flush()
        result = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        out.write(result.stdout)
    if result.returncode != 0:
        raise _summarise_failure(name, what, result.stdout, log)


def python_env(name: str, *, progress: bool = False) -> SdkEnv:
    """Build, or reuse, the virtualenv of the Python SDK ``name`` (a key of :data:`PYTHON_SDKS`)."""
    requirements = PYTHON_SDKS[name]
    path = CACHE / name
    key = _python_key(requirements)
    if _ready(path, key):
        return SdkEnv(name, path, "python", None)
    with _locked(name):
        if _ready(path, key):  # another process built it while we waited
            return SdkEnv(name, path, "python", None)
        _say(progress, f"sdk-envs: building {name} from {_shown(requirements)} ...")
        started = time.monotonic()
        shutil.rmtree(path, ignore_errors=True)
        log = CACHE / f"{name}.log"
        log.write_text("")
        _run_installer(name, "python -m venv", [sys.executable, "-m", "venv", str(path)], log)
        pip = [str(path / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check", "--no-input"]
        _run_installer(name, "pip install", [*pip, "--require-virtualenv", "-r", str(requirements)], log)
        (path / ".ready").write_text(key + "\n")
        seconds = time.monotonic() - started
        _say(progress, f"sdk-envs: {name} ready in {seconds:.0f}s ({_shown(path)})")
        return SdkEnv(name, path, "python", seconds)


def node_env(name: str, *, progress: bool = False) -> SdkEnv:
    """Build, or reuse, the ``npm ci`` install of the Node SDK folder ``name`` (a key of :data:`NODE_SDKS`)."""
    folder = NODE_SDKS[name]
    path = CACHE / name
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise SdkEnvError(f"sdk env {name}: node and npm must be on PATH")
    key = _node_key(folder)
    if _ready(path, key):
        return SdkEnv(name, path, "node", None)
    with _locked(name):
        if _ready(path, key):
            return SdkEnv(name, path, "node", None)
        _say(progress, f"sdk-envs: building {name} from {_shown(folder)} (npm ci) ...")
        started = time.monotonic()
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        for file in _NODE_FILES:
            shutil.copyfile(folder / file, path / file)
        log = CACHE / f"{name}.log"
        log.write_text("")
        argv = [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error", "--prefix", str(path)]
        _run_installer(name, "npm ci", argv, log)
        (path / ".ready").write_text(key + "\n")
        seconds = time.monotonic() - started
        _say(progress, f"sdk-envs: {name} ready in {seconds:.0f}s ({_shown(path)})")
        return SdkEnv(name, path, "node", seconds)


def _shown(path: Path) -> str:
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def _say(enabled: bool, message: str) -> None:
    if enabled:
        print(message, file=sys.stderr, flush=True)


def _last_json(name: str, script: str, result: subprocess.CompletedProcess[str]) -> Any:
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        errors = result.stderr.strip().splitlines() or ["no output"]
        tail = ([line for line in errors if "Error" in line] or errors)[-1].strip()
        raise SdkEnvError(
            f"sdk env {name}: {script} exited {result.returncode}: {tail[:500]}"
            f"\n--- its stderr (last 4000 characters) ---\n{result.stderr[-4000:]}"
        )
    try:
        return json.loads(lines[-1])
    except json.JSONDecodeError:
        raise SdkEnvError(f"sdk env {name}: {script} printed no JSON last line: {lines[-1][:300]!r}") from None


def run_python(
    sdk: SdkEnv,
    script: str | Path,
    args: Sequence[str] = (),
    *,
    input_json: Any = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 300,
) -> Any:
    """Run a Python script file (a :class:`Path`) or a source snippet (a :class:`str`) in ``sdk``'s virtualenv.

    ``input_json`` is sent on standard input as JSON; the script's last line of standard output is parsed as
    JSON and returned. The environment is the caller's plus ``env``, without the project virtualenv's
    ``VIRTUAL_ENV``/``PYTHONPATH`` so only the SDK's own packages are importable.
    """
    argv = [str(sdk.python), str(script)] if isinstance(script, Path) else [str(sdk.python), "-c", script]
    label = script.name if isinstance(script, Path) else "snippet"
    return _run(sdk.name, label, [*argv, *args], input_json, env, timeout, cwd=None)


def run_node(
    sdk: SdkEnv,
    script: Path,
    args: Sequence[str] = (),
    *,
    input_json: Any = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 300,
) -> Any:
    """Run a Node script with ``sdk``'s ``node_modules`` (``NODE_PATH`` and a symlink beside the script's copy)."""
    node = shutil.which("node")
    if node is None:
        raise SdkEnvError(f"sdk env {sdk.name}: node must be on PATH")
    # ES modules resolve bare imports from the importing file's folder upwards (NODE_PATH is ignored), so the
    # script runs as a copy inside the environment's folder.
    target = sdk.path / script.name
    staging = target.with_name(f".{script.name}.{os.getpid()}")
    shutil.copyfile(script, staging)
    os.replace(staging, target)  # atomic: a concurrent run never sees a half-written copy
    return _run(sdk.name, script.name, [node, str(target), *args], input_json, env, timeout, cwd=sdk.path)


def _run(
    name: str,
    label: str,
    argv: list[str],
    input_json: Any,
    env: Mapping[str, str] | None,
    timeout: float,
    cwd: Path | None,
) -> Any:
    child_env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    child_env.update(env or {})
    stdin = None if input_json is None else json.dumps(input_json)
    try:
        result = subprocess.run(
            argv, input=stdin, capture_output=True, text=True, env=child_env, timeout=timeout, cwd=cwd
        )
    except subprocess.TimeoutExpired as err:
        raise SdkEnvError(f"sdk env {name}: {label} did not finish within {timeout:.0f}s") from err
    return _last_json(name, label, result)


def build_all(names: Sequence[str] = (), *, progress: bool = True) -> dict[str, SdkEnv]:
    """Build every named environment (all when ``names`` is empty) in parallel; returns them by name.

    The installs mostly wait on the registry and the disk, so running them side by side roughly halves a cold
    build; each still holds its own lock."""
    wanted = list(names) or [*PYTHON_SDKS, *NODE_SDKS]
    unknown = [n for n in wanted if n not in PYTHON_SDKS and n not in NODE_SDKS]
    if unknown:
        raise SdkEnvError(
            f"sdk envs: unknown name(s) {', '.join(unknown)}; known: {', '.join([*PYTHON_SDKS, *NODE_SDKS])}"
        )

    def one(name: str) -> SdkEnv:
        env = python_env(name, progress=progress) if name in PYTHON_SDKS else node_env(name, progress=progress)
        if env.built_seconds is None:
            _say(progress, f"sdk-envs: {name} up to date ({_shown(env.path)})")
        return env

    with ThreadPoolExecutor(max_workers=len(wanted)) as pool:
        return dict(zip(wanted, pool.map(one, wanted), strict=True))


def main(argv: Sequence[str] | None = None) -> int:
    names = list(sys.argv[1:] if argv is None else argv)
    try:
        build_all(names)
    except SdkEnvError as err:
        print(err, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
