"""``ipfs-share node ...`` and the CLI dispatcher, run for real.

The managed node runs in a temporary IPFS_SHARE_HOME on ports that are free (never the
defaults 5001/8080/4001, which a developer's own node may hold). Some tests run the
installed console script as a subprocess, others call ``main(argv)`` in-process.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import STARTED
from test_node import fake_ipfs, pick_port

import ipfs_share.node.managed as managed
from ipfs_share import errors, paths
from ipfs_share.cli import main as cli_main
from ipfs_share.cli.main import EXIT_CODES, exit_code_for, main
from ipfs_share.node import KuboDaemon, NodePorts
from ipfs_share.node.daemon import pid_alive

CLI = Path(sys.executable).with_name("ipfs-share")


@pytest.fixture
def home(isolated_home: Path) -> Iterator[Path]:
    """A temp ipfs-share home; its managed node is stopped by pid afterwards."""
    try:
        yield isolated_home
    finally:
        KuboDaemon(paths.kubo_repo_dir(isolated_home)).stop(timeout=5)


def run(
    home: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "IPFS_SHARE_HOME": str(home), **(env or {})}
    full_env.pop("IPFS_SHARE_API", None)
    return subprocess.run(
        [str(CLI), *args], capture_output=True, text=True, env=full_env, timeout=120, check=False
    )


def free_ports_args() -> list[str]:
    ports = {pick_port() for _ in range(3)}
    while len(ports) < 3:
        ports.add(pick_port())
    api, gateway, swarm = sorted(ports)
    return ["--api-port", str(api), "--gateway-port", str(gateway), "--swarm-port", str(swarm)]


def remember(home: Path) -> int:
    """Record the managed node's pid for the session's leak check; return it."""
    daemon = KuboDaemon(paths.kubo_repo_dir(home))
    pid = daemon.running_pid()
    assert pid is not None
    STARTED[pid] = daemon
    return pid


def test_start_status_stop_as_a_subprocess(home: Path) -> None:
    port_args = free_ports_args()
    started = run(home, "node", "start", *port_args)
    assert started.returncode == 0, started.stderr
    assert started.stdout.startswith(f"started Kubo {paths.KUBO_VERSION} (pid ")
    assert f"/ip4/127.0.0.1/tcp/{port_args[1]}" in started.stdout
    pid = remember(home)

    again = run(home, "node", "start")
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith(f"Kubo is already running (pid {pid})")

    status = run(home, "node", "status", "--json")
    assert status.returncode == 0, status.stderr
    info = json.loads(status.stdout)
    assert info["running"] is True and info["responding"] is True
    assert info["pid"] == pid and info["version"] == paths.KUBO_VERSION
    assert info["api"] == f"/ip4/127.0.0.1/tcp/{port_args[1]}"
    assert info["network"] == "local"
    # The global option works before the command too.
    assert json.loads(run(home, "--json", "node", "status").stdout)["pid"] == pid

    stopped = run(home, "node", "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout.strip() == f"stopped Kubo (pid {pid})"
    assert not pid_alive(pid)

    again_stopped = run(home, "node", "stop")
    assert again_stopped.returncode == 0
    assert again_stopped.stdout.strip() == "Kubo is not running"
    after = json.loads(run(home, "node", "status", "--json").stdout)
    assert after["running"] is False and after["pid"] is None


def test_status_before_the_node_exists(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["node", "status"]) == 4  # down: scripts can tell
    assert "not created yet" in capsys.readouterr().out
    assert main(["node", "status", "--json"]) == 4
    info = json.loads(capsys.readouterr().out)
    assert info["initialized"] is False and info["running"] is False


def test_start_says_which_default_ports_were_busy(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Stand-ins for 5001/8080/4001 (the real ones may belong to the developer's node).
    gateway, swarm = pick_port(), pick_port()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        monkeypatch.setattr(managed, "DEFAULT_PORTS", NodePorts(taken, gateway, swarm))
        assert main(["node", "start"]) == 0
    out = capsys.readouterr()
    pid = remember(home)
    assert f"ipfs-share: port {taken} (api) is in use; using " in out.err
    assert "other tools need --api" in out.err
    assert f"gateway:  http://127.0.0.1:{gateway}" in out.out
    ports = KuboDaemon(paths.kubo_repo_dir(home)).configured_ports()
    assert ports.api not in (0, taken) and (ports.gateway, ports.swarm) == (gateway, swarm)
    assert main(["node", "stop"]) == 0
    assert not pid_alive(pid)


def test_stale_pid_file_is_reported_and_left_alone(home: Path) -> None:
    assert run(home, "node", "start", *free_ports_args()).returncode == 0
    assert run(home, "node", "stop").returncode == 0
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        pid_file = KuboDaemon(paths.kubo_repo_dir(home)).pid_file
        pid_file.write_text(f"{bystander.pid}\n")
        status = run(home, "node", "status")
        assert status.stdout.startswith("Kubo is not running")
        stop = run(home, "node", "stop")
        assert stop.stdout.strip() == "Kubo is not running"
        assert bystander.poll() is None
        assert not pid_file.exists()
    finally:
        bystander.kill()
        bystander.wait()


def test_wrong_version_binary_is_refused(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = fake_ipfs(tmp_path / "bin", "0.42.0")
    code = main(["node", "start", "--binary", str(fake), *free_ports_args()])
    err = capsys.readouterr().err
    assert code == EXIT_CODES["node_error"] == 5
    assert f"ipfs-share: error: expected Kubo {paths.KUBO_VERSION}, found v0.42.0" in err
    assert "ipfs-share: hint: install the pinned Kubo" in err
    assert KuboDaemon(paths.kubo_repo_dir(home)).running_pid() is None


def test_install_without_go_names_docker(home: Path, tmp_path: Path) -> None:
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    env = {"PATH": str(empty_bin), "IPFS_SHARE_CACHE": str(tmp_path / "cache")}
    done = run(home, "node", "install", env=env)
    assert done.returncode == 8, done.stderr
    assert "ipfs-share: error: go is not installed" in done.stderr
    assert "ipfs-share: hint: " in done.stderr and "docker compose" in done.stderr
    done_json = run(home, "--json", "node", "install", "--quiet", env=env)
    error = json.loads(done_json.stdout)["error"]
    assert error["code"] == "kubo_install_failed" and error["exit_code"] == 8


def test_install_finds_the_cached_binary(home: Path, kubo_binary: Path) -> None:
    before = kubo_binary.stat()
    done = run(home, "node", "install", "--json")
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert info["version"] == paths.KUBO_VERSION and info["installed_now"] is False
    after = Path(info["binary"]).stat()  # found, not rebuilt: the same file, untouched
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


# --- the dispatcher ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv", [["node"], ["no-such-command"], ["node", "start", "--api-port", "x"], []]
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert "ipfs-share" in capsys.readouterr().err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert paths.KUBO_VERSION in capsys.readouterr().out


def test_invalid_port_is_invalid_input(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["node", "start", "--api-port", "70000"]) == 3
    err = capsys.readouterr().err
    assert "ipfs-share: error: expected the api port to be an integer in 0..65535" in err


def test_exit_code_table_is_documented_and_covers_every_error() -> None:
    doc = cli_main.__doc__ or ""
    for code in EXIT_CODES:
        assert code in doc, f"{code} missing from the exit-code table in the docstring"
    # Every error class gets a code through its ancestors; only the roots are generic.
    for name in errors.__all__:
        cls: Any = getattr(errors, name)
        if isinstance(cls, type) and issubclass(cls, errors.IpfsShareError):
            expected_generic = cls.code in ("ipfs_share_error", "share_error")
            assert (exit_code_for(cls("x")) == 1) == expected_generic, name
    assert exit_code_for(errors.StreamTruncatedError("x")) == 7
    assert exit_code_for(errors.KuboInstallError("x")) == 8
    assert exit_code_for(errors.ShareRevokedError("x")) == 11


def test_internal_errors_are_reported_not_raised(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("kaboom")

    monkeypatch.delenv("IPFS_SHARE_DEBUG", raising=False)
    monkeypatch.setattr("ipfs_share.cli.node.managed_status", boom)
    assert main(["node", "status"]) == 1
    err = capsys.readouterr().err
    assert "ipfs-share: error: internal error: RuntimeError: kaboom" in err
    assert "IPFS_SHARE_DEBUG=1" in err
