"""Run one Kubo daemon on one repo: init, start, wait until it answers, status, stop.

A :class:`KuboDaemon` owns a repo directory. It starts ``ipfs --repo-dir=<repo> daemon``
in its own session, logs to ``<repo>/ipfs-share-daemon.log``, and records the pid in
``<repo>/ipfs-share-daemon.pid``. It only ever signals that pid, and only after checking
``/proc/<pid>/cmdline`` shows a Kubo daemon on this very repo (a pid file can outlive its
process, and the pid can be reused by anything).

>>> from pathlib import Path
>>> from ipfs_share.node import KuboDaemon, NodePorts, find_kubo
>>> daemon = KuboDaemon(Path("/tmp/demo-repo"), find_kubo())   # doctest: +SKIP
>>> daemon.init(ports=NodePorts())      # loopback only, OS-picked ports  # doctest: +SKIP
>>> daemon.start()                                               # doctest: +SKIP
>>> node = daemon.wait_ready(timeout=30)                         # doctest: +SKIP
>>> node.api_url                                                 # doctest: +SKIP
'http://127.0.0.1:41234'
>>> daemon.stop()                                                # doctest: +SKIP

Everything here is synchronous (process management); from async code call it through
``asyncio.to_thread``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ipfs_share import paths
from ipfs_share.errors import InvalidInputError, NodeManagementError, NodeVersionError
from ipfs_share.node.discovery import multiaddr_to_url
from ipfs_share.node.install import kubo_version, normalize_version
from ipfs_share.node.ports import NodePorts, port_is_free

__all__ = ["DaemonStatus", "KuboDaemon", "RunningNode", "pid_alive"]

PID_FILE = "ipfs-share-daemon.pid"
LOG_FILE = "ipfs-share-daemon.log"
LOCK_FILE = "ipfs-share-daemon.lock"

# Swarm listeners of a public node: Kubo's own defaults, on our chosen port.
_PUBLIC_SWARM = (
    "/ip4/0.0.0.0/tcp/{port}",
    "/ip6/::/tcp/{port}",
    "/ip4/0.0.0.0/udp/{port}/quic-v1",
    "/ip4/0.0.0.0/udp/{port}/quic-v1/webtransport",
    "/ip6/::/udp/{port}/quic-v1",
    "/ip6/::/udp/{port}/quic-v1/webtransport",
)

_POLL = 0.05  # seconds between readiness polls: a Kubo start takes ~0.1-2 s

# Requests to our own loopback daemon must never go through an HTTP(S)_PROXY from the env.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class RunningNode:
    """A started daemon that answers on its API: what a client needs to talk to it."""

    api_multiaddr: str
    api_url: str
    gateway_url: str | None
    peer_id: str
    version: str
    pid: int
    repo: Path
    binary: Path
    swarm_addrs: tuple[str, ...]


@dataclass(frozen=True)
class DaemonStatus:
    """What :meth:`KuboDaemon.status` found; ``to_json()`` is what ``--json`` prints."""

    repo: Path
    initialized: bool
    running: bool
    responding: bool
    pid: int | None
    api_multiaddr: str | None
    api_url: str | None
    gateway_url: str | None
    peer_id: str | None
    version: str | None
    network: str | None
    log_file: Path

    def to_json(self) -> dict[str, object]:
        return {
            "repo": str(self.repo),
            "initialized": self.initialized,
            "running": self.running,
            "responding": self.responding,
            "pid": self.pid,
            "api": self.api_multiaddr,
            "api_url": self.api_url,
            "gateway_url": self.gateway_url,
            "peer_id": self.peer_id,
            "version": self.version,
            "network": self.network,
            "log": str(self.log_file),
        }


def _rpc(api_url: str, command: str, timeout: float) -> dict[str, Any] | None:
    """POST one RPC call; its JSON object, or None for any failure."""
    # api_url comes from multiaddr_to_url, so its scheme is http or https, never file:.
    url = f"{api_url}/api/v0/{command}"
    request = urllib.request.Request(url, data=b"", method="POST")  # noqa: S310
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            body = json.loads(response.read())
    except (OSError, urllib.error.URLError, ValueError):
        return None
    return body if isinstance(body, dict) else None


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def _cmdline(pid: int) -> list[str]:
    proc = Path(f"/proc/{pid}/cmdline")
    if proc.parent.parent.is_dir():
        try:
            raw = proc.read_bytes()
        except OSError:
            return []
        return [part.decode(errors="replace") for part in raw.split(b"\0") if part]
    # No /proc (macOS, BSD): ps gives the command line, split on spaces.
    try:
        out = subprocess.run(
            ["ps", "-o", "command=", "-p", str(pid)],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    return out.split()


def pid_alive(pid: int) -> bool:
    """True if ``pid`` is a live (not zombie) process; reaps it if it is our dead child."""
    with contextlib.suppress(ChildProcessError, OSError):
        # A daemon this process started and nobody waited for would stay a zombie.
        os.waitpid(pid, os.WNOHANG)
    stat = Path(f"/proc/{pid}/stat")
    if stat.parent.parent.is_dir():
        try:
            # The state letter follows the command name, which is in parentheses.
            state = stat.read_text().rpartition(")")[2].split()[0]
        except (OSError, IndexError):
            return False
        return state not in ("Z", "X")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _parent_death_signal() -> Callable[[], None] | None:
    """A preexec_fn that makes the child get SIGTERM when this thread dies (Linux only)."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    # Resolved here, in the parent: the child between fork and exec must not import.
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    pr_set_pdeathsig = 1

    def preexec() -> None:
        prctl(pr_set_pdeathsig, signal.SIGTERM)

    return preexec


class KuboDaemon:
    """One Kubo repo and the daemon that runs on it.

    ``binary`` may be None for a daemon you only query or stop. ``expected_version``
    (the pinned :data:`~ipfs_share.paths.KUBO_VERSION` by default; None for any) is
    checked before :meth:`init` and :meth:`start`.
    """

    def __init__(
        self,
        repo: Path | str,
        binary: Path | str | None = None,
        *,
        expected_version: str | None = paths.KUBO_VERSION,
    ) -> None:
        # Absolute, because the path is matched against the daemon's command line later.
        self.repo = Path(repo).expanduser().absolute()
        self.binary = None if binary is None else Path(binary).expanduser().absolute()
        self.expected_version = expected_version
        self.pid_file = self.repo / PID_FILE
        self.log_file = self.repo / LOG_FILE
        self._proc: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return f"KuboDaemon(repo={str(self.repo)!r}, binary={self.binary and str(self.binary)!r})"

    # --- the repo ----------------------------------------------------------------------

    def is_initialized(self) -> bool:
        return (self.repo / "config").is_file()

    def config(self) -> dict[str, Any]:
        """The repo's config as Kubo stores it (read from the file; no daemon needed)."""
        try:
            data = json.loads((self.repo / "config").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise NodeManagementError(
                f"could not read the Kubo config of {self.repo}: {exc}",
                hint="initialize the repo first ('ipfs-share node start' does)",
            ) from exc
        if not isinstance(data, dict):
            raise NodeManagementError(f"expected a JSON object in {self.repo}/config")
        return data

    def peer_id(self) -> str | None:
        if not self.is_initialized():
            return None
        peer = self.config().get("Identity", {}).get("PeerID")
        return peer if isinstance(peer, str) else None

    def network(self) -> str | None:
        """``"local"`` (loopback only, no bootstrap peers) or ``"public"``."""
        if not self.is_initialized():
            return None
        return "public" if self.config().get("Bootstrap") else "local"

    def configured_ports(self) -> NodePorts:
        """The ports in the config (0 where Kubo lets the OS pick)."""
        addresses = self.config().get("Addresses", {})

        def port_of(maddr: object) -> int:
            parts = str(maddr).split("/")
            return int(parts[4]) if len(parts) > 4 and parts[4].isdigit() else 0

        swarm = addresses.get("Swarm") or [""]
        return NodePorts(
            api=port_of(addresses.get("API")),
            gateway=port_of(addresses.get("Gateway")),
            swarm=port_of(swarm[0]),
        )

    def _require_binary(self) -> Path:
        if self.binary is None:
            raise NodeManagementError(
                f"no Kubo binary given for the repo {self.repo}",
                hint="install the pinned Kubo with 'ipfs-share node install'",
            )
        return self.binary

    def check_version(self) -> str:
        """Return the binary's version; raise NodeVersionError unless it is the expected one."""
        binary = self._require_binary()
        found = kubo_version(binary)
        if self.expected_version is not None and found != normalize_version(self.expected_version):
            raise NodeVersionError(
                f"expected Kubo {self.expected_version}, found {found} at {binary}",
                hint=f"install the pinned Kubo {self.expected_version} with "
                "'ipfs-share node install' (it builds it into the cache), or run Kubo in "
                "Docker: docker compose -f docker/compose.yml up -d",
            )
        return found

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["IPFS_PATH"] = str(self.repo)
        # Kubo >= 0.36 phones home unless told not to; a privacy tool's node must not.
        env["IPFS_TELEMETRY"] = "off"
        return env

    def _ipfs(self, *args: str, timeout: float = 60.0) -> str:
        binary = self._require_binary()
        argv = [str(binary), f"--repo-dir={self.repo}", *args]
        try:
            done = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                timeout=timeout,
                env=self._env(),
                stdin=subprocess.DEVNULL,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise NodeManagementError(f"could not run 'ipfs {' '.join(args)}': {exc}") from exc
        if done.returncode != 0:
            detail = (done.stderr.strip() or done.stdout.strip()).splitlines()
            raise NodeManagementError(
                f"'ipfs {' '.join(args)}' failed with exit code {done.returncode}: "
                f"{detail[-1] if detail else 'no output'}"
            )
        return done.stdout

    def _set(self, key: str, value: object) -> None:
        # `ipfs config` refuses keys the release does not know, so a renamed key fails here.
        self._ipfs("config", "--json", key, json.dumps(value))

    def set_config(self, key: str, value: object) -> None:
        """Set one config key of a stopped node (``ipfs config --json KEY VALUE``)."""
        if self.running_pid() is not None:
            raise NodeManagementError(
                "cannot change the config of a running node", hint="stop it first"
            )
        self._set(key, value)

    def init(self, *, ports: NodePorts | None = None, public_network: bool = False) -> None:
        """Create the repo.

        By default it is a local node with ``ipfs init --profile=test`` semantics: listens
        on 127.0.0.1 only, no bootstrap peers, AutoConf off, mDNS off, so it never reaches
        the internet. ``public_network=True`` keeps Kubo's default networking (bootstrap,
        AutoConf, swarm on all interfaces). Either way the API and gateway listen on
        127.0.0.1 only, pubsub is on (``Pubsub.Enabled``, ``Ipns.UsePubsub``) and
        telemetry is off. ``ports`` default to 0 (the OS picks at each start).
        """
        self.check_version()
        if self.is_initialized():
            raise NodeManagementError(
                f"the Kubo repo {self.repo} is already initialized",
                hint="start it, or remove the directory to begin again (that loses its keys)",
            )
        ports = ports or NodePorts()
        created = not self.repo.exists()
        self.repo.mkdir(parents=True, exist_ok=True)
        try:
            self._init(ports, public_network)
        except BaseException:
            # A half-configured repo would later start with the wrong settings.
            if created:
                shutil.rmtree(self.repo, ignore_errors=True)
            else:
                (self.repo / "config").unlink(missing_ok=True)
            raise

    def _init(self, ports: NodePorts, public_network: bool) -> None:
        if public_network:
            self._ipfs("init", "--empty-repo")
        else:
            self._ipfs("init", "--empty-repo", "--profile=test")
        addresses = dict(self.config().get("Addresses", {}))
        addresses["API"] = f"/ip4/127.0.0.1/tcp/{ports.api}"
        addresses["Gateway"] = f"/ip4/127.0.0.1/tcp/{ports.gateway}"
        if public_network:
            addresses["Swarm"] = [addr.format(port=ports.swarm) for addr in _PUBLIC_SWARM]
        else:
            addresses["Swarm"] = [f"/ip4/127.0.0.1/tcp/{ports.swarm}"]
        self._set("Addresses", addresses)
        # Config keys, not the deprecated --enable-pubsub-experiment/--enable-namesys-pubsub.
        self._set("Pubsub.Enabled", True)
        self._set("Ipns.UsePubsub", True)
        if not public_network:
            # The test profile already sets this; said again because without it Kubo
            # fetches remote config at start.
            self._set("AutoConf.Enabled", False)
        self._set("Plugins.Plugins.telemetry.Config.Mode", "off")

    def set_ports(self, ports: NodePorts) -> None:
        """Change the configured ports of a stopped node (0 lets the OS pick)."""
        if self.running_pid() is not None:
            raise NodeManagementError(
                "cannot change the ports of a running node", hint="stop it first"
            )
        addresses = dict(self.config().get("Addresses", {}))
        addresses["API"] = f"/ip4/127.0.0.1/tcp/{ports.api}"
        addresses["Gateway"] = f"/ip4/127.0.0.1/tcp/{ports.gateway}"
        old = str(self.configured_ports().swarm)

        def moved(maddr: str) -> str:
            parts = maddr.split("/")
            for i in range(1, len(parts) - 1):
                if parts[i] in ("tcp", "udp") and parts[i + 1] == old:
                    parts[i + 1] = str(ports.swarm)
            return "/".join(parts)

        addresses["Swarm"] = [moved(str(a)) for a in addresses.get("Swarm", [])]
        self._set("Addresses", addresses)

    # --- the process -------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        # Serializes start/stop across processes, so two `node start` cannot race.
        # Imported here so that merely importing ipfs_share.node works where fcntl is absent.
        import fcntl

        self.repo.mkdir(parents=True, exist_ok=True)
        with (self.repo / LOCK_FILE).open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _is_ours(self, pid: int) -> bool:
        """True if ``pid`` runs a Kubo daemon on this repo (not a reused pid)."""
        argv = _cmdline(pid)
        if not argv or "daemon" not in argv or f"--repo-dir={self.repo}" not in argv:
            return False
        names = {"ipfs"} | ({self.binary.name} if self.binary else set())
        return Path(argv[0]).name in names

    def _pid_from_file(self) -> int | None:
        text = _read_text(self.pid_file)
        return int(text) if text is not None and text.isdigit() else None

    def running_pid(self) -> int | None:
        """The pid of this repo's daemon if it runs, else None.

        A pid file whose process is gone, or whose pid now belongs to some other process,
        counts as not running (that other process is never touched).
        """
        pid = self._pid_from_file()
        if pid is None or not pid_alive(pid) or not self._is_ours(pid):
            return None
        return pid

    def _drop_stale_files(self) -> None:
        # Only called with the lock held and no daemon of ours running.
        self.pid_file.unlink(missing_ok=True)

    def _alive(self, pid: int) -> bool:
        if self._proc is not None and self._proc.pid == pid:
            return self._proc.poll() is None
        return pid_alive(pid)

    def start(self, *, die_with_parent: bool = False) -> int:
        """Start the daemon if it is not running; return its pid (idempotent).

        Refuses a binary of another version (:class:`NodeVersionError`) and configured
        ports that are taken. Returns once the process is spawned; call
        :meth:`wait_ready` to wait until it answers. With ``die_with_parent`` (Linux) the
        daemon gets SIGTERM when the calling thread exits, a fallback for test fixtures;
        the calling thread must then outlive the daemon.
        """
        with self._locked():
            pid = self.running_pid()
            if pid is not None:
                return pid
            self._drop_stale_files()
            binary = self._require_binary()
            if not self.is_initialized():
                raise NodeManagementError(
                    f"the Kubo repo {self.repo} is not initialized",
                    hint="initialize it first ('ipfs-share node start' does so itself)",
                )
            self.check_version()
            self._check_no_foreign_daemon()
            self._check_ports_free()
            self._rotate_log()
            with self.log_file.open("ab") as log:
                try:
                    self._proc = subprocess.Popen(
                        [str(binary), f"--repo-dir={self.repo}", "daemon"],
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        env=self._env(),
                        cwd=self.repo,
                        # Its own session: Ctrl-C in the user's terminal does not stop it.
                        start_new_session=True,
                        preexec_fn=_parent_death_signal() if die_with_parent else None,
                    )
                except OSError as exc:
                    raise NodeManagementError(f"could not start {binary}: {exc}") from exc
            tmp = self.pid_file.with_suffix(".tmp")
            tmp.write_text(f"{self._proc.pid}\n", encoding="utf-8")
            tmp.replace(self.pid_file)  # atomic: a reader never sees half a pid
            return self._proc.pid

    def _check_no_foreign_daemon(self) -> None:
        # Kubo writes <repo>/api while running and removes it on a clean exit; an api file
        # that answers means someone started a daemon here without us.
        api = _read_text(self.repo / "api")
        if api is None:
            return
        try:
            url: str | None = multiaddr_to_url(api)
        except InvalidInputError:
            url = None
        if url is not None and _rpc(url, "id", timeout=1.0) is not None:
            raise NodeManagementError(
                f"a Kubo daemon not started by ipfs-share already serves {self.repo} at {api}",
                hint="stop that daemon, or use it as it is with --api " + api,
            )
        (self.repo / "api").unlink(missing_ok=True)  # stale: left by a killed daemon

    def _check_ports_free(self) -> None:
        ports = self.configured_ports()
        swarm_host = "127.0.0.1" if self.network() == "local" else "0.0.0.0"  # noqa: S104
        for name, port, host in (
            ("api", ports.api, "127.0.0.1"),
            ("gateway", ports.gateway, "127.0.0.1"),
            ("swarm", ports.swarm, swarm_host),
        ):
            if port and not port_is_free(port, host):
                raise NodeManagementError(
                    f"the node's {name} port {port} is in use by another process",
                    hint=f"stop what uses port {port}, or choose another with "
                    f"'ipfs-share node start --{name}-port N' (0 lets the OS pick)",
                )

    def _rotate_log(self) -> None:
        # Keep the previous run's log (one generation) for post-mortems.
        if self.log_file.exists():
            self.log_file.replace(self.log_file.with_suffix(".log.1"))

    def log_tail(self, lines: int = 5) -> str:
        """The last non-empty lines of the daemon log, joined by ' | '."""
        try:
            text = self.log_file.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        kept = [line.strip() for line in text.splitlines() if line.strip()]
        return " | ".join(kept[-lines:])

    def wait_ready(self, timeout: float = 30.0) -> RunningNode:
        """Poll ``POST /api/v0/id`` until this repo's daemon answers, for at most ``timeout`` s.

        Checks the answering peer is this repo's identity (a port can be reused). Raises
        :class:`NodeManagementError` with the log's last lines if the daemon exits, and
        on timeout (the daemon is then left running: stop it or look at the log).
        """
        pid = self._proc.pid if self._proc is not None else self.running_pid()
        if pid is None:
            raise NodeManagementError(f"no daemon is running on {self.repo}", hint="start it first")
        # A daemon found running (not started here) tells its binary by its command line.
        binary = self.binary or Path((_cmdline(pid) or ["ipfs"])[0])
        expected = self.peer_id()
        # Kubo writes the repo's gateway file when its gateway listens, which under load can
        # be after the API answers: a configured gateway is waited for too (same deadline).
        serves_gateway = bool(self.config().get("Addresses", {}).get("Gateway"))
        deadline = time.monotonic() + timeout
        while True:
            if not self._alive(pid):
                code = self._proc.returncode if self._proc is not None else None
                raise NodeManagementError(
                    f"kubo exited while starting (exit code {code}): {self.log_tail()}",
                    hint=f"see the log {self.log_file}",
                )
            api = _read_text(self.repo / "api")
            if api is not None:
                url = multiaddr_to_url(api)
                ident = _rpc(url, "id", timeout=1.0)
                if ident is not None and ident.get("ID") == expected:
                    gateway = _read_text(self.repo / "gateway")
                    if gateway is None and serves_gateway and time.monotonic() < deadline:
                        time.sleep(_POLL)
                        continue
                    version = _rpc(url, "version", timeout=1.0) or {}
                    return RunningNode(
                        api_multiaddr=api,
                        api_url=url,
                        gateway_url=gateway,
                        peer_id=str(ident["ID"]),
                        version=normalize_version(str(version.get("Version", "unknown"))),
                        pid=pid,
                        repo=self.repo,
                        binary=binary,
                        swarm_addrs=tuple(str(a) for a in ident.get("Addresses") or ()),
                    )
            if time.monotonic() >= deadline:
                raise NodeManagementError(
                    f"kubo did not answer on its API within {timeout:g} s",
                    hint=f"it may still be starting: see the log {self.log_file}; "
                    "'ipfs-share node stop' stops it",
                )
            time.sleep(_POLL)

    def _wait_gone(self, pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self._alive(pid):
            if time.monotonic() >= deadline:
                return False
            time.sleep(_POLL)
        return True

    def stop(self, timeout: float = 10.0) -> int | None:
        """Stop the daemon: SIGTERM to its pid, wait up to ``timeout`` s, then SIGKILL.

        Returns the pid it stopped, or None if none of ours was running (a stale pid file
        is removed; a process that merely reuses the pid is left alone).
        """
        with self._locked():
            pid = self.running_pid()
            if pid is None:
                self._drop_stale_files()
                return None
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            if not self._wait_gone(pid, timeout):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                self._wait_gone(pid, 5.0)
                # Killed, Kubo could not remove these; they would point clients at nothing.
                (self.repo / "api").unlink(missing_ok=True)
                (self.repo / "gateway").unlink(missing_ok=True)
            self.pid_file.unlink(missing_ok=True)
            self._proc = None
            return pid

    def status(self, timeout: float = 2.0) -> DaemonStatus:
        """Whether the daemon runs and answers, with its pid, API, version and peer id."""
        initialized = self.is_initialized()
        pid = self.running_pid()
        api = _read_text(self.repo / "api") if pid is not None else None
        try:
            url = multiaddr_to_url(api) if api is not None else None
        except InvalidInputError:
            url = None  # a garbled api file: the daemon counts as not answering
        answer = _rpc(url, "version", timeout=timeout) if url is not None else None
        return DaemonStatus(
            repo=self.repo,
            initialized=initialized,
            running=pid is not None,
            responding=answer is not None,
            pid=pid,
            api_multiaddr=api,
            api_url=url,
            gateway_url=_read_text(self.repo / "gateway") if pid is not None else None,
            peer_id=self.peer_id(),
            version=normalize_version(str(answer["Version"])) if answer else None,
            network=self.network(),
            log_file=self.log_file,
        )
