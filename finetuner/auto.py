"""Auto mode: the method, epochs and learning rate picked from the data size, class balance, task and device.

Plain functions of plain values (no torch, no data), so each rule is unit-tested and the UI can say what Auto will do
before a job starts. Every threshold below comes from bench/few_shot.py (BENCHMARKS.md, "Small data: Auto").
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

# A head on cached features costs ~1 ms a step, so small data gets many passes: at 8 examples a class (16 sentences,
# one batch) the old 30 epochs were 30 steps; 300 steps cost under a second on this CPU.
FROZEN_MIN_STEPS = 300
FROZEN_EPOCHS = 30  # the frozen default for data large enough to reach FROZEN_MIN_STEPS on its own
# Fine-tuning the encoder pays once there is enough data for it. A head on frozen features beat the Trainer's
# fine-tuning recipe by 7-16 points at 16-128 SST-2 sentences in bench/few_shot.py, in a third to a half of its CPU
# time (BENCHMARKS.md, "Small data"); where between 128 and the full-data runs fine-tuning overtakes it was not
# measured: 2,000 is a judgment (a 2-core CPU fine-tunes 2,000 sentences x 3 epochs in a few minutes).
FULL_FROM = {"cpu": 2_000, "cuda": 2_000}
FULL_MIN_STEPS = (
    100  # a fine-tuning run gets at least this many optimizer steps (3 steps is not a training run)
)
FULL_EPOCHS = 3  # today's recipe (config._MODE_DEFAULTS), kept on big data
# Token tasks fine-tune from far fewer sentences, with each tag's loss weighted by its rarity (class_weight: O is
# ~80% of the words). In bench/few_shot.py (lr 3e-4, >= FULL_MIN_STEPS steps; BENCHMARKS.md "Small data", fourth
# session) the weighted loss scored CoNLL-2003 entity F1 53.9 at 50 sentences (seed 0) and 67.9 at 200 (3 seeds)
# against the frozen head's 29.3 and 41.7, and LeNER-Br 15.6 and 33.7 against 12.9 and 17.7, where the unweighted loss
# had predicted O everywhere on LeNER-Br at 50-200 (F1 0, at lr 1e-4 and 3e-4 alike); at 400 it lifted LeNER-Br from
# 24.7 to 30.9 (3 seeds) and left CoNLL level. 50 labeled sentences are 45 after the 10% eval
# split; below that nothing was measured, and the frozen head (seconds, not minutes) stays.
TOKEN_FULL_FROM = 45
TOKEN_SMALL_LR = 3e-4  # token fine-tuning below FULL_FROM; from there today's recipe (its mode default)
# Twice the steps from 400 labeled sentences (360 after the eval split): in bench/few_shot.py (fifth session) 200
# steps instead of 100 (17 epochs, not 9) lifted LeNER-Br entity F1 at 400 sentences from 32.0 / 27.7 to 45.7 /
# 43.3 (seeds 0 / 1; its LOCAL type, 20 test entities, from 0.00 / 0.04 to 0.16 / 0.15) and CoNLL-2003 from 70.4 to
# 73.7 (seed 0), in 1.6-1.75x the CPU time (231 and 602 CPU s a run).
TOKEN_MORE_STEPS_FROM = 360
TOKEN_MIN_STEPS = 200
# Classes are skewed when the largest holds this many times the examples of the smallest (ReLi: 2,070 vs 438, 4.7x;
# MRPC: 2.1x; SST-2: 1.3x). Class-weighted loss then lifts the minority's recall (macro-F1).
SKEW_RATIO = 2.5
# Keeping the best of many evaluations on a handful of held-out examples selects noise: on SST-2 with 8 sentences a
# class (the app's 10% split: 2 eval sentences) the kept epoch scored 51.6 on the test sample at seed 0 where the last
# scored ~58. Below this many eval examples Auto keeps the last weights (the eval is still run and shown), and a
# frozen head is then trained again on the training and eval examples together (TrainConfig.refit): a few eval
# examples teach more than they select. In bench/few_shot.py (3 seeds, BENCHMARKS.md "Small data") that moved SST-2
# accuracy by -0.8 / -0.4 / +1.4 / -0.1 at 8 / 16 / 32 / 64 a class and ReLi macro-F1 by +1.0 / +0.2 / +1.6 at 8-32:
# small, mostly inside the seeds' spread, but every label a person gives now reaches the model.
MIN_EVAL_TO_SELECT = 50
# A head on a frozen encoder reads a pair better as [u, v, |u-v|, u*v] of each text's pooled vector (SBERT /
# InferSent) than as the cross-encoder's [CLS] a [SEP] b: on cached MiniLM features (3 seeds, a 500-pair test sample)
# +2.3 / +3.4 / +3.4 / +4.9 macro-F1 on MRPC and -3.9 / -0.1 / +2.1 / +3.7 on ASSIN at 8 / 16 / 32 / 64 pairs a
# class. Fine-tuning keeps the cross-encoder, which beat separate encodings on MRPC in bench/quality.py.
FROZEN_PAIR_ENCODING = "siamese"
# SetFit's step: tune the encoder on same / different-label pairs (finetuner/contrastive.py), then the frozen head
# reads the tuned last layer. In bench/few_shot.py (BENCHMARKS.md "Small data, sixth session", 3 seeds) it moved
# SST-2 accuracy from 72.9 / 73.2 / 75.5 to 75.1 / 76.9 / 78.1 at 32 / 64 / 128 a class (SetFit: 74.9 / 77.0 / 78.0,
# 128 at seed 0), but from 67.7 to 66.6 at 16 (29 training examples) in 36 CPU s instead of 3, and at 8 from 57.7 to
# 58.9 inside a 6-point spread of seeds; on the Portuguese ReLi, which the English model cuts into fragments, it
# lost (macro-F1 43.8 -> 43.3 at 8 a class, level at 16, 51.1 -> 45.6 at 32, seed 0). So it runs on texts that look
# English (finetuner.languages), for single-label sequence tasks from 50 training examples up to the largest size
# measured, within a time budget: a step is 32 texts forward and back, so its steps are what CONTRASTIVE_BUDGET_S
# buys at the device's speed (a job of 128-256 SST-2 sentences took 79-83 s on 2 threads). At 192 and 256 a class
# (346 and 461 training examples; "Small data", seventh and eighth sessions, 3 seeds) it lifted SST-2 from 75.9 /
# 77.5 to 77.9 / 78.9 (SetFit at 256: 79.9 in 284 CPU s). Fine-tuning the whole model instead, at least 100 steps,
# scored 77.1 / 78.4 there, and with 200 steps 81.0 / 78.4 / 70.4 at 256 (seeds 0-2): less, and less steady.
# After the step, SetFit's head (finetuner/logistic.py: a logistic regression on unit-length vectors) in place of
# epochs of AdamW: SST-2 accuracy 76.8 -> 77.6 at 64 a class (115 training examples, five seeds), 78.1 -> 78.3 at 128
# (three), 79.4 -> 79.7 at 256 (five), in less CPU time; at 32 a class (58) it lost, 75.1 -> 74.1 (three seeds;
# BENCHMARKS.md "Small data, twelfth session"). So from this many training examples, between the two.
LOGISTIC_FROM = 100
CONTRASTIVE_FROM = 50  # training examples (32 a class of SST-2 are 58 after the 10% split)
# measured up to 461 (256 a class of SST-2); 500 labeled examples are 450 after the split
CONTRASTIVE_UNTIL = 500
# 80 steps of 35-token sentences on this 2-core CPU, ~130 of SST-2's shorter training phrases (22 tokens padded)
CONTRASTIVE_BUDGET_S = 90.0
CONTRASTIVE_MIN_STEPS = 10  # fewer steps than this (long texts on a slow device) would not move the encoder
CONTRASTIVE_MAX_STEPS = 200  # the most measured (SST-2 at 64 a class); a fast device stops here
PAIRS_PER_STEP = 16  # finetuner.contrastive.PAIRS_PER_STEP (not imported from there: it pulls in torch)

# Speeds are in tokens/s: an encoder's cost grows linearly with the tokens of a batch (bucketed batches pad little),
# and a fixed examples/s was 2-5x short for LeNER-Br's long sentences. The bundled MiniLM on this 2-core CPU, 2
# threads, batch 32: fine-tuning 885 / 1,004 / 1,194 / 1,206 tokens/s and encoding 4,019 / 3,944 / 3,992 / 4,041 at
# 16 / 32 / 64 / 128 tokens an example (BENCHMARKS.md "Estimated time"). Conservative constants, used only when
# this machine has no finished job of the same mode to measure from; CUDA's are the old examples/s figures at 25
# tokens an example (SST-2's mean).
CPU_SPEED = {"encode": 3_750.0, "full": 1_000.0, "top": 1_750.0}  # tokens/s
CUDA_SPEED = {"encode": 125_000.0, "full": 50_000.0, "top": 75_000.0}
TYPICAL_TOKENS = (
    25.0  # an example's tokens when its dataset's are unknown (SST-2's mean; finetuner.token_counts)
)
# load, tokenize, the head epochs, save: Auto took 14-20 CPU s at 16-128 sentences in bench/few_shot.py
STARTUP_S = 15.0


@dataclass(frozen=True)
class AutoChoice:
    """What Auto picked, and a one-line reason a user reads in the Train tab."""

    mode: str  # "frozen", "full" or "top-N"
    epochs: int
    class_weight: bool  # weight the loss by inverse class frequency
    keep_best: bool  # keep the best evaluation's weights (False: the last)
    feature_layers: int | None  # frozen: how many last layers the head reads; None: the mode's default
    reason: str
    refit: bool = False  # frozen: after the held-out run, train the head again on train + eval examples
    # pair tasks: "siamese" or "cross" (or the hand-set value); None for other tasks
    pair_encoding: str | None = None
    lr: float | None = None  # None: the mode's default
    contrastive_steps: int | None = None  # frozen: tune the encoder on pairs first, at most this many steps
    head_fit: str = "epochs"  # frozen: "logistic" fits SetFit's head at once (finetuner/logistic.py)


def label_counts(task: str, examples: list[dict], problem: str = "single") -> dict[str, int]:
    """Examples per label (sequence, pair; multilabel: each label's occurrences), words per tag (token); {} for
    regression, which has no classes.

    >>> label_counts("sequence", [{"label": ["a", "b"]}, {"label": ["a"]}, {"label": []}], "multilabel")
    {'a': 2, 'b': 1}
    """
    if task == "token":
        return dict(Counter(str(tag) for ex in examples for tag in ex.get("tags") or ()))
    if problem == "regression":
        return {}
    if problem == "multilabel":
        return dict(Counter(str(v) for ex in examples for v in ex.get("label") or ()))
    return dict(Counter(str(ex["label"]) for ex in examples if ex.get("label") is not None))


def skew(counts: dict[str, int]) -> float:
    """Largest class over smallest; 1.0 for balanced (or empty / single-class) data.

    >>> skew({"pos": 2070, "neg": 438})
    4.73
    """
    sizes = [n for n in counts.values() if n > 0]
    if len(sizes) < 2:
        return 1.0
    return round(max(sizes) / min(sizes), 2)


def epochs_for(n_train: int, batch_size: int, min_steps: int, at_least: int) -> int:
    """Epochs that give at least min_steps optimizer steps (and never fewer than at_least).

    >>> epochs_for(16, 32, 300, 30)  # one batch an epoch
    300
    """
    steps_per_epoch = max(1, math.ceil(n_train / batch_size))
    return max(at_least, math.ceil(min_steps / steps_per_epoch))


def contrastive_pair_steps(counts: dict[str, int]) -> int:
    """Steps of one pass over the pairs `finetuner.contrastive.sample_pairs` draws from examples with these label
    counts: every same-label pair against every different-label one, the smaller side cycled up to the larger.

    >>> contrastive_pair_steps({"pos": 7, "neg": 7})  # 42 positives, 49 negatives: 98 pairs
    7
    """
    sizes = [n for n in counts.values() if n > 0]
    positives = sum(n * (n - 1) // 2 for n in sizes)
    negatives = (sum(sizes) ** 2 - sum(n * n for n in sizes)) // 2
    if not positives or not negatives:
        return 0
    return math.ceil(2 * max(positives, negatives) / PAIRS_PER_STEP)


def contrastive_steps_for(counts: dict[str, int], tokens: float, device: str = "cpu") -> int:
    """Contrastive steps Auto runs: one pass over the pairs, capped by what CONTRASTIVE_BUDGET_S buys at the
    device's fine-tuning speed for texts of `tokens` tokens (32 texts a step) and by CONTRASTIVE_MAX_STEPS; 0 when
    that is under CONTRASTIVE_MIN_STEPS or the data has no pair to contrast.

    >>> contrastive_steps_for({"pos": 64, "neg": 64}, 35.0), contrastive_steps_for({"pos": 7, "neg": 7}, 35.0)
    (80, 7)
    """
    speed = (CUDA_SPEED if device == "cuda" else CPU_SPEED)["full"]
    affordable = int(CONTRASTIVE_BUDGET_S * speed / (2 * PAIRS_PER_STEP * max(tokens, 1.0)))
    if affordable < CONTRASTIVE_MIN_STEPS:
        return 0
    return min(contrastive_pair_steps(counts), affordable, CONTRASTIVE_MAX_STEPS)


def pair_encoding_for(task: str, mode: str, contrastive: bool = False) -> str | None:
    """How Auto reads a pair: siamese features for a frozen head, the cross-encoder otherwise; None for other tasks.

    contrastive: contrastive tuning is on (finetuner/contrastive.py), which embeds a pair as one cross input.

    >>> pair_encoding_for("pair", "frozen"), pair_encoding_for("pair", "full"), pair_encoding_for("sequence", "frozen")
    ('siamese', 'cross', None)
    """
    if task != "pair":
        return None
    return FROZEN_PAIR_ENCODING if mode == "frozen" and not contrastive else "cross"


def choose(
    task: str,
    n_train: int,
    counts: dict[str, int],
    device: str = "cpu",
    batch_size: int = 32,
    n_eval: int | None = None,
    fine_tune: str | None = None,
    problem: str = "single",
    pair_encoding: str | None = None,
    contrastive: bool = False,
    english: bool = False,
    tokens: float = TYPICAL_TOKENS,
) -> AutoChoice:
    """Auto's pick for a training set of n_train examples with these label counts, on a device type.

    Args:
        task: "sequence", "pair" or "token".
        n_train: training examples (after the eval split).
        counts: examples per label (``label_counts``); token tags are not used for weighting.
        device: "cpu" or "cuda".
        batch_size: the run's batch size (the steps an epoch gives depend on it).
        n_eval: held-out examples (None: unknown, taken as enough to pick the best evaluation).
        fine_tune: the name of a setting made by hand that only fine-tuning uses (e.g. mask_tokens): full mode.
        problem: "single", "multilabel" or "regression"; only single-label classes are loss-weighted (a skewed
            multi-label set is named in the reason, not weighted; regression has no classes).
        pair_encoding: the pair encoding set by hand (it is kept); None: Auto picks (``pair_encoding_for``).
        contrastive: contrastive tuning was set by hand (on or off): Auto leaves it alone, and a pair encoding it
            picks stays "cross" (contrastive tuning embeds a pair as one input).
        english: the texts look English (`finetuner.languages`): a sequence task may get contrastive tuning.
        tokens: an example's tokens (`finetuner.token_counts.mean_tokens`), for the contrastive step's time budget.

    >>> choose("sequence", 16, {"a": 8, "b": 8}).mode
    'frozen'
    """
    ratio = skew(counts) if task != "token" and problem != "regression" else 1.0
    weighted = ratio >= SKEW_RATIO and problem == "single"
    balance = f"; classes skewed {ratio:g}:1, so the loss is class-weighted" if weighted else ""
    if ratio >= SKEW_RATIO and problem == "multilabel":
        balance = f"; labels skewed {ratio:g}:1 (per-label thresholds tuned on the eval data make up for it)"
    keep_best = n_eval is None or n_eval >= MIN_EVAL_TO_SELECT
    last = ""
    if not keep_best and n_eval:
        last = f"; the last weights are kept ({n_eval} eval examples are too few to pick a best)"
    full_from = FULL_FROM.get(device, FULL_FROM["cpu"])
    if n_train >= full_from or fine_tune:
        epochs = epochs_for(n_train, batch_size, FULL_MIN_STEPS, FULL_EPOCHS)
        why = (
            f"{n_train:,} examples are enough to fine-tune the whole model (today's recipe, {epochs} epochs)"
        )
        if n_train < full_from:
            why = f"{fine_tune} was set by hand and needs the encoder to train; {epochs} epochs"
        encoding = pair_encoding or pair_encoding_for(task, "full", contrastive)
        return AutoChoice("full", epochs, weighted, keep_best, None, why + balance + last, False, encoding)
    if task == "token" and n_train >= TOKEN_FULL_FROM:
        min_steps = TOKEN_MIN_STEPS if n_train >= TOKEN_MORE_STEPS_FROM else FULL_MIN_STEPS
        epochs = epochs_for(n_train, batch_size, min_steps, FULL_EPOCHS)
        why = (
            f"{n_train:,} sentences: fine-tuning the whole model (lr {TOKEN_SMALL_LR:g}, {epochs} epochs) beat a "
            f"head on frozen features by 3-25 entity F1 from 50 labeled sentences, with each tag's loss weighted by "
            f"its rarity so that the model does not settle on O everywhere"
        )
        if min_steps == TOKEN_MIN_STEPS:
            why += (
                f"; at least {TOKEN_MIN_STEPS} steps, which lifted entity F1 by 3-16 points at 400 sentences"
            )
        return AutoChoice("full", epochs, True, keep_best, None, why + last, lr=TOKEN_SMALL_LR)
    epochs = epochs_for(n_train, batch_size, FROZEN_MIN_STEPS, FROZEN_EPOCHS)
    steps = epochs * max(1, math.ceil(n_train / batch_size))
    why = (
        f"{n_train:,} examples (< {full_from:,}): a head on the frozen encoder's features beat fine-tuning on "
        f"16-128 examples; {epochs} epochs = {steps:,} steps"
    )
    if task == "token":
        why = (
            f"{n_train:,} sentences (< {TOKEN_FULL_FROM:,}, the fewest where fine-tuning was measured): a head on "
            f"the frozen encoder's features, in seconds; {epochs} epochs = {steps:,} steps"
        )
    refit = not keep_best and bool(n_eval)
    if refit:
        last = (
            f"; {n_eval} eval examples are too few to pick a best, so once they are scored the head trains again "
            f"on all {n_train + n_eval:,}"
        )
    encoding = pair_encoding or pair_encoding_for(task, "frozen", contrastive)
    pairs = ""
    if pair_encoding is None and encoding == FROZEN_PAIR_ENCODING:
        pairs = (
            "; pairs are read as [u, v, |u-v|, u*v] of each text's vector (beat the cross-encoder's frozen features "
            "on MRPC at 8-64 a class)"
        )
    elif pair_encoding is None and task == "pair":
        pairs = "; pairs stay cross-encoded, as contrastive tuning embeds a pair as one input"
    steps = 0
    if (
        task == "sequence"
        and problem == "single"
        and english
        and not contrastive
        and CONTRASTIVE_FROM <= n_train <= CONTRASTIVE_UNTIL
    ):
        steps = contrastive_steps_for(counts, tokens, device)
    logistic = bool(steps) and n_train >= LOGISTIC_FROM
    if steps:
        why += (
            f"; first the encoder is tuned SetFit-style on same / different-label pairs ({steps} steps of "
            f"{PAIRS_PER_STEP}), which lifted SST-2 accuracy by 1.4-4 points at 32-256 examples a class, and the "
            f"head reads its last layer"
        )
    if logistic:
        why = (
            f"{n_train:,} examples (< {full_from:,}): first the encoder is tuned SetFit-style on same / "
            f"different-label pairs ({steps} steps of {PAIRS_PER_STEP}), which lifted SST-2 accuracy by 1.4-4 "
            f"points at 32-256 examples a class; then SetFit's head, a logistic regression on its last layer's "
            f"unit-length vectors, fitted at once"
        )
    why += pairs + balance + last
    return AutoChoice(
        "frozen", epochs, weighted, keep_best, 1 if steps else None, why, refit, encoding, None, steps or None,
        "logistic" if logistic else "epochs",
    )  # fmt: skip


def estimate_seconds(
    mode: str,
    epochs: int,
    n_train: int,
    n_eval: int,
    device: str = "cpu",
    measured: dict[str, float] | None = None,
    tokens: float = TYPICAL_TOKENS,
    contrastive_steps: int = 0,
) -> tuple[float, str]:
    """(seconds, where the speed came from) for one run: the encoder passes dominate, head steps are nearly free.

    measured: tokens/s by kind ("encode", "full", "top") from this machine's past jobs; missing kinds fall back to
    the conservative constants above, and the second value says which was used. tokens: an example's tokens
    (`finetuner.token_counts.mean_tokens` of its dataset). contrastive_steps: steps of 32 texts forward and back
    before the head, at the fine-tuning speed.

    >>> round(estimate_seconds("frozen", 300, 16, 2)[0]), round(estimate_seconds("full", 10, 900, 100)[0])
    (15, 247)
    """
    speed = dict(CPU_SPEED if device != "cuda" else CUDA_SPEED)
    source = "a conservative constant for this device"
    kind = "top" if mode.startswith("top-") else mode
    key = "encode" if kind == "frozen" else kind
    if measured and measured.get(key):
        speed[key] = measured[key]
        source = "this machine's past jobs"
    if kind == "frozen":
        seconds = (n_train + n_eval) * tokens / speed["encode"]
    else:
        seconds = epochs * tokens * (n_train / speed[kind] + n_eval / speed["encode"])
    seconds += contrastive_steps * 2 * PAIRS_PER_STEP * tokens / speed["full"]
    return STARTUP_S + seconds, source
