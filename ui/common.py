"""What every tab shares: the context (settings + session factory), escaping and small formatters."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from storage import repo
from storage.errors import readable_db_error
from ui.problems import PROBLEM_NAMES, metrics_problem, problem_of

TERMINAL = ("completed", "failed", "cancelled")


@dataclass
class Settings:
    """How the app runs; `app.main` builds it from the command line and the environment."""

    data_dir: Path = Path("data")
    host: str = "127.0.0.1"
    port: int = 7860
    auth: tuple[str, str] | None = None  # FINETUNER_AUTH=user:password
    max_file_size: str = "200mb"  # uploads beyond this are refused by Gradio before they reach our code
    model_overrides: dict = field(default_factory=dict)  # FINETUNER_MODEL_OVERRIDES, e.g. one layer for e2e
    model_roots: tuple[Path, ...] = ()  # FINETUNER_ALLOW_MODEL_PATHS: more folders the Model field may name
    poll_s: float = 1.0  # live views refresh this often
    start_worker: bool = True  # tests that drive the handlers run the worker themselves
    # One sentence needs no parallelism, and while the worker trains on every core a second intra-op thread
    # waits at barriers for a preempted core: 2 threads measured ~470 ms a sentence, 1 thread ~10 ms (BENCHMARKS.md)
    web_torch_threads: int = 1

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def exports_dir(self) -> Path:
        return self.data_dir / "exports"


@dataclass
class Ctx:
    """Passed to every tab builder and handler: the settings and this process's session factory."""

    settings: Settings
    sessions: sessionmaker[Session]


# HTML's specials plus every character that can start Markdown: user text can neither tag nor format
_ESCAPES = str.maketrans({ch: f"&#{ord(ch)};" for ch in "&<>\"'\\`*_[]{}()#+-!|~"})


def esc(value) -> str:
    """User text as inert HTML and inert Markdown (one pass, so no entity is escaped twice)."""
    return str(value).translate(_ESCAPES)


def user_message(err: BaseException) -> str:
    """What to tell the user about a refused action: a database error as a sentence (a full disk, a lock), never
    the driver's SQL dump; any other error's own text (ours are written for the user)."""
    return readable_db_error(err) if isinstance(err, SQLAlchemyError) else str(err)


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def fmt_num(value, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def headline(metrics: dict | None, task: str | None, problem: str | None = None) -> tuple[str, float | None]:
    """The one number a model is known by: entity F1 for token models (their accuracy counts every 'O' word
    right, 0.93 beside an F1 of 0.18), macro-F1 for multi-label ones (the measure that picks their best
    checkpoint), Pearson for score models, accuracy otherwise."""
    m = metrics or {}
    kind = metrics_problem(m, problem)
    if kind == "multilabel":
        return "macro-F1", m.get("macro_f1")
    if kind == "regression":
        return "Pearson", m.get("pearson")
    if task == "token" or (task is None and "f1" in m and "macro_f1" not in m):
        return "entity F1", m.get("f1")
    return "accuracy", m.get("accuracy")


def headline_text(metrics: dict | None, task: str | None, digits: int = 3, problem: str | None = None) -> str:
    """``"entity F1 0.182"`` / ``"accuracy 0.933"`` / ``"Pearson 0.712"``; "" before there are metrics."""
    name, value = headline(metrics, task, problem)
    return f"{name} {value:.{digits}f}" if isinstance(value, float) and math.isfinite(value) else ""


def dataset_choices(ctx: Ctx, counts: bool = True) -> list[tuple[str, int]]:
    """(label, id) pairs for dataset dropdowns, newest last; `counts=False` where labeling changes them."""
    with ctx.sessions() as s:
        return [
            (
                f"{d['name']} · {d['task']}"
                + (f" · {PROBLEM_NAMES[p]}" if (p := problem_of(d)) != "single" else "")
                + (f" · {d['labeled']}/{d['examples']} labeled" if counts else ""),
                d["id"],
            )
            for d in repo.dataset_summaries(s)
        ]


def pick_choice(ids: list[int], current: int | None, preferred: int | None = None) -> int | None:
    """The dataset or model a tab's dropdown shows: the one just made (imported), else the one chosen while it
    still exists, else the newest (ids grow)."""
    for candidate in (preferred, current):
        if candidate in ids:
            return candidate
    return max(ids) if ids else None


def job_label(job) -> str:
    """Stable text (no status: it changes while the label stays on screen)."""
    name = job.dataset.name if job.dataset is not None else "?"
    return f"#{job.id} · {name} · {job.config.get('mode', 'full')} · {job.created_at:%Y-%m-%d %H:%M} UTC"


def job_choices(ctx: Ctx, status: str | None = None) -> list[tuple[str, int]]:
    """(label, id) pairs for job dropdowns, newest first."""
    with ctx.sessions() as s:
        return [(job_label(j), j.id) for j in repo.list_jobs(s, status=status, kind="train")]


NO_MODELS = (
    "No trained model yet: start a job in the **Train** tab (a dataset of labeled examples first, in **Data** or "
    "**Label**); each job that completes puts its model here."
)


def no_models_hint(choices: list) -> str:
    """What the Try and Models tabs say while there is no model to choose (`model_choices`): where one comes from."""
    return "" if choices else NO_MODELS


def shown_model(choices: list[tuple[str, int]], current) -> int | None:
    """The model Try shows: the one chosen while it exists, else the newest (just trained, or the chosen one was
    deleted in Models); a typed value arrives as text.

    >>> shown_model([("#2", 2), ("#1", 1)], 1), shown_model([("#2", 2)], "1"), shown_model([], None)
    (1, 2, None)
    """
    chosen = int(current) if str(current or "").isdigit() else None
    return pick_choice([i for _, i in choices], chosen)


def model_choices(ctx: Ctx) -> list[tuple[str, int]]:
    """Completed jobs whose model folder still exists, newest first."""
    with ctx.sessions() as s:
        jobs = repo.list_jobs(s, status="completed", kind="train")
        out = []
        for j in jobs:
            if j.model_dir and Path(j.model_dir, "finetuner.json").exists():
                problem = problem_of(j.config)
                score = headline_text(j.metrics, j.config.get("task"), digits=2, problem=problem)
                name = j.dataset.name if j.dataset is not None else "?"
                kind = j.config.get("task", "") + (
                    f" {PROBLEM_NAMES[problem]}" if problem != "single" else ""
                )
                out.append((f"#{j.id} {name} · {kind}" + (f" · {score}" if score else ""), j.id))
        return out
