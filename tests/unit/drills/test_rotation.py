"""The quarterly drill rotation (pure): every quarter of a year, the commands it prints are
real CLI invocations, and a plan survives its JSON form."""
import datetime as dt
import json
import shlex

import pytest

from backbone.cli import build_parser
from backbone.contract import Objectives
from backbone.drills.rotation import KINDS, SERVICES, load_plan, plan_for, to_markdown
from backbone.errors import ConfigError

YEAR = [plan_for(dt.date(2027, month, 15)) for month in (2, 5, 8, 11)]


def test_the_four_quarters_of_a_year():
    assert [p.label for p in YEAR] == ["2027-Q1", "2027-Q2", "2027-Q3", "2027-Q4"]
    assert [(p.starts, p.ends) for p in YEAR] == [("2027-01-01", "2027-03-31"), ("2027-04-01", "2027-06-30"),
                                                  ("2027-07-01", "2027-09-30"), ("2027-10-01", "2027-12-31")]
    for plan in YEAR:  # every quarter: each service once, and all three kinds across them
        assert [s.service for s in plan.scenarios] == list(SERVICES)
        assert sorted(s.kind for s in plan.scenarios) == sorted(KINDS)
    for i, service in enumerate(SERVICES):  # every service meets every kind within three quarters
        assert {YEAR[q].scenarios[i].kind for q in range(3)} == set(KINDS)
    assert [s.kind for s in YEAR[3].scenarios] == [s.kind for s in YEAR[0].scenarios]


def test_any_day_of_a_quarter_gives_the_same_plan():
    assert plan_for(dt.date(2027, 4, 1)).to_dict() == plan_for(dt.date(2027, 6, 30)).to_dict()
    assert plan_for(dt.date(2027, 3, 31)).label == "2027-Q1"


def test_failover_faults_rotate_over_the_years():
    faults = {plan_for(dt.date(year, 1, 10)).scenarios[0].fault for year in (2027, 2028, 2029)}
    assert faults == {"kill", "stop", "pause"}


@pytest.mark.parametrize("quarter", range(4))
def test_every_command_is_a_real_invocation(quarter):
    parser = build_parser()
    for s in YEAR[quarter].scenarios:
        argv = shlex.split(s.command)
        assert argv[0] == "backbone"
        args = parser.parse_args(argv[1:])
        assert args.service == s.service
        if s.kind != "backup":
            assert (args.fault, args.target) == (s.fault, s.target)


def test_objectives_come_from_the_contract_and_the_markdown_names_them():
    objectives = Objectives.model_validate({"redis": {"rto_s": 42, "rpo_s": 7}})
    plan = plan_for(dt.date(2027, 1, 1), objectives, "--stack prod")
    redis = plan.scenarios[1]
    assert redis.objectives == {"rto_s": 42, "rpo_s": 7} and redis.command.endswith("--stack prod")
    text = to_markdown(plan)
    assert "42 s" in text and "What to watch" in text and redis.watch[0] in text


def test_a_plan_round_trips_through_json_and_bad_files_are_refused(tmp_path):
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(YEAR[1].to_dict()))
    assert load_plan(path).to_dict() == YEAR[1].to_dict()
    path.write_text('{"year": 2027}')
    with pytest.raises(ConfigError, match="not a drill plan"):
        load_plan(path)
    bad = YEAR[1].to_dict()
    bad["scenarios"][0]["kind"] = "meteor"
    path.write_text(json.dumps(bad))
    with pytest.raises(ConfigError, match="unknown scenario"):
        load_plan(path)
