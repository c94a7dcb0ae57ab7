"""`backbone ingest` and `backbone query` on the embedded tier: files all or nothing, bad rows
with their line numbers, re-ingest changes nothing and is journaled, reads say hit or miss."""
import gzip
import json
import sqlite3

import pytest

from .run_in_process import run


@pytest.fixture
def store(tmp_path):
    path = tmp_path / "store.db"
    extra = ("--extra", f"BACKBONE_BOOTSTRAP_STORE={path}")
    code, _, err, _ = run("migrate", "apply", *extra)
    assert code == 0, err
    return path, extra


def count(path, table="daily_bars"):
    with sqlite3.connect(path) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


GOOD = ["symbol,ts,open,high,low,close,volume", "AAA,2024-01-02T00:00:00Z,10,11,9,10.5,100",
        "AAA,2024-01-03T00:00:00Z,10.5,12,10,11,200", "BBB,2024-01-02T00:00:00Z,5,6,4,5.5,300"]


def test_a_file_with_bad_rows_writes_nothing_and_names_each_line(tmp_path, store):
    path, extra = store
    bad = GOOD + ["AAA,2024-01-04T00:00:00,10,11,9,10,1",       # line 5: naive timestamp
                  "CCC,2024-01-02T00:00:00Z,10,9,11,10,1",      # line 6: high below low
                  "DDD,2024-01-02T00:00:00Z,nan,11,9,10,1"]     # line 7: not finite
    (tmp_path / "bars.csv").write_text("\n".join(bad) + "\n")
    code, out, err, _ = run("ingest", "--dimension", "bars", "--file", str(tmp_path / "bars.csv"), *extra)
    assert code == 2 and "nothing written" in err
    assert "line 5: ts has no time zone" in err and "line 6: high 9 is below low 11" in err
    assert "line 7: open is not finite" in err
    assert count(path) == 0
    code, out, err, _ = run("ingest", "--dimension", "bars", "--file", str(tmp_path / "bars.csv"), "--skip-invalid",
                            "--format", "json", *extra)
    assert code == 0 and json.loads(out)["inserted"] == 3 and json.loads(out)["rejected"] == 3
    assert count(path) == 3


def test_reingesting_a_gzip_file_changes_nothing_and_is_journaled(tmp_path, store):
    path, extra = store
    with gzip.open(tmp_path / "bars.csv.gz", "wt") as f:
        f.write("\n".join(GOOD) + "\n")
    results = []
    for _ in range(2):
        code, out, err, _ = run("ingest", "--dimension", "bars", "--file", str(tmp_path / "bars.csv.gz"),
                                "--format", "json", *extra)
        assert code == 0, err
        results.append(json.loads(out))
    assert (results[0]["inserted"], results[1]["inserted"], results[1]["updated"], results[1]["unchanged"]) == (3, 0, 0, 3)
    with sqlite3.connect(path) as conn:
        runs = conn.execute("SELECT status, rows, rows_inserted, source FROM ingest_runs ORDER BY started_at").fetchall()
    assert [r[:3] for r in runs] == [("ok", 3, 3), ("ok", 3, 0)] and runs[0][3].endswith("bars.csv.gz")


def test_a_vendor_daily_bar_file_needs_its_symbol(tmp_path, store):
    path, extra = store
    vendor = tmp_path / "AAPL.csv"
    vendor.write_text("Date,Open,High,Low,Close,Adj Close,Volume\n2024-01-02,187.15,188.44,183.89,185.64,184.9,82488700\n")
    code, out, err, _ = run("ingest", "--dimension", "bars", "--file", str(vendor), *extra)
    assert code == 2 and "symbol" in err
    code, out, err, _ = run("ingest", "--dimension", "bars", "--file", str(vendor), "--symbol", "AAPL", *extra)
    assert code == 0, err
    code, out, err, _ = run("query", "latest", "--symbols", "AAPL", "--format", "json", *extra)
    assert json.loads(out)[0]["close"] == 185.64 and json.loads(out)[0]["ts"] == "2024-01-02T00:00:00+00:00"


def test_query_says_miss_then_hit_and_generate_is_deterministic(store):
    path, extra = store
    for _ in range(2):
        code, out, err, _ = run("ingest", "--dimension", "trades", "--generate", "500", "--symbols", "3",
                                "--seed", "7", "--format", "json", *extra)
        assert code == 0, err
    assert json.loads(out)["unchanged"] == 500  # the same seed, the same rows
    code, out, err, _ = run("query", "trades", "--symbols", "SYM000,SYM001", "--repeat", "2", "--format", "csv", *extra)
    assert code == 0
    assert "cache: miss (store)" in err.splitlines()[0] and "cache: hit (cache)" in err.splitlines()[1]
    assert out.splitlines()[0] == "symbol,ts,trade_id,price,size,side,source"


@pytest.mark.parametrize("argv, needle", [
    (["ingest", "--dimension", "bars", "--file", "missing.csv"], "--file missing.csv: file not found"),
    (["ingest", "--dimension", "bars", "--generate", "0"], "must be from 1"),
    (["query", "bars", "--symbols", "AAA", "--start", "yesterday"], "expected an ISO 8601"),
    (["query", "bars", "--symbols", "AAA", "--start", "2024-02-01", "--end", "2024-01-01"], "--end must be after"),
])
def test_bad_arguments_are_exit_2(store, argv, needle):
    path, extra = store
    code, out, err, _ = run(*argv, *extra)
    assert code == 2 and needle in err


def journal(path):
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT status, rows_inserted, source, error FROM ingest_runs "
                            "ORDER BY finished_at DESC LIMIT 1").fetchone()


@pytest.mark.parametrize("name, content, reason", [
    ("wrong.csv", b"symbol,when,price\nAAA,2024-01-02T00:00:00Z,1\n", "missing required column(s) ts, open"),
    ("empty.csv.gz", b"", "named .gz but is not gzip-compressed"),
    ("plain.csv.gz", "\n".join(GOOD).encode(), "named .gz but is not gzip-compressed"),
    ("bad.jsonl", b'{"symbol": "AAA"}\n{not json\n', "line 2 is not valid JSON"),
])
def test_a_refused_file_is_journaled_rejected_exit_2_and_freshness_degraded_naming_it(tmp_path, store, name,
                                                                                       content, reason):
    path, extra = store
    bad = tmp_path / name
    bad.write_bytes(content)
    code, out, err, _ = run("ingest", "--dimension", "bars", "--file", str(bad), *extra)
    assert code == 2 and f"backbone: error: {bad}: " in err and reason in err, err
    assert "Traceback" not in err and count(path) == 0
    status, inserted, source, error = journal(path)
    assert (status, inserted, source) == ("rejected", 0, str(bad)) and reason in error and str(bad) in error
    code, out, err, _ = run("validate", "--format", "json", *extra)
    bars = {c["name"]: c for c in json.loads(out)["checks"]}["freshness.bars"]
    assert (bars["status"], bars["code"]) == ("degraded", "last_run_rejected"), bars
    assert f"the last ingest of {bad}, at " in bars["message"] and reason in bars["message"]
    assert code == 0  # degraded, not down: the deployment is ready


@pytest.mark.parametrize("argv, needle", [
    (["--file", "{std}", "--symbol", "AAA"], "is a CSV file with a symbol column (or without Date), not a vendor"),
    (["--file", "{jsonl}", "--symbol", "AAA"], "is JSON lines, not a vendor daily-bar file"),
    (["--file", "{std}", "--symbols", "3"], "--symbols apply to --generate only"),
    (["--file", "{std}", "--seed", "2"], "--seed apply to --generate only"),
])
def test_ingest_options_a_file_would_ignore_are_exit_2(tmp_path, store, argv, needle):
    path, extra = store
    (tmp_path / "bars.csv").write_text("\n".join(GOOD) + "\n")
    (tmp_path / "bars.jsonl").write_text('{"symbol": "AAA", "ts": "2024-01-02T00:00:00Z", "open": 1, "high": 1, '
                                         '"low": 1, "close": 1, "volume": 1}\n')
    argv = [a.format(std=tmp_path / "bars.csv", jsonl=tmp_path / "bars.jsonl") for a in argv]
    code, out, err, _ = run("ingest", "--dimension", "bars", *argv, *extra)
    assert code == 2 and needle in err, err
    assert count(path) == 0 and journal(path) is None


def test_generate_reports_the_stores_rate_not_the_generators(store):
    path, extra = store
    code, out, err, _ = run("ingest", "--dimension", "trades", "--generate", "20000", "--format", "json", *extra)
    assert code == 0, err
    done = json.loads(out)
    assert done["rate_of"] == "store" and 0 < done["store_seconds"] < done["seconds"]
    # store_seconds is rounded to the millisecond in the report, the rate is not
    assert done["rows_per_s"] == pytest.approx(done["received"] / done["store_seconds"], rel=0.05)
    assert done["rows_per_s"] > done["received"] / done["seconds"]  # making the rows is not counted
    code, out, err, _ = run("ingest", "--dimension", "trades", "--generate", "200", *extra)
    assert "| seconds | store rows/s |" in out


def test_query_names_its_kind_and_matches_symbols_in_any_case_and_hints_at_calendar_case(store):
    path, extra = store
    code, out, err, _ = run("query", "bar", "--symbols", "AAA", *extra)
    assert code == 2 and "argument KIND: invalid choice: 'bar'" in err and "what" not in err
    run("ingest", "--dimension", "bars", "--generate", "20", "--symbols", "2", *extra)
    run("ingest", "--dimension", "macro", "--generate", "20", *extra)
    code, out, err, _ = run("query", "bars", "--symbols", "sym000", "--format", "json", *extra)
    assert code == 0 and {r["symbol"] for r in json.loads(out)} == {"SYM000"}
    code, out, err, _ = run("query", "macro", "--symbols", "US", "--format", "json", *extra)
    assert code == 0 and json.loads(out) == []
    assert "calendars match exactly, case included" in err and "try --symbols us" in err
    code, out, err, _ = run("query", "macro", "--symbols", "us", "--format", "json", *extra)
    assert code == 0 and len(json.loads(out)) == 20 and "hint" not in err
