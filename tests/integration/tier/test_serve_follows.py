"""`backbone serve` follows a tier switch and its rollback in the same process: its relay,
bridge and jobs stop within the shutdown bound and start again on the tier the record names."""
import json
import time

from ..serve.test_serve import Serve, value
from .test_switch import seed, tier


def supervision(serve: Serve) -> dict:
    return json.loads(serve.get("/supervision"))


def wait_for_tier(serve: Serve, tier_name: str, moves: int, within_s: float = 120) -> dict:
    deadline = time.monotonic() + within_s
    while True:
        try:
            live = supervision(serve)
            if live.get("tier") == tier_name and len(live.get("tier_moves", [])) == moves \
                    and live.get("status") == "running":
                return live
        except OSError:
            pass
        assert serve.proc.poll() is None, f"serve exited ({serve.proc.returncode}):\n{serve.stderr}"
        assert time.monotonic() < deadline, f"serve did not move to {tier_name}:\n{serve.stderr}"
        time.sleep(0.3)


def test_serve_follows_a_switch_and_a_rollback_without_a_restart(deployment):
    seed(deployment, 200, 200)
    (deployment.dir / "schedule.toml").write_text(
        "cache_interval_s = 1\n"
        '[[job]]\nname = "trades-live"\ndimension = "trades"\ngenerate = { rows = 50, symbols = 2 }\n'
        "interval_s = 0.5\n")
    serve = Serve(deployment.dir, "--outputs", str(deployment.bootstrap_outputs), "--schedule", "schedule.toml")
    try:
        serve.wait_for(lambda m: value(m, "backbone_events_consumed_total", dimension="trades") > 0,
                       "events from the bootstrap event log")
        live = wait_for_tier(serve, "bootstrap", 0)
        assert "relay" not in live["tasks"] and live["tasks"]["tier-watch"]["state"] == "running"

        switched = tier(deployment, "switch")
        assert switched.returncode == 0, switched.stderr
        live = wait_for_tier(serve, "institutional", 1)
        assert live["tier_moves"][0]["to"] == "institutional" and "relay" in live["tasks"]
        consumed = value(serve.metrics(), "backbone_events_consumed_total", dimension="trades")
        # the same process now relays the TimescaleDB outbox to Kafka and its bridge consumes it
        serve.wait_for(lambda m: value(m, "backbone_relay_published_events_total") > 0
                       and value(m, "backbone_events_consumed_total", dimension="trades") > consumed,
                       "relay and bridge on the institutional tier")

        back = tier(deployment, "rollback")
        assert back.returncode == 0, back.stderr
        live = wait_for_tier(serve, "bootstrap", 2)
        assert "relay" not in live["tasks"]
        consumed = value(serve.metrics(), "backbone_events_consumed_total", dimension="trades")
        serve.wait_for(lambda m: value(m, "backbone_events_consumed_total", dimension="trades") > consumed,
                       "the bridge reading the bootstrap event log again")
        assert serve.terminate() == 0, serve.stderr
        final = json.loads(serve.snapshot.read_text())
        assert final["shutdown"]["orphaned_tasks"] == 0 and final["shutdown"]["threads_left"] == 0
        assert [m["to"] for m in final["tier_moves"]] == ["institutional", "bootstrap"]
        assert all(m["threads_left"] == 0 and m["cancelled"] == [] for m in final["tier_moves"])
    finally:
        serve.kill()
