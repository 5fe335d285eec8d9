"""What the concurrency tests share: polling for a condition, and labelers that each have their own engine."""

from __future__ import annotations

import threading
import time

from storage.db import make_engine, session_factory


def wait_for(predicate, timeout_s: float = 60.0, every_s: float = 0.1):
    """Poll until `predicate()` is truthy and return it; the timeout only bounds a hang, it asserts no speed."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every_s)
    raise AssertionError("condition not met in time")


def run_labelers(settings, db_url: str, dataset_id: int, labelers: int, each: int, barrier: bool = False):
    """`labelers` threads label `each` examples of the dataset through the Label tab's handlers, each with its
    own engine and pool like separate app processes; returns ({labeler: example ids labeled}, errors)."""
    from ui.common import Ctx
    from ui.label import act, current_id, new_state, open_dataset

    shown: dict[int, list[int]] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(labelers) if barrier else None

    def labeler(i: int) -> None:
        engine = make_engine(db_url)
        try:
            own = Ctx(settings, session_factory(engine))
            if start is not None:
                start.wait()
            st = open_dataset(own, new_state(f"tab-{i}", f"user{i}"), dataset_id)
            labeled = []
            while len(labeled) < each:
                ex = current_id(st)
                st = act(own, st, "label", index=i % 2, example=ex)
                assert not st["msg"], st["msg"]  # never refused: nobody was shown another's example
                labeled.append(ex)
            shown[i] = labeled
        except BaseException as err:  # noqa: BLE001 - reported by the caller
            errors.append(err)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=labeler, args=(i,)) for i in range(labelers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    return shown, errors
