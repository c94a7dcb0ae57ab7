"""`tier switch` with stderr a pipe (a CI log): the copy and the catch-up say plain progress
lines while they run, and a count taken as an estimate is never passed."""
import datetime as dt
import re

from backbone.data import open_backbone
from backbone.data.rows import Bar

from .test_switch import T0, seed, tier

PROGRESS = {"BACKBONE_PROGRESS_S": "0"}  # a line per step: what is said is under test, not its pace


def test_copy_and_catch_up_say_progress_off_a_terminal(deployment):
    seed(deployment, 3000, 10)
    copied = tier(deployment, "switch", "--stop-after", "copy", env=PROGRESS)
    assert copied.returncode == 0, copied.stderr
    assert re.search(r"^copy daily_bars: [\d,]+/about 3,000 rows \(\d+%\)", copied.stderr, re.M), copied.stderr
    # written after the copy: 45,000 changes for the catch-up, in batches of 20,000
    with open_backbone(deployment.bootstrap()) as bb:
        bb.ingest("bars", [Bar(f"LATE{i % 50}", T0 + dt.timedelta(days=i // 50), 1.0, 2.0, 0.5, 1.5, i, "late")
                           for i in range(45_000)], source="late")
    caught = tier(deployment, "switch", "--stop-after", "catchup", env=PROGRESS)
    assert caught.returncode == 0, caught.stderr
    during = re.findall(r"^catch-up: ([\d,]+)/about ([\d,]+) changes \(\d+%\)", caught.stderr, re.M)
    assert len(during) >= 2, caught.stderr  # while the pass runs, not only once it is over
    for done, total in during:
        assert int(done.replace(",", "")) <= int(total.replace(",", ""))
    assert re.search(r"^catch-up: [\d,]+ change\(s\) applied, 0 left", caught.stderr, re.M), caught.stderr
    for line in copied.stderr.splitlines() + caught.stderr.splitlines():
        numbers = re.match(r"^\S+(?: \S+)?: ([\d,]+)/(?:about )?([\d,]+) ", line)
        if numbers:
            assert int(numbers[1].replace(",", "")) <= int(numbers[2].replace(",", "")), line
