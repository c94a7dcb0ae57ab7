"""The HA Timescale topology of `backbone local up --ha`: one etcd and two Patroni members
(`pg-1`, `pg-2`), each running PostgreSQL 15 as its child, as the staging stack declares it.

Patroni's DCS is `etcd3` (etcd 3.4's v3 API, no `--enable-v2`). PostgreSQL refuses to run
as root, so when we are root each member runs as `postgres` from a temp dir that user owns
(recorded as `outside_state_dir`, removed by `down`): the data dir, the socket dir, the
member's certificate and key, and its patroni.yml, which carries passwords and is written
0600. Patroni's YAML comes from `serviceconfig.patroni_config`, its failure detection from
`patroni_dynamic_config`.

On a secure environment (the default) etcd speaks TLS to clients and its peer port and
requires a client certificate from the environment's CA (Patroni's and backbone's own);
PostgreSQL is TLS only with the accounts of `pgaccess`; the REST API is https, and its
unsafe endpoints (switchover, restart) need the API's user and password (state.json).
`--insecure` keeps all of it plaintext and open, as before.
"""
from __future__ import annotations


import base64
import json
import os
import platform
import pwd
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any


from .. import serviceconfig as sc
from ..clients.tls import client_context
if TYPE_CHECKING:
    from .pki import Authority
from . import pgaccess
from .binaries import Binaries
from .pki import secret_for
from .processes import tail
from .services import LocalError, _alive, _wait, free_port, pg_user

kinds = ("etcd", "patroni")
MEMBERS = ("pg-1", "pg-2")
REPLICATION_USER = "replicator"
API_USER = "patroni"  # the REST API's unsafe endpoints (secure environments)
DATABASE = "backbone"
SETTINGS = sc.PatroniSettings(scope="backbone-local", ttl=20, loop_wait=2, retry_timeout=4, synchronous_mode=True)
# etcd 3.4 refuses to start on architectures it does not officially support unless told to
SUPPORTED_ETCD_ARCHS = {"x86_64", "amd64"}


def prepare(state_dir: Path, bins: Binaries, passwords: dict[str, str],
            ca: "Authority | None" = None) -> dict[str, dict[str, Any]]:
    secure = ca is not None
    pgaccess.make_passwords(passwords, secure)
    services = {"etcd": _prepare_etcd(state_dir, bins, ca)}
    superuser, superuser_password = pgaccess.superuser(passwords, secure)
    # The replication password lives in state.json and the members' 0600 patroni.yml files.
    credentials = sc.PatroniCredentials(superuser, superuser_password, REPLICATION_USER,
                                        secret_for(passwords, "replication"))
    api_auth = (API_USER, secret_for(passwords, "patroni_api")) if secure else None
    pg_ports = {name: free_port() for name in MEMBERS}
    for name in MEMBERS:
        services[name] = _prepare_member(state_dir, bins, name, pg_ports, services["etcd"], credentials, ca,
                                         api_auth)
    return services


def _prepare_etcd(state_dir: Path, bins: Binaries, ca: "Authority | None") -> dict[str, Any]:
    port, data = free_port(), state_dir / "etcd" / "data"
    data.parent.mkdir(parents=True, exist_ok=True)
    tls, extra = None, {}
    if ca is not None:
        # etcd's server and peer certificate, and backbone's own client certificate (readiness)
        etcd = ca.issue("etcd", server=True, client=True, directory=data.parent / "tls")
        client = ca.issue("etcd-client", server=False, client=True, directory=data.parent / "tls")
        tls = sc.TlsFiles(cert=str(etcd.cert), key=str(etcd.key), ca=str(ca.cert_path))
        extra = {"ca": str(ca.cert_path), "client_cert": str(client.cert), "client_key": str(client.key)}
    argv = [str(bins.etcd), *sc.etcd_args("etcd-1", "127.0.0.1", port, free_port(), str(data), tls)]
    arch = platform.machine()
    if arch not in SUPPORTED_ETCD_ARCHS:
        # env execs etcd: the recorded pid is still etcd's; nothing secret on this line
        argv = ["/usr/bin/env", f"ETCD_UNSUPPORTED_ARCH={_go_arch(arch)}", *argv]
    return {"kind": "etcd", "port": port, "home": str(data.parent), "user": None,
            "log": str(state_dir / "logs" / "etcd.log"), "argv": argv, **extra}


def _go_arch(machine: str) -> str:
    return {"aarch64": "arm64", "armv7l": "arm", "i686": "386"}.get(machine, machine)


def _prepare_member(state_dir: Path, bins: Binaries, name: str, pg_ports: dict[str, int], etcd: dict[str, Any],
                    credentials: sc.PatroniCredentials, ca: "Authority | None",
                    api_auth: tuple[str, str] | None) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix=f"backbone-{name}-"))
    os.chmod(home, 0o700)
    user = pg_user()
    member = sc.PatroniMember(name=name, host="127.0.0.1", pg_port=pg_ports[name], api_port=free_port(),
                              data_dir=str(home / "data"))
    # The cluster-wide parameters are pg-1's; Patroni sets port/listen per member from `listen`.
    pg = sc.PostgresSettings(port=pg_ports[MEMBERS[0]], listen_addresses="127.0.0.1",
                             max_connections=50, shared_buffers="64MB")
    # one certificate per member: PostgreSQL's, the REST API's, and the client certificate
    # the member shows etcd and the other members' APIs
    tls = pgaccess.server_tls(ca, name, home, user) if ca is not None else None
    dcs = sc.patroni_etcd3([f"127.0.0.1:{etcd['port']}"], tls)
    config = sc.patroni_config(SETTINGS, pg, member, dcs, credentials, bin_dir=str(bins.pg_bin),
                               socket_dir=str(home), pgpass=str(home / "pgpass"), tls=tls, api_auth=api_auth)
    conf = home / "patroni.yml"
    fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(config, f, indent=2)  # JSON is YAML: no YAML writer needed
    if user:
        uid = pwd.getpwnam(user).pw_uid
        for path in (home, conf):
            os.chown(path, uid, -1)
    return {"kind": "patroni", "port": member.pg_port, "api_port": member.api_port, "home": str(home),
            "data_dir": member.data_dir, "outside_state_dir": str(home), "user": user,
            "log": str(state_dir / "logs" / f"{name}.log"), "argv": [str(bins.patroni), str(conf)],
            **({"ca": tls.ca} if tls else {})}


# --- Patroni's REST API -------------------------------------------------------------------

def api(state: dict[str, Any], name: str, path: str, timeout_s: float = 2, method: str = "GET",
        body: dict | None = None) -> Any:
    """A call to member `name`'s REST API: https verified with the environment's CA and with the
    API's credentials on a secure environment, plain http on an --insecure one."""
    port = state["services"][name]["api_port"]
    if not pgaccess.secure(state):
        return _call(f"http://127.0.0.1:{port}{path}", None, {}, timeout_s, method, body)
    token = base64.b64encode(f"{API_USER}:{state['passwords']['patroni_api']}".encode()).decode()
    return _call(f"https://127.0.0.1:{port}{path}", client_context(pgaccess.ca_pem(state)),
                 {"Authorization": f"Basic {token}"}, timeout_s, method, body)


def _call(url: str, context, headers: dict[str, str], timeout_s: float, method: str, body: dict | None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers=headers | ({"Content-Type": "application/json"} if data else {}))
    with urllib.request.urlopen(request, timeout=timeout_s, context=context) as resp:
        text = resp.read()
    try:
        return json.loads(text or b"null")
    except ValueError:
        return text.decode(errors="replace")


def etcd_health(state: dict[str, Any], timeout_s: float = 2) -> bool:
    """etcd's /health, with backbone's client certificate on a secure environment."""
    etcd = state["services"]["etcd"]
    if not etcd.get("client_cert"):
        return _call(f"http://127.0.0.1:{etcd['port']}/health", None, {}, timeout_s, "GET", None)["health"] == "true"
    context = client_context(Path(etcd["ca"]).read_text())
    context.load_cert_chain(etcd["client_cert"], etcd["client_key"])
    return _call(f"https://127.0.0.1:{etcd['port']}/health", context, {}, timeout_s, "GET", None)["health"] == "true"


def cluster(state: dict[str, Any], timeout_s: float = 2) -> dict[str, Any]:
    """Patroni's `/cluster` view, from the first member whose API answers."""
    last: Exception | None = None
    for name in MEMBERS:
        svc = state["services"][name]
        if not _alive(svc):
            continue
        try:
            return api(state, name, "/cluster", timeout_s)
        except OSError as exc:
            last = exc
    raise LocalError(f"no Patroni REST API answered ({type(last).__name__ if last else 'no member running'})")


def _leader(view: dict[str, Any]) -> str | None:
    return next((m["name"] for m in view.get("members", []) if m.get("role") in ("leader", "master")), None)


# --- readiness ------------------------------------------------------------------------------

def ready(state: dict[str, Any], names: list[str], timeout_s: float) -> float:
    services = state["services"]
    started = time.monotonic()
    etcd = services["etcd"]
    if "etcd" in names:
        _wait("etcd", lambda: etcd_health(state), timeout_s, Path(etcd["log"]), lambda: _alive(etcd))
    running = [n for n in MEMBERS if _alive(services[n])]
    if not running:
        return time.monotonic() - started
    logs = ", ".join(services[n]["log"] for n in running)
    state_of: dict[str, str] = {}

    def cluster_ready() -> bool:
        view = cluster(state)
        state_of["leader"] = _leader(view) or "none"
        return _settled(view, state, running)

    def database_ready() -> bool:
        leader = _leader(cluster(state))
        port = services[leader]["port"]
        pgaccess.bootstrap(state, port, 2)  # the database, and the accounts by duty when secure
        with pgaccess.admin(state, port, DATABASE, 2) as conn:
            conn.execute("SELECT 1").fetchone()
        return True

    remaining = lambda: max(1.0, timeout_s - (time.monotonic() - started))  # noqa: E731
    alive = lambda: all(_alive(services[n]) for n in running)  # noqa: E731
    log = Path(services[running[0]]["log"])
    try:
        _wait(f"Patroni cluster ({', '.join(running)}: a leader and streaming replicas)", cluster_ready,
              remaining(), log, alive)
        _wait(f"database {DATABASE!r} through the Patroni leader", database_ready, remaining(), log, alive)
    except LocalError as exc:
        # the leader's log rarely says why a replica did not join: show the others' too
        others = "".join(f"\nlast lines of {services[n]['log']}:\n{tail(Path(services[n]['log']), 8)}"
                         for n in running if n != state_of.get("leader"))
        raise LocalError(f"{exc}{others}\n(leader seen: {state_of.get('leader', 'none')}; "
                         f"member logs: {logs})") from None
    return time.monotonic() - started


def _settled(view: dict[str, Any], state: dict[str, Any], names: list[str] | tuple[str, ...]) -> bool:
    """In Patroni's `view`: a leader, every one of `names` running, a synchronous standby
    among the others (synchronous mode), and the leader's PostgreSQL streaming to them all."""
    leader = _leader(view)
    members = {m["name"]: m for m in view.get("members", [])}
    # a member's state: "running" (the leader; replicas before Patroni 4), "streaming" (replicas)
    if leader is None or any(n not in members or members[n].get("state") not in ("running", "streaming")
                             for n in names):
        return False
    standbys = [n for n in names if n != leader]
    if not standbys:
        return True
    if SETTINGS.synchronous_mode and not any(members[n].get("role") == "sync_standby" for n in standbys):
        return False
    return set(standbys) <= _streaming(state, state["services"][leader]["port"])


def _streaming(state: dict[str, Any], port: int) -> set[str]:
    """Members (Patroni's application_name) streaming from the leader at `port`."""
    with pgaccess.admin(state, port, "postgres", 2, autocommit=True) as conn:
        rows = conn.execute("SELECT application_name FROM pg_stat_replication WHERE state = 'streaming'").fetchall()
    return {r[0] for r in rows}


def contract(state: dict[str, Any]) -> dict[str, Any]:
    services = state["services"]
    return {**pgaccess.contract(state, "127.0.0.1", services[MEMBERS[0]]["port"]), "ha": "patroni",
            # libpq tries every member and keeps the one that accepts writes (the leader)
            "replicas": [{"host": "127.0.0.1", "port": services[n]["port"]} for n in MEMBERS[1:]]}


# --- for the drills ---------------------------------------------------------------------

def primary(state: dict[str, Any], timeout_s: float = 5) -> str:
    """The member Patroni currently names leader (waits up to `timeout_s` for one)."""
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while True:
        try:
            leader = _leader(cluster(state))
            if leader:
                return leader
            last = "no leader"
        except LocalError as exc:
            last = str(exc)
        if time.monotonic() > deadline:
            raise LocalError(f"Patroni named no leader within {timeout_s:g} s ({last})")
        time.sleep(0.2)


def rejoined(state: dict[str, Any], name: str) -> bool:
    """Whether the cluster has settled with `name` back in it, as a peer sees it: a leader, and
    every other member a streaming (synchronous mode: the synchronous) standby that the
    leader's PostgreSQL streams to. `name` is one of those standbys after a failover, or still
    the leader when none happened. Not asked of `name` itself: just after a pause it still
    reports what it was."""
    peer = next(n for n in MEMBERS if n != name)
    return _settled(api(state, peer, "/cluster", 2), state, MEMBERS)


def replicas(state: dict[str, Any]) -> list[str]:
    leader = primary(state)
    return [n for n in MEMBERS if n != leader]


def member_pids(state: dict[str, Any], name: str) -> list[int]:
    """Patroni's pid and, while it runs, its postmaster's: SIGKILL both to kill the node."""
    svc = state["services"][name]
    pids = [svc["pid"]] if _alive(svc) else []
    try:
        postmaster = int((Path(svc["data_dir"]) / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return pids
    if Path(f"/proc/{postmaster}").exists():
        pids.append(postmaster)
    return pids
