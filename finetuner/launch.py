"""One training across N processes of this host: ``train_in_processes`` runs ``torchrun -m finetuner.launch`` and
relays rank 0's progress to the caller's callbacks, so the worker treats it like an in-process ``train``.

The processes share nothing with the caller but a folder: ``spec.json`` (config and data) in, ``events.jsonl``
(phases, steps, evals, one JSON object a line) and ``result.json`` or ``error.txt`` out, and a ``stop`` file the
caller creates when its should_stop says so (rank 0 checks it between steps and tells the other ranks).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from finetuner.config import TrainConfig

POLL_S = 0.2  # how often the caller reads new events and asks should_stop
STOP_GRACE_S = 30  # after the caller gives up (a fenced job), how long torchrun gets to end its ranks


def _json_default(value):
    return value.tolist() if hasattr(value, "tolist") else str(value)


def train_in_processes(config: TrainConfig, train_data, eval_data=None, callbacks=None, nproc: int = 2):
    """``finetuner.train`` on ``nproc`` processes of this host (one per GPU under CUDA), launched by torchrun.

    Args and Returns: as ``finetuner.train``; ``nproc`` is the process count. A failure in any rank raises
    TrainingError with rank 0's message (or torchrun's last output when rank 0 left none).
    """
    from finetuner.training import Callbacks, EvalInfo, StepInfo, TrainingError, TrainResult

    cb = callbacks or Callbacks()
    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory(prefix="finetuner-launch-") as tmp:
        folder = Path(tmp)
        spec = {"config": config.to_dict(), "train": train_data, "eval": eval_data}
        (folder / "spec.json").write_text(json.dumps(spec, default=_json_default))
        events, log = folder / "events.jsonl", folder / "torchrun.log"
        events.touch()
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])),
        }
        for key in (
            "WORLD_SIZE",
            "RANK",
            "LOCAL_RANK",
            "MASTER_ADDR",
            "MASTER_PORT",
        ):  # a launcher of our own
            env.pop(key, None)
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [*cmd, "-m", "finetuner.launch", str(folder)], cwd=root, env=env, stdout=out,
                stderr=subprocess.STDOUT, preexec_fn=_die_with_parent,
            )  # fmt: skip
        kinds = {"step": (cb.on_step, StepInfo), "eval": (cb.on_eval, EvalInfo)}
        read = 0
        try:
            while True:
                done = proc.poll() is not None
                with events.open() as f:
                    f.seek(read)
                    lines = f.read()
                complete = lines[: lines.rfind("\n") + 1]  # a line being written waits for the next round
                read += len(complete.encode())
                for line in complete.splitlines():
                    event = json.loads(line)
                    kind = event.pop("kind")
                    if kind == "phase":
                        cb.on_phase(event["name"], event["fraction"])
                    else:
                        hook, cls = kinds[kind]
                        hook(cls(**event))
                if done:
                    break
                if cb.should_stop():
                    (folder / "stop").touch()
                time.sleep(POLL_S)
        finally:
            if proc.poll() is None:  # the caller raised (e.g. its job was taken): end the ranks
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(STOP_GRACE_S)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        if (folder / "result.json").exists():
            return TrainResult(**json.loads((folder / "result.json").read_text()))
        error = folder / "error.txt"
        reason = error.read_text() if error.exists() else log.read_text(errors="replace")[-2000:]
        raise TrainingError(
            f"training on {nproc} processes failed (torchrun exit {proc.returncode}): {reason}"
        )


def _die_with_parent() -> None:
    """Linux: torchrun gets SIGTERM when the worker dies, and ends its ranks."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def _rank_main(folder: Path) -> None:
    """One rank: train from spec.json; rank 0 writes the events, the result or the error."""
    from finetuner import distributed
    from finetuner.training import Callbacks, train

    spec = json.loads((folder / "spec.json").read_text())
    stop = folder / "stop"
    events = (folder / "events.jsonl").open("a") if distributed.is_main() else None

    def emit(kind: str, payload: dict) -> None:
        events.write(json.dumps({"kind": kind, **payload}, default=_json_default) + "\n")
        events.flush()

    callbacks = Callbacks(
        on_step=lambda info: emit("step", dataclasses.asdict(info)),
        on_eval=lambda info: emit("eval", dataclasses.asdict(info)),
        on_phase=lambda name, fraction: emit("phase", {"name": name, "fraction": fraction}),
        should_stop=stop.exists,
    )
    try:
        result = train(TrainConfig.from_dict(spec["config"]), spec["train"], spec["eval"], callbacks)
    except Exception as err:
        if distributed.is_main():
            (folder / "error.txt").write_text(str(err) or type(err).__name__)
        raise
    if distributed.is_main():
        (folder / "result.json").write_text(json.dumps(dataclasses.asdict(result), default=_json_default))


if __name__ == "__main__":
    _rank_main(Path(sys.argv[1]))
