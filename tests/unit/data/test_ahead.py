"""Read ahead (backbone.data.ahead): the same items in the same order, the reader's error at
the point a plain loop would raise it, never more than `depth` + 1 batches made ahead of the
consumer, and a consumer that stops early stops the reader."""
import threading
import time

import pytest

from backbone.data.ahead import ahead


def test_the_same_items_in_order():
    assert list(ahead(iter(range(1000)))) == list(range(1000))
    assert list(ahead([])) == []


def test_an_error_in_the_reader_arrives_after_the_items_before_it():
    def items():
        yield 1
        yield 2
        raise ValueError("line 3: bad")

    got = []
    with pytest.raises(ValueError, match="line 3: bad"):
        for item in ahead(items()):
            got.append(item)
    assert got == [1, 2]


def test_the_reader_stays_at_most_depth_plus_one_ahead():
    made = []

    def items():
        for i in range(50):
            made.append(i)
            yield i

    for consumed, item in enumerate(ahead(items(), depth=2), 1):
        time.sleep(0.002)  # a slow consumer: the reader would run away if nothing held it
        assert len(made) - consumed <= 3, (len(made), consumed)


def test_stopping_early_stops_and_joins_the_reader():
    made, closed = [], threading.Event()

    def items():
        try:
            for i in range(10 ** 6):
                made.append(i)
                yield i
        finally:
            closed.set()

    before = threading.active_count()
    for item in ahead(items()):
        if item == 5:
            break
    assert closed.wait(2)  # the reader's generator was finished, not left hanging
    assert len(made) <= 8
    assert threading.active_count() == before
