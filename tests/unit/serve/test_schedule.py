"""The schedule file: what it accepts, and one clear error naming the field for each bad input."""
from pathlib import Path

import pytest

from backbone.errors import ConfigError
from backbone.serve.schedule import DEFAULT_CACHE_INTERVAL_S, Generated, load_schedule, parse_schedule

GOOD = """
cache_interval_s = 5

[[job]]
name = "bars-drop"
dimension = "bars"
drop_dir = "incoming/bars"
interval_s = 30
jitter_s = 5

[[job]]
name = "trades-live"
dimension = "trades"
generate = { rows = 500, symbols = 5 }
interval_s = 10
"""


def parse(text: str):
    return parse_schedule(text, Path("/srv/serve/schedule.toml"))


def job(**fields) -> str:
    body = {"name": '"j1"', "dimension": '"bars"', "drop_dir": '"in"', "interval_s": "10", **fields}
    return "[[job]]\n" + "".join(f"{k} = {v}\n" for k, v in body.items() if v is not None)


def refused(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse(text)
    assert info.value.exit_code == 2
    return str(info.value)


def test_a_good_schedule():
    schedule = parse(GOOD)
    assert schedule.cache_interval_s == 5
    drop, live = schedule.jobs
    assert (drop.name, drop.dimension, drop.interval_s, drop.jitter_s) == ("bars-drop", "bars", 30, 5)
    assert drop.drop_dir == Path("/srv/serve/incoming/bars") and drop.generate is None
    assert (live.generate, live.drop_dir, live.jitter_s) == (Generated(500, 5), None, 0)
    assert "generated: 500 rows" in live.source and "incoming/bars" in drop.source


def test_defaults_and_absolute_drop_dir():
    schedule = parse(job(drop_dir='"/data/in"'))
    assert schedule.cache_interval_s == DEFAULT_CACHE_INTERVAL_S
    assert schedule.jobs[0].drop_dir == Path("/data/in")
    assert parse(job(drop_dir=None, generate="{ rows = 3 }")).jobs[0].generate == Generated(3, 10)
    assert parse("").jobs == ()  # no jobs: serve still runs the relay, the bridge and the cache


def test_a_drop_dir_need_not_exist_yet(tmp_path):
    path = tmp_path / "schedule.toml"
    path.write_text(job(drop_dir='"not/there/yet"'))
    assert load_schedule(path).jobs[0].drop_dir == tmp_path / "not" / "there" / "yet"


@pytest.mark.parametrize("fields, message", [
    ({"interval_s": "0"}, "job 'j1': interval_s must be > 0"),
    ({"interval_s": "-3"}, "job 'j1': interval_s must be > 0"),
    ({"interval_s": "nan"}, "job 'j1': interval_s must be > 0"),
    ({"interval_s": "inf"}, "job 'j1': interval_s must be > 0"),
    ({"interval_s": '"10"'}, "job 'j1': interval_s must be a number of seconds"),
    ({"interval_s": "true"}, "job 'j1': interval_s must be a number of seconds"),
    ({"interval_s": "90000"}, "job 'j1': interval_s must be at most 86400"),
    ({"interval_s": None}, "job 'j1': interval_s is required"),
    ({"jitter_s": "-1"}, "job 'j1': jitter_s must be >= 0"),
    ({"dimension": '"quotes"'}, "job 'j1': dimension must be one of bars, trades, macro"),
    ({"dimension": None}, "job 'j1': dimension is required"),
    ({"drop_dir": '""'}, "job 'j1': drop_dir must be a non-empty path"),
    ({"drop_dir": "3"}, "job 'j1': drop_dir must be a non-empty path"),
    ({"drop_dir": None}, "job 'j1': give exactly one source, drop_dir or generate"),
    ({"generate": "{ rows = 5 }"}, "job 'j1': give exactly one source, drop_dir or generate"),
    ({"every": "3"}, "job 'j1': unknown key(s) 'every'"),
    ({"name": '"has space"'}, "job #1: name must be 1-64 of"),
    ({"name": None}, "job #1: name is required"),
])
def test_bad_job_fields_are_named(fields, message):
    text = refused(job(**fields))
    assert text.startswith("/srv/serve/schedule.toml: "), text
    assert message in text, text


@pytest.mark.parametrize("generate, message", [
    ("{ rows = 0 }", "generate.rows must be from 1 to 1000000"),
    ("{ rows = 2000000 }", "generate.rows must be from 1 to 1000000"),
    ("{ rows = 1.5 }", "generate.rows must be a whole number"),
    ("{ symbols = 3 }", "generate.rows is required"),
    ("{ rows = 5, symbols = 0 }", "generate.symbols must be from 1 to 1000"),
    ("{ rows = 5, seed = 1 }", "generate: unknown key(s) 'seed'"),
    ('"lots"', "generate must be a table"),
])
def test_bad_generate_fields_are_named(generate, message):
    text = refused(job(drop_dir=None, generate=generate))
    assert f"job 'j1': {message}" in text, text


def test_job_names_are_unique():
    text = refused(job() + job())
    assert "job 'j1': name is used by another job" in text


def test_file_level_problems():
    assert "not valid TOML" in refused("[[job]\nname = 1")
    assert "unknown key(s) 'jobs'" in refused('[[jobs]]\nname = "x"')
    assert "job must be an array of tables" in refused('[job]\nname = "x"')
    assert "job #1 must be a table" in refused("job = [1]")
    assert "cache_interval_s must be > 0" in refused("cache_interval_s = 0")


def test_a_missing_or_unreadable_file(tmp_path):
    with pytest.raises(ConfigError, match="--schedule .*nope.toml: file not found"):
        load_schedule(tmp_path / "nope.toml")
    (tmp_path / "bin.toml").write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match="cannot read"):
        load_schedule(tmp_path / "bin.toml")
