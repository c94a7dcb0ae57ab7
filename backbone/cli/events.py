"""`backbone events tail` and `backbone events relay`: the ingest event stream by hand."""
from __future__ import annotations

import json
import sys
import threading
import time

from ..errors import BackboneError
from ..report import EXIT_READY, Redactor
from .common import contract_from, err, positive, require, sources_args


def register(sub) -> None:
    text = "the ingest event stream: follow it (tail) or publish the outbox by hand (relay)"
    p = sub.add_parser("events", help=text, description=text)
    events = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    text = ("print ingest events from the bridge group's position without moving it (with --group: as that "
            "group, committing after each batch); lag per partition at the end")
    t = events.add_parser("tail", help=text, description=text)
    sources_args(t)
    t.add_argument("--from-beginning", action="store_true", help="start from the oldest retained event")
    t.add_argument("--group", metavar="NAME",
                   help="consume as this group and commit its position (default: only look, from the position of "
                        "the contract's data.consumer_group, committing nothing)")
    t.add_argument("--max", type=_count, metavar="N", help="stop after N events")
    t.add_argument("--idle-timeout", type=positive, metavar="S", help="stop after S seconds without an event")
    t.add_argument("--format", choices=("text", "json"), default="text", help="json: one event per line")
    t.set_defaults(func=cmd_tail)

    text = "publish the outbox to Kafka until it is empty (what `serve` runs continuously)"
    r = events.add_parser("relay", help=text, description=text)
    sources_args(r)
    r.add_argument("--follow", action="store_true", help="keep publishing as ingests commit, until Ctrl-C")
    r.set_defaults(func=cmd_relay)


def _count(raw: str) -> int:
    from .data import _count as count
    return count(raw)


def _line(event) -> str:
    p = event.payload
    return (f"{event.topic}[{event.partition}]@{event.offset}  {event.key}  +{p.get('rows_inserted', 0)} "
            f"~{p.get('rows_updated', 0)}  {p.get('first_ts', '?')} .. {p.get('last_ts', '?')}  run {p.get('run_id', '?')}")


def cmd_tail(args) -> int:
    from ..events.bridge import open_bridge
    contract = contract_from(args)
    require(contract, "events tail", "kafka")
    redactor = Redactor(contract.secrets())
    seen = [0]
    last = [time.monotonic()]
    join_by = time.monotonic() + 30

    def show(event) -> None:
        sys.stdout.write((event.to_json() if args.format == "json" else _line(event)) + "\n")
        sys.stdout.flush()
        seen[0] += 1

    try:
        # Without --group this is a look at the stream: the bridge's group must not move, or
        # the bridge would skip what the look printed.
        with open_bridge(contract, args.group, args.from_beginning, commit=args.group is not None) as bridge:
            while args.max is None or seen[0] < args.max:
                want = 500 if args.max is None else min(500, args.max - seen[0])
                if bridge.poll(show, timeout_s=0.5, max_events=want) or not bridge.assigned:
                    last[0] = time.monotonic()  # idle time counts once the group has given us partitions
                    if not bridge.assigned and last[0] > join_by:
                        err.print(f"backbone: events tail: no partition assigned within 30 s (group {bridge.group!r})",
                                  markup=False)
                        return 1
                elif args.idle_timeout and time.monotonic() - last[0] >= args.idle_timeout:
                    break
            lag = bridge.lag()
            duplicates = bridge.duplicates
    except BackboneError:
        raise
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader went away (`| head`)
        return EXIT_READY
    except Exception as exc:
        err.print(redactor.scrub(f"backbone: events tail failed: {exc}"), markup=False)
        return 1
    lag_text = ", ".join(f"{k} {v}" for k, v in sorted(lag.items())) or "no partition assigned"
    err.print(f"{seen[0]} event(s)" + (f", {duplicates} duplicate(s) dropped" if duplicates else "")
              + f"; lag: {lag_text}", markup=False)
    return EXIT_READY


def cmd_relay(args) -> int:
    from ..events.relay import Relay
    contract = contract_from(args)
    require(contract, "events relay", "timescale", "kafka")
    if contract.tier != "institutional":
        err.print("bootstrap tier: the outbox is the event log itself; nothing to relay", markup=False)
        return EXIT_READY
    redactor = Redactor(contract.secrets())
    try:
        with Relay(contract) as relay:
            if not relay.acquire():
                err.print("another relay is active on this database; nothing done", markup=False)
                return EXIT_READY
            if args.follow:
                stop = threading.Event()
                try:
                    relay.run(stop, on_batch=lambda n: n and err.print(f"published {n} event(s)", markup=False))
                except KeyboardInterrupt:
                    stop.set()
            else:
                relay.drain()
            left = relay.backlog()
            sys.stdout.write(json.dumps({"published": relay.published, "backlog": left.events}) + "\n")
    except BackboneError:
        raise
    except Exception as exc:
        err.print(redactor.scrub(f"backbone: events relay failed: {exc}"), markup=False)
        return 1
    return EXIT_READY
