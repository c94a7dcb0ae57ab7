"""`backbone local up | down | status | stop | start`: real services on 127.0.0.1."""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from .common import err, positive


def register(sub) -> None:
    local = sub.add_parser("local", help="real services on 127.0.0.1 for tests, CI and demos")
    lsub = local.add_subparsers(dest="local_command", required=True, metavar="ACTION")
    state_default = Path(os.environ.get("BACKBONE_STATE_DIR", ".backbone/local"))
    for name, text in (("up", "start PostgreSQL, Redis and Kafka; write <state-dir>/outputs.json"),
                       ("down", "stop what `up` started and remove the state directory"),
                       ("status", "show each service's state"),
                       ("stop", "stop one service (for outage tests)"),
                       ("start", "start a stopped service again")):
        p = lsub.add_parser(name, help=text, description=text)
        p.add_argument("--state-dir", type=Path, default=state_default,
                       help="where the environment lives (default .backbone/local, or $BACKBONE_STATE_DIR)")
        if name in ("stop", "start"):
            p.add_argument("service", help="timescale, redis, kafka, or one Kafka node such as kafka-2")
        if name == "up":
            p.add_argument("--kafka-brokers", type=int, default=1, metavar="N", help="KRaft nodes (default 1)")
            p.add_argument("--ha", action="store_true",
                           help="the HA topologies the staging stack declares: Patroni primary + replica (etcd), "
                                "Redis primary + replica + 3 Sentinels, 3 KRaft nodes")
            p.add_argument("--bare", action="store_true",
                           help="start the services only; skip `migrate apply` and `topics apply`")
            p.add_argument("--insecure", action="store_true",
                           help="for debugging only: plaintext and the old single accounts, no TLS, no ACLs "
                                "(`validate` reports such an environment as degraded)")
        if name in ("up", "start"):
            p.add_argument("--timeout", type=positive, default=120.0, metavar="S",
                           help="how long to wait for readiness (default 120)")
        if name == "status":
            p.add_argument("--format", choices=("markdown", "json"), default="markdown")
        p.set_defaults(func=cmd_local)


def cmd_local(args) -> int:
    from ..local import LocalEnvironment
    env = LocalEnvironment(args.state_dir, progress=lambda m: err.print(f"[dim]{time.strftime('%H:%M:%S')}[/] {m}"))
    action = args.local_command
    if action == "up":
        outputs = env.up(kafka_brokers=args.kafka_brokers, timeout_s=args.timeout, provision=not args.bare,
                         ha=args.ha, insecure=args.insecure)
        err.print(f"[green]local environment is up[/]; validate it with: backbone validate --outputs {outputs}")
    elif action == "down":
        env.down()
        err.print("local environment is down")
    elif action == "stop":
        env.stop(args.service)
    elif action == "start":
        env.start(args.service, timeout_s=args.timeout)
    else:
        rows = env.status()
        if args.format == "json":
            sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        else:
            sys.stdout.write("| service | state | pid | address |\n|---|---|---|---|\n")
            for r in rows:
                sys.stdout.write(f"| {r['service']} | {r['state']} | {r['pid'] or '—'} | {r['address']} |\n")
    return 0
