"""docker/compose.yml and its init script: pinned image, loopback-only RPC, pubsub on; the
agent service next to Kubo (health check, secret, no published port); the systemd unit.

No Docker daemon is needed: the compose file is parsed as YAML, and the init script is
run against a real Kubo repo with the pinned binary standing in for the image's ``ipfs``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from ipfs_share import paths

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker" / "compose.yml"


@pytest.fixture(scope="module")
def service() -> dict[str, Any]:
    doc = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    services = doc["services"]
    assert list(services) == ["kubo", "agent"]
    return dict(services["kubo"])


@pytest.fixture(scope="module")
def agent_service() -> dict[str, Any]:
    doc = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return dict(doc["services"]["agent"])


def _mounts(service: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Container path -> (host source, mode) for each short-syntax volume."""
    found = {}
    for volume in service["volumes"]:
        source, target, *mode = volume.split(":")
        found[target] = (source, mode[0] if mode else "rw")
    return found


def _init_scripts(service: dict[str, Any]) -> list[Path]:
    source, _ = _mounts(service)["/container-init.d"]
    directory = (COMPOSE.parent / source).resolve()
    return sorted(directory.glob("*.sh"))


def test_image_is_the_pinned_kubo(service: dict[str, Any]) -> None:
    assert service["image"] == f"ipfs/kubo:{paths.KUBO_VERSION}"


def test_rpc_and_gateway_are_published_on_loopback_only(service: dict[str, Any]) -> None:
    published: dict[str, str] = {}
    for port in service["ports"]:
        parts = str(port).split(":")
        container = parts[-1].split("/")[0]
        host_ip = parts[0] if len(parts) == 3 else "0.0.0.0"
        published.setdefault(container, host_ip)
        assert published[container] == host_ip, f"{container} published twice differently"
    assert published["5001"] == "127.0.0.1"
    assert published["8080"] == "127.0.0.1"
    assert "4001" in published  # the swarm may be public


def test_repo_is_a_named_volume(service: dict[str, Any]) -> None:
    doc = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    source, _ = _mounts(service)["/data/ipfs"]
    assert source in doc["volumes"]


def test_init_script_is_mounted_read_only_and_exists(service: dict[str, Any]) -> None:
    _, mode = _mounts(service)["/container-init.d"]
    assert mode == "ro"
    scripts = _init_scripts(service)
    assert scripts, "no *.sh in the mounted container-init.d directory"
    for script in scripts:
        assert os.access(script, os.X_OK), f"{script} should be executable (else it is sourced)"
        subprocess.run(["bash", "-n", str(script)], check=True)
        if shutil.which("dash"):  # the image's sh is POSIX, not bash
            subprocess.run(["dash", "-n", str(script)], check=True)


def test_init_script_sets_pubsub_keys_on_a_real_repo(
    service: dict[str, Any], kubo_binary: Path, tmp_path: Path
) -> None:
    # Run the script as the image would: `ipfs` on PATH, IPFS_PATH an initialized repo.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "ipfs").symlink_to(kubo_binary)
    repo = tmp_path / "repo"
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "IPFS_PATH": str(repo),
        "IPFS_TELEMETRY": "off",
        "HOME": str(tmp_path),
    }
    subprocess.run(
        ["ipfs", "init", "--profile=test", "--empty-repo"],
        env=env,
        check=True,
        capture_output=True,
    )
    for script in _init_scripts(service):
        subprocess.run([str(script)], env=env, check=True, capture_output=True)
    config = json.loads((repo / "config").read_text(encoding="utf-8"))
    assert config["Pubsub"]["Enabled"] is True
    assert config["Ipns"]["UsePubsub"] is True


def test_the_agent_service_runs_serve_after_a_healthy_kubo(agent_service: dict[str, Any]) -> None:
    doc = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert agent_service["profiles"] == ["agent"]  # `up` alone still starts Kubo only
    assert agent_service["depends_on"]["kubo"]["condition"] == "service_healthy"
    assert agent_service["command"][0] == "serve"
    assert agent_service["environment"]["IPFS_SHARE_API"] == "http://kubo:5001"
    assert "ports" not in agent_service  # its socket is in its volume; nothing to publish
    assert agent_service["healthcheck"]["test"] == ["CMD", "ipfs-share", "agent", "status"]
    assert agent_service["stop_signal"] == "SIGTERM"
    home = agent_service["environment"]["IPFS_SHARE_HOME"]
    volume, target = agent_service["volumes"][0].split(":")[:2]
    assert target == home and volume in doc["volumes"]
    # The passphrase is a secret file, handed to serve as a file, never an environment value.
    [secret] = agent_service["secrets"]
    assert f"/run/secrets/{secret}" in agent_service["command"]
    assert "IPFS_SHARE_PASSPHRASE" not in agent_service["environment"]
    source = (COMPOSE.parent / doc["secrets"][secret]["file"]).resolve()
    gitignore = (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert str(source.relative_to(ROOT)) in gitignore  # never committed


def test_the_agent_image_runs_the_cli_unprivileged(agent_service: dict[str, Any]) -> None:
    dockerfile = (COMPOSE.parent / ".." / agent_service["build"]["dockerfile"]).resolve()
    text = dockerfile.read_text(encoding="utf-8")
    assert 'ENTRYPOINT ["ipfs-share"]' in text and "\nUSER ipfs-share\n" in text
    assert "ENV IPFS_SHARE_HOME=/data/ipfs-share" in text


def test_the_systemd_unit_serves_with_a_credential_and_stops_on_sigterm() -> None:
    import configparser

    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    path = ROOT / "contrib" / "systemd" / "ipfs-share.service"
    unit.read_string(path.read_text(encoding="utf-8"))
    service = unit["Service"]
    assert service["ExecStart"].split()[1:] == ["serve", "--passphrase-file", "%d/passphrase"]
    assert service["LoadCredential"].startswith("passphrase:")
    assert service["KillSignal"] == "SIGTERM" and service["Restart"] == "on-failure"
    assert service["RestartPreventExitStatus"] == "14"  # agent_error: another agent runs
    assert unit["Install"]["WantedBy"] == "default.target"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "contrib/systemd/ipfs-share.service" in readme
    assert "--profile agent" in readme
