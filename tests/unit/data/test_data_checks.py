"""The data checks' verdicts (thresholds -> status, code, sentence), without services; and
how `validate` plans them."""
import datetime as dt
import json
import threading
import time

import pytest

from backbone.checks import DEGRADED, DOWN, OK
from backbone.cli.checks import data_checks, plan_checks
from backbone.contract import CachePolicy, Contract, DataPolicy
from backbone.data.cache import LocalBackend, QueryCache
from backbone.data.checks import (Runs, _Once, cache_unreadable, clip, judge_cache, judge_event_log, judge_freshness,
                                  judge_lag, judge_outbox)
from backbone.report import Redactor, Report, render

NOW = dt.datetime(2024, 5, 6, 12, 0, tzinfo=dt.timezone.utc)
DATA_CHECKS = ["freshness.bars", "freshness.trades", "freshness.macro", "outbox", "consumer_lag", "cache_ratios"]


def ago(seconds):
    return NOW - dt.timedelta(seconds=seconds)


# --- freshness ---------------------------------------------------------------------------

def test_a_recent_successful_run_is_fresh():
    r = judge_freshness("bars", 900, Runs(ago(30), "ok", ago(30)), NOW)
    assert (r.name, r.status, r.code) == ("freshness.bars", OK, "ok")
    assert r.message == "bars: last successful ingest 30 s ago (SLO 900 s)."
    assert r.details["age_s"] == 30.0 and r.details["slo_s"] == 900
    assert r.details["last_ok_at"] == "2024-05-06T11:59:30+00:00"


def test_older_than_the_slo_is_stale_and_exactly_the_slo_is_not():
    assert judge_freshness("trades", 900, Runs(ago(900), "ok", ago(900)), NOW).status == OK
    r = judge_freshness("trades", 900, Runs(ago(1234), "ok", ago(1234)), NOW)
    assert (r.status, r.code) == (DEGRADED, "stale")
    assert r.message == "trades: stale: 1234 s > SLO 900 s (last successful ingest at 2024-05-06 11:39:26 UTC)."


def test_never_ingested_is_ok_and_says_so():
    r = judge_freshness("macro", 604800, Runs(), NOW)
    assert (r.status, r.code) == (OK, "never_ingested")
    assert r.message == "macro: nothing ingested yet; the SLO of 604800 s applies from the first successful ingest."
    assert r.details["age_s"] is None and r.details["last_run"] is None


def test_a_failed_last_run_is_down_naming_when_and_the_journaled_error():
    r = judge_freshness("bars", 900, Runs(ago(60), "failed", ago(5), "CheckViolation"), NOW)
    assert (r.status, r.code) == (DOWN, "last_run_failed")
    assert r.message == ("bars: the last ingest failed at 2024-05-06 11:59:55 UTC (CheckViolation); "
                         "last successful ingest 60 s ago.")
    assert r.error == "CheckViolation"
    assert r.details["last_run"] == {"status": "failed", "finished_at": "2024-05-06T11:59:55+00:00",
                                     "error": "CheckViolation", "source": None}
    never = judge_freshness("bars", 900, Runs(None, "failed", ago(5), None), NOW)
    assert never.status == DOWN and "(no error journaled); no successful ingest ever." in never.message


def test_a_failure_followed_by_a_success_is_fine():
    # the newest run decides; an older failure is history
    assert judge_freshness("bars", 900, Runs(ago(2), "ok", ago(2)), NOW).status == OK


def test_a_rejected_last_run_is_degraded_naming_the_rejection():
    error = "2 bad row(s); first: line 3: high below low"
    r = judge_freshness("bars", 900, Runs(ago(60), "rejected", ago(5), error), NOW)
    assert (r.status, r.code) == (DEGRADED, "last_run_rejected")
    assert r.message == ("bars: the last ingest, at 2024-05-06 11:59:55 UTC, was rejected and wrote nothing "
                         f"({error}); last successful ingest 60 s ago (SLO 900 s).")
    stale = judge_freshness("bars", 900, Runs(ago(5000), "rejected", ago(5), error), NOW)
    assert stale.code == "last_run_rejected" and stale.details["problems"] == ["last_run_rejected", "stale"]
    assert "stale: 5000 s > SLO 900 s" in stale.message


def test_a_refused_file_is_degraded_naming_the_source_and_the_reason():
    error = "/data/bars.csv: missing required column(s) close; a bars file has symbol, ts, open, high, low, close"
    r = judge_freshness("bars", 900, Runs(ago(60), "rejected", ago(5), error, "/data/bars.csv"), NOW)
    assert (r.status, r.code) == (DEGRADED, "last_run_rejected")
    assert r.message.startswith("bars: the last ingest of /data/bars.csv, at 2024-05-06 11:59:55 UTC, was rejected "
                                "and wrote nothing (/data/bars.csv: missing required column(s) close;")
    assert r.details["last_run"]["source"] == "/data/bars.csv"


def test_an_interrupted_last_run_is_degraded_and_never_a_success():
    error = "interrupted by SIGTERM after reading 300000 row(s); rolled back, nothing written"
    r = judge_freshness("bars", 900, Runs(ago(60), "interrupted", ago(5), error, "big.csv"), NOW)
    assert (r.status, r.code) == (DEGRADED, "last_run_interrupted")
    assert r.message == ("bars: the last ingest of big.csv, at 2024-05-06 11:59:55 UTC, was interrupted and wrote "
                         f"nothing ({error}); last successful ingest 60 s ago (SLO 900 s).")
    never = judge_freshness("bars", 900, Runs(None, "interrupted", ago(5), error, "big.csv"), NOW)
    assert never.code == "last_run_interrupted" and "no successful ingest ever" in never.message


def test_no_slo_means_not_checked_whatever_the_journal_says():
    for runs in (Runs(), Runs(ago(10**7), "ok", ago(10**7)), Runs(None, "failed", ago(1), "Boom")):
        r = judge_freshness("macro", None, runs, NOW)
        assert (r.status, r.code) == (OK, "not_checked")
        assert "freshness not checked (data.freshness_slo_s.macro is null)" in r.message


def test_journaled_errors_are_clipped_to_one_short_line():
    assert clip("first line\nsecond line") == "first line"
    assert len(clip("x" * 500)) == 200 and clip("x" * 500).endswith("…")
    assert clip(None) is None and clip("  ") is None


# --- outbox ------------------------------------------------------------------------------

def test_outbox_drained_waiting_and_backlogged():
    drained = judge_outbox(0, None, 60)
    assert (drained.status, drained.message) == (OK, "The outbox is drained: every event is published.")
    waiting = judge_outbox(12, 59.6, 60)
    assert waiting.status == OK and waiting.message == "12 event(s) waiting, the oldest 60 s (bound 60 s)."
    r = judge_outbox(340, 75.2, 60)
    assert (r.status, r.code) == (DEGRADED, "outbox_backlog")
    assert r.message == ("340 event(s) waiting, the oldest 75 s > 60 s: is the relay (`backbone serve` or "
                         "`backbone events relay`) running and Kafka reachable?")
    assert r.details == {"unpublished": 340, "oldest_age_s": 75.2, "max_age_s": 60}


def test_the_bootstrap_event_log_is_reported_not_judged():
    r = judge_event_log(7)
    assert r.status == OK and r.details == {"events": 7} and "holds 7 event(s)" in r.message


# --- consumer lag ------------------------------------------------------------------------

def test_lag_within_the_bound_is_ok_and_above_it_names_the_lagging_partitions():
    lag = {f"ingest.events[{p}]": n for p, n in enumerate([0, 5, 120, 0, 40, 0])}
    ok = judge_lag("g", "ingest.events", lag, True, 165)
    assert ok.status == OK and ok.message == "Group 'g' is 165 event(s) behind on 'ingest.events' (bound 165)."
    r = judge_lag("g", "ingest.events", lag, True, 100)
    assert (r.status, r.code) == (DEGRADED, "lagging")
    assert r.message == ("Group 'g' is 165 event(s) behind on 'ingest.events' > 100 (ingest.events[2] 120, "
                         "ingest.events[4] 40, ingest.events[1] 5): is the bridge (`backbone serve`) consuming?")
    assert r.details["lag"] == 165 and r.details["partitions"]["ingest.events[2]"] == 120


def test_many_lagging_partitions_are_summarised():
    lag = {f"t[{p}]": 10 + p for p in range(8)}
    r = judge_lag("g", "t", lag, True, 0)
    assert "t[7] 17, t[6] 16, t[5] 15, t[4] 14, t[3] 13 and 3 more" in r.message


def test_a_group_that_never_committed_counts_every_retained_event():
    r = judge_lag("fresh", "t", {"t[0]": 3, "t[1]": 4}, False, 10)
    assert r.status == OK and r.details["committed"] is False
    assert r.message == ("Group 'fresh' is 7 event(s) behind on 't' (bound 10); the group has never committed, "
                         "so every retained event counts.")
    assert "never committed" not in judge_lag("fresh", "t", {"t[0]": 0}, False, 10).message


def test_a_coordinator_still_being_placed_is_asked_again_and_a_timeout_is_not():
    from confluent_kafka import KafkaError, KafkaException

    from backbone.events.checks import _transient
    for code in (KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
                 KafkaError.COORDINATOR_NOT_AVAILABLE):
        assert _transient(KafkaException(KafkaError(code, "Failed to get committed offsets")))
    assert not _transient(KafkaException(KafkaError(KafkaError._TIMED_OUT, "timed out")))
    assert not _transient(KafkaException("no error object"))


def test_a_topic_without_partitions_is_down():
    r = judge_lag("g", "ingest.events", {}, False, 10)
    assert (r.status, r.code) == (DOWN, "topic_missing") and "backbone topics apply" in r.message


# --- cache -------------------------------------------------------------------------------

def policy(**kw):
    return DataPolicy(**{"cache_min_lookups": 100, "cache_hit_ratio_min": 0.5, "cache_eviction_ratio_max": 0.5, **kw})


def test_too_few_lookups_are_not_judged():
    r = judge_cache("ns", {"hits": 1, "misses": 98, "sets": 98, "evictions": 98}, policy(), 10)
    assert (r.status, r.code) == (OK, "too_few_lookups")
    assert r.message == "Cache 'ns': too few lookups to judge (99 < 100)."


def test_hit_ratio_and_eviction_ratio_against_their_bounds():
    good = judge_cache("ns", {"hits": 90, "misses": 10, "sets": 10, "evictions": 5}, policy(), 10)
    assert (good.status, good.code) == (OK, "ok")
    assert good.message == "Cache 'ns': hit ratio 90% over 100 lookups, 50% of 10 entries written evicted."
    assert good.details == {"namespace": "ns", "hits": 90, "misses": 10, "sets": 10, "evictions": 5,
                                 "lookups": 100, "hit_ratio": 0.9, "eviction_ratio": 0.5, "hit_ratio_min": 0.5,
                                 "eviction_ratio_max": 0.5, "min_lookups": 100, "max_keys": 10}
    low = judge_cache("ns", {"hits": 40, "misses": 60, "sets": 60, "evictions": 0}, policy(), 10)
    assert (low.status, low.code) == (DEGRADED, "hit_ratio_low")
    assert low.message == ("Cache 'ns': hit ratio 40% over 100 lookups, 0% of 60 entries written evicted, but the hit "
                           "ratio is below 50%.")
    evicting = judge_cache("ns", {"hits": 80, "misses": 20, "sets": 20, "evictions": 15}, policy(), 4)
    assert (evicting.status, evicting.code) == (DEGRADED, "evictions_high")
    assert "the eviction ratio is above 50%: raise max_keys (now 4)" in evicting.message
    both = judge_cache("ns", {"hits": 10, "misses": 90, "sets": 90, "evictions": 80}, policy(), 4)
    assert both.details["problems"] == ["hit_ratio_low", "evictions_high"]


def test_no_entries_written_means_no_evictions():
    r = judge_cache("ns", {"hits": 100, "misses": 0, "sets": 0, "evictions": 0}, policy(), 10)
    assert r.status == OK and r.details["eviction_ratio"] == 0.0


def test_unreadable_counters_are_degraded_never_down():
    r = cache_unreadable("ns", "Connection refused")
    assert (r.status, r.code, r.error) == (DEGRADED, "unreachable", "Connection refused")


def test_the_in_process_cache_reports_its_own_counters_as_shared_stats():
    cache = QueryCache(CachePolicy(namespace="t", max_keys=1), LocalBackend())
    for symbol in ("A", "B", "A"):
        cache.get_or_load("q", {"s": symbol}, [("bars", symbol)], lambda: [1])
    cache.get_or_load("q", {"s": "A"}, [("bars", "A")], lambda: [1])
    assert cache.shared_stats() == {"hits": 1, "misses": 3, "sets": 3, "evictions": 2}


# --- planning and reports ------------------------------------------------------------------

def test_validate_plans_the_data_checks_after_the_smoke_and_probe_does_not(tmp_path):
    boot = Contract.model_validate({"bootstrap": {"store": str(tmp_path / "b.db")}})
    names = list(plan_checks(boot, "validate", 1))
    assert names[-len(DATA_CHECKS) - 1:] == ["smoke", *DATA_CHECKS]
    assert not set(DATA_CHECKS) & set(plan_checks(boot, "probe", 1))


def test_each_data_check_needs_only_its_own_section():
    only_db = Contract.model_validate({"tier": "institutional", "platform": "docker",
                                       "timescale": {"host": "127.0.0.1", "port": 9}})
    checks = plan_checks(only_db, "validate", 1)
    for name, section in (("consumer_lag", "kafka"), ("cache_ratios", "redis")):
        r = checks[name]()
        assert (r.status, r.code) == (DOWN, "not_configured") and f"no {section} section" in r.message
    for name in ("freshness.bars", "outbox"):  # they have their section: tried, and the port refuses
        r = checks[name]()
        assert (r.status, r.code) == (DOWN, "unreachable") and r.error, name


def test_a_missing_store_is_reported_without_creating_one(tmp_path):
    store = tmp_path / "nowhere" / "b.db"
    boot = Contract.model_validate({"bootstrap": {"store": str(store)}})
    results = {name: check() for name, check in data_checks(boot, 1).items()}
    assert [r.status for r in results.values()] == [DOWN] * 5 + [DEGRADED]
    assert all(r.code == "unreachable" for r in results.values())
    assert not store.exists()


def test_the_three_freshness_checks_share_one_journal_read():
    calls = []

    def read():
        calls.append(1)
        time.sleep(0.05)
        return "journal"
    once = _Once(read, (OSError,))
    answers = []
    threads = [threading.Thread(target=lambda: answers.append(once())) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and all(a[0][0] == "journal" and a[1] is None for a in answers)
    failing = _Once(lambda: (_ for _ in ()).throw(OSError("disk gone")), (OSError,))
    (value, _ms), error = failing()
    assert value is None and str(error) == "disk gone" and failing()[1] is error


def test_a_secret_in_a_journaled_error_never_reaches_a_report():
    planted = "PLANTED-journal-secret-91c2"
    contract = Contract.model_validate({"tier": "institutional", "platform": "docker",
                                        "timescale": {"password": planted}, "redis": {}, "kafka": {}})
    result = judge_freshness("bars", 900, Runs(ago(60), "failed", ago(5), f"could not connect with {planted}"), NOW)
    assert planted in result.message  # the verdict carries the journal's text...
    report = Report("validate", contract, [result], 0.1)
    for fmt in ("markdown", "json", "junit"):
        text = render(report, fmt, Redactor(contract.secrets()))
        assert planted not in text and "freshness.bars" in text  # ...and every rendering scrubs it
    assert json.loads(render(report, "json", Redactor(contract.secrets())))["checks"][0]["status"] == "down"


@pytest.mark.parametrize("fmt", ["markdown", "json", "junit"])
def test_every_report_format_carries_the_data_checks(tmp_path, fmt):
    boot = Contract.model_validate({"bootstrap": {"store": str(tmp_path / "none.db")}})
    results = [c() for c in data_checks(boot, 1).values()]
    text = render(Report("validate", boot, results, 0.1), fmt, Redactor())
    for r in results:
        assert r.name in text and r.code in text
