"""The seeds' simulated failover drill: recorded ingest results in, a decision out."""
import json

import pytest

from backbone.drills.simulate import (FALLBACK, STAY, IngestResult, SimulationInputError, load_results,
                                      parse_results, simulate_failover)

RESULTS = [
    {"dimension": "daily_bars", "status": "ok", "rows": 2520, "freshness_seconds": 3600.0,
     "symbols": ["AAPL", "MSFT"]},
    {"dimension": "intraday_trades", "status": "warn", "rows": 120, "freshness_seconds": 900.5, "symbols": ["AAPL"]},
    {"dimension": "macro_events", "status": "ok", "rows": 12, "freshness_seconds": 86400, "symbols": []},
]


def test_default_marks_every_recorded_dimension_and_falls_back():
    drill = simulate_failover(RESULTS)
    assert drill.decision == FALLBACK and drill.fallback
    assert drill.fail_dimensions == ["daily_bars", "intraday_trades", "macro_events"]
    assert [d.status for d in drill.dimensions] == ["fail", "fail", "fail"]
    assert len(drill.reasons) == 3
    assert "daily_bars: failed (marked by the drill; recorded ok, 2520 rows)" in drill.reasons


def test_marking_a_required_dimension_falls_back_with_that_reason():
    drill = simulate_failover(RESULTS, ["intraday_trades"])
    assert drill.decision == FALLBACK
    assert drill.reasons == ["intraday_trades: failed (marked by the drill; recorded warn, 120 rows)"]
    by_name = {d.dimension: d for d in drill.dimensions}
    assert by_name["daily_bars"].status == "ok" and not by_name["daily_bars"].marked_failed
    assert by_name["intraday_trades"].recorded_status == "warn" and by_name["intraday_trades"].status == "fail"


def test_failing_only_optional_dimensions_stays_on_institutional():
    drill = simulate_failover(RESULTS, ["macro_events"], required=["daily_bars", "intraday_trades"])
    assert drill.decision == STAY and not drill.fallback and drill.reasons == []
    assert drill.to_dict()["target_tier"] == "institutional"
    assert drill.warnings == ["intraday_trades: recorded status warn"]


def test_a_recorded_failure_of_a_required_dimension_counts_without_marking():
    results = [dict(RESULTS[0], status="fail"), RESULTS[2]]
    drill = simulate_failover(results, ["macro_events"], required=["daily_bars"])
    assert drill.decision == FALLBACK
    assert drill.reasons == ["daily_bars: failed (recorded)"]


def test_a_required_dimension_without_a_result_counts_as_failed():
    drill = simulate_failover(RESULTS, ["macro_events"], required=["daily_bars", "fx_rates"])
    assert drill.decision == FALLBACK
    assert drill.reasons == ["fx_rates: required, but no ingest result was recorded"]
    missing = drill.dimensions[-1]
    assert (missing.dimension, missing.recorded_status, missing.status) == ("fx_rates", None, "fail")


def test_a_single_name_is_not_split_into_letters():
    assert simulate_failover(RESULTS, "daily_bars").fail_dimensions == ["daily_bars"]


def test_to_dict_is_json_and_markdown_names_the_decision():
    drill = simulate_failover(RESULTS, ["daily_bars"])
    data = json.loads(json.dumps(drill.to_dict()))
    assert data["decision"] == FALLBACK and data["simulated"] is True and data["target_tier"] == "bootstrap"
    assert data["dimensions"][0]["symbols"] == ["AAPL", "MSFT"]
    md = drill.to_markdown()
    assert f"Decision: {FALLBACK}" in md
    assert "| daily_bars | yes | ok | fail (marked) | 2520 | 3600 s | AAPL, MSFT |" in md
    assert "- daily_bars: failed (marked by the drill" in md


def test_results_accept_parsed_models_and_ignore_extra_fields():
    extra = dict(RESULTS[0], run_id="r-1", finished_at="2024-07-01T00:00:00Z")
    parsed = parse_results([extra])
    assert parsed == [IngestResult(**RESULTS[0])]
    assert simulate_failover(parsed, ["daily_bars"]).decision == FALLBACK


def test_load_results_reads_a_file(tmp_path):
    path = tmp_path / "results.json"
    path.write_text(json.dumps(RESULTS))
    assert [r.dimension for r in load_results(path)] == ["daily_bars", "intraday_trades", "macro_events"]


# --- bad input: one clear error naming the item and field ------------------------------------

@pytest.mark.parametrize("results, message", [
    ({"dimension": "daily_bars"}, "results: expected a JSON list of ingest results, got an object"),
    ([], "results: the list is empty"),
    (["daily_bars"], "results[0]: expected an object, got a string"),
    ([dict(RESULTS[0], status="broken")], "results[0].status (dimension 'daily_bars'): Input should be 'ok', 'warn' "
                                          "or 'fail', got 'broken'"),
    ([RESULTS[0], dict(RESULTS[1], rows=-1)], "results[1].rows (dimension 'intraday_trades'): Input should be "
                                              "greater than or equal to 0, got -1"),
    ([{k: v for k, v in RESULTS[0].items() if k != "rows"}], "results[0].rows (dimension 'daily_bars'): missing"),
    ([dict(RESULTS[0], rows="many")], "results[0].rows (dimension 'daily_bars'): Input should be a valid integer"),
    ([dict(RESULTS[0], symbols=["AAPL", 7])], "results[0].symbols[1] (dimension 'daily_bars')"),
    ([{"status": "ok", "rows": 1}], "results[0].dimension: missing"),
    ([RESULTS[0], RESULTS[0]], "results[1].dimension: 'daily_bars' is recorded twice (first at results[0])"),
])
def test_bad_results_name_the_item_and_field(results, message):
    with pytest.raises(SimulationInputError) as info:
        simulate_failover(results)
    assert message in str(info.value)


def test_unknown_fail_dimension_is_refused_naming_the_recorded_ones():
    with pytest.raises(SimulationInputError, match=r"fail_dimensions: 'daly_bars' not in the recorded results "
                                                   r"\(daily_bars, intraday_trades, macro_events\)"):
        simulate_failover(RESULTS, ["daly_bars"])


def test_blank_dimension_name_is_refused():
    with pytest.raises(SimulationInputError, match="fail_dimensions: expected dimension names"):
        simulate_failover(RESULTS, ["daily_bars", " "])


def test_load_results_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("[{")
    with pytest.raises(SimulationInputError, match=r"bad\.json: not JSON"):
        load_results(bad)
    with pytest.raises(SimulationInputError, match=r"missing\.json: cannot read"):
        load_results(tmp_path / "missing.json")
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps([dict(RESULTS[0], status="down")]))
    with pytest.raises(SimulationInputError, match=r"wrong\.json: results\[0\]\.status"):
        load_results(wrong)
