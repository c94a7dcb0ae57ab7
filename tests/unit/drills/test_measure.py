"""The drill's figures from a writer's history (pure)."""
from backbone.drills.live import Attempt, DrillResult, isolated_acks, measure
from backbone.drills.render import to_markdown


def history(spec):
    """spec: (started, finished, ok) triples; seq = index."""
    return [Attempt(i, s, f, ok) for i, (s, f, ok) in enumerate(spec)]


def test_outage_detection_rto_and_no_loss():
    attempts = history([(0.0, 0.1, True), (0.2, 0.3, True), (0.4, 1.4, False), (1.5, 2.5, False),
                        (2.6, 2.7, True), (2.8, 2.9, True)])
    m = measure(attempts, fault_at=0.35, found={0, 1, 4, 5})
    assert m.detection_s == 1.4 - 0.35
    assert m.last_ok_before == 0.3 and m.recovered_at == 2.7
    assert abs(m.rto_s - 2.4) < 1e-9
    assert (m.acked_writes, m.acked_lost, m.loss_window_s, m.failed_writes) == (4, 0, 0.0, 2)


def test_a_write_in_flight_across_the_fault_is_not_the_recovery():
    # seq 1 started before the fault and was acknowledged after it (blocked during election)
    attempts = history([(0.0, 0.1, True), (0.2, 3.0, True), (3.1, 3.2, True)])
    m = measure(attempts, fault_at=0.5, found={0, 1, 2})
    assert m.detection_s is None  # nothing failed: the client rode through
    assert m.recovered_at == 3.2 and abs(m.rto_s - 3.1) < 1e-9


def test_a_write_answered_while_the_fault_was_being_injected_is_not_the_recovery():
    # the fault began at 0.5 and was in effect at 0.6 (a paused process tree is stopped pid by
    # pid): seq 1 started in between and was answered; the outage ended only at 3.2
    attempts = history([(0.0, 0.1, True), (0.55, 0.58, True), (0.6, 3.0, False), (3.1, 3.2, True)])
    m = measure(attempts, fault_at=0.5, found={0, 1, 3}, in_effect_at=0.6)
    assert m.recovered_at == 3.2 and abs(m.rto_s - 3.1) < 1e-9


def test_lost_acknowledged_writes_and_their_window():
    attempts = history([(0.0, 0.1, True), (0.2, 0.3, True), (0.4, 0.5, True), (0.6, 2.0, False), (2.1, 2.2, True)])
    m = measure(attempts, fault_at=0.55, found={0, 3, 4})
    assert m.acked_lost == 2 and m.lost_seqs == [1, 2]
    assert abs(m.loss_window_s - 0.2) < 1e-9


def test_no_recovery_leaves_rto_unknown():
    m = measure(history([(0.0, 0.1, True), (0.2, 1.0, False)]), fault_at=0.15, found={0})
    assert m.rto_s is None and m.recovered_at is None


def _result(service, lost):
    attempts = history([(0.0, 0.1, True), (0.2, 0.3, True), (0.4, 2.0, False), (2.1, 2.2, True)])
    found = {0, 1, 3} - set(lost)
    return DrillResult(service, "pause", "primary", "m-1", "local", "2026-11-24T00:00:00Z", 0.35, 2.5, 3.0,
                       measure(attempts, 0.35, found), {"rto_s": 900.0, "rpo_s": 86400.0}, [], attempts)


def test_a_lost_write_fails_a_drill_of_a_service_that_promises_none_whatever_the_rpo():
    for service in ("timescale", "kafka"):
        r = _result(service, lost=[1])
        assert r.rto_met and r.rpo_met  # within the objectives...
        assert not r.promise_kept and not r.passed  # ...but the promise is broken
        assert r.to_dict()["promise_kept"] is False and "promise was broken" in to_markdown(r)
        assert _result(service, lost=[]).passed


def test_redis_promises_no_such_thing_so_its_loss_is_judged_by_the_rpo():
    r = _result("redis", lost=[1])
    assert r.promise is None and r.promise_kept and r.passed and r.measurement.acked_lost == 1


def test_the_report_keeps_the_fault_time_the_timeline_is_judged_by():
    # a write answered 0.2 ms before the fault: rounded to the millisecond, the reported fault
    # time fell before it, and a reader of the JSON counted one isolated ack the drill did not
    attempts = [Attempt(0, 1.2340, 1.2342, True, server=5432), Attempt(1, 1.2346, 1.2348, True, server=5432)]
    r = DrillResult("timescale", "partition", "primary", "pg-1", "local", "2026-12-07T00:00:00Z", 1.2344, 2.0, 3.0,
                    measure(attempts, 1.2344, {0, 1}), {"rto_s": 900.0, "rpo_s": 86400.0}, [], attempts)
    d = r.to_dict()
    after = [a["seq"] for a in d["timeline"] if a["finished"] >= d["fault_at_s"]]
    assert after == isolated_acks(attempts, r.fault_at_s, [], {5432})["seqs"] == [1]
