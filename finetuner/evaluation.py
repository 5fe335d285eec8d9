"""Scoring: the loss and metrics of eval examples, from the training loop's batches or a saved model folder."""

from __future__ import annotations

import torch

from finetuner import modeling
from finetuner.batches import BatchSettings, EncoderBatches, pick_device
from finetuner.tasks import Task, task_from_meta, validate_examples


@torch.inference_mode()
def evaluate(source, task: Task, examples: list[dict], items: list[dict]) -> dict:
    """Loss and metrics on the eval items: predictions are regrouped into example order before scoring.

    The task's problem gives the loss (a mean over labeled rows, or over cells for multi-label) and what a row's
    prediction is (class index, per-label probabilities, score); multi-label metrics tune thresholds on these rows.
    """
    source.trainable.eval()
    problem = task.problem
    per_item_pred: list = [None] * len(items)
    per_item_gold: list = [None] * len(items)
    loss_sum, denominator = 0.0, 0.0
    for idx, batch in source.eval_batches():
        with source.settings.autocast():
            logits, gold = source.scores(batch)
        logits = logits.float()
        keep = problem.labeled(gold)
        loss_sum += problem.loss(logits[keep], gold[keep], reduction="sum").item()
        denominator += float(problem.loss_denominator(gold[keep]))
        pred = problem.outputs(logits)
        counts = _rows_per_item(batch, keep, len(idx))
        for i, p, g in zip(
            idx, _split_rows(pred[keep], counts), _split_rows(gold[keep], counts), strict=True
        ):
            per_item_pred[i], per_item_gold[i] = p, g
    pred_rows = [p for rows_ in per_item_pred for p in rows_]
    gold_rows = [g for rows_ in per_item_gold for g in rows_]
    metrics = task.metrics(pred_rows, gold_rows, examples, items)
    return {"loss": loss_sum / max(denominator, 1.0), **metrics}


def evaluate_folder(folder: str, examples: list[dict], batch_size: int = 128, device: str = "auto") -> dict:
    """Metrics of a saved model folder on labeled examples (the CLI's ``eval``).

    >>> evaluate_folder("runs/sst2", [{"text": "fine", "label": "pos"}])["accuracy"]  # doctest: +SKIP
    1.0
    """
    model, tokenizer, meta = modeling.load_model_folder(folder)
    task = task_from_meta(meta)  # a multi-label folder scores at its stored thresholds
    validate_examples(task.kind, examples, "eval", task.problem.name)
    task.check_labels(examples, "eval")
    dev = pick_device(device)
    items = task.encode(examples, tokenizer, meta.get("max_length", 128))
    settings = BatchSettings(tokenizer.pad_token_id or 0, batch_size, batch_size, 0, dev)
    source = EncoderBatches(model.to(dev), task, [], items, settings)
    return evaluate(source, task, examples, items)


def _rows_per_item(batch: dict, keep: torch.Tensor, n_items: int) -> list[int]:
    """Labeled rows per item: 1 for sequence / pair, labeled words for tokens (the flat rows are item-major)."""
    if "row_counts" in batch:  # cached features: several rows (words) per item
        return batch["row_counts"].tolist()
    return keep.reshape(n_items, -1).sum(1).tolist()


def _split_rows(values: torch.Tensor, counts: list[int]) -> list[list[int]]:
    flat = values.tolist()
    out, offset = [], 0
    for n in counts:
        out.append(flat[offset : offset + n])
        offset += n
    return out
