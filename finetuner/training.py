"""One task-agnostic training loop. Task differences live in tasks.py / batches.py; progress leaves through callbacks."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from finetuner import auto, checkpoints, contrastive, distributed, modeling
from finetuner.averaging import WeightAverage
from finetuner.batches import pick_device
from finetuner.checkpoints import (  # noqa: F401 - CHECKPOINT_DIR, checkpoint_info: callers import them here
    CHECKPOINT_DIR,
    check_resumable,
    checkpoint_info,
    load_checkpoint,
    remove_checkpoint,
    restore_trainable,
    save_checkpoint,
    trainable_state,
)
from finetuner.config import TrainConfig
from finetuner.cuda_graphs import GraphedStep
from finetuner.errors import TrainingError  # noqa: F401 - callers import it here
from finetuner.evaluation import evaluate, evaluate_folder  # noqa: F401 - evaluate_folder: callers import it here
from finetuner.logistic import fit_logistic
from finetuner.tasks import make_task, validate_examples
from finetuner.training_parts import (  # noqa: F401 - check_diverged, class_weights, split_off_eval: callers import them here
    SCHEDULES,
    auto_text_profile,
    batch_source,
    best_metrics,
    check_diverged,
    class_weights,
    eval_rank,
    folder_meta,
    make_optimizer,
    seed_everything,
    split_off_eval,
)


@dataclass
class StepInfo:
    step: int  # optimizer steps done, over the whole run
    total_steps: int
    epoch: int  # 1-based
    epochs: int
    loss: float  # mean train loss since the previous report
    lr: float
    examples_per_s: float
    eta_s: float

    @property
    def progress(self) -> float:
        return self.step / max(self.total_steps, 1)


@dataclass
class EvalInfo:
    epoch: float  # epochs done when evaluated: 2 at the end of epoch 2, 1.5 half-way through epoch 2
    step: int
    metrics: dict  # loss, accuracy, macro_f1 / f1, per_class, confusion_matrix...
    is_best: bool


def _noop(*_args) -> None:
    return None


@dataclass
class Callbacks:
    """How progress leaves the engine. Every hook is optional; should_stop is asked between steps."""

    on_step: Callable[[StepInfo], None] = _noop
    on_eval: Callable[[EvalInfo], None] = _noop
    on_phase: Callable[[str, float], None] = _noop  # ("tokenizing" | "encoding features", fraction done)
    should_stop: Callable[[], bool] = lambda: False


@dataclass
class TrainResult:
    output_dir: str | None  # the saved model folder; None when cancelled
    metrics: dict  # eval metrics of the kept (best) epoch; {} without eval data
    history: list[dict] = field(default_factory=list)  # eval metrics per evaluation (config.evals_per_epoch)
    epochs_run: int = 0
    best_epoch: float | None = (
        None  # when the kept weights were evaluated, in epochs (1.5: half-way through 2)
    )
    stopped_early: bool = False
    cancelled: bool = False
    refit_examples: int = (
        0  # a refit head (TrainConfig.refit) trained on this many examples after the metrics
    )
    mode: str = ""  # what the run ran as: Auto's pick, or the mode set by hand


def train(
    config: TrainConfig,
    train_data: list[dict],
    eval_data: list[dict] | None = None,
    callbacks: Callbacks | None = None,
) -> TrainResult:
    """Fine-tune a head (and, by mode, the encoder) on examples and save a model folder.

    Args:
        config: every setting; see TrainConfig.
        train_data: example dicts (see finetuner.tasks).
        eval_data: held-out examples; None splits config.eval_split off train_data.
        callbacks: progress hooks (on_step, on_eval, on_phase) and should_stop for cancelling.

    Returns:
        TrainResult with the model folder and the kept epoch's eval metrics.

    >>> cfg = TrainConfig(task="sequence", output_dir="/tmp/ft-doc", mode="frozen", epochs=2,
    ...                   model_overrides={"num_hidden_layers": 1})
    >>> data = [{"text": t, "label": l} for t, l in [("good", "pos"), ("bad", "neg")] * 4]
    >>> train(cfg, data, data).epochs_run
    2
    """
    device = distributed.device_for(pick_device(config.device))
    distributed.ensure_process_group(device)  # under torchrun: see distributed.py; else a no-op
    return _train(config, train_data, eval_data, callbacks, device)


def _train(config, train_data, eval_data, callbacks, device) -> TrainResult:
    cb = (callbacks or Callbacks()) if distributed.is_main() else Callbacks()  # rank 0 alone reports
    ddp = distributed.active()
    seed_everything(config.seed)

    # prepare: data, task, model
    if eval_data is None and config.eval_split > 0:
        train_data, eval_data = split_off_eval(train_data, config.eval_split, config.seed, config.task)
    # the lr default depends on the data size; in auto mode the mode, epochs and class weighting too
    counts = auto.label_counts(config.task, train_data, config.problem)
    english, tokens = auto_text_profile(config, train_data)
    config = config.resolved(len(train_data), counts, device.type, len(eval_data or []), english, tokens)
    task = make_task(config.task, train_data, config.labels, config.pair_encoding, config.problem)
    if eval_data:
        validate_examples(config.task, eval_data, "eval", config.problem)
        task.check_labels(eval_data, "eval")
    problem, diverged_above = task.problem, task.problem.divergence_limit(task.num_labels)
    model_path = modeling.resolve_model(config.model)
    pooling = config.pooling or modeling.model_pooling(model_path)
    tokenizer = modeling.load_tokenizer(model_path)
    model = modeling.build_model(
        config.task,
        model_path,
        task.num_labels,
        pooling=pooling,
        pair_encoding=config.pair_encoding,
        classifier_dropout=config.classifier_dropout,
        feature_layers=config.feature_layers,
        overrides=config.model_overrides,
        problem=config.problem,
        normalize_features=config.head_fit == "logistic",
    )
    # the bias starts at the data's base rates (multi-label) or mean score (regression)
    problem.init_head(modeling.head_of(model), task.labels)
    modeling.set_trainable(model, config.mode_kind, config.top_layers)
    model.to(device)
    cb.on_phase("tokenizing", 0.0)
    train_items = task.encode(train_data, tokenizer, config.max_length)
    eval_items = task.encode(eval_data, tokenizer, config.max_length) if eval_data else []
    cb.on_phase("tokenizing", 1.0)

    ckpt_dir = Path(config.output_dir) / CHECKPOINT_DIR
    state = load_checkpoint(ckpt_dir, task) if config.resume else None
    if config.contrastive_steps and not contrastive.prepare_encoder(  # before features are cached from it
        model, task, train_items, train_data, config,
        pad_id=tokenizer.pad_token_id or 0, device=device, ckpt_dir=ckpt_dir, callbacks=cb,
    ):  # fmt: skip
        return TrainResult(output_dir=None, metrics={}, cancelled=True, mode=config.mode)
    source = batch_source(
        config, model, task, train_items, eval_items, tokenizer, device, ckpt_dir, state, cb
    )
    trainable = source.trainable
    initial = trainable_state(trainable) if config.refit else None  # a refit starts the head from here again
    params = [p for p in trainable.parameters() if p.requires_grad]
    # CUDA graphs need a capturable optimizer (Adam / AdamW); torch.compile brings its own graphs.
    graphs = config.cuda_graphs and device.type == "cuda" and config.optimizer != "sgd" and not config.compile
    graphs = graphs and not ddp  # the step all-reduces between backward and optimizer step
    optimizer = make_optimizer(config, trainable, device, capturable=graphs)
    weight = class_weights(task.labels, counts).to(device) if config.class_weight else None
    total_steps = source.steps_per_epoch() * config.epochs
    scheduler = SCHEDULES[config.schedule](optimizer, int(config.warmup * total_steps), total_steps)

    def train_step(batch: dict) -> torch.Tensor:
        """Forward, backward and optimizer step; graph-safe (see cuda_graphs.py) so it can be captured whole."""
        with source.settings.autocast():
            logits, gold = source.scores(batch)
        loss = problem.loss(
            logits.float(),
            gold,
            weight=weight,
            label_smoothing=config.label_smoothing,
            reduction="sum" if ddp else "mean",  # several ranks: summed here, divided after the all-reduce
        )
        optimizer.zero_grad(set_to_none=not graphs)  # in place under graphs: one set of gradient tensors
        loss.backward()
        if ddp:  # the global batch's mean: every rank's sums, divided by all ranks' labeled rows
            denominator = distributed.loss_denominator(gold, weight, problem)
            loss = distributed.reduce_gradients(params, loss.detach(), denominator)
        if config.grad_clip:
            torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
        optimizer.step()
        return loss.detach()

    run_step = GraphedStep(train_step) if graphs else train_step
    # evaluated, kept and saved in place of the raw weights (averaging.py); updated after each step, outside graphs
    average = WeightAverage(params, config.ema_decay) if config.ema_decay else None

    start_epoch, step, history, best, best_state, patience = 1, 0, [], None, None, 0
    steps_per_epoch = source.steps_per_epoch()
    # steps into an epoch at which to evaluate before its end (none with evals_per_epoch 1)
    inner_evals = {
        round(k * steps_per_epoch / config.evals_per_epoch) for k in range(1, config.evals_per_epoch)
    }
    inner_evals.discard(steps_per_epoch)
    if state:
        check_resumable(trainable, state["trainable"])
        restore_trainable(trainable, state["trainable"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch, step, history = state["epoch"] + 1, state["step"], state["history"]
        best, patience = state["best"], state["patience"]
        best_state = state.get("best_state")
        if average and state.get("average"):
            average.load_state_dict(state["average"])
        torch.set_rng_state(state["rng"])
    if ddp:
        distributed.broadcast_module(trainable)  # every rank starts from rank 0's weights
        torch.manual_seed(distributed.rank_seed(config.seed, step))

    result = TrainResult(
        output_dir=None, metrics={}, history=history, epochs_run=start_epoch - 1, mode=config.mode
    )

    def evaluate_and_keep(epochs_done: float) -> bool:
        """Score the weights (averaged, when averaging) and keep them if they rank best so far; True if they do."""
        nonlocal best, best_state
        with average.applied() if average else contextlib.nullcontext():
            metrics = evaluate(source, task, eval_data, eval_items)
            check_diverged("eval", metrics.get("loss"), f"epoch {epochs_done}", diverged_above)
            history.append({"epoch": epochs_done, "step": step, **metrics})
            score = eval_rank(metrics, config)
            is_best = best is None or score > tuple(best)
            if is_best:
                best, result.best_epoch = score, epochs_done
                best_state = trainable_state(trainable)
        cb.on_eval(EvalInfo(epochs_done, step, metrics, is_best))
        return is_best

    def fit_head() -> float:  # SetFit's head: a regression fitted at once on the cached features, no epochs
        return fit_logistic(trainable, source.train_x.to(device), source.train_y.to(device), weight=weight)

    logistic_head = config.head_fit == "logistic"
    if logistic_head:
        fit_start, step, result.epochs_run = time.perf_counter(), 1, 1
        loss = fit_head()
        rate = len(source.train_y) / max(time.perf_counter() - fit_start, 1e-9)
        cb.on_step(StepInfo(1, 1, 1, 1, loss, 0.0, rate, 0.0))
        if eval_items and distributed.is_main():
            evaluate_and_keep(1)
    run_start, run_start_step = time.perf_counter(), step
    saved_at = None  # the first epoch's checkpoint is always written: a resume has somewhere to start
    for epoch in range(start_epoch, config.epochs + 1) if not logistic_head else ():
        trainable.train()
        improved = False
        window_loss, window_steps, window_examples, window_start = (
            torch.zeros((), device=device),
            0,
            0,
            time.perf_counter(),
        )
        for epoch_step, (n_examples, batch) in enumerate(source.train_batches(epoch), start=1):
            if distributed.main_decides(cb.should_stop()):
                result.cancelled = True
                return result

            loss = run_step(batch)
            if average:
                average.update()
            scheduler.step()
            step += 1
            window_loss += loss.detach()
            window_steps += 1
            window_examples += n_examples

            # report (reading the loss syncs the device, so only every log_every steps)
            if step % config.log_every == 0 or step == total_steps:
                mean_loss = (window_loss / window_steps).item()
                check_diverged("training", mean_loss, f"step {step}", diverged_above)
                now = time.perf_counter()
                rate = (step - run_start_step) / max(now - run_start, 1e-9)
                # the set lr at this point of the schedule (group 0 may be a head trained at a multiple of it)
                lr_now = config.lr * scheduler.lr_lambdas[0](scheduler.last_epoch)
                cb.on_step(
                    StepInfo(
                        step,
                        total_steps,
                        epoch,
                        config.epochs,
                        mean_loss,
                        lr_now,
                        window_examples / max(now - window_start, 1e-9),
                        (total_steps - step) / rate,
                    )
                )
                window_loss.zero_()
                window_steps, window_examples, window_start = 0, 0, now

            if eval_items and epoch_step in inner_evals and distributed.is_main():
                improved |= evaluate_and_keep(round(epoch - 1 + epoch_step / steps_per_epoch, 2))
                trainable.train()

        # evaluate; patience counts epochs in which no evaluation improved
        result.epochs_run = epoch
        if eval_items and distributed.is_main():
            improved |= evaluate_and_keep(epoch)
            patience = 0 if improved else patience + 1
        if saved_at is None or time.perf_counter() - saved_at >= checkpoints.CHECKPOINT_EVERY_S:
            saved_at = time.perf_counter()
            save_checkpoint(
                ckpt_dir,
                {
                    "trainable": trainable_state(trainable),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "epoch": epoch,
                    "step": step,
                    "history": history,
                    "best": best,
                    "patience": patience,
                    "best_state": best_state,
                    "average": average.state_dict() if average else None,
                    "labels": task.labels,
                    "rng": torch.get_rng_state(),
                },
            )

        # stop? (rank 0 evaluated: its answer holds for every rank)
        if distributed.main_decides(
            bool(config.early_stopping_patience and patience >= config.early_stopping_patience)
        ):
            result.stopped_early = True
            break

    if not distributed.is_main():
        distributed.barrier()  # rank 0 saves the folder
        result.output_dir = config.output_dir
        return result

    # keep the best epoch's weights (or, without eval data, the last average), save the model folder
    if best_state is not None and config.keep_best:
        restore_trainable(trainable, best_state)
        result.metrics = best_metrics(history, config)
        result.best_epoch = result.metrics.get("epoch")
    elif history and not config.keep_best:  # the last weights stay (averaged, when averaging: see above)
        result.metrics = history[-1]
        result.best_epoch = history[-1]["epoch"]
        if average:
            with torch.no_grad():
                torch._foreach_copy_(average.targets, average.shadow)
    elif average:
        with torch.no_grad():
            torch._foreach_copy_(average.targets, average.shadow)
    refit = bool(config.refit and eval_items and not ddp)  # under torchrun the few examples stay held out
    if refit:
        # the held-out run's metrics stay the estimate; the saved head has learned from every example
        restore_trainable(trainable, initial)
        source.include_eval()
        optimizer = make_optimizer(config, trainable, device)  # train_step steps this one from here on
        total_steps = source.steps_per_epoch() * config.epochs
        scheduler = SCHEDULES[config.schedule](optimizer, int(config.warmup * total_steps), total_steps)
        trainable.train()
        if logistic_head:
            fit_head()
            cb.on_phase("training the head on every example", 1.0)
        for epoch in range(1, config.epochs + 1) if not logistic_head else ():
            if cb.should_stop():
                result.cancelled = True
                return result
            for _, batch in source.train_batches(epoch):
                train_step(batch)
                scheduler.step()
            cb.on_phase("training the head on every example", epoch / config.epochs)
        result.refit_examples = len(train_data) + len(eval_data)
    n_train = len(train_data) + (
        len(eval_data) if refit else 0
    )  # a refit head learned from the eval examples too
    meta = folder_meta(config, task, pooling, model, result, n_train, len(eval_data or []), refit)
    model.to("cpu")
    result.output_dir = str(modeling.save_model_folder(model, tokenizer, config.output_dir, meta))
    remove_checkpoint(ckpt_dir)
    distributed.barrier()
    return result
