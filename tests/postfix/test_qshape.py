"""qshape tables against hand-made layouts and QSHAPE_README's examples (mta-semantics.md 6.1).

Widths by hand for the main case: T column max(len("T"), len("2453")) + 1 = 5; "5" to "80"
columns 3 (minimum); 160/320/640 columns 4; 1280 column 5; 1280+ column 6. The numeric columns
take 43 characters, so the domain field is right-aligned in 80 - 43 = 37.
"""

import textwrap

import numpy as np
import pytest

from sim.postfix.qshape import RELAY_DOMAIN, format_table, nearest_sample
from sim.results import QSHAPE_LABELS

COUNTS = [2, 0, 0, 3, 8, 17, 50, 145, 208, 2020]

HAND_MADE = (
    " " * 37 + "    T  5 10 20 40 80 160 320 640 1280 1280+\n"
    + " " * 32 + "TOTAL 2453  2  0  0  3  8  17  50 145  208  2020\n"
    + " " * 26 + "example.com 2453  2  0  0  3  8  17  50 145  208  2020\n"
)

# QSHAPE_README, example 1 ("Healthy queue"), as printed there (its indentation trimmed).
README_HEALTHY = """\
                     T  5 10 20 40 80 160 320 640 1280 1280+
              TOTAL  5  0  0  0  1  0   0   0   1    1     2
      meri.uwasa.fi  5  0  0  0  1  0   0   0   1    1     2
"""
# QSHAPE_README, `qshape incoming` on an empty queue: the TOTAL row only.
README_EMPTY = """\
                     T  5 10 20 40 80 160 320 640 1280 1280+
              TOTAL  0  0  0  0  0  0   0   0   0    0     0
"""


def test_hand_made_table_is_exact():
    out = format_table({"example.com": COUNTS})
    assert out == HAND_MADE
    assert all(len(line) == 80 for line in out.splitlines())


@pytest.mark.parametrize("domains, expected", [
    ({"meri.uwasa.fi": [0, 0, 0, 1, 0, 0, 0, 1, 1, 2]}, README_HEALTHY),
    ({}, README_EMPTY),
    ({"example.com": [0] * 10}, README_EMPTY),  # a domain without mail gets no row
], ids=["healthy", "empty", "domain-without-mail"])
def test_readme_examples_up_to_indentation(domains, expected):
    assert textwrap.dedent(format_table(domains)) == textwrap.dedent(expected)


def test_rows_sorted_by_total_then_name_length_and_total_is_the_sum():
    out = format_table({"b.example.org": [1] * 10, "a.example.org": [0] * 9 + [30],
                        "c.example": [1] * 10}).splitlines()
    names = [line.split()[0] for line in out[1:]]
    assert names == ["TOTAL", "a.example.org", "c.example", "b.example.org"]
    assert out[1].split()[1:] == ["50", "2", "2", "2", "2", "2", "2", "2", "2", "2", "32"]


def test_a_shorter_domain_with_the_same_total_sorts_before_total_as_in_qshape_pl():
    out = format_table({"a.io": [5] + [0] * 9}).splitlines()
    assert [line.split()[0] for line in out[1:]] == ["a.io", "TOTAL"]


def test_long_domain_is_truncated_to_plus_and_its_tail():
    name = "very-long-subdomain-name.mail.example.com"  # 41 > 37 characters
    out = format_table({name: COUNTS}).splitlines()
    assert out[2].startswith("+" + name[-36:] + " 2453")
    assert len(out[2]) == 80


def test_wide_counts_widen_their_columns_and_shrink_the_domain_field():
    header = format_table({RELAY_DOMAIN: [1000] * 10}).splitlines()[0]
    # T column: len("10000") + 1 = 6; buckets: len("1000") + 1 = 5, 1280+: 6; 80 - 57 = 23
    assert header == " " * 23 + "     T" + "".join(
        lab.rjust(5) for lab in ("5", "10", "20", "40", "80", "160", "320", "640", "1280")
    ) + " 1280+"


def test_domain_field_never_narrower_than_18():
    out = format_table({RELAY_DOMAIN: [10**9] * 10}).splitlines()
    # T column: len("10000000000") + 1 = 12, so "T" ends the first 18 + 12 characters
    assert out[0].index("T") == 18 + 11
    assert out[2].startswith(" " * 7 + RELAY_DOMAIN + " 10000000000")
    assert len(out[0]) > 80


def test_counts_must_match_the_buckets():
    with pytest.raises(ValueError, match="9 counts for 10 buckets"):
        format_table({RELAY_DOMAIN: [1] * 9})


@pytest.mark.parametrize("at, index", [(0, 0), (1799, 0), (1801, 1), (7200, 2), (1e9, 3),
                                       (-5, 0)],
                         ids=["start", "before-mid", "after-mid", "exact", "beyond", "negative"])
def test_nearest_sample(at, index):
    assert nearest_sample(np.array([0.0, 3600.0, 7200.0, 10800.0]), at) == index


# --- qshape of a postqueue -j snapshot, against the real qshape ---------------------------------

import json  # noqa: E402
from pathlib import Path  # noqa: E402

from sim.postfix import postqueue as pq  # noqa: E402
from sim.postfix.qshape import bucket_labels, caption, format_snapshot  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "data" / "postqueue"


def _options(args):
    opts = {"sender": False, "linear": False, "bucket_count": 10, "bucket_time": 5}
    queues, it = [], iter(args)
    for a in it:
        if a == "-s":
            opts["sender"] = True
        elif a == "-l":
            opts["linear"] = True
        elif a == "-b":
            opts["bucket_count"] = int(next(it))
        elif a == "-t":
            opts["bucket_time"] = int(next(it))
        else:
            queues.append(a)
    return queues, opts


@pytest.mark.parametrize("run", json.loads((DATA / "qshape.json").read_text()),
                         ids=lambda r: " ".join(r["args"]))
def test_snapshot_table_equals_real_qshape(run):
    """Real Postfix 3.7.11 qshape on the queue that running.jsonl lists (same moment, see
    experiments/postqueue_fixture.py): the same bytes from the postqueue -j snapshot."""
    s = pq.read_postqueue(DATA / "running.jsonl", time=int(run["now"]))  # qshape: now = time
    queues, opts = _options(run["args"])
    assert format_snapshot(s, queues, **opts) == run["output"]


@pytest.mark.parametrize("count, minutes, linear, labels", [
    (10, 5, False, "5 10 20 40 80 160 320 640 1280 1280+"),
    (4, 1, False, "1 2 4 4+"),
    (5, 1, True, "1 2 3 4 4+"),
    (2, 5, False, "5 5+"),
    (1, 5, False, "0+"),
], ids=["default", "b4-t1", "linear", "two", "one"])
def test_bucket_labels_as_qshape_pl(count, minutes, linear, labels):
    assert " ".join(bucket_labels(count, minutes, linear)) == labels


def test_default_labels_are_the_runs_columns():
    assert bucket_labels() == QSHAPE_LABELS


def test_ages_fall_in_qshape_buckets():
    obj = json.loads((DATA / "running.jsonl").read_text().splitlines()[1])
    lines = []
    for k, age_min in enumerate([0, 4.99, 5, 9.99, 10, 700, 1279, 1280, 99999]):
        o = dict(obj, queue_id=f"A{k:09d}", arrival_time=1_000_000 - round(age_min * 60))
        lines.append(json.dumps(o))
    s = pq.parse_postqueue(lines, time=1_000_000)
    row = format_snapshot(s, ["deferred"]).splitlines()[2].split()
    assert row[0] == "example.test"
    assert list(map(int, row[2:])) == [2, 2, 1, 0, 0, 0, 0, 0, 2, 2]


def test_caption_says_what_and_when():
    assert caption(["deferred"], "21d (2026-01-26T00:00:00Z)") == (
        "deferred queue at 21d (2026-01-26T00:00:00Z), recipients by domain, age since "
        "arrival in minutes")
    assert "messages by sender domain" in caption(["hold", "deferred"], "1h", sender=True)
    assert "messages by recipient domain" in caption(["deferred"], "1h", messages=True)
