"""`--drill`: a switch and a rollback under a live writer and reader (another process,
through the library), each acknowledged write read back on the active tier afterwards."""
import json

from .test_switch import active, seed, tier


def drill(deployment, operation: str) -> dict:
    out = deployment.dir / f"{operation}-drill"
    result = tier(deployment, operation, "--drill", "--drill-report", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((out / f"tier-{operation}-drill.json").read_text())
    assert (out / f"tier-{operation}-timeline.png").stat().st_size > 10_000
    assert f"tier {operation} drill: passed" in result.stdout
    return report


def test_switch_then_rollback_under_a_live_writer_lose_nothing(deployment):
    seed(deployment, 20_000, 20_000)
    switched = drill(deployment, "switch")
    assert active(deployment)["tier"] == "institutional"
    assert switched["lost"] == [] and switched["failed_writes"] == 0
    # the writer really wrote on both sides of the cut-over, and it never reopened the backbone
    assert switched["tiers"]["bootstrap"] > 0 and switched["tiers"]["institutional"] > 0
    assert 0 <= switched["pause_s"] <= switched["budget_s"]
    assert switched["verification"] == "equal"
    rolled = drill(deployment, "rollback")
    assert active(deployment)["tier"] == "bootstrap"
    assert rolled["lost"] == [] and rolled["failed_writes"] == 0
    assert rolled["tiers"]["institutional"] > 0 and rolled["tiers"]["bootstrap"] > 0
    assert rolled["verification"] == "equal"
