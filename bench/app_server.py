"""The real app as a subprocess: app.py on a free port with a data dir, up until the block ends.

Used by the bench scripts and by the browser tests (tests/e2e/e2e_support.py imports it), so both start the app
the same way.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def app_server(
    data_dir: Path,
    *,
    env: Mapping[str, str] | None = None,
    args: Sequence[str] = (),
    log_name: str = "app.log",
) -> Iterator[str]:
    """Start app.py (offline, with its worker) on `data_dir`, logging to data_dir/`log_name`; yield its URL.

    Waits up to ~60 s for the first answer; `env` adds to the environment, `args` to the command line. On exit the
    app is terminated (killed if it has not stopped within 30 s).
    """
    port = free_port()
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", **(env or {})}
    full_env.pop("DATA_DIR", None)  # --data-dir decides
    log_path = data_dir / log_name
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "app.py"), "--port", str(port), "--data-dir", str(data_dir), *args],
            cwd=ROOT,
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            url = f"http://127.0.0.1:{port}/"
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    urllib.request.urlopen(url, timeout=1)
                    break
                except OSError:
                    if proc.poll() is not None:  # it died starting up: say why instead of waiting a minute
                        raise RuntimeError(
                            f"app.py exited ({proc.returncode}):\n{log_path.read_text()}"
                        ) from None
                    time.sleep(0.3)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
