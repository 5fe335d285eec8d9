"""Login throttling, the route guard (over real HTTP), and export files under unguessable names (issue 20 item 9)."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import gradio as gr
import httpx
import pytest

import app
from storage import repo
from ui import auth, data, models
from ui.auth import LoginThrottle, RequireLogin, launch_options
from ui.common import Ctx, Settings

USER, PASSWORD = "ana", "s3cret"


class FakeTime:
    """A clock that only moves when the throttle sleeps, so the test never waits for real."""

    def __init__(self):
        self.now, self.waits = 1000.0, []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)  # let other tries queue, as a real wait would


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()


@pytest.fixture
def throttle(fake) -> LoginThrottle:
    return LoginThrottle([(USER, PASSWORD)], base_s=1.0, cap_s=60.0, clock=fake.clock, sleep=fake.sleep)


def run(coro):
    return asyncio.run(coro)


# --- the throttled check, called directly ----------------------------------------------------------------------


def test_sixty_wrong_passwords_wait_longer_and_longer(throttle, fake):
    """Found: 60 wrong passwords were checked in 0.4 s and the right one was then accepted at once."""

    async def attack():
        results = [await throttle.check(USER, f"guess{i}") for i in range(60)]
        return results, await throttle.check(USER, PASSWORD)

    wrong, right = run(attack())
    assert not any(wrong) and right  # the real user still gets in, after the wait
    expected = [throttle.delay_after(n) for n in range(1, 61)]  # the first try waits nothing
    assert fake.waits == expected
    assert expected[:4] == [1.0, 2.0, 4.0, 8.0] and max(expected) == throttle.cap_s
    assert sum(fake.waits) > 60 * throttle.cap_s / 2  # the 60 guesses now cost most of an hour, not 0.4 s


def test_a_success_resets_the_wait(throttle, fake):
    async def tries():
        await throttle.check(USER, "wrong")
        await throttle.check(USER, "wrong")
        assert await throttle.check(USER, PASSWORD)
        fake.waits.clear()
        return await throttle.check(USER, PASSWORD)

    assert run(tries()) and fake.waits == []


def test_parallel_tries_are_throttled_like_sequential_ones(throttle, fake):
    """Requests sent at once queue on the user's lock; beyond max_waiting they are refused without a check."""
    checked = []
    original = throttle._matches
    throttle._matches = lambda u, p: checked.append(p) or original(u, p)

    async def flood():
        return await asyncio.gather(
            *(throttle.check(USER, f"guess{i}") for i in range(3 * throttle.max_waiting))
        )

    assert not any(run(flood()))
    # the first is checked at once, max_waiting queue behind it, the rest are refused unchecked
    assert len(checked) == 1 + throttle.max_waiting
    assert fake.waits == [throttle.delay_after(n) for n in range(1, throttle.max_waiting + 1)]


def test_unknown_names_share_one_throttle_and_never_match(throttle, fake):
    async def spray():
        return [await throttle.check(f"user{i}", PASSWORD) for i in range(50)]

    assert not any(run(spray()))
    assert set(throttle._buckets) == {auth.UNKNOWN_USER}  # made-up names do not grow memory
    assert len(fake.waits) == 49
    assert run(throttle.check(USER, PASSWORD))  # the real account has its own count


def test_passwords_are_compared_in_constant_time(throttle, monkeypatch):
    calls = []
    real = auth.hmac.compare_digest
    monkeypatch.setattr(
        auth.hmac, "compare_digest", lambda a, b: calls.append((len(a), len(b))) or real(a, b)
    )
    assert run(throttle.check(USER, PASSWORD)) and not run(throttle.check(USER, "x" * 500))
    assert not run(throttle.check("nobody", PASSWORD))
    assert len(calls) == 3 and len({n for pair in calls for n in pair}) == 1  # digests: one length for all


def test_main_launches_with_the_throttle_and_the_guard(monkeypatch, tmp_path):
    """The wiring: FINETUNER_AUTH now reaches Gradio as the throttled callable plus the route guard."""
    seen = {}
    monkeypatch.setenv("FINETUNER_AUTH", f"{USER}:{PASSWORD}")
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))  # main() sets it; monkeypatch puts it back after
    monkeypatch.setattr(gr.Blocks, "launch", lambda self, **kw: seen.update(kw))
    app.main(["--no-worker", "--data-dir", str(tmp_path / "data")])
    assert getattr(seen["auth"], "__func__", None) is LoginThrottle.check
    assert [m.cls for m in seen["app_kwargs"]["middleware"]] == [RequireLogin]
    assert "wrong password" in seen["auth_message"]


def test_no_auth_no_guard():
    assert launch_options(None) == {}


# --- over HTTP, against a launched app ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served():
    """A small Blocks launched on 127.0.0.1 the way app.main launches (launch_options); its sleeps are recorded."""
    waits: list[float] = []

    async def recorded_sleep(seconds: float) -> None:
        waits.append(seconds)

    throttle = LoginThrottle([(USER, PASSWORD)], sleep=recorded_sleep)
    with gr.Blocks() as demo:
        box = gr.Textbox()
        box.submit(lambda x: x, box, box, api_name="echo")
    demo.queue().launch(
        server_name="127.0.0.1",
        server_port=free_port(),
        prevent_thread_lock=True,
        **launch_options((USER, PASSWORD), throttle),
    )
    try:
        yield demo.local_url.rstrip("/"), waits
    finally:
        demo.close()


CANCEL_BODY = {"session_hash": "abc", "fn_index": 0, "event_id": "e1"}
# Routes Gradio 6.31 declares without a login check that answered (or, with a valid body, would answer) without the
# cookie; each now gets 401. /gradio_api/heartbeat/{session} kept an event stream open for anyone.
OPENED_BEFORE = [
    ("POST", "/gradio_api/cancel", CANCEL_BODY),
    ("GET", "/openapi.json", None),
    ("GET", "/gradio_api/user", None),
    ("GET", "/gradio_api/token", None),
    ("GET", "/gradio_api/app_id", None),
    ("GET", "/gradio_api/runs", None),
    ("GET", "/gradio_api/heartbeat/abc", None),
    ("POST", "/gradio_api/reset", {"session_hash": "abc", "fn_index": 0}),
    ("POST", "/gradio_api/stream/e1", {}),
    ("POST", "/gradio_api/stream/e1/close", None),
    ("GET", "/gradio_api/stream/abc/0/1/playlist.m3u8", None),
    ("GET", "/gradio_api/custom_component/a/b/c/d", None),
    ("POST", "/gradio_api/vibe-edit", {}),
    ("GET", "/monitoring/somekey", None),
]


@pytest.mark.parametrize("method, path, body", OPENED_BEFORE, ids=[p for _, p, _ in OPENED_BEFORE])
def test_routes_gradio_left_open_now_want_the_login(served, method, path, body):
    url, _ = served
    with httpx.Client(base_url=url, timeout=10) as client, client.stream(method, path, json=body) as r:
        assert r.status_code == 401, f"{method} {path} answered {r.status_code} without a login"


def test_the_login_page_still_loads_without_a_cookie(served):
    url, _ = served
    with httpx.Client(base_url=url, timeout=10) as client:
        page = client.get("/")
        assert page.status_code == 200 and "auth_required" in page.text
        assert client.get("/theme.css").status_code == 200
        assert client.get("/gradio_api/login_check").status_code == 401  # Gradio's own answer: show the form


def test_login_over_http_is_throttled_and_opens_the_routes(served):
    url, waits = served
    with httpx.Client(base_url=url, timeout=10) as client:
        for _ in range(3):
            assert client.post("/login", data={"username": USER, "password": "nope"}).status_code == 400
        assert client.post("/gradio_api/cancel", json=CANCEL_BODY).status_code == 401
        ok = client.post("/login", data={"username": USER, "password": PASSWORD})
        assert ok.status_code == 200 and ok.json() == {"success": True}
        # the 2nd and 3rd wrong tries and the right one waited (a recorded sleep: no real wait in the test)
        assert len(waits) == 3 and all(w > 0 for w in waits)
        assert client.post("/gradio_api/cancel", json=CANCEL_BODY).status_code == 200  # the cookie opens it
        assert client.get("/gradio_api/app_id").status_code == 200


# --- exports ---------------------------------------------------------------------------------------------------


@pytest.fixture
def ctx(sessions, data_dir) -> Ctx:
    return Ctx(Settings(data_dir=data_dir, start_worker=False), sessions)


def test_exports_land_in_an_unguessable_folder_under_a_readable_name(ctx, make_dataset):
    """Found: DATA_DIR/exports/<name>-<time>.<fmt>, fetchable by anyone who guesses the dataset name and minute."""
    ds = make_dataset(name="reviews")
    first, second = (Path(data.export_dataset(ctx, ds, "csv")) for _ in range(2))
    for path in (first, second):
        assert path.parent.parent == ctx.settings.exports_dir
        assert len(path.parent.name) >= 22  # secrets.token_urlsafe(16): 128 random bits
        assert path.name.startswith("reviews-") and path.suffix == ".csv" and path.is_file()
    assert first.parent != second.parent


def test_model_zips_land_in_an_unguessable_folder(ctx, make_job, data_dir):
    job_id = make_job()
    folder = data_dir / "models" / str(job_id)
    folder.mkdir(parents=True)
    (folder / "finetuner.json").write_text("{}")
    with ctx.sessions() as s:
        repo.get_job(s, job_id).model_dir = str(folder)
        s.commit()
    path = Path(models.download_model(ctx, job_id))
    assert path.is_file() and path.name == f"finetuner-model-{job_id}.zip"
    assert path.parent != ctx.settings.exports_dir and path.parent.parent == ctx.settings.exports_dir
