"""Login for FINETUNER_AUTH: a throttled check for Gradio's `auth=`, and a guard on the routes Gradio leaves open.

Gradio 6.31 checks `auth=` on POST /login only, as fast as it is asked (60 wrong passwords took 0.4 s), and a few of
its API routes answer without the login cookie (`/gradio_api/cancel` among them). `launch_options` returns both fixes
as keyword arguments for `Blocks.launch`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from starlette.middleware import Middleware
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse

UNKNOWN_USER = ""  # every name that is no account shares one throttle, so made-up names cannot grow memory

# What the login page and the browser need before the login cookie exists; every other path wants the cookie.
# An allowlist, so a route a later Gradio adds without its own check is closed too.
OPEN_PATHS = {
    "/",  # the page itself: Gradio serves the login form there until the cookie exists
    "/login",
    "/login/",
    "/logout",
    "/favicon.ico",
    "/robots.txt",
    "/manifest.json",
    "/theme.css",
    "/gradio_api/theme.css",
    "/gradio_api/login_check",  # says 401 or 200: how the page knows to show the form
    "/gradio_api/login_check/",
    "/gradio_api/startup-events",  # launch() itself calls it, cookieless; it runs the startup events once, ever
}
OPEN_PREFIXES = ("/assets/", "/static/", "/svelte/", "/pwa_icon")  # the page's own scripts, styles and icons


@dataclass
class _Bucket:
    failures: int = 0
    next_try: float = 0.0  # clock time before which the next check waits
    waiting: int = 0  # tries queued on the lock
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class LoginThrottle:
    """Gradio's `auth=` callable: a constant-time password check that waits longer after each failure.

    After the n-th failure in a row for a user, that user's next check waits ``base_s * 2**(n-1)`` seconds, at most
    ``cap_s``; tries are checked one at a time per user (asyncio lock, first come first served), so parallel requests
    are throttled like sequential ones, and beyond ``max_waiting`` queued tries a try is refused unchecked. A success
    resets the count. The right password is still accepted after the wait, so the real user is delayed, not locked
    out. Async so the wait never blocks Gradio's event loop (Gradio awaits a coroutine `auth`).

    >>> throttle = LoginThrottle([("ana", "s3cret")])
    >>> asyncio.run(throttle.check("ana", "s3cret"))
    True
    """

    def __init__(
        self,
        accounts: list[tuple[str, str]],
        *,
        base_s: float = 1.0,
        cap_s: float = 60.0,
        max_waiting: int = 8,  # queued tries per user beyond which a flood is refused without a check
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ):
        self._accounts = {user: _digest(password) for user, password in accounts}
        self.base_s, self.cap_s, self.max_waiting = base_s, cap_s, max_waiting
        self._clock, self._sleep = clock, sleep
        self._buckets: dict[str, _Bucket] = {}

    def delay_after(self, failures: int) -> float:
        """Seconds the next try waits after `failures` failures in a row."""
        return 0.0 if failures <= 0 else min(self.cap_s, self.base_s * 2 ** (failures - 1))

    async def check(self, username: str, password: str) -> bool:
        key = username if username in self._accounts else UNKNOWN_USER
        bucket = self._buckets.setdefault(key, _Bucket())
        if bucket.waiting >= self.max_waiting:
            return False
        bucket.waiting += 1
        try:
            async with bucket.lock:
                wait = bucket.next_try - self._clock()
                if wait > 0:
                    await self._sleep(wait)
                ok = self._matches(username, password)
                bucket.failures = 0 if ok else bucket.failures + 1
                bucket.next_try = self._clock() + self.delay_after(bucket.failures)
                return ok
        finally:
            bucket.waiting -= 1

    def _matches(self, username: str, password: str) -> bool:
        # Digests have one length, so the comparison time says nothing about the password's length; an unknown
        # name is compared against a dummy, so its answer takes as long as a known one's.
        expected = self._accounts.get(username, _NO_PASSWORD)
        same = hmac.compare_digest(_digest(password), expected)
        return same and username in self._accounts

    def describe(self) -> str:
        """The login page's note on the wait, from this throttle's own numbers."""
        steps = ", ".join(f"{self.delay_after(n):g} s" for n in (1, 2, 3))
        return f"After a wrong password the next try waits ({steps}... up to {self.cap_s:g} s)."


def _digest(password: str) -> bytes:
    return hashlib.sha256(password.encode("utf-8", "surrogatepass")).digest()


_NO_PASSWORD = b"\0" * hashlib.sha256().digest_size


class RequireLogin:
    """ASGI middleware: with `auth` on, a request without a valid login cookie gets 401, except `OPEN_PATHS`.

    Gradio 6.31 declares no login check on e.g. POST /gradio_api/cancel, /gradio_api/heartbeat/{session},
    /gradio_api/stream/..., /gradio_api/app_id, FastAPI's /openapi.json (tests/app/test_security.py lists them);
    this closes them all at once. The cookie is read the way Gradio's own `get_current_user` reads it, from the
    Gradio app in the scope.
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        gradio_app = scope.get("app")
        if scope["type"] in ("http", "websocket") and getattr(gradio_app, "auth", None) is not None:
            path = scope["path"]
            root = scope.get("root_path") or ""
            if root and path.startswith(root):
                path = path[len(root) :] or "/"
            if not _is_open(path) and not _logged_in(gradio_app, HTTPConnection(scope)):
                if scope["type"] == "websocket":  # closing before accept is a 403 to the client
                    await send({"type": "websocket.close", "code": 1008})
                    return
                await JSONResponse({"detail": "Not authenticated"}, status_code=401)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _is_open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


def _logged_in(gradio_app, conn: HTTPConnection) -> bool:
    cookie_id = gradio_app.cookie_id
    token = conn.cookies.get(f"access-token-{cookie_id}") or conn.cookies.get(
        f"access-token-unsecure-{cookie_id}"
    )
    return token is not None and token in gradio_app.tokens


def launch_options(auth: tuple[str, str] | None, throttle: LoginThrottle | None = None) -> dict:
    """Keyword arguments for `Blocks.launch`: the throttled check and the route guard when auth is on, else none.

    >>> launch_options(None)
    {}
    """
    if auth is None:
        return {}
    throttle = throttle or LoginThrottle([auth])
    return {
        "auth": throttle.check,
        "auth_message": throttle.describe(),
        "app_kwargs": {"middleware": [Middleware(RequireLogin)]},
    }
