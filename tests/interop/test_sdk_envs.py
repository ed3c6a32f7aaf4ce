"""The stock SDK environments hold exactly the pinned, unmodified published packages, each in its own place."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import sdk_envs

_VERSION = "import importlib.metadata as m, json; print(json.dumps({n: m.version(n) for n in %r}))"


def test_x402_env_has_the_pinned_sdk_and_reuses_its_build() -> None:
    env = sdk_envs.python_env("x402")
    versions = sdk_envs.run_python(env, _VERSION % (["x402", "jsonschema", "httpx", "eth-account"],))
    assert versions["x402"] == "2.25.0"
    pinned = (sdk_envs.REQUIREMENTS / "x402.txt").read_text()
    for name, version in versions.items():
        assert f"\n{name}=={version}\n" in pinned or name == "x402"
    assert sdk_envs.python_env("x402").built_seconds is None  # same pins: the build is reused, not redone


def test_opengradient_env_has_its_own_x402_fork() -> None:
    """opengradient brings og-x402, which installs as the module ``x402``: it must not see PyPI's x402."""
    env = sdk_envs.python_env("opengradient")
    code = (
        "import importlib.metadata as m, json, x402; "
        "names = {d.metadata['Name'].lower() for d in m.distributions()}; "
        "print(json.dumps({'og': m.version('opengradient'), 'fork': m.version('og-x402'), 'pypi': 'x402' in names}))"
    )
    assert sdk_envs.run_python(env, code) == {"og": "1.1.4", "fork": "0.0.2.dev2", "pypi": False}


def test_npm_env_has_the_pinned_packages(tmp_path: Path) -> None:
    env = sdk_envs.node_env("x402-npm")
    script = tmp_path / "versions.mjs"
    script.write_text(
        "import { readFileSync } from 'node:fs';\n"
        "const v = (n) => JSON.parse(readFileSync(`node_modules/${n}/package.json`, 'utf8')).version;\n"
        "console.log(JSON.stringify({evm: v('@x402/evm'), core: v('@x402/core')}));\n"
    )
    assert sdk_envs.run_node(env, script) == {"evm": "2.27.0", "core": "2.27.0"}


def test_a_failing_script_is_reported_with_its_error() -> None:
    env = sdk_envs.python_env("x402")
    with pytest.raises(sdk_envs.SdkEnvError, match=r"snippet exited 1: ValueError: no such thing"):
        sdk_envs.run_python(env, "raise ValueError('no such thing')")
    with pytest.raises(sdk_envs.SdkEnvError, match="printed no JSON"):
        sdk_envs.run_python(env, "print('hello')")
    assert sdk_envs.run_python(env, "import json, sys; print(json.dumps(json.load(sys.stdin)))", input_json=[1]) == [1]


def test_an_unreachable_registry_is_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """pip pointed at a closed loopback port: the build fails with one line naming the registry, and leaves no
    environment that a later call could mistake for a finished one."""
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    requirements = tmp_path / "unreachable.txt"
    requirements.write_text("x402==2.25.0\n")
    monkeypatch.setattr(sdk_envs, "CACHE", tmp_path / "cache")
    monkeypatch.setitem(sdk_envs.PYTHON_SDKS, "unreachable", requirements)
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")  # no extra indexes or local wheel folders
    for variable in ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "PIP_NO_INDEX"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("PIP_INDEX_URL", f"http://127.0.0.1:{port}/simple")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    with pytest.raises(sdk_envs.SdkEnvError) as failure:
        sdk_envs.python_env("unreachable")
    message = str(failure.value)
    assert "\n" not in message
    assert message.startswith("sdk env unreachable: pip install failed (the package registry looks unreachable")
    assert not (tmp_path / "cache" / "unreachable" / ".ready").exists()


def test_two_processes_asking_at_once_build_once(tmp_path: Path) -> None:
    """Two processes (two pytest runs, or ``make sdk-envs`` and a test) ask for the same new environment at the
    same moment: the file lock lets one build it and the other reuse that build."""
    requirements = tmp_path / "tiny.txt"
    requirements.write_text("six==1.17.0\n")
    ask = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from tests.support import sdk_envs\n"
        f"sdk_envs.CACHE = Path({str(tmp_path / 'cache')!r})\n"
        f"sdk_envs.PYTHON_SDKS['tiny'] = Path({str(requirements)!r})\n"
        "env = sdk_envs.python_env('tiny')\n"
        "six = sdk_envs.run_python(env, 'import json, six; print(json.dumps(six.__version__))')\n"
        "print(json.dumps({'built': env.built_seconds is not None, 'six': six}))\n"
    )
    children = [
        subprocess.Popen([sys.executable, "-c", ask], cwd=sdk_envs.REPO, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    answers = [json.loads(child.communicate(timeout=300)[0].strip().splitlines()[-1]) for child in children]
    assert all(child.returncode == 0 for child in children)
    assert sorted(answer["built"] for answer in answers) == [False, True]
    assert [answer["six"] for answer in answers] == ["1.17.0", "1.17.0"]
