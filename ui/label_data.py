"""The Label tab's dataset handlers: create an empty dataset (any kind), add typed or pasted examples, add a label,
retrain and score the model that suggests.

Re-exported by `ui.label`, where the tab and its tests find them.
"""

from __future__ import annotations

from sqlalchemy.exc import SQLAlchemyError

from storage import repo
from ui.auto_hint import job_time
from ui.common import Ctx, esc, user_message
from ui.problems import problem_of, split_kind
from ui.spans import split_words


def parse_examples(task: str, text: str) -> list[dict]:
    """Typed or pasted examples, one a line: pairs as ``text<TAB>second text``; token sentences split into words.

    >>> parse_examples("pair", "a cat\\ta feline\\n\\n")
    [{'text': 'a cat', 'text_pair': 'a feline'}]
    """
    out = []
    for n, line in enumerate((text or "").splitlines(), 1):
        if not line.strip():
            continue
        if task == "token":
            out.append({"tokens": split_words(line)})
        elif task == "pair":
            first, tab, second = line.partition("\t")
            if not tab or not first.strip() or not second.strip():
                raise ValueError(f"line {n}: a pair needs two texts separated by a tab")
            out.append({"text": first.strip(), "text_pair": second.strip()})
        else:
            out.append({"text": line.strip()})
    return out


def create_dataset(ctx: Ctx, name: str, task: str, labels: str, problem: str | None = None) -> dict:
    """An empty dataset with its labels (comma-separated; entity types for token datasets).

    ``task`` is a kind choice (`ui.problems.KIND_CHOICES`: ``"sequence"``, ``"pair:multilabel"``, ...) or a bare
    task with ``problem`` given; a score dataset takes no labels (any typed are ignored, and it says so).
    """
    names = [n.strip() for n in (labels or "").split(",") if n.strip()]
    with ctx.sessions() as s:
        try:
            task, kind_problem = split_kind(task)
            problem = problem or kind_problem
            note = (
                " (a score dataset has no labels: the ones typed were ignored)"
                if problem == "regression" and names
                else ""
            )
            if problem == "regression":
                names = []
            extra = {} if problem == "single" else {"problem": problem}  # single: the call as before issue 24
            ds = repo.create_dataset(s, (name or "").strip(), task, names, **extra)
        except (
            ValueError,
            TypeError,
            SQLAlchemyError,
        ) as err:  # a full disk: a sentence, never the driver's SQL
            s.rollback()
            return {"ok": False, "dataset_id": None, "message": esc(user_message(err))}
        return {
            "ok": True,
            "dataset_id": ds.id,
            "message": f"Created **{esc(ds.name)}**: now add examples.{note}",
        }


def add_examples(ctx: Ctx, dataset_id: int | None, text: str) -> dict:
    """Add the typed/pasted lines as unlabeled examples (all or none)."""
    if not dataset_id:
        return {"ok": False, "added": 0, "message": "Choose or create a dataset first."}
    with ctx.sessions() as s:
        try:
            rows = parse_examples(repo.get_dataset(s, int(dataset_id)).task, text)
            if not rows:
                return {"ok": False, "added": 0, "message": "Type or paste examples, one a line."}
            n = repo.add_examples(s, int(dataset_id), rows, source_file="typed")
        except (ValueError, KeyError, SQLAlchemyError) as err:
            s.rollback()
            return {"ok": False, "added": 0, "message": esc(user_message(err))}
    return {"ok": True, "added": n, "message": f"Added {n} example(s)."}


def add_label(ctx: Ctx, st: dict, name: str) -> dict:
    """Add a label (or entity type) to the dataset on the fly; the card gets its button."""
    st = {**st, "msg": ""}
    if not st.get("dataset") or not (name or "").strip():
        return {**st, "msg": "Type the new label's name."}
    with ctx.sessions() as s:
        labels = repo.add_labels(s, st["dataset"], [name.strip()])
    return {**st, "msg": f"Labels: {esc(', '.join(labels))}"}


def retrain(ctx: Ctx, dataset_id: int | None) -> str:
    """Queue a train job on the current labels with the dataset's last job's settings (frozen defaults if none)."""
    if not dataset_id:
        return "Choose a dataset first."
    with ctx.sessions() as s:
        last = repo.latest_train_job(s, int(dataset_id))
        plan = repo.training_plan(s, int(dataset_id), (last.config if last else {}).get("eval_split", 0.1))
        if plan["problems"]:
            return esc(plan["problems"][0])
        problem = problem_of(repo.get_dataset(s, int(dataset_id)))
        if last is not None:
            # the labels as they are now: the last job's list misses a label added (or first used) since
            labels = ["score"] if problem == "regression" else plan["labels"]
            config = {**last.config, "resume": False, "labels": labels, "problem": problem}
            job = repo.create_job(s, int(dataset_id), config)
            return (
                f"Job **#{job.id}** queued with the settings of job #{last.id}; suggestions follow when it ends"
                f"{_in(job_time(ctx, int(dataset_id), config))}."
            )
    from ui.train_jobs import DEFAULT_MODEL, start_job

    r = start_job(ctx, int(dataset_id), DEFAULT_MODEL, "auto")  # no job yet: Auto picks for the label count
    if not r["ok"]:
        return r["message"]
    with ctx.sessions() as s:
        config = repo.get_job(s, r["job_id"]).config
    return r["message"] + f" Suggestions follow when it ends{_in(job_time(ctx, int(dataset_id), config))}."


def _in(estimate: str) -> str:
    """ ", in about 2 min" (the run's estimated time), or nothing when there is none."""
    return f", in {estimate}" if estimate else ""


def score_now(ctx: Ctx, dataset_id: int | None) -> str:
    """Queue scoring the dataset with its newest trained model (for disagreements on a fully labeled set)."""
    if not dataset_id:
        return "Choose a dataset first."
    with ctx.sessions() as s:
        done = [
            j for j in repo.list_jobs(s, int(dataset_id), "completed") if j.kind == "train" and j.model_dir
        ]
        job_id = repo.queue_score_job(s, done[0].id, force=True) if done else None
    return f"Scoring job **#{job_id}** queued." if job_id else "Train a model on this dataset first."
