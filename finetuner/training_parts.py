"""What a training run is assembled from: seeding, the eval split, what Auto reads of the texts, the batch source, the optimizer and its
schedules, class weights, how evaluations rank, the divergence check and the folder's finetuner.json. `finetuner.training` runs the loop."""

from __future__ import annotations

import math
import random
import time

import numpy as np
import torch
from transformers import (
    get_constant_schedule_with_warmup,
    get_cosine_schedule_with_warmup,
    get_linear_schedule_with_warmup,
)

from finetuner import auto, checkpoints, distributed, modeling, token_counts
from finetuner.batches import BatchSettings, EncoderBatches, FeatureBatches, TokenMasking
from finetuner.config import TrainConfig
from finetuner.errors import TrainingError
from finetuner.languages import looks_non_english

SCHEDULES = {
    "linear": get_linear_schedule_with_warmup,
    "cosine": get_cosine_schedule_with_warmup,
    "constant": lambda opt, warmup, total: get_constant_schedule_with_warmup(opt, warmup),
}


def check_diverged(name: str, loss: float | None, where: str, limit: float) -> None:
    """Stop a run whose train or eval loss is NaN, infinite or exploded (every mode, frozen too).

    ``limit`` is the task's problem's (problems.Problem.divergence_limit): 100 x a chance-level model's loss, i.e.
    100 ln K for cross-entropy, 100 ln 2 for the per-cell multi-label BCE, 100 x (E[y^2] + 1) for regression's MSE.
    """
    if loss is None:
        return
    if not math.isfinite(loss) or loss > limit:
        raise TrainingError(
            f"the {name} loss became {loss:.3g} at {where} (the run diverged): try a lower learning rate"
        )


def class_weights(labels: list[str], counts: dict[str, int]) -> torch.Tensor:
    """Inverse-frequency loss weights in label order, scaled so a balanced set gets all ones (sklearn's
    "balanced"); a label absent from the training data gets weight 1."""
    total, k = sum(counts.values()), len(labels)
    return torch.tensor([total / (k * counts[lb]) if counts.get(lb) else 1.0 for lb in labels])


def eval_rank(metrics: dict, config: TrainConfig) -> tuple[float, float]:
    """How epochs compare: the eval metric, then the eval loss (a tie on a small eval set keeps the better fit).

    The loss is rounded to 4 decimals: a change below that is noise, not an improvement that resets patience.
    """
    return (metrics[config.metric_for_best], -round(metrics["loss"], 4))


def best_metrics(history: list[dict], config: TrainConfig) -> dict:
    return max(history, key=lambda h: (*eval_rank(h, config), -h["epoch"]))


def split_off_eval(
    examples: list[dict], fraction: float, seed: int, task: str
) -> tuple[list[dict], list[dict]]:
    """Hold out a seeded fraction for eval, stratified by label when every class has at least two examples.

    (A multi-label cell stratifies by its whole label list; scores are mostly distinct, so they seldom stratify.)
    """
    from sklearn.model_selection import train_test_split

    n_eval = max(1, round(len(examples) * fraction))
    if len(examples) - n_eval < 1:
        raise ValueError(f"{len(examples)} examples are too few to hold {fraction:.0%} out for eval")
    labels = [str(ex["label"]) for ex in examples] if task != "token" else None
    if labels is not None:
        counts = {label: labels.count(label) for label in set(labels)}
        if min(counts.values()) < 2 or n_eval < len(counts):
            labels = None
    train_part, eval_part = train_test_split(examples, test_size=n_eval, random_state=seed, stratify=labels)
    return list(train_part), list(eval_part)


def auto_text_profile(config: TrainConfig, train_data: list[dict]) -> tuple[bool, float | None]:
    """(the texts look English, their tokens an example) where Auto may add its contrastive step (a small
    sequence set, the step not set by hand); (False, None) elsewhere, so big data is not tokenized twice."""
    if (
        config.mode != "auto"
        or config.task != "sequence"
        or config.contrastive_steps is not None
        or len(train_data) > auto.CONTRASTIVE_UNTIL
    ):
        return False, None
    texts = [str(ex.get("text") or "") for ex in train_data]
    english = not looks_non_english(texts)[0]
    return english, token_counts.mean_tokens(texts, config.max_length, config.batch_size)


def batch_source(config, model, task, train_items, eval_items, tokenizer, device, ckpt_dir, state, cb):
    settings = BatchSettings(
        pad_id=tokenizer.pad_token_id or 0,
        batch_size=config.batch_size,
        eval_batch_size=config.eval_batch_size,
        seed=config.seed,
        device=device,
        precision=config.precision,
    )
    if config.mode_kind != "frozen":
        forward = torch.compile(model, dynamic=True) if config.compile else None
        masking = None
        if config.mask_tokens:
            if tokenizer.mask_token_id is None:
                raise TrainingError(
                    f"mask_tokens needs a tokenizer with a mask token; {config.model}'s has none"
                )
            masking = TokenMasking(
                config.mask_tokens, tokenizer.mask_token_id, tuple(tokenizer.all_special_ids)
            )
        return EncoderBatches(
            model, task, train_items, eval_items, settings, forward=forward, masking=masking
        )
    cache_file = ckpt_dir / "features.pt"
    cache = torch.load(cache_file) if state and cache_file.exists() else None
    source = FeatureBatches(
        model,
        task,
        train_items,
        eval_items,
        settings,
        dropout=config.classifier_dropout,
        on_progress=lambda f: cb.on_phase("encoding features", f),
        cache=cache,
    )
    if cache is None and distributed.is_main():
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        checkpoints.atomic_save(
            source.cache, cache_file
        )  # a resumed frozen run skips the encoder pass entirely
    return source


def make_optimizer(
    config: TrainConfig, module: torch.nn.Module, device: torch.device, capturable: bool = False
) -> torch.optim.Optimizer:
    """AdamW / Adam / SGD+momentum; no weight decay on biases and LayerNorm weights (as BERT was trained).

    With ``config.layer_lr_decay`` below 1, each layer's lr is the one above's times it, from the head down to the
    embeddings (layer-wise lr decay, as ELECTRA was fine-tuned); ``config.head_lr_scale`` sets the head's apart.
    """
    scales = modeling.layer_lr_scales(module, config.layer_lr_decay, config.head_lr_scale)
    by_kind: dict[tuple[float, bool], list] = {}  # (lr scale, weight-decayed) -> parameters
    for name, p in module.named_parameters():
        if p.requires_grad:
            decays = not (p.ndim < 2 or "LayerNorm" in name)
            by_kind.setdefault((scales[name], decays), []).append(p)
    groups = [
        {"params": ps, "lr": config.lr * scale, "weight_decay": config.weight_decay if decays else 0.0}
        for (scale, decays), ps in sorted(by_kind.items(), key=lambda kv: (-kv[0][0], not kv[0][1]))
    ]
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum)
    fast = {
        "fused": True
    }  # one kernel for all parameters: on this CPU 7.5 ms a step against 77 ms for the loop
    if capturable:
        # A device-tensor lr and capturable state, so the step can live in a CUDA graph. The float initial_lr keeps
        # the scheduler's arithmetic on the host: it fills the lr tensor in place and never reads it back.
        for g in groups:
            g.update(lr=torch.tensor(g["lr"], device=device), initial_lr=g["lr"])
        fast["capturable"] = True
    if config.optimizer == "adam":
        for g in groups:
            g["weight_decay"] = 0.0  # plain Adam: no decoupled decay (that is what AdamW adds)
        return torch.optim.Adam(groups, lr=config.lr, **fast)
    return torch.optim.AdamW(groups, lr=config.lr, **fast)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def folder_meta(config, task, pooling, model, result, n_train: int, n_eval: int, refit: bool) -> dict:
    """finetuner.json: what Predictor needs beyond the Hugging Face files, and what the model card states."""
    return {
        "task": config.task,
        "labels": task.labels,
        **task.problem.meta_fields(
            task.labels, result.metrics
        ),  # problem; thresholds (multilabel) / score_range
        "pooling": pooling if config.task != "token" else None,
        "pair_encoding": config.pair_encoding if config.task == "pair" else None,
        "feature_layers": getattr(model.config, "feature_layers", 1),
        "normalize_features": config.head_fit == "logistic",
        "max_length": config.max_length,
        "base_model": config.model,
        "train_examples": n_train,
        "eval_examples": n_eval,
        "refit": refit,
        "metrics": result.metrics,
        "history": result.history,
        "config": config.to_dict(),
        "trained_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
