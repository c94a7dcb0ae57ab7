"""The data checks' verdicts: pure functions from what was read (the journal's newest runs,
the outbox backlog, the consumer lag, the cache counters) and the contract's thresholds to a
`CheckResult` (status, stable code, one sentence, the numbers in `details`)."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from ...checks import DEGRADED, DOWN, OK, CheckResult, judged
from ...contract import DataPolicy

RELAY_HINT = "is the relay (`backbone serve` or `backbone events relay`) running and Kafka reachable?"
BRIDGE_HINT = "is the bridge (`backbone serve`) consuming?"


@dataclass
class Runs:
    """What the ingest journal says about one dimension."""
    last_ok_at: dt.datetime | None = None   # finished_at of the newest run with status ok
    last_status: str | None = None          # the newest run of any status
    last_at: dt.datetime | None = None
    last_error: str | None = None
    last_source: str | None = None          # what it read: a file's path, or "generated: ..."


def judge_freshness(dimension: str, slo_s: float | None, runs: Runs, now: dt.datetime,
                    latency_ms: float | None = None) -> CheckResult:
    """The newest run failed (the pipeline: the store, a crash): down. Rejected (the input
    refused: bad rows, wrong columns, not gzip, not JSON) or interrupted (SIGINT / SIGTERM):
    degraded, naming the source and the reason; either wrote nothing. No run at all: ok, saying so (a fresh deployment is not stale; the SLO applies from
    the first success). The newest success older than the SLO: degraded. No SLO (null): ok,
    not checked."""
    name = f"freshness.{dimension}"
    age = None if runs.last_ok_at is None else max(0.0, (now - runs.last_ok_at).total_seconds())
    details = {"slo_s": slo_s, "age_s": None if age is None else round(age, 1),
               "last_ok_at": _iso(runs.last_ok_at),
               "last_run": None if runs.last_status is None else
               {"status": runs.last_status, "finished_at": _iso(runs.last_at), "error": clip(runs.last_error),
                "source": clip(runs.last_source)}}
    last_ok = "no successful ingest ever" if age is None else f"last successful ingest {_s(age)} ago"
    if slo_s is None:
        return CheckResult(name, OK, "not_checked", f"{dimension}: freshness not checked "
                           f"(data.freshness_slo_s.{dimension} is null); {last_ok}.", latency_ms, details=details)
    if runs.last_status == "failed":
        return CheckResult(name, DOWN, "last_run_failed",
                           f"{dimension}: the last ingest failed at {_at(runs.last_at)} "
                           f"({clip(runs.last_error) or 'no error journaled'}); {last_ok}.", latency_ms,
                           error=clip(runs.last_error), details=details)
    problems: list[tuple[str, str]] = []
    source = f" of {clip(runs.last_source, 120)}" if runs.last_source else ""
    if runs.last_status == "rejected":
        problems.append(("last_run_rejected", f"the last ingest{source}, at {_at(runs.last_at)}, was rejected and "
                                              f"wrote nothing ({clip(runs.last_error) or 'bad rows'})"))
    elif runs.last_status == "interrupted":
        problems.append(("last_run_interrupted", f"the last ingest{source}, at {_at(runs.last_at)}, was interrupted "
                                                 f"and wrote nothing ({clip(runs.last_error) or 'a signal'})"))
    if age is not None and age > slo_s:
        problems.append(("stale", f"stale: {_s(age)} > SLO {_s(slo_s)} (last successful ingest at "
                                  f"{_at(runs.last_ok_at)})"))
    if problems:
        tail = f"; {last_ok} (SLO {_s(slo_s)})" if problems[0][0] != "stale" and len(problems) == 1 else ""
        return CheckResult(name, DEGRADED, problems[0][0],
                           f"{dimension}: " + "; ".join(text for _, text in problems) + tail + ".", latency_ms,
                           details=details | {"problems": [code for code, _ in problems]})
    if age is None:
        return CheckResult(name, OK, "never_ingested", f"{dimension}: nothing ingested yet; the SLO of {_s(slo_s)} "
                           "applies from the first successful ingest.", latency_ms, details=details)
    return CheckResult(name, OK, "ok", f"{dimension}: {last_ok} (SLO {_s(slo_s)}).", latency_ms, details=details)


def judge_outbox(events: int, oldest_age_s: float | None, max_age_s: float,
                 latency_ms: float | None = None) -> CheckResult:
    """Unpublished events older than the bound: degraded (the relay is not keeping up)."""
    age = None if oldest_age_s is None else max(0.0, oldest_age_s)
    details = {"unpublished": events, "oldest_age_s": None if age is None else round(age, 1), "max_age_s": max_age_s}
    if events and age is not None and age > max_age_s:
        return CheckResult("outbox", DEGRADED, "outbox_backlog",
                           f"{events} event(s) waiting, the oldest {_s(age)} > {_s(max_age_s)}: {RELAY_HINT}",
                           latency_ms, details=details)
    if not events:
        return CheckResult("outbox", OK, "ok", "The outbox is drained: every event is published.", latency_ms,
                           details=details)
    return CheckResult("outbox", OK, "ok", f"{events} event(s) waiting, the oldest {_s(age or 0)} "
                       f"(bound {_s(max_age_s)}).", latency_ms, details=details)


def judge_event_log(events: int, latency_ms: float | None = None) -> CheckResult:
    """The bootstrap tier: the outbox is the durable event log, there is nothing to relay."""
    return CheckResult("outbox", OK, "ok", f"The event log holds {events} event(s) (on the bootstrap tier the outbox "
                       "is the event log: nothing to relay).", latency_ms, details={"events": events})


def judge_lag(group: str, topic: str, lag: dict[str, int], committed: bool, bound: int,
              latency_ms: float | None = None) -> CheckResult:
    """Events published and not yet handled by the group, summed over partitions, above the
    bound: degraded, naming the lagging partitions. A group that never committed reads from
    the oldest retained event, so all of them count."""
    total = sum(lag.values())
    details = {"group": group, "topic": topic, "lag": total, "max_lag": bound, "committed": committed,
               "partitions": dict(sorted(lag.items()))}
    if not lag:
        return CheckResult("consumer_lag", DOWN, "topic_missing", f"The events topic {topic!r} has no partitions: "
                           "run `backbone topics apply`.", latency_ms, details=details)
    never = "" if committed or not total else "; the group has never committed, so every retained event counts"
    if total > bound:
        lagging = sorted(((n, p) for p, n in lag.items() if n), reverse=True)
        named = ", ".join(f"{p} {n}" for n, p in lagging[:5]) + (f" and {len(lagging) - 5} more" if len(lagging) > 5
                                                                  else "")
        return CheckResult("consumer_lag", DEGRADED, "lagging",
                           f"Group {group!r} is {total} event(s) behind on {topic!r} > {bound} ({named}){never}: "
                           f"{BRIDGE_HINT}", latency_ms, details=details)
    return CheckResult("consumer_lag", OK, "ok", f"Group {group!r} is {total} event(s) behind on {topic!r} "
                       f"(bound {bound}){never}.", latency_ms, details=details)


def judge_cache(namespace: str, counts: dict[str, int], policy: DataPolicy, max_keys: int,
                latency_ms: float | None = None) -> CheckResult:
    """Hit ratio = hits / lookups, eviction ratio = evictions / entries written; judged once
    there are `cache_min_lookups` lookups."""
    hits, misses, sets, evictions = (int(counts.get(k, 0)) for k in ("hits", "misses", "sets", "evictions"))
    lookups = hits + misses
    hit_ratio = hits / lookups if lookups else None
    eviction_ratio = evictions / sets if sets else 0.0
    details = {"namespace": namespace, "hits": hits, "misses": misses, "sets": sets, "evictions": evictions,
               "lookups": lookups, "hit_ratio": None if hit_ratio is None else round(hit_ratio, 4),
               "eviction_ratio": round(eviction_ratio, 4), "hit_ratio_min": policy.cache_hit_ratio_min,
               "eviction_ratio_max": policy.cache_eviction_ratio_max, "min_lookups": policy.cache_min_lookups,
               "max_keys": max_keys}
    if lookups < policy.cache_min_lookups:
        return CheckResult("cache_ratios", OK, "too_few_lookups", f"Cache {namespace!r}: too few lookups to judge "
                           f"({lookups} < {policy.cache_min_lookups}).", latency_ms, details=details)
    problems = []
    if hit_ratio < policy.cache_hit_ratio_min:
        problems.append(("hit_ratio_low", f"the hit ratio is below {_pct(policy.cache_hit_ratio_min)}"))
    if eviction_ratio > policy.cache_eviction_ratio_max:
        problems.append(("evictions_high", f"the eviction ratio is above {_pct(policy.cache_eviction_ratio_max)}: "
                                           f"raise max_keys (now {max_keys})"))
    summary = (f"Cache {namespace!r}: hit ratio {_pct(hit_ratio)} over {lookups} lookups, {_pct(eviction_ratio)} "
               f"of {sets} entries written evicted")
    return judged("cache_ratios", summary, problems, latency_ms, details)


def cache_unreadable(namespace: str, error: str, latency_ms: float | None = None) -> CheckResult:
    """The cache is never a point of failure, so neither is reading its counters."""
    return CheckResult("cache_ratios", DEGRADED, "unreachable",
                       f"The counters of cache {namespace!r} could not be read; the cache is never a point of "
                       "failure (reads go to the store).", latency_ms, error=error, details={"namespace": namespace})


def clip(text: str | None, limit: int = 200) -> str | None:
    """A journaled error as one short line (reports scrub secrets on top of this)."""
    if not text or not text.strip():
        return None
    line = text.strip().splitlines()[0]
    return line if len(line) <= limit else line[:limit - 1] + "…"


def _s(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds >= 1 or seconds == 0 else f"{seconds:.1f} s"


def _pct(ratio: float) -> str:
    return f"{ratio * 100:.1f}%".replace(".0%", "%")


def _at(ts: dt.datetime | None) -> str:
    return "an unknown time" if ts is None else ts.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _iso(ts: dt.datetime | None) -> str | None:
    return None if ts is None else ts.astimezone(dt.timezone.utc).isoformat(timespec="seconds")
