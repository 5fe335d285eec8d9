"""The Hugging Face Trainer reference recipe, as a user would write it: the yardstick for every Finetuner figure.

Standard heads (AutoModelForSequenceClassification / AutoModelForTokenClassification) on the same bundled model,
lr 5e-5, batch 32, 3 epochs, linear decay after 6% warmup, AdamW, fp32, seed fixed, no checkpoints, no reporting.
Accuracy / F1 by the same conventions as the engine: binary F1 of class "1" (GLUE MRPC), seqeval strict IOB2 entity
F1 for CoNLL with the label on each word's first sub-word (-100 elsewhere).
"""

from __future__ import annotations

import inspect
import math
import os
import tempfile
import time
from dataclasses import dataclass, field

import numpy as np
import torch

IGNORE = -100


@dataclass
class Recipe:
    lr: float = 5e-5
    batch_size: int = 32
    epochs: int = 3
    warmup: float = 0.06  # fraction of all steps (transformers 5 dropped warmup_ratio: we pass warmup_steps)
    weight_decay: float = 0.0  # TrainingArguments' default
    max_length: int = 128
    eval_batch_size: int = 128
    seed: int = 42
    bf16: bool = False
    group_by_length: bool = False
    frozen: bool = False  # encoder weights fixed, only the head trains (the encoder still runs every step)
    eval_each_epoch: bool = True  # per-epoch eval metrics (time-to-accuracy); costs an eval pass per epoch
    max_steps: int = -1  # >0 stops early (speed probes)


@dataclass
class StepClock:
    """Wall time at the start of every optimizer step: train time without eval, as gaps between steps of a segment.

    A segment is a run of steps with no evaluation or checkpoint between them: the Trainer's epochs, or the engine's
    stretches between its evaluations (several an epoch on large data). The gap after a segment's last step holds
    that work, so it is not timed; `train_s_so_far` counts it at the mean step instead.
    """

    starts: list[tuple[object, float]] = field(default_factory=list)  # (segment, time)

    def mark(self, segment: object) -> None:
        self.starts.append((segment, time.perf_counter()))

    def _gaps(self) -> list[float]:
        pairs = zip(self.starts, self.starts[1:], strict=False)
        return [t1 - t0 for (s0, t0), (s1, t1) in pairs if s0 == s1]

    def train_time(self) -> tuple[float, int]:
        """(seconds, steps timed): each gap between consecutive step starts in the same segment is one step's time."""
        gaps = self._gaps()
        return sum(gaps), len(gaps)

    def median_step_s(self) -> float | None:
        """Median step time: steadier than the mean when other processes share the CPU in bursts."""
        gaps = sorted(self._gaps())
        return gaps[len(gaps) // 2] if gaps else None

    def train_s_so_far(self) -> float:
        """Train seconds up to now, each segment's untimed last step counted at the mean step."""
        seconds, steps = self.train_time()
        segments = len({s for s, _ in self.starts})
        return seconds + segments * (seconds / max(steps, 1))


def pick_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _encode(
    task: str, examples: list[dict], tokenizer, label_names: list[str], max_length: int
) -> list[dict]:
    index = {name: i for i, name in enumerate(label_names)}
    if task == "token":
        enc = tokenizer(
            [ex["tokens"] for ex in examples],
            is_split_into_words=True,
            truncation=True,
            max_length=max_length,
        )
        items = []
        for i, ex in enumerate(examples):
            labels, previous = [], None
            for word in enc.word_ids(i):
                first = word is not None and word != previous
                labels.append(index[ex["tags"][word]] if first else IGNORE)
                previous = word
            items.append(
                {
                    "input_ids": enc["input_ids"][i],
                    "attention_mask": enc["attention_mask"][i],
                    "labels": labels,
                }
            )
        return items
    if task == "pair":
        enc = tokenizer(
            [ex["text"] for ex in examples],
            [ex["text_pair"] for ex in examples],
            truncation=True,
            max_length=max_length,
        )
    else:
        enc = tokenizer([ex["text"] for ex in examples], truncation=True, max_length=max_length)
    keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc]
    return [
        {**{k: enc[k][i] for k in keys}, "labels": index[str(ex["label"])]} for i, ex in enumerate(examples)
    ]


def _label_names(task: str, examples: list[dict]) -> list[str]:
    if task == "token":  # same order as the engine: O, then B-/I- per sorted type
        types = sorted({t.split("-", 1)[1] for ex in examples for t in ex["tags"] if t != "O"})
        return ["O"] + [f"{p}-{t}" for t in types for p in ("B", "I")]
    return sorted({str(ex["label"]) for ex in examples})


def score(
    task: str, logits: np.ndarray, items: list[dict], examples: list[dict], label_names: list[str]
) -> dict:
    """accuracy (+ binary F1 of class "1" for two classes), or seqeval strict IOB2 entity P/R/F1 for tokens."""
    if task == "token":
        from seqeval.metrics import f1_score, precision_score, recall_score
        from seqeval.scheme import IOB2

        preds = logits.argmax(-1)
        gold, pred = [], []
        for row, item, ex in zip(preds, items, examples, strict=True):
            words = [label_names[p] for p, g in zip(row, item["labels"], strict=False) if g != IGNORE]
            words += ["O"] * (
                len(ex["tags"]) - len(words)
            )  # words cut by truncation: predicted O, as the engine
            gold.append(list(ex["tags"]))
            pred.append(words)
        strict = {"mode": "strict", "scheme": IOB2, "zero_division": 0}
        return {
            "f1": float(f1_score(gold, pred, **strict)),
            "precision": float(precision_score(gold, pred, **strict)),
            "recall": float(recall_score(gold, pred, **strict)),
        }
    from sklearn.metrics import accuracy_score, f1_score

    pred = logits.argmax(-1)
    gold = np.array([it["labels"] for it in items])
    out = {"accuracy": float(accuracy_score(gold, pred)),
           "macro_f1": float(f1_score(gold, pred, labels=list(range(len(label_names))), average="macro",
                                      zero_division=0))}  # fmt: skip
    if "1" in label_names and len(label_names) == 2:
        out["f1"] = float(f1_score(gold, pred, pos_label=label_names.index("1")))
    return out


def _sampling(training_args_cls, group_by_length: bool) -> dict:
    """transformers >= 5.x spells group_by_length as train_sampling_strategy; older 5.x / 4.x had the flag."""
    params = inspect.signature(training_args_cls.__init__).parameters
    if "train_sampling_strategy" in params:
        return {"train_sampling_strategy": "group_by_length" if group_by_length else "random"}
    return {"group_by_length": group_by_length}


def run_reference(
    task: str,
    train_data: list[dict],
    eval_sets: dict[str, list[dict]],
    model_path: str,
    recipe: Recipe | None = None,
    device: str = "auto",
    log=print,
) -> dict:
    """Fine-tune with transformers.Trainer and score every eval set.

    Args:
        task: "sequence", "pair" (cross-encoded, the standard head) or "token".
        train_data: Finetuner example dicts.
        eval_sets: name -> examples; the first one is evaluated after every epoch when recipe.eval_each_epoch.
        model_path: a local model folder (e.g. the bundled MiniLM).
        recipe: hyper-parameters (defaults: the reference recipe).
        device: "auto", "cpu" or "cuda".

    Returns:
        {"metrics": {set: {...}}, "history": [per-epoch metrics on the first set], "train_s", "ex_per_s",
        "wall_s", "steps", "epochs", "recipe"}.
    """
    from transformers import (
        AutoModelForSequenceClassification,
        AutoModelForTokenClassification,
        AutoTokenizer,
        DataCollatorForTokenClassification,
        DataCollatorWithPadding,
        PrinterCallback,
        Trainer,
        TrainerCallback,
        TrainingArguments,
        set_seed,
    )
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    recipe = recipe or Recipe()
    wall_start = time.perf_counter()
    dev = pick_device(device)
    set_seed(recipe.seed)  # before from_pretrained: the fresh head's init is seeded too
    label_names = _label_names(task, train_data)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    auto = AutoModelForTokenClassification if task == "token" else AutoModelForSequenceClassification
    model = auto.from_pretrained(
        model_path,
        num_labels=len(label_names),
        id2label=dict(enumerate(label_names)),
        label2id={n: i for i, n in enumerate(label_names)},
        dtype=torch.float32,  # fp32 master weights whatever the checkpoint's dtype (the GPU copy is stored fp16)
    )
    if recipe.frozen:
        for p in model.base_model.parameters():
            p.requires_grad = False
    train_items = _encode(task, train_data, tokenizer, label_names, recipe.max_length)
    eval_items = {
        name: _encode(task, exs, tokenizer, label_names, recipe.max_length) for name, exs in eval_sets.items()
    }
    first_eval = next(iter(eval_sets), None)

    steps_per_epoch = math.ceil(len(train_items) / recipe.batch_size)
    total = recipe.max_steps if recipe.max_steps > 0 else steps_per_epoch * recipe.epochs
    clock, history = StepClock(), []

    class Progress(TrainerCallback):
        epoch = 0

        def on_epoch_begin(self, args, state, control, **kw):
            self.epoch += 1

        def on_step_begin(self, args, state, control, **kw):
            clock.mark(self.epoch)
            if state.global_step % 20 == 0:
                log(f"    [trainer] step {state.global_step}/{total}")

        def on_evaluate(self, args, state, control, metrics=None, **kw):
            epoch = round(state.epoch or 0)
            history.append(
                {
                    "epoch": epoch,
                    "train_s": clock.train_s_so_far(),
                    **{k.removeprefix("eval_"): v for k, v in (metrics or {}).items()},
                }
            )
            log(f"    [trainer] epoch {epoch}: { ({k: round(v, 4) for k, v in history[-1].items()}) }")

    def compute_metrics(pred):
        return score(task, pred.predictions, eval_items[first_eval], eval_sets[first_eval], label_names)

    collator = (
        DataCollatorForTokenClassification(tokenizer)
        if task == "token"
        else DataCollatorWithPadding(tokenizer)
    )
    with tempfile.TemporaryDirectory(prefix="bench-trainer-") as out_dir:
        args = TrainingArguments(
            output_dir=out_dir,
            per_device_train_batch_size=recipe.batch_size,
            per_device_eval_batch_size=recipe.eval_batch_size,
            num_train_epochs=recipe.epochs,
            max_steps=recipe.max_steps,
            learning_rate=recipe.lr,
            lr_scheduler_type="linear",
            warmup_steps=math.ceil(recipe.warmup * total),  # what warmup_ratio=0.06 computed (rounded up)
            weight_decay=recipe.weight_decay,
            bf16=recipe.bf16,
            **_sampling(TrainingArguments, recipe.group_by_length),
            eval_strategy="epoch" if recipe.eval_each_epoch and first_eval else "no",
            save_strategy="no",
            logging_strategy="no",
            report_to=[],
            seed=recipe.seed,
            use_cpu=dev.type == "cpu",
            disable_tqdm=True,
            dataloader_num_workers=0,
        )
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=train_items,
            eval_dataset=eval_items.get(first_eval) if args.eval_strategy != "no" else None,
            data_collator=collator,
            processing_class=tokenizer,
            compute_metrics=compute_metrics,
            callbacks=[Progress()],
        )
        trainer.remove_callback(PrinterCallback)
        trainer.train()
        train_s, timed_steps = clock.train_time()
        metrics = {}
        # predict() would run compute_metrics too, which scores against the first eval set: with a second set of
        # another size (CoNLL valid 3,250 vs test 3,453) that fails. Each set is scored below, by its own items.
        trainer.compute_metrics = None
        for name, items in eval_items.items():
            logits = trainer.predict(items).predictions
            metrics[name] = score(task, logits, items, eval_sets[name], label_names)
    examples_timed = timed_steps * recipe.batch_size
    return {
        "metrics": metrics,
        "history": history,
        "train_s": clock.train_s_so_far(),
        "ex_per_s": examples_timed / train_s if train_s else None,
        "ex_per_s_median": recipe.batch_size / clock.median_step_s() if clock.median_step_s() else None,
        "load_avg": os.getloadavg(),
        "wall_s": time.perf_counter() - wall_start,
        "steps": total,
        "epochs": recipe.epochs,
        "recipe": recipe.__dict__,
    }
