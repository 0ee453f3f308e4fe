"""A local IPFS Cluster for development and tests: N peers on 127.0.0.1, each its own Kubo
and its own ``ipfs-cluster-service``, crdt consensus.

What ``ipfs-share cluster up|status|down`` do, as a class. The cluster lives in one folder
(``<home>/cluster`` for the CLI)::

    cluster.json        the peers, their ports and ids (written once, at creation)
    pinsvc.token        a bearer token for the peers' Pinning Service API (0600)
    peer0/kubo/         peer 0's Kubo repo (a KuboDaemon)
    peer0/service/      its service.json and identity.json, pid file and log
    peer1/...

Each peer's ports are chosen free at creation and kept, so peers find each other again
after a restart and clients find them from ``cluster.json`` (Kubo's gateway port, which
nothing here uses, is left to the OS). The cluster's peers know
each other from ``peer_addresses`` and trust only each other (crdt ``trusted_peers``); a
fresh random secret keeps them apart from any other cluster on the machine, and mDNS is
off. The Kubo nodes peer with each other (``Peering.Peers``), so content moves between
them over bitswap. Only pids this class started are ever signalled, each after checking
``/proc/<pid>/cmdline`` is that daemon on that folder.

>>> from pathlib import Path
>>> cluster = LocalCluster(Path("/tmp/demo-cluster"))       # doctest: +SKIP
>>> peers = cluster.up(peers=3)                              # doctest: +SKIP
>>> peers[0].rest_url                                        # doctest: +SKIP
'http://127.0.0.1:41234'
>>> cluster.down()                                           # doctest: +SKIP
[4242, 4243, 4244, 4240, 4241, 4245]

Synchronous (process management); from async code call it through ``asyncio.to_thread``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ipfs_share import paths
from ipfs_share.errors import InvalidInputError, NodeManagementError
from ipfs_share.local.files import write_atomic
from ipfs_share.node.cluster_install import ClusterBinaries, find_cluster, install_cluster
from ipfs_share.node.daemon import (
    KuboDaemon,
    RunningNode,
    _cmdline,
    _parent_death_signal,
    pid_alive,
)
from ipfs_share.node.install import find_kubo, install_kubo
from ipfs_share.node.ports import NodePorts, free_ports

__all__ = ["MAX_PEERS", "ClusterPeer", "LocalCluster", "PeerPorts", "ServiceDaemon"]

STATE_FILE = "cluster.json"
TOKEN_FILE = "pinsvc.token"  # noqa: S105 - a file name, not a secret
PID_FILE = "ipfs-share-cluster.pid"
LOG_FILE = "ipfs-share-cluster.log"
LOCK_FILE = "cluster.lock"
PINSVC_USER = "ipfs-share"
MAX_PEERS = 16  # a development cluster on one machine; each peer is two daemons

_POLL = 0.1
_START_ATTEMPTS = 3  # a service that dies while starting is started again, this many times


class _ExitedWhileStarting(NodeManagementError):
    """A service process that ended before it answered (same code as its parent)."""


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class PeerPorts:
    """One peer's fixed ports: cluster libp2p, REST API, IPFS proxy, Pinning Service API,
    and its Kubo's swarm and RPC API."""

    cluster: int
    rest: int
    proxy: int
    pinsvc: int
    swarm: int
    kubo_api: int


@dataclass(frozen=True)
class ClusterPeer:
    """One peer as :meth:`LocalCluster.status` found it; ``to_json()`` is what ``--json``
    prints."""

    name: str
    peer_id: str  # the cluster peer's id
    kubo_peer_id: str
    rest_url: str
    pinsvc_url: str
    proxy_url: str
    cluster_multiaddr: str
    kubo_api_url: str
    service_pid: int | None
    kubo_pid: int | None
    responding: bool  # the REST API answered with this peer's id

    @property
    def running(self) -> bool:
        return self.service_pid is not None and self.kubo_pid is not None

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "peer_id": self.peer_id,
            "kubo_peer_id": self.kubo_peer_id,
            "rest_url": self.rest_url,
            "pinsvc_url": self.pinsvc_url,
            "proxy_url": self.proxy_url,
            "cluster_multiaddr": self.cluster_multiaddr,
            "kubo_api_url": self.kubo_api_url,
            "service_pid": self.service_pid,
            "kubo_pid": self.kubo_pid,
            "running": self.running,
            "responding": self.responding,
        }


def _get(url: str, timeout: float) -> bytes | None:
    request = urllib.request.Request(url)  # noqa: S310 - http only
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            body: bytes = response.read()
            return body
    except (OSError, urllib.error.URLError, ValueError):
        return None


def _get_json(url: str, timeout: float = 2.0) -> Any:
    """GET a loopback URL and decode its JSON (None on any failure)."""
    body = _get(url, timeout)
    try:
        return None if body is None else json.loads(body)
    except ValueError:
        return None


def _get_lines(url: str, timeout: float = 2.0) -> list[Any]:
    """GET a list Cluster streams as one JSON value a line (empty on any failure)."""
    body = _get(url, timeout)
    try:
        return [json.loads(line) for line in (body or b"").splitlines() if line.strip()]
    except ValueError:
        return []


def _write_private(path: Path, text: str) -> None:
    """A 0600 file, written atomically (it may hold the cluster secret or a token)."""
    write_atomic(path, text.encode("utf-8"), mode=0o600)


class ServiceDaemon:
    """One ``ipfs-cluster-service`` config folder and the daemon that runs on it."""

    def __init__(self, folder: Path, binary: Path | None = None) -> None:
        self.folder = folder.absolute()
        self.binary = binary
        self.pid_file = self.folder / PID_FILE
        self.log_file = self.folder / LOG_FILE
        self._proc: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return f"ServiceDaemon({str(self.folder)!r})"

    def _env(self) -> dict[str, str]:
        # CLUSTER_* variables override service.json; none from the caller's shell may.
        env = {k: v for k, v in os.environ.items() if not k.startswith("CLUSTER_")}
        env["IPFS_CLUSTER_PATH"] = str(self.folder)
        return env

    def _binary(self) -> Path:
        if self.binary is None:
            raise NodeManagementError(
                f"no ipfs-cluster-service binary given for {self.folder}",
                hint="install it with 'ipfs-share cluster install'",
            )
        return self.binary

    def init(self) -> None:
        binary = self._binary()
        self.folder.mkdir(parents=True, exist_ok=True)
        argv = [str(binary), "--config", str(self.folder), "init", "--consensus", "crdt"]
        try:
            done = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                timeout=60,
                env=self._env(),
                stdin=subprocess.DEVNULL,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise NodeManagementError(f"could not run ipfs-cluster-service init: {exc}") from exc
        if done.returncode != 0:
            tail = (done.stderr.strip() or done.stdout.strip()).splitlines()
            raise NodeManagementError(
                f"ipfs-cluster-service init failed with exit code {done.returncode}: "
                f"{tail[-1] if tail else 'no output'}"
            )

    def config(self) -> dict[str, Any]:
        try:
            doc = json.loads((self.folder / "service.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise NodeManagementError(f"could not read {self.folder}/service.json: {exc}") from exc
        if not isinstance(doc, dict):
            raise NodeManagementError(f"expected a JSON object in {self.folder}/service.json")
        return doc

    def write_config(self, doc: dict[str, Any]) -> None:
        # It holds the cluster secret and the pinning API's password: owner only.
        _write_private(self.folder / "service.json", json.dumps(doc, indent=2) + "\n")

    def peer_id(self) -> str:
        try:
            ident = json.loads((self.folder / "identity.json").read_text(encoding="utf-8"))
            return str(ident["id"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise NodeManagementError(f"could not read {self.folder}/identity.json: {exc}") from exc

    def _is_ours(self, pid: int) -> bool:
        argv = _cmdline(pid)
        return (
            bool(argv)
            and Path(argv[0]).name == "ipfs-cluster-service"
            and "daemon" in argv
            and str(self.folder) in argv
        )

    def running_pid(self) -> int | None:
        try:
            text = self.pid_file.read_text(encoding="utf-8").strip()
        except OSError:
            return None
        if not text.isdigit():
            return None
        pid = int(text)
        return pid if pid_alive(pid) and self._is_ours(pid) else None

    def alive(self, pid: int) -> bool:
        if self._proc is not None and self._proc.pid == pid:
            return self._proc.poll() is None
        return pid_alive(pid)

    def start(self, *, die_with_parent: bool = False) -> int:
        pid = self.running_pid()
        if pid is not None:
            return pid
        binary = self._binary()
        if self.log_file.exists():
            self.log_file.replace(self.log_file.with_suffix(".log.1"))
        with self.log_file.open("ab") as log:
            try:
                self._proc = subprocess.Popen(
                    [str(binary), "--config", str(self.folder), "daemon"],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=self._env(),
                    cwd=self.folder,
                    start_new_session=True,
                    preexec_fn=_parent_death_signal() if die_with_parent else None,
                )
            except OSError as exc:
                raise NodeManagementError(f"could not start {binary}: {exc}") from exc
        _write_private(self.pid_file, f"{self._proc.pid}\n")
        return self._proc.pid

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM to our pid, SIGKILL after ``timeout`` s; the pid stopped, or None."""
        pid = self.running_pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return None
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if not self._wait_gone(pid, timeout):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            self._wait_gone(pid, 5.0)
        self.pid_file.unlink(missing_ok=True)
        self._proc = None
        return pid

    def kill(self) -> int | None:
        """SIGKILL, no grace: for tests of a peer that dies mid-operation."""
        pid = self.running_pid()
        if pid is None:
            return None
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        self._wait_gone(pid, 5.0)
        self.pid_file.unlink(missing_ok=True)
        self._proc = None
        return pid

    def _wait_gone(self, pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.alive(pid):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    def log_tail(self, lines: int = 5) -> str:
        try:
            text = self.log_file.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        kept = [line.strip() for line in text.splitlines() if line.strip()]
        return " | ".join(kept[-lines:])


class LocalCluster:
    """The peers of one cluster folder. ``binaries`` and ``kubo`` are only needed to create
    or start it (found or built on demand when None)."""

    def __init__(
        self,
        folder: Path,
        *,
        binaries: ClusterBinaries | None = None,
        kubo: Path | None = None,
    ) -> None:
        self.folder = Path(folder).expanduser().absolute()
        self._binaries = binaries
        self._kubo = kubo

    def __repr__(self) -> str:
        return f"LocalCluster({str(self.folder)!r})"

    # -- what it is made of -----------------------------------------------------------------

    def exists(self) -> bool:
        return (self.folder / STATE_FILE).is_file()

    def _state(self) -> dict[str, Any]:
        try:
            doc = json.loads((self.folder / STATE_FILE).read_text(encoding="utf-8"))
        except OSError as exc:
            raise NodeManagementError(
                f"no local cluster in {self.folder}",
                hint="create one with 'ipfs-share cluster up --peers 3'",
            ) from exc
        except ValueError as exc:
            raise NodeManagementError(f"{self.folder}/{STATE_FILE} is not JSON: {exc}") from exc
        if not isinstance(doc, dict) or doc.get("version") != 1:
            raise NodeManagementError(f"expected {STATE_FILE} version 1 in {self.folder}")
        return doc

    def _peer_docs(self) -> list[dict[str, Any]]:
        peers = self._state().get("peers")
        if not isinstance(peers, list) or not peers:
            raise NodeManagementError(f"expected a list of peers in {self.folder}/{STATE_FILE}")
        return peers

    def size(self) -> int:
        return len(self._peer_docs())

    def _peer_dir(self, index: int) -> Path:
        return self.folder / f"peer{index}"

    def kubo_daemon(self, index: int) -> KuboDaemon:
        return KuboDaemon(self._peer_dir(index) / "kubo", self._kubo)

    def service_daemon(self, index: int) -> ServiceDaemon:
        binary = self._binaries.service if self._binaries else None
        return ServiceDaemon(self._peer_dir(index) / "service", binary)

    def endpoints(self) -> tuple[list[str], list[str]]:
        """Every peer's REST API URL and Kubo RPC API URL, in peer order (from
        ``cluster.json``: no process is asked)."""
        docs = self._peer_docs()
        rest = [f"http://127.0.0.1:{d['ports']['rest']}" for d in docs]
        kubo = [f"http://127.0.0.1:{d['ports']['kubo_api']}" for d in docs]
        return rest, kubo

    def token(self) -> str | None:
        """The bearer token for every peer's Pinning Service API (None before the first up)."""
        try:
            return (self.folder / TOKEN_FILE).read_text(encoding="utf-8").strip() or None
        except OSError:
            return None

    # -- creating it ------------------------------------------------------------------------

    def _ensure_binaries(self, progress: bool) -> None:
        if self._binaries is None:
            self._binaries = find_cluster() or install_cluster(progress=progress)
        if self._kubo is None:
            self._kubo = find_kubo() or install_kubo(progress=progress)

    def create(self, peers: int, *, pin_timeout: float = 120.0) -> None:
        """Initialize ``peers`` peers (Kubo repos and service configs); none is started."""
        if isinstance(peers, bool) or not isinstance(peers, int) or not 1 <= peers <= MAX_PEERS:
            raise InvalidInputError(
                f"expected 1 to {MAX_PEERS} peers, found {peers!r}",
                hint="a development cluster has a few peers: --peers 3 is typical",
            )
        if self.exists():
            raise NodeManagementError(
                f"a local cluster already exists in {self.folder}",
                hint="start it with 'ipfs-share cluster up', or remove it with "
                "'ipfs-share cluster down --remove'",
            )
        self._ensure_binaries(progress=True)
        if self.folder.exists() and any(p.name != LOCK_FILE for p in self.folder.iterdir()):
            raise NodeManagementError(
                f"expected an empty folder for a new cluster, found files in {self.folder}",
                hint="remove it, or choose another folder",
            )
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            self._create(peers, pin_timeout)
        except BaseException:
            for made in self.folder.iterdir():
                if made.name != LOCK_FILE:
                    shutil.rmtree(made, ignore_errors=True) if made.is_dir() else made.unlink()
            raise

    def _create(self, count: int, pin_timeout: float) -> None:
        width = len(PeerPorts.__dataclass_fields__)
        ports = free_ports(width * count)
        plan = [PeerPorts(*ports[width * i : width * (i + 1)]) for i in range(count)]
        kubos = [self.kubo_daemon(i) for i in range(count)]
        services = [self.service_daemon(i) for i in range(count)]

        def init(i: int) -> None:
            kubos[i].init(ports=NodePorts(api=plan[i].kubo_api, gateway=0, swarm=plan[i].swarm))
            services[i].init()

        # Short-lived commands (init, config), so worker threads may run them.
        with ThreadPoolExecutor(max_workers=count) as pool:
            list(pool.map(init, range(count)))
        kubo_ids = [k.peer_id() or "" for k in kubos]
        ids = [s.peer_id() for s in services]
        secret = secrets.token_hex(32)
        password = secrets.token_urlsafe(24)
        for i in range(count):
            others = [j for j in range(count) if j != i]
            kubos[i].set_config(
                "Peering.Peers",
                [
                    {"ID": kubo_ids[j], "Addrs": [f"/ip4/127.0.0.1/tcp/{plan[j].swarm}"]}
                    for j in others
                ],
            )
            doc = services[i].config()
            _configure(doc, i, plan[i], secret, password, pin_timeout)
            kubo_api = f"/ip4/127.0.0.1/tcp/{plan[i].kubo_api}"
            doc["ipfs_connector"]["ipfshttp"]["node_multiaddress"] = kubo_api
            doc["api"]["ipfsproxy"]["node_multiaddress"] = kubo_api
            doc["cluster"]["peer_addresses"] = [
                f"/ip4/127.0.0.1/tcp/{plan[j].cluster}/p2p/{ids[j]}" for j in others
            ]
            doc["consensus"]["crdt"]["trusted_peers"] = ids
            services[i].write_config(doc)
        state = {
            "version": 1,
            "cluster_version": paths.CLUSTER_VERSION,
            "peers": [
                {
                    "name": f"peer{i}",
                    "peer_id": ids[i],
                    "kubo_peer_id": kubo_ids[i],
                    "ports": plan[i].__dict__,
                }
                for i in range(count)
            ],
        }
        _write_private(self.folder / STATE_FILE, json.dumps(state, indent=2) + "\n")

    # -- running it -------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        import fcntl

        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        with (self.folder / LOCK_FILE).open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def up(
        self,
        peers: int | None = None,
        *,
        timeout: float = 90.0,
        die_with_parent: bool = False,
        pin_timeout: float = 120.0,
        progress: bool = True,
    ) -> list[ClusterPeer]:
        """Create the cluster (``peers`` peers) if there is none, start whatever of it is not
        running, and wait until every peer sees every other and can take pins.

        Idempotent. ``peers`` must match an existing cluster's size. With
        ``die_with_parent`` (Linux; test fixtures) every daemon gets SIGTERM when the
        calling thread exits."""
        with self._locked():
            if not self.exists():
                self.create(3 if peers is None else peers, pin_timeout=pin_timeout)
            elif peers is not None and peers != self.size():
                raise NodeManagementError(
                    f"expected a cluster of {peers} peers, found one of {self.size()} in "
                    f"{self.folder}",
                    hint="leave out --peers to start it as it is, or remove it with "
                    "'ipfs-share cluster down --remove' and create it again",
                )
            self._ensure_binaries(progress=progress)
            everyone = list(range(self.size()))
            before = {
                i
                for i in everyone
                if self.kubo_daemon(i).running_pid() and self.service_daemon(i).running_pid()
            }
            try:
                self._start_peers(everyone, die_with_parent)
                self._wait_formed(timeout)
                self._fetch_token()
            except BaseException:
                # Nothing half-started is left behind: what this call started is stopped
                # again, by its pid (peers that were already running stay up).
                self._stop_peers([i for i in everyone if i not in before], timeout=10.0)
                raise
        return self.status()

    def _start_peers(
        self, indexes: list[int], die_with_parent: bool, timeout: float = 60.0
    ) -> None:
        """Start the Kubo nodes, then the services, and wait for each to answer.

        Every process is spawned from the calling thread: with ``die_with_parent`` the
        kernel signals a child when the thread that forked it ends, so a worker thread
        must not spawn."""
        kubos = {i: self.kubo_daemon(i) for i in indexes}
        for kubo in kubos.values():
            if kubo.running_pid() is None:
                kubo.start(die_with_parent=die_with_parent)
        nodes = {i: kubo.wait_ready(timeout) for i, kubo in kubos.items()}
        # One service at a time, each once it answers: a peer that another dials in the
        # moment between opening its host and starting its block exchange never learns
        # that one can serve blocks, and the pins it needs from it then stall for a
        # minute. Started in turn, every connection comes after both ends are up.
        for i in indexes:
            for attempt in range(1, _START_ATTEMPTS + 1):
                service = self.service_daemon(i)
                if service.running_pid() is None:
                    service.start(die_with_parent=die_with_parent)
                try:
                    self._wait_peer(i, nodes[i], timeout)
                    break
                except _ExitedWhileStarting:
                    # ipfs-cluster-service 1.1.6 can panic at start-up (seen here: a call
                    # through an RPC client not set yet); its log is kept as .log.1 and it
                    # is started again.
                    if attempt == _START_ATTEMPTS:
                        raise

    def _wait_peer(self, index: int, node: RunningNode, timeout: float) -> None:
        service = self.service_daemon(index)
        doc = self._peer_docs()[index]
        rest = f"http://127.0.0.1:{doc['ports']['rest']}"
        deadline = time.monotonic() + timeout
        while True:
            pid = service.running_pid()
            if pid is None:
                raise _ExitedWhileStarting(
                    f"the cluster service of peer{index} exited while starting: "
                    f"{service.log_tail()}",
                    hint=f"see the log {service.log_file}",
                )
            ident = _get_json(f"{rest}/id", timeout=1.0)
            if (
                isinstance(ident, dict)
                and ident.get("id") == doc["peer_id"]
                and not ident.get("error")
                and (ident.get("ipfs") or {}).get("id") == node.peer_id
            ):
                return
            if time.monotonic() >= deadline:
                raise NodeManagementError(
                    f"the cluster service of peer{index} did not answer on {rest} within "
                    f"{timeout:g} s: {service.log_tail()}",
                    hint=f"see the log {service.log_file}",
                )
            time.sleep(_POLL)

    def _wait_formed(self, timeout: float) -> None:
        """Until every peer lists every peer and holds a fresh free-space metric of each
        (without those, a pin cannot be allocated to it), and a pin made on any peer
        reaches all (until the peers' pubsub mesh forms, an update can be lost and only
        arrive with the next rebroadcast, a minute later)."""
        docs = self._peer_docs()
        want = {d["peer_id"] for d in docs}
        deadline = time.monotonic() + timeout
        for doc in docs:
            rest = f"http://127.0.0.1:{doc['ports']['rest']}"
            while True:
                peers = _get_lines(f"{rest}/peers")
                metrics = _get_json(f"{rest}/monitor/metrics/freespace", timeout=2.0)
                seen = _ids(peers)
                measured = {m.get("peer") for m in metrics or [] if isinstance(m, dict)}
                if want <= seen and want <= measured:
                    break
                if time.monotonic() >= deadline:
                    raise NodeManagementError(
                        f"expected {doc['name']} to see all {len(want)} peers within "
                        f"{timeout:g} s, found {len(seen & want)} (metrics of "
                        f"{len(measured & want)})",
                        hint=f"see the logs in {self.folder}/peer*/service/{LOG_FILE}",
                    )
                time.sleep(0.25)
        self._probe_pins(docs, deadline)

    def _probe_pins(self, docs: list[dict[str, Any]], deadline: float) -> None:
        """Pin a throwaway identity CID (its bytes are in the CID: nothing to fetch) on each
        peer and wait until every peer pinned all of them; then unpin each on its own peer
        and wait until no peer lists any: every peer's updates reach every other."""
        rests = [f"http://127.0.0.1:{d['ports']['rest']}" for d in docs]
        probes = [_identity_cid(secrets.token_bytes(16)) for _ in rests]

        def pinned_everywhere(probe: str) -> bool:
            info = _get_json(f"{rests[0]}/pins/{probe}", timeout=2.0)
            states = [v.get("status") for v in ((info or {}).get("peer_map") or {}).values()]
            return len(states) == len(docs) and all(st == "pinned" for st in states)

        def gone_everywhere(probe: str) -> bool:
            return all(_status(f"{rest}/allocations/{probe}") == 404 for rest in rests)

        try:
            for rest, probe in zip(rests, probes, strict=True):
                _request(f"{rest}/pins/{probe}", "POST")
            self._wait_all(probes, pinned_everywhere, deadline, "reach")
        finally:
            for rest, probe in zip(rests, probes, strict=True):
                _request(f"{rest}/pins/{probe}", "DELETE")
        self._wait_all(probes, gone_everywhere, deadline, "leave")

    def _wait_all(
        self, probes: list[str], done: Callable[[str], bool], deadline: float, verb: str
    ) -> None:
        waiting = set(probes)
        while True:
            waiting = {p for p in waiting if not done(p)}
            if not waiting:
                return
            if time.monotonic() >= deadline:
                raise NodeManagementError(
                    f"expected probe pins to {verb} all peers, found {len(waiting)} of "
                    f"{len(probes)} still on their way",
                    hint=f"see the logs in {self.folder}/peer*/service/{LOG_FILE}",
                )
            time.sleep(0.1)

    def _fetch_token(self) -> None:
        if self.token() is not None:
            return
        doc = self._peer_docs()[0]
        password = self.service_daemon(0).config()["api"]["pinsvcapi"]["basic_auth_credentials"][
            PINSVC_USER
        ]
        basic = base64.b64encode(f"{PINSVC_USER}:{password}".encode()).decode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{doc['ports']['pinsvc']}/token",
            data=b"",
            method="POST",
            headers={"Authorization": f"Basic {basic}"},
        )
        try:
            with _OPENER.open(request, timeout=5) as response:
                token = json.loads(response.read())["token"]
        except (OSError, urllib.error.URLError, ValueError, KeyError, TypeError) as exc:
            raise NodeManagementError(
                f"could not get a pinning-service token from peer0: {exc}"
            ) from exc
        _write_private(self.folder / TOKEN_FILE, f"{token}\n")

    def start_peer(self, index: int, *, die_with_parent: bool = False) -> None:
        """Start one stopped peer again and wait until the whole cluster is formed."""
        self._ensure_binaries(progress=False)
        self._start_peers([index], die_with_parent)
        self._wait_formed(60.0)

    def stop_peer(self, index: int, *, kill: bool = False, timeout: float = 10.0) -> list[int]:
        """Stop one peer (its service, then its Kubo); with ``kill``, SIGKILL both at once."""
        service, kubo = self.service_daemon(index), self.kubo_daemon(index)
        stopped: list[int] = []
        if kill:
            for pid in (service.kill(), _kill_kubo(kubo)):
                if pid is not None:
                    stopped.append(pid)
            return stopped
        for pid in (service.stop(timeout), kubo.stop(timeout)):
            if pid is not None:
                stopped.append(pid)
        return stopped

    def _stop_peers(self, indexes: list[int], timeout: float) -> list[int]:
        stopped: list[int] = []
        if not indexes:
            return stopped
        # Services first (they talk to their Kubo), then the Kubo nodes, in parallel.
        with ThreadPoolExecutor(max_workers=len(indexes)) as pool:
            for found in pool.map(lambda i: self.service_daemon(i).stop(timeout), indexes):
                if found is not None:
                    stopped.append(found)
            for found in pool.map(lambda i: self.kubo_daemon(i).stop(timeout), indexes):
                if found is not None:
                    stopped.append(found)
        return stopped

    def down(self, *, timeout: float = 10.0, remove: bool = False) -> list[int]:
        """Stop every daemon of this cluster (only those, by pid); return their pids.
        With ``remove``, delete the folder too (its keys, pins and data)."""
        with self._locked():
            stopped = self._stop_peers(list(range(self.size())), timeout) if self.exists() else []
        if remove:
            shutil.rmtree(self.folder, ignore_errors=True)
        return stopped

    def status(self) -> list[ClusterPeer]:
        found = []
        for i, doc in enumerate(self._peer_docs()):
            ports = doc["ports"]
            kubo = self.kubo_daemon(i)
            service = self.service_daemon(i)
            kubo_pid, service_pid = kubo.running_pid(), service.running_pid()
            kubo_url = f"http://127.0.0.1:{ports['kubo_api']}"
            rest = f"http://127.0.0.1:{ports['rest']}"
            ident = _get_json(f"{rest}/id", timeout=1.0) if service_pid is not None else None
            found.append(
                ClusterPeer(
                    name=str(doc["name"]),
                    peer_id=str(doc["peer_id"]),
                    kubo_peer_id=str(doc["kubo_peer_id"]),
                    rest_url=rest,
                    pinsvc_url=f"http://127.0.0.1:{ports['pinsvc']}",
                    proxy_url=f"http://127.0.0.1:{ports['proxy']}",
                    cluster_multiaddr=f"/ip4/127.0.0.1/tcp/{ports['cluster']}/p2p/{doc['peer_id']}",
                    kubo_api_url=kubo_url,
                    service_pid=service_pid,
                    kubo_pid=kubo_pid,
                    responding=isinstance(ident, dict) and ident.get("id") == doc["peer_id"],
                )
            )
        return found


def _identity_cid(data: bytes) -> str:
    """A CIDv1 raw block whose multihash is the identity: the data is the CID itself."""
    raw = bytes([0x01, 0x55, 0x00, len(data)]) + data
    return "b" + base64.b32encode(raw).decode().rstrip("=").lower()


def _status(url: str, timeout: float = 2.0) -> int:
    """The HTTP status of a GET to a loopback URL (0 when nothing answered)."""
    request = urllib.request.Request(url)  # noqa: S310 - http only
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (OSError, urllib.error.URLError):
        return 0


def _request(url: str, method: str, timeout: float = 5.0) -> bool:
    """POST/DELETE a loopback URL; True if it answered 2xx."""
    request = urllib.request.Request(url, data=b"", method=method)  # noqa: S310 - http only
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return 200 <= int(response.status) < 300
    except (OSError, urllib.error.URLError):
        return False


def _ids(peers: list[Any]) -> set[str]:
    return {
        str(p["id"]) for p in peers if isinstance(p, dict) and p.get("id") and not p.get("error")
    }


def _kill_kubo(kubo: KuboDaemon) -> int | None:
    pid = kubo.running_pid()
    if pid is None:
        return None
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    # Killed, Kubo could not remove its api file; the next start checks for a stale one.
    return pid


def _configure(
    doc: dict[str, Any],
    index: int,
    ports: PeerPorts,
    secret: str,
    password: str,
    pin_timeout: float,
) -> None:
    """Loopback only, fixed ports, no mDNS, small caches: a development peer."""
    cluster = doc["cluster"]
    cluster["peername"] = f"peer{index}"
    cluster["secret"] = secret
    cluster["listen_multiaddress"] = [f"/ip4/127.0.0.1/tcp/{ports.cluster}"]
    cluster["mdns_interval"] = "0s"
    cluster["monitor_ping_interval"] = "5s"
    cluster["peer_watch_interval"] = "2s"
    # Heartbeats form the pubsub mesh that carries pin updates: 1 s, not 10 s, so a fresh
    # cluster takes pins sooner.
    cluster["pubsub"]["heartbeat_interval"] = "1s"
    doc["consensus"]["crdt"]["cluster_name"] = "ipfs-share"
    api = doc["api"]
    api["restapi"]["http_listen_multiaddress"] = f"/ip4/127.0.0.1/tcp/{ports.rest}"
    api["ipfsproxy"]["listen_multiaddress"] = f"/ip4/127.0.0.1/tcp/{ports.proxy}"
    api["pinsvcapi"]["http_listen_multiaddress"] = f"/ip4/127.0.0.1/tcp/{ports.pinsvc}"
    # A pinning service is not open to anyone: bearer tokens signed with this password.
    api["pinsvcapi"]["basic_auth_credentials"] = {PINSVC_USER: password}
    ipfs = doc["ipfs_connector"]["ipfshttp"]
    ipfs["connect_swarms_delay"] = "1s"
    ipfs["pin_timeout"] = f"{pin_timeout:g}s"
    # Metrics are sent every half TTL, and a peer can only be allocated pins while its
    # metrics are fresh: a short TTL makes a new peer usable within seconds and a dead
    # one drop out of allocations within seconds (30 s by default).
    for informer in doc["informer"].values():
        informer["metric_ttl"] = "4s"
    doc["monitor"]["pubsubmon"]["check_interval"] = "2s"
    pebble = doc["datastore"]["pebble"]["pebble_options"]
    pebble["cache_size_bytes"] = 16 << 20  # 1 GiB by default: too much for a laptop's three
    pebble["mem_table_size"] = 8 << 20
