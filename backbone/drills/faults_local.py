"""Fault injection on the local platform: signals to the processes `backbone local` started
(found by pid and start time, never by name), and target resolution: which member is the
Kafka partition leader or controller, the Redis master, the Patroni leader."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any


from ..local.environment import LocalEnvironment, topology
from ..local.processes import is_ours
from ..clients import kafka as kafka_client
from ..local import partition
from ..local.kafka import node_access
from .faults import FaultError


def broker_views(ports: list[int], topic: str | None = None, want: set[int] | None = None,
                 attempts: int = 30, access: "kafka_client.NodeAccess | None" = None) -> dict[int, dict[tuple[str, int], tuple[tuple, int, tuple]]]:
    """What each broker (by port) itself says of each partition: (replicas, leader, ISR), for
    at least the brokers in `want` (default: all). librdkafka sends a metadata request to
    whichever broker it likes, and during or just after a partition the isolated one answers
    from a stale view: every answer is filed under the broker that gave it, never under the
    one asked. Fresh clients, bootstrapped at each broker in turn, until all wanted answered."""
    want = set(ports if want is None else want)
    views: dict[int, dict] = {}
    for attempt in range(attempts):
        admin = kafka_client.node_admin(f"127.0.0.1:{ports[attempt % len(ports)]}", 2, quiet=False, access=access)
        md = admin.list_topics(topic, timeout=2)
        # [proto://]host:port/id or .../bootstrap: librdkafka names a TLS or SASL broker with its protocol
        by = int(md.orig_broker_name.rpartition("://")[2].split("/")[0].rsplit(":", 1)[1])
        views.setdefault(by, {(t.topic, p.id): (tuple(p.replicas), p.leader, tuple(sorted(p.isrs)))
                              for t in md.topics.values() for p in t.partitions.values()})
        if want <= views.keys():
            return views
    raise FaultError(f"no metadata answer from the brokers on ports {sorted(want - views.keys())}")


def _assigned_ports(svc: dict[str, Any]) -> set[int]:
    """The ports the environment gave a member: `port`, `api_port`, `controller_port`, ..."""
    return {v for k, v in svc.items() if k.endswith("port") and isinstance(v, int) and not isinstance(v, bool)}


class LocalFaults:
    platform = "local"

    def __init__(self, state_dir: Path, progress=lambda message: None):
        self.env = LocalEnvironment(state_dir, progress=progress)
        self.partition_proof: dict[str, Any] | None = None  # the last partition's cut ports and probes

    @classmethod
    def create(cls, options) -> LocalFaults:
        return cls(options.state_dir, progress=options.progress)

    def _state(self) -> dict[str, Any]:
        return self.env._require()

    def _svc(self, member: str) -> dict[str, Any]:
        services = self._state()["services"]
        if member not in services:
            raise FaultError(f"no member {member!r} in the local environment ({', '.join(services)})")
        return services[member]

    def _pids(self, member: str) -> list[int]:
        state, svc = self._state(), self._svc(member)
        if not is_ours(svc.get("pid"), svc.get("start_ticks")):
            raise FaultError(f"{member} is not running")
        family = topology(state).get("timescale")
        if svc["kind"] == "patroni" and hasattr(family, "member_pids"):
            return family.member_pids(state, member)  # Patroni and its postmaster: the whole node
        return [svc["pid"]]

    def _tree(self, member: str) -> list[int]:
        """Every process of the member: a paused node must not keep serving through the
        backends its postmaster forked (they run on their own)."""
        pids = dict.fromkeys(self._pids(member))
        for pid in list(pids):
            pids.update(dict.fromkeys(partition.process_tree(pid)))
        return list(pids)

    def preflight(self, fault: str) -> None:
        """Refuse a fault this platform cannot inject, before any write or signal; remove a
        partition an earlier, killed drill left behind."""
        partition.heal(self.table)
        if fault == "partition":
            why = partition.unavailable()
            if why:
                raise FaultError(f"partition is not available here: {why}")

    @property
    def table(self) -> str:
        return partition.table_for(self.env.state_dir)

    def _partition(self, member: str) -> None:
        """Cut `member` off from the other members of its service (Patroni and etcd; Redis
        and the Sentinels; the Kafka nodes) in both directions; clients still reach all.
        Proven before it counts: `partition_proof` holds the cut ports and the probes."""
        state = self._state()
        services = state["services"]
        kind = services[member]["kind"]
        kinds = next((f.kinds for f in topology(state).values() if kind in getattr(f, "kinds", ())), (kind,))
        peers = [n for n, s in services.items() if s["kind"] in kinds and n != member
                 and is_ours(s.get("pid"), s.get("start_ticks"))]
        names = list(services)

        def gid(name: str) -> int:
            return partition.member_gid(names, name)
        self.partition_proof = None
        try:
            ports = {n: partition.member_ports(n, gid(n), _assigned_ports(services[n]), self._pids(n))
                     for n in [member, *peers]}
            peer_ports = set().union(*(ports[p] for p in peers))
            partition.cut(self.table, gid(member), ports[member], {gid(p) for p in peers}, peer_ports)
            proof = self._prove(member, peers, ports, gid)
        except partition.PartitionError as exc:
            partition.heal(self.table)
            raise FaultError(str(exc)) from None
        if not proof["proven"]:
            partition.heal(self.table)
            open_ = [f"{p['from']} -> {p['to']} port {p['port']}: {p['outcome']}" for p in proof["probes"]
                     if not p["blocked"]]
            raise FaultError(f"the partition of {member} did not hold, healed and abandoned: still reachable "
                             f"{'; '.join(open_)}")
        # the member's own ports, cut or not, tell which acknowledged writes it answered
        self.partition_proof = proof | {"assigned_ports": sorted(_assigned_ports(services[member]))}

    @staticmethod
    def _prove(member: str, peers: list[str], ports: dict[str, set[int]], gid) -> dict[str, Any]:
        """While the cut holds: every peer, as the kernel files its sockets, connects to every
        cut port of the member, and the member to every port of its peers; each must time out.
        A client reaching the member's ports shows the timeouts are the cut's doing."""
        owner = {port: p for p in peers for port in ports[p]}
        running = {p: partition.probe_start(gid(p), ports[member]) for p in peers}
        running[member] = partition.probe_start(gid(member), set(owner))
        client = partition.probe_start(None, ports[member])
        probes = []
        for source, proc in running.items():
            for port, outcome in sorted(partition.probe_result(proc).items()):
                probes.append({"from": source, "to": member if source != member else owner[port], "port": port,
                               "outcome": outcome, "blocked": outcome in partition.BLOCKED})
        return {"member": member, "cut_ports": sorted(ports[member]),
                "peer_ports": {p: sorted(ports[p]) for p in peers}, "probes": probes,
                "client_probes": [{"port": port, "outcome": outcome}
                                  for port, outcome in sorted(partition.probe_result(client).items())],
                "proven": bool(probes) and all(p["blocked"] for p in probes)}

    def redis_bound(self, min_replicas: int, max_lag_s: int) -> tuple[int, int]:
        """Enforce the contract's min-replicas-to-write / min-replicas-max-lag on every Redis
        node (the stacks write them into redis.conf; `local up` leaves Redis' defaults); the
        values they had, for `redis_bound(*previous)` afterwards."""
        from ..local.redis_access import admin_client
        state = self._state()
        previous = None
        for svc in (s for s in state["services"].values() if s["kind"] == "redis"):
            client = admin_client(state, svc)
            try:
                if previous is None:
                    got = client.config_get("min-replicas-*")
                    previous = (int(got["min-replicas-to-write"]), int(got["min-replicas-max-lag"]))
                client.config_set("min-replicas-to-write", min_replicas)
                client.config_set("min-replicas-max-lag", max_lag_s)
            finally:
                client.close()
        return previous or (0, 10)

    def _wait_rejoined(self, member: str, timeout_s: float = 60.0) -> None:
        """After a heal: until the member serves its side again (a replica streaming from the
        new primary, a broker back in the cluster), so what is read back, and the next drill,
        see the settled topology."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if self._rejoined(member):
                    return
            except Exception:  # not answering yet
                pass
            time.sleep(0.5)
        raise FaultError(f"{member} did not rejoin within {timeout_s:g} s of the heal")

    def _rejoined(self, member: str) -> bool:
        state = self._state()
        svc = state["services"][member]
        if svc["kind"] == "redis":
            from ..local.sentinel import _info
            info = _info(state, member)
            return info.get("role") == "slave" and info.get("master_link_status") == "up"
        if svc["kind"] == "patroni":
            from ..local.patroni import rejoined
            return rejoined(state, member)
        if svc["kind"] == "kafka":
            # every broker, each answering for itself, tells the same story, and the member
            # is in the ISR of every partition it replicates: it has truncated to what the new
            # leader holds, and no client can be answered from its stale view any more
            views = list(broker_views([s["port"] for s in state["services"].values() if s["kind"] == "kafka"],
                                      access=node_access(self.env.state_dir, state)).values())
            me = svc.get("node_id")
            return all(v == views[0] for v in views) and all(
                me in isr for replicas, _, isr in views[0].values() if me in replicas)
        return True

    def failover_probe(self, service: str, workload):
        return lambda member: self.failed_over(service, member, workload)

    def failed_over(self, service: str, member: str, workload) -> bool:
        """Whether another member took over from the partitioned one (the drill keeps the
        partition until then, as a real one lasts)."""
        try:
            if service == "kafka":
                # as every peer itself says: the partitioned broker goes on naming itself
                # leader, and a client's metadata request may land on it
                from .workloads import DRILL_TOPIC
                services = self._state()["services"]
                names = {s.get("node_id"): n for n, s in services.items() if s["kind"] == "kafka"}
                ports = {n: s["port"] for n, s in services.items() if s["kind"] == "kafka"}
                peers = {port for n, port in ports.items() if n != member}
                views = broker_views(list(ports.values()), DRILL_TOPIC, want=peers,
                                     access=node_access(self.env.state_dir, self._state()))
                return all(names.get(views[p][(DRILL_TOPIC, 0)][1]) not in (None, member) for p in peers)
            if service == "timescale":  # a peer's Patroni: the isolated one answers from its stale view
                from ..local import patroni
                state = self._state()
                peer = next(m for m in patroni.MEMBERS if m != member)
                leader = patroni._leader(patroni.api(state, peer, "/cluster", 2))
                return leader not in (None, member)
            family = topology(self._state())[service]  # Redis: the Sentinels, which are on the majority side
            return family.primary(self._state(), 2) != member
        except Exception:  # mid-election: nobody to name yet
            return False

    def inject(self, member: str, fault: str) -> None:
        if fault == "kill":
            for pid in self._pids(member):
                os.kill(pid, signal.SIGKILL)
        elif fault == "pause":
            for pid in self._tree(member):
                os.kill(pid, signal.SIGSTOP)
        elif fault == "stop":
            self.env.stop(member)
        elif fault == "partition":
            self._partition(member)
        else:
            self.preflight(fault)
            raise FaultError(f"unknown fault {fault!r}")

    def heal(self, member: str, fault: str) -> None:
        if fault == "partition":
            partition.heal(self.table)
            self._wait_rejoined(member)
            return
        if fault == "pause":
            for pid in self._tree(member):
                os.kill(pid, signal.SIGCONT)
        else:
            self._reap_leftovers(member)
            self.env.start(member)
        # a resumed old primary may answer as primary for a moment: read nothing back, and
        # start no next drill, before it has rejoined as a replica
        self._wait_rejoined(member)

    def _reap_leftovers(self, member: str) -> None:
        # a SIGKILLed member is gone, but the state still names its pid: clear it so
        # `start` launches a fresh process
        state = self._state()
        svc = state["services"][member]
        if not is_ours(svc.get("pid"), svc.get("start_ticks")):
            svc["pid"] = None
            self.env._save(state)

    # --- which member is the target --------------------------------------------------
    def resolve(self, service: str, target: str, contract, workload) -> str:
        state = self._state()
        if service == "kafka":
            names = {s.get("node_id"): n for n, s in state["services"].items() if s["kind"] == "kafka"}
            if target in ("leader", "primary"):
                broker = workload.leader()
            elif target == "controller":
                admin = kafka_client.admin(contract.kafka, 5, duty="drills")
                broker = admin.describe_cluster(request_timeout=5).result(timeout=10).controller.id
            else:
                leader = workload.leader()
                broker = next((b for b in sorted(names) if b != leader), None)
            if broker not in names:
                raise FaultError(f"broker {broker} is not a member of the local environment")
            return names[broker]
        family = topology(state)[service]
        if not hasattr(family, "primary"):
            if target == "replica":
                raise FaultError(f"{service} runs as a single node here; start the HA topology with "
                                 "`backbone local up --ha` to drill a replica")
            return next(n for n, s in state["services"].items() if s["kind"] == service)
        return family.primary(state) if target in ("primary", "leader") else family.replicas(state)[0]
