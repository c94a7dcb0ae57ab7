"""The canonical row text verification compares between the tiers: no false mismatch on a
type's edge cases (-0.0, timestamp spellings, json key order and number forms) and no false
equality (NULL vs NaN, escaped separators, a microsecond, values a column cannot hold)."""
import datetime as dt
import math
import sqlite3

from hypothesis import given, settings
from hypothesis import strategies as st

from backbone.data.store_sqlite import to_text
from backbone.tier import canonical as C
from backbone.tier.tables import TABLES

UTC = dt.timezone.utc


def digest(row, kinds):
    return C.digest("|".join(C.row_parts(row, kinds)))


def test_null_and_nan_differ_and_both_zeros_are_one():
    assert C.floating(None) == "\\N" and C.floating(math.nan) == "NaN"
    assert digest((None,), ("float",)) != digest((math.nan,), ("float",))
    assert C.floating(-0.0) == C.floating(0.0) == "0"
    assert C.floating(-math.nan) == "NaN"


def test_infinities_have_names_of_their_own():
    assert C.floating(math.inf) == "Infinity" and C.floating(-math.inf) == "-Infinity"
    assert C.floating(1.7976931348623157e308) == "7fefffffffffffff"
    assert C.floating(1.0) == "3ff0000000000000" and C.floating(-2.5) == "c004000000000000"
    assert C.floating(5e-324) == "0000000000000001"  # the smallest subnormal is not zero


def test_separators_and_backslashes_in_text_are_never_ambiguous():
    kinds = ("text", "text")
    assert digest(("a|b", "c"), kinds) != digest(("a", "b|c"), kinds)
    assert digest(("a\\", "b"), kinds) != digest(("a", "\\b"), kinds)
    assert digest(("a\\|", "b"), kinds) != digest(("a\\", "|b"), kinds)
    assert C.text("\\N") != C.text(None)  # the text \N is not NULL
    assert C.text("Ünïcode €") == "Ünïcode €" and C.text("ABC") != C.text("abc")  # exact, no folding
    assert C.text("e\u0301") != C.text("\u00e9")  # no normalisation either
    for s in ("a|b", "x\\|", "\\\\", "|\\|", "line\nbreak\\"):
        assert C.unescape(C.escape(s)) == s


def test_timestamp_spellings_are_one_instant_and_a_microsecond_is_not():
    at = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    us = str(C.ts_us(at))
    for spelled in ("2024-01-02 03:04:05", "2024-01-02 03:04:05.000000", "2024-01-02T03:04:05",
                    "2024-01-02 03:04:05+00:00", "2024-01-02T05:04:05+02:00", "2024-01-01T22:04:05-05:00",
                    "2024-01-02T03:04:05Z", to_text(at), at, at.astimezone(dt.timezone(dt.timedelta(hours=9)))):
        assert C.timestamp(spelled) == us, spelled
    assert C.timestamp("2024-01-02 03:04:05.000001") == str(int(us) + 1)
    assert C.timestamp(at + dt.timedelta(microseconds=1)) != us
    assert C.ts_us("1969-12-31 23:59:59.999999") == -1
    assert C.bucket_of("1969-12-31 23:59:59.999999", C.ts_us(at)) == -1  # floor, not truncation


def test_json_key_order_and_number_spelling_do_not_matter_but_values_do():
    assert C.json_text('{"b": 1, "a": [1, 2, {"y": null, "x": true}]}') == \
        C.json_text('{"a":[1,2,{"x":true,"y":null}],"b":1}')
    one = C.json_text('{"n": 1}')
    assert one == C.json_text('{"n": 1.0}') == C.json_text('{"n": 1e0}') == C.json_text('{"n":10E-1}')
    assert C.json_text("100") == C.json_text("1e2") == C.json_text(100) == C.json_text(100.0)  # SQLite NUMERIC affinity
    assert C.json_text('{"n": 1}') != C.json_text('{"n": 2}')
    assert C.json_text('{"n": 1}') != C.json_text('{"n": "1"}')
    assert C.json_text("[1, 2]") != C.json_text("[2, 1]")  # arrays keep their order
    assert C.json_text("0.1") != C.json_text("0.10000000000000000000000000000001")  # exact, no rounding
    assert C.json_text("-0") == C.json_text("0.0") == C.json_text("0")
    assert C.json_text('"a|b"') != C.json_text('"a"') and "|" not in C.json_text('"a|b"').replace("\\|", "")
    assert C.json_text(None) == "\\N" != C.json_text("null")


def test_values_a_column_cannot_hold_match_nothing():
    assert C.text(b"abc") != C.text("abc") and C.text(b"abc").startswith("\\?")
    assert C.timestamp("yesterday").startswith("\\?") and C.bucket_of("yesterday", 10) is None
    assert C.timestamp(20240102) != C.timestamp("2024-01-02")
    assert C.integer(3.5).startswith("\\?") and C.integer("3") != C.integer(3)
    assert C.floating("1.0") != C.floating(1.0)
    assert C.json_text("{not json").startswith("\\?")
    # text that starts like a marker is escaped, so it never looks like one
    assert C.text("\\?str:'x'") != C.text(b"x")


def test_render_shows_keys_as_stored():
    assert C.render(C.timestamp("2024-01-02 03:04:05.000007"), "ts") == "2024-01-02T03:04:05.000007+00:00"
    assert C.render(C.text("a|b\\c"), "text") == "a|b\\c"
    assert C.render(C.integer(42), "int") == 42 and C.render(C.NULL, "text") is None


def test_digest_sum_is_the_exact_sum_of_signed_digests():
    texts = [f"row {i}" for i in range(1000)]
    from hashlib import md5
    assert C.digest_sum([md5(t.encode()).digest() for t in texts]) == sum(map(C.digest, texts))


def test_the_sql_side_never_depends_on_standard_conforming_strings():
    for kind in ("text", "float", "ts", "int"):
        sql = C.pg_canonical('"c"', kind)
        assert "E'\\\\N'" in sql and "'\\N'" not in sql.replace("E'\\\\N'", "")
    assert "E'\\\\'" in C.pg_canonical('"c"', "text")


# --- properties ---------------------------------------------------------------------------

texts = (st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
         | st.sampled_from(["|", "\\", "\\|", "\\N", ""]))
floats = st.floats(allow_nan=False) | st.sampled_from([0.0, -0.0, math.inf, -math.inf, 5e-324])
instants = st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30), timezones=st.just(UTC))
odd = st.sampled_from([b"blob", "not a time", 3.5, "3"])


def stored_text(ts: dt.datetime, form: int) -> str:
    """The spellings a bootstrap store may hold for one instant."""
    return [to_text(ts), ts.isoformat(), ts.replace(tzinfo=None).isoformat(sep=" "),
            ts.astimezone(dt.timezone(dt.timedelta(hours=-7, minutes=-30))).isoformat()][form]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(texts, instants, floats, floats, st.integers(-2 ** 63, 2 ** 63 - 1), st.none() | texts,
                          st.integers(0, 3)), max_size=20))
def test_a_row_digests_the_same_from_python_values_and_from_sqlite_text(rows):
    """What TimescaleDB's driver returns (aware datetimes, floats) and what the bootstrap store
    holds after a round trip through SQLite (timestamps as text in any spelling) agree."""
    kinds = ("text", "ts", "float", "float", "int", "text")
    lite = sqlite3.connect(":memory:")
    lite.execute("CREATE TABLE t (a VARCHAR(32), ts DATETIME, x FLOAT, y FLOAT, n BIGINT, b VARCHAR(32))")
    lite.executemany("INSERT INTO t VALUES (?, ?, ?, ?, ?, ?)",
                     [(a, stored_text(ts, form), x, y, n, b) for a, ts, x, y, n, b, form in rows])
    stored = lite.execute("SELECT * FROM t").fetchall()
    assert [digest(s, kinds) for s in stored] == [digest(r[:6], kinds) for r in rows]


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_the_generated_fast_path_agrees_with_the_reference(data):
    for name in ("daily_bars", "intraday_trades", "macro_events"):
        table = TABLES[name]
        spelled = instants.flatmap(lambda ts: st.integers(0, 3).map(lambda form: stored_text(ts, form)))
        value = {"text": st.none() | texts | odd, "float": st.none() | floats | odd,
                 "int": st.none() | st.integers() | odd, "ts": st.none() | odd | spelled}
        rows = data.draw(st.lists(st.tuples(*(value[k] for k in table.kinds)), max_size=15))
        width = data.draw(st.sampled_from([1, 86_400_000_000, 30 * 86_400_000_000]))
        at = table.columns.index(table.time)
        expected: dict = {}
        for row in rows:
            bucket = C.bucket_of(row[at], width)
            n, s = expected.get(bucket, (0, 0))
            expected[bucket] = (n + 1, s + digest(row, table.kinds))
        assert C.batch_digester(table.kinds, at, width)(rows) == expected


def test_common_rows_take_the_generated_path(monkeypatch):
    """The reference runs only for what the fast path does not cover (NULL floats, odd values)."""
    calls = []
    reference = C.row_parts
    monkeypatch.setattr(C, "row_parts", lambda row, kinds: calls.append(row) or reference(row, kinds))
    table = TABLES["intraday_trades"]
    fast = C.batch_digester(table.kinds, 1, 86_400_000_000)
    common = ("AAPL", "2024-01-02 03:04:05.000006", "t|1\\", 1.5, 2.0, None, "src", None)
    fast([common, ("AAPL", "2024-01-02 03:04:05", "t2", 1.5, 0.0, "X", "src", "buy")])
    assert calls == [("AAPL", "2024-01-02 03:04:05", "t2", 1.5, 0.0, "X", "src", "buy")]  # a zero: the reference
