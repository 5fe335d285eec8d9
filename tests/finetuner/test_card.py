"""The model card (README.md) of a saved folder: Hub metadata that huggingface_hub parses, and the prose."""

from __future__ import annotations

import pytest
from huggingface_hub import ModelCard

from finetuner import card


def make_meta(task: str = "sequence", **extra) -> dict:
    """A finetuner.json as training writes it, trimmed to what the card reads."""
    metrics = (
        {"f1": 0.61, "precision": 0.6, "recall": 0.62, "accuracy": 0.93}
        if task == "token"
        else {"accuracy": 0.9, "macro_f1": 0.88, "loss": 0.3}
    )
    meta = {
        "task": task,
        "labels": ["B-LOC", "O"] if task == "token" else ["neg", "pos"],
        "base_model": "all-MiniLM-L6-v2",
        "pooling": None if task == "token" else "mean",
        "feature_layers": 4,
        "train_examples": 120,
        "eval_examples": 30,
        "metrics": metrics,
        "config": {"mode": "frozen", "epochs": 3, "lr": 0.01, "batch_size": 32, "output_dir": "."},
    }
    return {**meta, **extra}


def base_readme(tmp_path, front: str):
    (tmp_path / "README.md").write_text(f"---\n{front}\n---\n\n# a base model\n")
    return str(tmp_path)


def test_metadata_parses_with_the_hubs_model_card(tmp_path):
    base = base_readme(tmp_path, "language: pt\nlicense: mit\nlibrary_name: sentence-transformers")
    test = {"accuracy": 0.85, "macro_f1": 0.8}
    out = tmp_path / "out"
    out.mkdir()
    path = card.write_card(out, make_meta(test_metrics=test), base)
    data = ModelCard.load(path).data
    assert (data.library_name, data.pipeline_tag) == ("transformers", "text-classification")
    assert data.base_model == card.BUNDLED_HUB_ID
    assert (data.license, data.language) == ("mit", "pt")  # inherited from the base's own card
    assert set(data.metrics) == {"accuracy", "f1"}
    results = {(r.dataset_split, r.metric_type): r.metric_value for r in data.eval_results}
    assert results == {
        ("validation", "accuracy"): 0.9,
        ("validation", "f1"): 0.88,
        ("test", "accuracy"): 0.85,
        ("test", "f1"): 0.8,
    }
    text = path.read_text()
    assert (
        "`neg`, `pos`" in text
        and "training examples: 120" in text
        and "| Accuracy | 0.9000 | 0.8500 |" in text
    )
    assert 'pipeline("text-classification", model="REPO_OR_FOLDER", trust_remote_code=True)' in text


def test_license_and_language_are_left_out_when_the_base_has_no_card(tmp_path):
    text = card.render_card(make_meta(), {"base_model": None, **card.base_card_fields(str(tmp_path))}, "m")
    data = ModelCard(text).data
    assert data.license is None and data.language is None and data.base_model is None
    assert "license" not in text.split("---")[1]
    assert "fine-tuned from all-MiniLM-L6-v2" in text


@pytest.mark.parametrize(
    "name, hub_id",
    [
        ("all-MiniLM-L6-v2", card.BUNDLED_HUB_ID),
        ("", card.BUNDLED_HUB_ID),
        ("multilingual-e5-small-enpt", "intfloat/multilingual-e5-small"),
        ("multilingual-e5-small", card.E5_HUB_ID),  # a bundled name, not a hub id
        ("multilingual-e5-small-enpt", card.E5_HUB_ID),
        ("distilbert/distilbert-base-uncased", "distilbert/distilbert-base-uncased"),
        ("/srv/models/my-bert", None),  # a machine's folder is no Hub id
    ],
)
def test_base_hub_id(name, hub_id):
    assert card.base_hub_id(name) == hub_id


def test_token_card_headlines_entity_f1_and_needs_no_remote_code():
    text = card.render_card(make_meta("token"), {"base_model": card.BUNDLED_HUB_ID}, "ner")
    data = ModelCard(text).data
    assert data.pipeline_tag == "token-classification"
    first = data.eval_results[0]
    assert (first.metric_type, first.metric_value, first.metric_name) == (
        "f1",
        0.61,
        "Entity F1 (validation)",
    )
    assert "trust_remote_code" not in text and 'aggregation_strategy="simple"' in text


def test_a_saved_folder_has_a_card_that_parses(tiny_config, make_examples):
    from finetuner import train

    data = make_examples("sequence", 16)
    folder = train(tiny_config(mode="frozen", epochs=1, eval_split=0.25), data).output_dir
    loaded = ModelCard.load(f"{folder}/README.md").data
    assert loaded.base_model == card.BUNDLED_HUB_ID and loaded.library_name == "transformers"
    assert (loaded.license, loaded.language) == ("apache-2.0", "en")  # the bundled MiniLM's own card
    assert loaded.eval_results and loaded.eval_results[0].dataset_split == "validation"
