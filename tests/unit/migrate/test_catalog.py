"""The cheap schema comparison: equal only where Alembic would find nothing either."""
import copy

from backbone.migrate import catalog

WANT = catalog.expected()


def test_the_expected_catalogue_covers_every_declared_table_on_both_dialects():
    from backbone.migrate.ops import alembic_config
    from backbone.migrate.schema import metadata
    from alembic.script import ScriptDirectory
    assert WANT["tables"] == sorted(metadata.tables)
    assert WANT["head"] == ScriptDirectory.from_config(alembic_config()).get_current_head()
    for dialect in ("postgresql", "sqlite"):
        assert sorted(WANT[dialect]) == WANT["tables"]
        for name, table in metadata.tables.items():
            assert sorted(WANT[dialect][name]["columns"]) == sorted(c.name for c in table.columns), (dialect, name)


def test_identical_descriptions_match():
    assert catalog.matches(copy.deepcopy(WANT["postgresql"]), WANT["postgresql"])


def test_any_difference_alembic_compares_does_not_match():
    want = WANT["postgresql"]
    edits = [
        lambda d: d.pop("macro_events"),                                             # table missing
        lambda d: d["daily_bars"]["columns"].pop("volume"),                          # column missing
        lambda d: d["daily_bars"]["columns"].__setitem__("note", ["text", False, None]),  # extra column
        lambda d: d["daily_bars"]["columns"]["source"].__setitem__(0, "text"),       # type
        lambda d: d["daily_bars"]["columns"]["source"].__setitem__(1, False),        # nullability
        lambda d: d["daily_bars"]["columns"]["source"].__setitem__(2, "hand-written"),  # comment
        lambda d: d["ingest_runs"]["constraints"].__setitem__("u1", ["u", "UNIQUE (dimension)"]),
        lambda d: d["daily_bars"]["indexes"].pop("daily_bars_pkey"),                 # an index the migrations made
    ]
    for edit in edits:
        live = copy.deepcopy(want)
        edit(live)
        assert not catalog.matches(live, want)


def test_indexes_the_migrations_did_not_create_are_not_drift():
    live = copy.deepcopy(WANT["postgresql"])
    live["daily_bars"]["indexes"]["daily_bars_ts_idx"] = "CREATE INDEX daily_bars_ts_idx ON public.daily_bars (ts DESC)"
    assert catalog.matches(live, WANT["postgresql"])
