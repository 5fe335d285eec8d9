"""Checkpoints of a training run: what a resume restores, written so that a crash never leaves half a file.

The trainable tensors only (a frozen run's head, a top-N run's top layers...), the optimizer, scheduler, history and
RNG state; a small progress.json beside them says where a resume starts without loading any tensor.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch

from finetuner import distributed
from finetuner.errors import TrainingError
from finetuner.tasks import Task

CHECKPOINT_DIR = "checkpoint"


def trainable_state(module: torch.nn.Module) -> dict:
    names = {n for n, p in module.named_parameters() if p.requires_grad}
    return {n: t.detach().to("cpu", copy=True) for n, t in module.state_dict().items() if n in names}


def check_resumable(module: torch.nn.Module, saved: dict) -> None:
    """A checkpoint fits only the model it was taken from: say which tensor differs, not torch's size mismatch."""
    current = module.state_dict()
    for name, tensor in saved.items():
        if name in current and current[name].shape != tensor.shape:
            raise TrainingError(
                f"cannot resume: the checkpoint's {name} has shape {list(tensor.shape)}, this run builds "
                f"{list(current[name].shape)} (the model or a setting such as feature_layers changed); "
                "discard the checkpoint and start again"
            )


def restore_trainable(module: torch.nn.Module, state: dict) -> None:
    module.load_state_dict(state, strict=False)  # only the trainable tensors were saved


# A checkpoint after every epoch cost more than the epoch on small sets: 50 epochs of 54 CoNLL sentences wrote
# ~270 MB of MiniLM weights and Adam state 50 times. After the first epoch, one is written when this long has
# passed since the last: a crash loses at most about a minute of training (plus the epoch under way).
CHECKPOINT_EVERY_S = 60.0


def save_checkpoint(ckpt_dir: Path, state: dict) -> None:
    """state: everything a resume restores (see the resume block in train()); rank 0 alone writes it."""
    if not distributed.is_main():
        return
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    atomic_save(state, ckpt_dir / "state.pt")
    # A small readable summary beside it, so a caller can learn where a resume starts without loading tensors.
    (ckpt_dir / "progress.json").write_text(json.dumps({"epoch": state["epoch"], "step": state["step"]}))


def checkpoint_info(output_dir: str | Path) -> dict | None:
    """{"epoch", "step"} of the checkpoint a resume of this output folder would start from, or None."""
    path = Path(output_dir) / CHECKPOINT_DIR / "progress.json"
    if not (path.is_file() and path.with_name("state.pt").is_file()):
        return None
    return json.loads(path.read_text())


def load_checkpoint(ckpt_dir: Path, task: Task) -> dict | None:
    path = ckpt_dir / "state.pt"
    if not path.exists():
        return None
    state = torch.load(path, weights_only=False)
    if state["labels"] != task.labels:
        raise TrainingError(
            f"cannot resume: the checkpoint's labels {state['labels']} differ from the data's {task.labels}"
        )
    return state


def atomic_save(obj, path: Path) -> None:
    """Write then rename, so a crash mid-write never leaves a half checkpoint behind."""
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def remove_checkpoint(ckpt_dir: Path) -> None:
    shutil.rmtree(ckpt_dir, ignore_errors=True)  # the model folder is saved: a resume has nothing left to do
