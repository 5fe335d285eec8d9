"""Twenty labelers at once on one dataset, each with its own engine like separate processes: no label lost or doubled."""

from __future__ import annotations

import threading
from collections import Counter

from sqlalchemy import select

from storage import repo
from storage.db import make_engine, session_factory
from storage.models import Example
from ui.common import Ctx
from ui.label import act, current_id, new_state, open_dataset

SESSIONS, LABELS_EACH = 20, 50


def test_20_sessions_x_50_labels_store_exactly_1000(ctx, sessions, make_dataset, db_url):
    ds = make_dataset(n=1_100)  # more than are labeled: nobody runs out, and leftovers stay unlabeled
    shown: dict[int, list[int]] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(SESSIONS)

    def labeler(i: int) -> None:
        engine = make_engine(db_url)
        try:
            own = Ctx(ctx.settings, session_factory(engine))
            start.wait()
            st = open_dataset(own, new_state(f"tab-{i}", f"user{i}"), ds)
            labeled = []
            while len(labeled) < LABELS_EACH:
                ex = current_id(st)
                st = act(own, st, "label", index=i % 2, example=ex)
                assert not st["msg"], st["msg"]  # never refused: nobody was shown another's example
                labeled.append(ex)
            shown[i] = labeled
        except BaseException as err:  # noqa: BLE001 - reported by the main thread
            errors.append(err)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=labeler, args=(i,)) for i in range(SESSIONS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
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
