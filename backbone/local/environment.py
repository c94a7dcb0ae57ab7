"""`backbone local`: up, down, status, stop SERVICE, start SERVICE.

All state lives in one directory (mode 0700): `state.json` records what was started
(argv, pid and its start time, ports) so `down` stops exactly that, and `outputs.json` is the outputs
contract in the same two-part shape `pulumi stack output --json --show-secrets` prints.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
from pathlib import Path
from typing import Any, Callable

from ..contract import Contract, merge_outputs, split_secrets
from . import kafka as local_kafka
from . import services as svcs
from .binaries import SETUP_HINT, find_binaries
from .pki import Authority
from .processes import is_ours, spawn, stop_all
from .provision import provision as provision_data_plane
from .services import LocalError, LocalUsageError

SERVICES = ("timescale", "redis", "kafka")
# how each kind of process shuts down cleanly (PostgreSQL: SIGINT is its "fast" shutdown)
STOP_SIGNAL = {"timescale": signal.SIGINT, "redis": signal.SIGTERM, "kafka": signal.SIGTERM,
               "postgres": signal.SIGINT, "patroni": signal.SIGTERM, "etcd": signal.SIGTERM,
               "sentinel": signal.SIGTERM}


def default_topics(brokers: int) -> list[dict[str, Any]]:
    rf = min(3, brokers)
    isr = "2" if rf >= 3 else "1"
    return [
        {"name": "ingest.events", "partitions": 6, "replication_factor": rf,
         "config": {"min.insync.replicas": isr, "retention.ms": "604800000"}},
        {"name": "ingest.metrics", "partitions": 3, "replication_factor": rf,
         "config": {"min.insync.replicas": isr, "retention.ms": "259200000"}},
    ]


class LocalEnvironment:
    def __init__(self, state_dir: Path, progress: Callable[[str], None] = lambda message: None):
        self.state_dir = Path(state_dir).absolute()
        self.state_file = self.state_dir / "state.json"
        self.outputs_file = self.state_dir / "outputs.json"
        self.progress = progress

    # --- state ---------------------------------------------------------------------
    def _load(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.state_file.read_text())
        except FileNotFoundError:
            return None
        except json.JSONDecodeError:
            raise LocalError(f"{self.state_file} is not valid JSON; remove {self.state_dir} by hand") from None

    def _save(self, state: dict[str, Any]) -> None:
        _write_private(self.state_file, json.dumps(state, indent=2))

    # --- up / down -------------------------------------------------------------------
    def up(self, kafka_brokers: int = 1, timeout_s: float = 120, provision: bool = True, ha: bool = False,
           insecure: bool = False) -> Path:
        state = self._load()
        if state is not None:
            self.progress(f"{self.state_dir} already holds an environment; starting whatever is stopped")
            for name in state["services"]:
                self._start(state, name)
            self._wait_ready(state, list(state["services"]), timeout_s)
            return self.outputs_file
        if kafka_brokers < 1:
            raise LocalUsageError("--kafka-brokers must be at least 1")
        if ha and kafka_brokers < 3:
            kafka_brokers = 3  # the HA topology: 3 KRaft nodes, replication factor 3
        bins = find_binaries()
        missing = bins.missing(list(SERVICES) + (["patroni", "etcd", "sentinel"] if ha else []))
        if missing:
            raise LocalUsageError(f"missing: {', '.join(missing)}; {SETUP_HINT}")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.state_dir, 0o700)
        state = {"version": 1, "kafka_brokers": kafka_brokers, "ha": ha, "insecure": insecure, "services": {},
                 "passwords": {"timescale": secrets.token_urlsafe(24), "redis": secrets.token_urlsafe(24)}}
        try:
            self._save(state)
            self.progress("preparing configuration and data directories"
                          + ("" if insecure else ", the environment's CA and certificates"))
            ca = None if insecure else Authority(self.state_dir / "tls", f"backbone local CA ({self.state_dir.name})")
            for family in topology(state).values():
                state["services"] |= family.prepare(self.state_dir, bins, state["passwords"], ca)
            for node in svcs.prepare_kafka(self.state_dir, bins, kafka_brokers, state["passwords"], ca):
                state["services"][node.pop("name")] = node
            self._save(state)
            for name in state["services"]:
                self._start(state, name)
            self._wait_ready(state, list(state["services"]), timeout_s)
            outputs = self.outputs(state)
            _write_private(self.outputs_file, json.dumps(outputs, indent=2))
            contract = Contract.model_validate(merge_outputs(outputs))
            if local_kafka.grant_admin(contract, self.state_dir, state, timeout_s=30):
                self.progress("the Kafka admin principal's own ACLs granted")
            if provision:
                provision_data_plane(contract, self.progress)
        except BaseException:
            self.progress("start-up failed; stopping what was started")
            self.down()
            raise
        self.progress(f"outputs contract written to {self.outputs_file}")
        return self.outputs_file

    def down(self) -> list[str]:
        state = self._load()
        stopped: list[str] = []
        if state is None:
            if self.state_dir.exists():
                shutil.rmtree(self.state_dir, ignore_errors=True)
            return stopped
        services = state["services"]
        pids = stop_all([(s.get("pid"), s.get("start_ticks"), STOP_SIGNAL[s["kind"]]) for s in services.values()],
                        grace_s=10)
        for name, svc in services.items():
            if svc.get("pid") in pids:
                stopped.append(name)
                self.progress(f"stopped {name} (pid {svc['pid']})")
            if svc.get("outside_state_dir"):  # a data dir that had to live elsewhere (see services.py)
                shutil.rmtree(svc["outside_state_dir"], ignore_errors=True)
        from .partition import heal, table_for
        if heal(table_for(self.state_dir)):  # a partition a killed drill left behind
            self.progress("removed a partition left by a drill")
        shutil.rmtree(self.state_dir, ignore_errors=True)
        return stopped

    # --- one service ---------------------------------------------------------------
    def _names(self, state: dict[str, Any], service: str) -> list[str]:
        names = [n for n, s in state["services"].items() if n == service or s["kind"] == service]
        if not names:
            known = ", ".join(sorted(set(state["services"]) | {s["kind"] for s in state["services"].values()}))
            raise LocalUsageError(f"unknown service {service!r}; this environment has: {known}")
        return names

    def _require(self) -> dict[str, Any]:
        state = self._load()
        if state is None:
            raise LocalUsageError(f"no local environment in {self.state_dir}; run `backbone local up` first")
        return state

    def stop(self, service: str, sig: int | None = None) -> list[str]:
        state = self._require()
        names = self._names(state, service)
        svcs_ = [state["services"][n] for n in names]
        # a KRaft node whose quorum is stopping with it cannot finish a controlled shutdown:
        # 10 s is plenty for the ones that can
        pids = stop_all([(s.get("pid"), s.get("start_ticks"), sig or STOP_SIGNAL[s["kind"]]) for s in svcs_],
                        grace_s=10)
        done = []
        for name, svc in zip(names, svcs_):
            if svc.get("pid") in pids:
                done.append(name)
                self.progress(f"stopped {name} (pid {svc['pid']})")
            else:
                self.progress(f"{name} was not running")
            svc["pid"] = None
        self._save(state)
        return done

    def start(self, service: str, timeout_s: float = 120) -> list[str]:
        state = self._require()
        names = self._names(state, service)
        for name in names:
            self._start(state, name)
        self._wait_ready(state, names, timeout_s)
        return names

    def _start(self, state: dict[str, Any], name: str) -> None:
        svc = state["services"][name]
        if is_ours(svc.get("pid"), svc.get("start_ticks")):
            return
        if svc.get("outside_state_dir") and not Path(svc["outside_state_dir"]).is_dir():
            raise LocalError(f"the data directory {svc['outside_state_dir']} of {name} is gone; "
                             "run `backbone local down` then `up`")
        from .partition import member_gid
        started = spawn(svc["argv"], Path(svc["log"]), user=svc.get("user"),
                        group=member_gid(list(state["services"]), name))
        svc["pid"], svc["start_ticks"] = started.pid, started.start_ticks
        self._save(state)
        self.progress(f"started {name} on 127.0.0.1:{svc['port']} (pid {started.pid})")

    def _wait_ready(self, state: dict[str, Any], names: list[str], timeout_s: float) -> None:
        for family in topology(state).values():
            mine = [n for n in names if state["services"][n]["kind"] in family.kinds]
            if mine:
                took = family.ready(state, mine, timeout_s)
                self.progress(f"{', '.join(mine)} ready after {took:.1f} s")
        kafka = [n for n in names if state["services"][n]["kind"] == "kafka"]
        if kafka:
            nodes = [s for s in state["services"].values() if s["kind"] == "kafka"]
            up = [s for s in nodes if is_ours(s.get("pid"), s.get("start_ticks"))]
            if not up:
                raise LocalError("no Kafka node is running")
            took = svcs.kafka_ready(up, timeout_s, local_kafka.node_access(self.state_dir, state))
            self.progress(f"kafka ready after {took:.1f} s ({len(up)} broker(s))")

    # --- reporting -------------------------------------------------------------------
    def status(self) -> list[dict[str, Any]]:
        state = self._require()
        rows = []
        for name, svc in state["services"].items():
            running = is_ours(svc.get("pid"), svc.get("start_ticks"))
            rows.append({"service": name, "kind": svc["kind"], "state": "running" if running else "stopped",
                         "pid": svc.get("pid") if running else None, "address": f"127.0.0.1:{svc['port']}",
                         "log": svc["log"]})
        return rows

    def outputs(self, state: dict[str, Any]) -> dict[str, Any]:
        kafka = [n for n in state["services"].values() if n["kind"] == "kafka"]
        families = topology(state)
        document = {
            "contract_version": 1, "environment": "local", "tier": "institutional", "platform": "local",
            "timescale": families["timescale"].contract(state),
            "redis": families["redis"].contract(state),
            "kafka": {"bootstrap_servers": ",".join(f"127.0.0.1:{n['port']}" for n in kafka),
                      "expected_brokers": len(kafka), "topics": default_topics(len(kafka)),
                      **local_kafka.contract_part(state["passwords"], self._ca_pem(state) if local_kafka.secure(state)
                                                  else None, default_topics(len(kafka)))},
        }
        Contract.model_validate(document)  # never write a contract backbone itself would reject
        public, secret = split_secrets(document)
        return {"backbone": public, "backbone_secrets": secret}


    def _ca_pem(self, state: dict[str, Any]) -> str:
        return (self.state_dir / "tls" / "ca.pem").read_text()


def topology(state: dict[str, Any]) -> dict[str, Any]:
    """The module that prepares, readies and describes each service family: single nodes,
    or (with --ha) the HA topologies the staging stack declares."""
    if state.get("ha"):
        from . import patroni, sentinel
        return {"timescale": patroni, "redis": sentinel}
    return {"timescale": svcs.SingleTimescale, "redis": svcs.SingleRedis}


def _write_private(path: Path, text: str) -> None:
    """Write atomically with mode 0600: readers never see half a file or a wider mode."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)
