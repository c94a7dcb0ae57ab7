"""The tier drill's verdict from a writer log (pure)."""
from backbone.tier.drill import analyse


def write(seq, start, end, tier, ok=True):
    return {"op": "write", "seq": seq, "start": start, "end": end, "tier": tier, "ok": ok}


def test_pause_is_last_ack_on_the_old_tier_to_first_ack_on_the_new():
    log = [write(1, 0.0, 0.01, "bootstrap"), write(2, 0.02, 0.03, "bootstrap"),
           write(3, 0.04, 0.30, "institutional"), write(4, 0.31, 0.32, "institutional")]
    r = analyse("switch", log, {1, 2, 3, 4}, "bootstrap", "institutional", 0.0, 1.0, 1.0, "equal")
    assert abs(r.pause_s - 0.27) < 1e-9 and r.passed
    assert r.tiers == {"bootstrap": 2, "institutional": 2} and r.lost == []


def test_a_lost_write_or_a_long_pause_fails_the_drill():
    log = [write(1, 0.0, 0.01, "bootstrap"), write(2, 0.02, 2.5, "institutional"), write(3, 2.6, 2.7, "institutional", False)]
    lost = analyse("switch", log, {2}, "bootstrap", "institutional", 0.0, 3.0, 3.0, "equal")
    assert lost.lost == [1] and not lost.passed and lost.failed_writes == 1
    slow = analyse("switch", log, {1, 2}, "bootstrap", "institutional", 0.0, 3.0, 1.0, "equal")
    assert slow.lost == [] and slow.pause_s > 1.0 and not slow.passed
    unverified = analyse("switch", log[:2], {1, 2}, "bootstrap", "institutional", 0.0, 3.0, 3.0, "NOT equal")
    assert not unverified.passed


def test_no_write_on_the_new_tier_is_no_pause_and_no_pass():
    r = analyse("rollback", [write(1, 0.0, 0.1, "institutional")], {1}, "institutional", "bootstrap", 0.0, 1.0, 3.0,
                "equal")
    assert r.pause_s is None and not r.passed
