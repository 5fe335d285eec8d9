"""Finetuner's web app: upload and label examples, train in a background worker, watch the loss, try the model.

    python app.py                       # http://127.0.0.1:7860, SQLite in ./data (or /data on a HF Space)
    python app.py --host 0.0.0.0 --port 8080 --data-dir /srv/finetuner
    FINETUNER_AUTH=user:password python app.py

Training never runs in this process: `worker.py` does, niced, as a child process this app starts and restarts.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

import gradio as gr

from storage.db import open_db
from ui.api import build_api, hide_internal_events
from ui.auth import launch_options
from ui.common import Ctx, Settings
from ui.data import build_data_tab
from ui.label_tab import build_label_tab
from ui.model_choice import roots_from_env
from ui.models import build_models_tab
from ui.problem_views import CSS as PROBLEM_CSS
from ui.train import build_train_tab
from ui.try_it import build_try_tab

log = logging.getLogger("finetuner.app")

# Theme variables, not fixed greys: --neutral-200 tracks stayed glaring white in dark mode (?__theme=dark)
CSS = """
.ft-progress { height: 14px; border-radius: 7px; overflow: hidden;
  background: color-mix(in srgb, var(--body-text-color) 12%, transparent); }
.ft-bar { height: 100%; background: var(--color-accent, #2563eb); transition: width .4s ease; }
.ft-failed .ft-bar { background: #dc2626; } .ft-interrupted .ft-bar, .ft-cancelled .ft-bar { background: #d97706; }
.ft-completed .ft-bar { background: #16a34a; }
.ft-progress-text { font-size: .9em; margin-top: 4px; color: var(--body-text-color-subdued); }
.ft-confusion table, .ft-explain table { border-collapse: collapse; margin-top: 6px; }
.ft-confusion th, .ft-confusion td, .ft-explain th, .ft-explain td { padding: 6px 10px; text-align: center;
  border: 1px solid var(--border-color-primary); }
.ft-cell { min-width: 44px; font-variant-numeric: tabular-nums; } .ft-diag { font-weight: 700; }
.ft-confusion { max-width: 100%; } .ft-scroll { max-width: 100%; overflow-x: auto; }
.ft-confusion th .ft-name { display: inline-block; max-width: 12em; overflow: hidden; text-overflow: ellipsis;
  white-space: nowrap; vertical-align: bottom; } .ft-confusion tr:first-child th .ft-name { max-width: 5em; }
.ft-confusion th, .ft-confusion td { padding: 4px 6px; }
#confusion { min-width: 0; overflow: hidden; }
.ft-wrap td, .ft-wrap th { white-space: normal !important; overflow-wrap: anywhere; max-width: 28em; }
.ft-caption { font-size: .9em; color: var(--body-text-color-subdued); }
.ft-explain .ft-gold td { font-weight: 700; background: rgba(37,99,235,.08); }
"""


def default_data_dir() -> Path:
    """$DATA_DIR, else /data when it exists (a Hugging Face Space's persistent storage), else ./data."""
    if os.environ.get("DATA_DIR"):
        return Path(os.environ["DATA_DIR"])
    return Path("/data") if Path("/data").is_dir() else Path("data")


def settings_from_env(**overrides) -> Settings:
    """Settings from FINETUNER_AUTH, FINETUNER_MODEL_OVERRIDES, FINETUNER_MAX_FILE_SIZE, FINETUNER_ALLOW_MODEL_PATHS
    and DATA_DIR."""
    auth = os.environ.get("FINETUNER_AUTH")
    if auth and ":" not in auth:
        raise SystemExit("FINETUNER_AUTH must be user:password")
    model_overrides = json.loads(os.environ.get("FINETUNER_MODEL_OVERRIDES") or "{}")
    base = Settings(
        data_dir=default_data_dir(),
        auth=tuple(auth.split(":", 1)) if auth else None,
        max_file_size=os.environ.get("FINETUNER_MAX_FILE_SIZE", "200mb"),
        model_overrides=model_overrides,
        model_roots=roots_from_env(),
    )
    for key, value in overrides.items():
        setattr(base, key, value)
    return base


def build_app(settings: Settings, sessions=None) -> gr.Blocks:
    """The whole interface: one builder per tab, all state in the database.

    Args:
        settings: how to run (data dir, poll interval, model overrides...).
        sessions: a session factory; None opens (and migrates) the database in settings.data_dir.

    Returns:
        The Blocks, not launched.
    """
    if sessions is None:
        os.environ["DATA_DIR"] = str(settings.data_dir)
        sessions = open_db()
    ctx = Ctx(settings, sessions)
    with gr.Blocks(title="Finetuner") as demo:
        gr.Markdown(
            "## Finetuner\nUpload labeled texts, train a classifier on a pretrained transformer, "
            "watch the loss fall, try it."
        )
        with gr.Tabs():
            with gr.Tab("Data", id="data") as data_tab_header:
                data_tab = gr.Column()  # filled below, once the Train tab it refreshes exists
            with gr.Tab("Label", id="label") as label_tab:
                label = build_label_tab(ctx)
            with gr.Tab("Train", id="train") as train_tab:
                train = build_train_tab(ctx)
            with gr.Tab("Try", id="try") as try_tab:
                try_ = build_try_tab(ctx)
            with gr.Tab("Models", id="models") as models_tab:
                models = build_models_tab(ctx)
        with data_tab:
            data = build_data_tab(ctx, refresh_datasets=[train["refresh_datasets"]])
        train_tab.select(
            train["refresh_datasets"]["fn"],
            train["refresh_datasets"]["inputs"],
            train["refresh_datasets"]["outputs"],
        ).then(**train["auto_line"], show_progress="hidden")  # labels given since: the Auto line counts them
        train_tab.select(lambda: gr.Timer(active=True), None, train["timer"])
        for other in (data_tab_header, label_tab, try_tab, models_tab):
            other.select(lambda: gr.Timer(active=False), None, train["timer"])
        label_tab.select(label["refresh"]["fn"], label["refresh"]["inputs"], label["refresh"]["outputs"])
        try_tab.select(try_["refresh"]["fn"], try_["refresh"]["inputs"], try_["refresh"]["outputs"])
        models_tab.select(models["refresh"]["fn"], None, models["refresh"]["outputs"])
        for tab in (data, train):  # dropdown choices are built with the page; a reload must see new rows
            loaded = demo.load(tab["on_load"]["fn"], None, tab["on_load"]["outputs"])
            if "after_load" in tab:
                loaded.then(**tab["after_load"], show_progress="hidden")
        build_api(ctx)  # the named endpoints for scripts (README "API")
    hide_internal_events(demo)  # last: every other event is hidden from the API page
    return demo


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    p.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="database, models and exports (default: $DATA_DIR, /data if it exists, else ./data)",
    )
    p.add_argument(
        "--no-worker", action="store_true", help="do not start the training worker (run worker.py yourself)"
    )
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    for noisy in ("alembic", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    settings = settings_from_env(
        host=args.host,
        port=args.port,
        start_worker=not args.no_worker,
        **({"data_dir": args.data_dir} if args.data_dir else {}),
    )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    os.environ["DATA_DIR"] = str(settings.data_dir.resolve())
    sessions = open_db()

    import supervisor as sup  # the app side of the worker: no torch

    try:
        interrupted = sup.recover_jobs(sessions, settings.data_dir, app_start=True)
        if interrupted:
            log.info("jobs interrupted by the last shutdown (resumable): %s", interrupted)
    except Exception:  # a full disk must not keep the app down: the supervisor retries every few seconds
        log.exception("job recovery at start failed")
    # without a worker of its own the app still takes jobs from gone workers (their lease lapsed)
    supervisor = sup.WorkerSupervisor(
        sessions, settings.data_dir.resolve(), spawn=settings.start_worker
    ).start()
    try:
        build_app(settings, sessions).queue(default_concurrency_limit=4).launch(
            server_name=settings.host,
            server_port=settings.port,
            **launch_options(settings.auth),  # throttled login, and no Gradio route answers without it
            max_file_size=settings.max_file_size,
            css=CSS + PROBLEM_CSS,  # the multi-label and score views (Try tab)
            theme=gr.themes.Soft(),
            show_error=True,
            allowed_paths=[str(settings.data_dir / "exports")],
        )
    finally:
        supervisor.stop()


if __name__ == "__main__":
    main()
