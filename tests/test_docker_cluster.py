"""docker/cluster-compose.yml: a 3-peer cluster of the pinned images, each cluster peer on
its own Kubo, every API published on loopback only, secrets required, the README's
endpoints the ones it publishes.

No Docker daemon is needed: the compose file is parsed as YAML (merge keys resolved, as
Compose does), and the environment it gives the cluster peers is checked against the
names ipfs-cluster-service v1.1.6 reads (its envconfig prefixes), as those were checked
against the real binary."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from ipfs_share import paths

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker" / "cluster-compose.yml"


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return loaded


def _published(service: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Container port -> (host ip, host port)."""
    found = {}
    for port in service.get("ports", []):
        host_ip, host_port, container = str(port).split(":")
        found[container.split("/")[0]] = (host_ip, host_port)
    return found


def test_three_peers_of_the_pinned_images(doc: dict[str, Any]) -> None:
    services = doc["services"]
    assert sorted(services) == ["cluster0", "cluster1", "cluster2", "kubo0", "kubo1", "kubo2"]
    for i in range(3):
        assert services[f"kubo{i}"]["image"] == f"ipfs/kubo:{paths.KUBO_VERSION}"
        assert services[f"cluster{i}"]["image"] == f"ipfs/ipfs-cluster:{paths.CLUSTER_VERSION}"


def test_each_cluster_peer_runs_on_its_own_kubo(doc: dict[str, Any]) -> None:
    services = doc["services"]
    for i in range(3):
        peer = services[f"cluster{i}"]
        env = peer["environment"]
        assert env["CLUSTER_IPFSHTTP_NODEMULTIADDRESS"] == f"/dns4/kubo{i}/tcp/5001"
        assert env["CLUSTER_PEERNAME"] == f"peer{i}"
        assert peer["depends_on"] == {f"kubo{i}": {"condition": "service_healthy"}}
        assert "healthcheck" in services[f"kubo{i}"]
        volumes = {v.split(":")[1] for v in peer["volumes"]}
        assert volumes == {"/data/ipfs-cluster"}


def test_every_published_port_is_on_loopback(doc: dict[str, Any]) -> None:
    for name, service in doc["services"].items():
        for container, (host_ip, _) in _published(service).items():
            assert host_ip == "127.0.0.1", f"{name} publishes {container} beyond this machine"


def test_the_secret_and_the_pinning_password_must_be_given(doc: dict[str, Any]) -> None:
    for i in range(3):
        env = doc["services"][f"cluster{i}"]["environment"]
        assert re.fullmatch(r"\$\{CLUSTER_SECRET:\?[^}]+\}", env["CLUSTER_SECRET"])
        creds = env["CLUSTER_PINSVCAPI_BASICAUTHCREDENTIALS"]
        assert re.fullmatch(r"ipfs-share:\$\{PINSVC_PASSWORD:\?[^}]+\}", creds)


def test_the_environment_names_are_ones_the_cluster_reads(doc: dict[str, Any]) -> None:
    # ipfs-cluster-service maps CLUSTER_<SECTION>_<FIELD> onto service.json (envconfig):
    # a misspelt name would be ignored silently, so only known ones are allowed here.
    known = {
        "CLUSTER_SECRET",
        "CLUSTER_PEERNAME",
        "CLUSTER_MONITORPINGINTERVAL",
        "CLUSTER_CRDT_TRUSTEDPEERS",
        "CLUSTER_IPFSHTTP_NODEMULTIADDRESS",
        "CLUSTER_RESTAPI_HTTPLISTENMULTIADDRESS",
        "CLUSTER_PINSVCAPI_HTTPLISTENMULTIADDRESS",
        "CLUSTER_PINSVCAPI_BASICAUTHCREDENTIALS",
    }
    for i in range(3):
        assert set(doc["services"][f"cluster{i}"]["environment"]) <= known


def test_kubo_nodes_get_the_pubsub_init_script_and_their_own_volume(doc: dict[str, Any]) -> None:
    for i in range(3):
        mounts = dict(v.split(":", 1) for v in doc["services"][f"kubo{i}"]["volumes"])
        assert mounts[f"kubo{i}"] == "/data/ipfs"
        assert mounts["./container-init.d"] == "/container-init.d:ro"
        assert (COMPOSE.parent / "container-init.d").is_dir()
    assert set(doc["volumes"]) == {f"kubo{i}" for i in range(3)} | {f"cluster{i}" for i in range(3)}


def test_the_readme_and_the_header_name_the_endpoints_it_publishes(doc: dict[str, Any]) -> None:
    services = doc["services"]
    rest = [f"http://127.0.0.1:{_published(services[f'cluster{i}'])['9094'][1]}" for i in range(3)]
    kubo = [f"http://127.0.0.1:{_published(services[f'kubo{i}'])['5001'][1]}" for i in range(3)]
    lines = f"IPFS_SHARE_CLUSTER={','.join(rest)}", f"IPFS_SHARE_CLUSTER_KUBO={','.join(kubo)}"
    for text in (COMPOSE.read_text(encoding="utf-8"), (ROOT / "README.md").read_text("utf-8")):
        for line in lines:
            assert line in text
    assert _published(services["cluster0"])["9097"] == ("127.0.0.1", "9097")
