"""Twenty labelers at once on one dataset, each with its own engine like separate processes: no label lost or doubled."""

from __future__ import annotations

from collections import Counter

from concurrency_support import run_labelers
from sqlalchemy import select

from storage import repo
from storage.models import Example

SESSIONS, LABELS_EACH = 20, 50


def test_20_sessions_x_50_labels_store_exactly_1000(ctx, sessions, make_dataset, db_url):
    ds = make_dataset(n=1_100)  # more than are labeled: nobody runs out, and leftovers stay unlabeled
    shown, errors = run_labelers(ctx.settings, db_url, ds, SESSIONS, LABELS_EACH, barrier=True)
    assert not errors, errors[:3]

    everyone = [ex for labeled in shown.values() for ex in labeled]
    assert len(everyone) == len(set(everyone)) == SESSIONS * LABELS_EACH  # no example handed out twice
    with sessions() as s:
        rows = s.execute(select(Example.id, Example.labeled_by).where(Example.label.is_not(None))).all()
        assert repo.count_examples(s, ds, status="labeled") == SESSIONS * LABELS_EACH
    assert {r.id for r in rows} == set(everyone)
    assert Counter(r.labeled_by for r in rows) == {
        f"user{i}": LABELS_EACH for i in range(SESSIONS)
    }  # none overwritten
