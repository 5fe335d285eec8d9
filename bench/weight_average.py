"""Weight averaging, measured in pairs: the raw weights and their averages, scored at the same points of ONE run.

    .venv/bin/python bench/weight_average.py --row sst2 --seed 42      # full SST-2 on the 2-core CPU: ~40 min
    .venv/bin/python bench/weight_average.py --row mrpc_cross --seed 42
    .venv/bin/python bench/weight_average.py --row sst2 --mode frozen  # the head on cached features: ~4 min
    .venv/bin/python bench/weight_average.py --row conll --seed 42 --device cuda

Why pairs: the spread between seeds on SST-2 dev (872 sentences) is about a point, the size of the effect looked for;
scoring raw and averaged weights of the same trajectory removes that noise. The engine trains with averaging OFF
(``ema_decay=0``: the trajectory is the same either way, averaging only follows the optimizer), and this script:
- keeps two averages of the trained weights after every optimizer step (a global step hook): ``ema``, the engine's
  rule (finetuner/averaging.py: the new weights count 3 / (4 + t) at step t, capped by the decay 0.9999), and
  ``ema_span10``, its first rule, TensorFlow's warm-up (new weights 9 / (10 + t), cap 0.999), a shorter tail; more
  with ``--decays`` (other caps) and ``--spans`` (other tails: span 2 weighs every step alike). In the first runs'
  JSON lines ``ema`` was the span-10 rule and ``ema_third``, 3 / (4 + t), today's.
- with ``--set KEY=VALUE`` the trajectory itself is another TrainConfig's (e.g. ``--set pooling=cls``);
- scores raw and both averages at every epoch's end (the engine's own evaluate, wrapped) and, with ``--points N``,
  at N - 1 evenly spaced points inside each epoch (default 2: half-way, named ``mid1``...; else ``e1.1/4``...);
  at the ends of epoch 2 on also the plain mean of the epoch-end weights (last two, all);
- with ``--held-out`` (sequence rows) also which eval sentences the engine's average gets right at each point, and,
  at the end, a choice made on one half of the eval set scored on the other half (both ways): what keeping the
  best evaluation is worth once its own luck on the eval sentences is taken out.
Each point is a JSON line in bench/out/weight_average.jsonl; the last output line holds the run's figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import OUT_DIR, log  # noqa: E402
from quality import row_data  # noqa: E402

from finetuner import Callbacks, TrainConfig, train  # noqa: E402
from finetuner import training as engine  # noqa: E402
from finetuner.averaging import SPAN  # noqa: E402
from finetuner.config import LARGE_DATA_EMA  # noqa: E402


def ema_weight(decay: float, span: int = SPAN):
    """The weight of step t's weights in the average, by finetuner/averaging.py's rule min(decay, (1+t)/(span+t))."""
    return lambda t: 1 - min(decay, (1 + t) / (span + t))


AVERAGES = {"ema": ema_weight(LARGE_DATA_EMA), "ema_span10": ema_weight(0.999, span=10)}  # more with --decays


class Probe:
    """Follows one engine run: averages after each step, paired scores at half and full epochs."""

    def __init__(
        self,
        row: str,
        seed: int,
        eval_data: list[dict],
        metric: str,
        steps_per_epoch: int,
        points: int,
        out: Path,
        held_out: bool = False,
    ):
        self.row, self.seed, self.eval_data, self.metric = row, seed, eval_data, metric
        self.steps_per_epoch, self.per_epoch, self.out = steps_per_epoch, points, out
        self.held_out = held_out
        # step within the epoch -> k: the k-th of the points - 1 inner points
        self.inner = {round(k * steps_per_epoch / points): k for k in range(1, points)}
        self.step, self.params, self.averages, self.epoch_ends, self.points = 0, None, {}, [], []
        self.source = self.task = self.eval_items = None

    # --- hooks into the engine -------------------------------------------------------------------------------------
    def install(self) -> None:
        evaluate, batch_source, make_task = engine.evaluate, engine._batch_source, engine.make_task
        self._evaluate = evaluate

        def wrapped_source(*args, **kwargs):
            self.source = batch_source(*args, **kwargs)
            return self.source

        def wrapped_make_task(*args, **kwargs):
            task = self.task = make_task(*args, **kwargs)
            encode = task.encode

            def encode_and_keep(data, tokenizer, max_length):
                items = encode(data, tokenizer, max_length)
                if data is self.eval_data:
                    self.eval_items = items  # for the mid-epoch scores, before the engine's first evaluate
                return items

            task.encode = encode_and_keep
            return task

        def wrapped_evaluate(source, task, examples, items):
            metrics = evaluate(source, task, examples, items)
            self.epoch_ends.append([p.detach().clone() for p in self.params])
            self.record(f"end{len(self.epoch_ends)}", metrics[self.metric], epoch_means=True)
            return metrics

        engine.evaluate, engine._batch_source, engine.make_task = (
            wrapped_evaluate,
            wrapped_source,
            wrapped_make_task,
        )
        register_optimizer_step_post_hook(self.after_step)

    def after_step(self, optimizer, *_) -> None:
        if self.params is None:
            self.params = [p for group in optimizer.param_groups for p in group["params"]]
            self.averages = {name: [p.detach().clone() for p in self.params] for name in AVERAGES}
        self.step += 1
        with torch.no_grad():
            for name, shadow in self.averages.items():
                torch._foreach_lerp_(shadow, self.params, AVERAGES[name](self.step))
        k = self.inner.get(self.step % self.steps_per_epoch)
        if k is not None:
            raw = self.score()
            epoch = self.step // self.steps_per_epoch + 1
            self.record(f"mid{epoch}" if self.per_epoch == 2 else f"e{epoch}.{k}/{self.per_epoch}", raw)
            self.source.trainable.train()  # evaluate() left the model in eval mode

    # --- scoring ---------------------------------------------------------------------------------------------------
    def score(self, weights: list[torch.Tensor] | None = None) -> float:
        return self._with_weights(
            weights,
            lambda: self._evaluate(self.source, self.task, self.eval_data, self.eval_items)[self.metric],
        )

    def _with_weights(self, weights: list[torch.Tensor] | None, measure):
        """measure() with `weights` in the model (None: the trained weights), the trained ones put back after."""
        own = [p.detach().clone() for p in self.params]
        with torch.no_grad():
            if weights is not None:
                torch._foreach_copy_(self.params, weights)
        try:
            return measure()
        finally:
            with torch.no_grad():
                torch._foreach_copy_(self.params, own)

    @torch.inference_mode()
    def correct(self) -> str:
        """'1' or '0' per eval example, in eval-set order: does the model now predict its label (sequence rows)."""
        self.source.trainable.eval()
        flags = [""] * len(self.eval_items)
        for idx, batch in self.source.eval_batches():
            logits, gold = self.source.scores(batch)
            for i, hit in zip(idx, (logits.argmax(-1) == gold).tolist(), strict=True):
                flags[i] = "1" if hit else "0"
        return "".join(flags)

    def record(self, point: str, raw: float, epoch_means: bool = False) -> None:
        row = {"point": point, "step": self.step, "raw": raw}
        row.update({name: self.score(shadow) for name, shadow in self.averages.items()})
        if self.held_out:
            row["ema_correct"] = self._with_weights(self.averages["ema"], self.correct)
        if epoch_means and len(self.epoch_ends) >= 2:
            for name, ends in (("mean_last2", self.epoch_ends[-2:]), ("mean_all", self.epoch_ends)):
                row[name] = self.score([sum(ts) / len(ts) for ts in zip(*ends, strict=True)])
        self.points.append(row)
        log(
            json.dumps(
                {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items() if k != "ema_correct"}
            )
        )
        with self.out.open("a") as f:
            f.write(
                json.dumps({"row": self.row, "seed": self.seed, "time": time.strftime("%H:%M:%S"), **row})
                + "\n"
            )


def held_out_choice(points: list[dict]) -> dict:
    """Accuracy of the kept point when it is chosen on one half of the eval set and scored on the other.

    Halves: even and odd positions in the eval set; each picks the first point with the best accuracy on its half (the
    engine's rule), scored on the other half; the two halves' figures are averaged. "every point" keeps the best of all
    evaluations, "epoch ends" the best of the epochs' last ones, "last" takes no choice at all.
    """

    def accuracy(flags: str, half: int) -> float:
        part = flags[half::2]
        return part.count("1") / len(part)

    def chosen_then_scored(candidates: list[dict]) -> float:
        scores = []
        for half in (0, 1):
            best = max(candidates, key=lambda p: (accuracy(p["ema_correct"], half), -p["step"]))
            scores.append(accuracy(best["ema_correct"], 1 - half))
        return sum(scores) / 2

    rows = [p for p in points if "ema_correct" in p]
    if not rows:
        return {}
    ends = [p for p in rows if p["point"].startswith("end")]
    return {
        "every point": chosen_then_scored(rows),
        "epoch ends": chosen_then_scored(ends),
        "last": chosen_then_scored(rows[-1:]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--row", default="sst2", choices=["sst2", "mrpc_cross", "conll"])
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--mode", default="full", help="full, frozen or top-N (the engine's defaults for it)")
    parser.add_argument(
        "--n-train", type=int, help="a seeded sample instead of the full split (a quick check)"
    )
    parser.add_argument("--n-eval", type=int)
    parser.add_argument(
        "--points",
        type=int,
        default=2,
        help="scoring points per epoch, its end included (2: half-way and end)",
    )
    parser.add_argument(
        "--held-out",
        action="store_true",
        help="record which eval examples the average gets right; choose on one half, score on the other",
    )
    parser.add_argument(
        "--decays", default="", help="more EMA decays to follow, comma-separated (e.g. 0.9995,0.9998)"
    )
    parser.add_argument(
        "--spans",
        default="",
        help="more warm-up spans to follow at the engine's cap, comma-separated (e.g. 2,8)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a TrainConfig setting for the trajectory (e.g. pooling=cls, lr=1e-4); repeatable",
    )
    args = parser.parse_args()
    for decay in filter(None, args.decays.split(",")):
        AVERAGES[f"ema_{decay}"] = ema_weight(float(decay))
    for span in filter(None, args.spans.split(",")):
        AVERAGES[f"ema_span{span}"] = ema_weight(LARGE_DATA_EMA, span=int(span))
    settings = dict(_setting(item) for item in args.set)
    if args.held_out and args.row == "conll":  # before the data is loaded
        parser.error("--held-out needs one prediction per eval example: a sequence or pair row, not conll")

    task, train_data, eval_sets = row_data(
        args.row, True, 0, {"n_train": args.n_train, "n_eval": args.n_eval}
    )
    eval_data = next(iter(eval_sets.values()))
    metric = "f1" if task == "token" else "accuracy"
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-average-") as out_dir:
        config = TrainConfig(
            task=task,
            output_dir=out_dir,
            seed=args.seed,
            device=args.device,
            mode=args.mode,
            ema_decay=0.0,
            evals_per_epoch=1,  # the probe scores its own points inside epochs; the engine's evaluate marks ends
            **settings,
        )
        probe = Probe(
            "_".join(
                [
                    args.row,
                    *([args.mode] if args.mode != "full" else []),
                    *args.set,
                    *([f"n{args.n_train}"] if args.n_train else []),
                ]
            ),
            args.seed,
            eval_data,
            metric,
            -(-len(train_data) // config.batch_size),
            args.points,
            OUT_DIR / "weight_average.jsonl",
            held_out=args.held_out,
        )
        probe.install()
        result = train(
            config,
            train_data,
            eval_data,
            Callbacks(
                on_step=lambda s: (
                    s.step % 500 == 0 and log(f"step {s.step}/{s.total_steps} loss {s.loss:.4f}")
                )
            ),
        )
    ends = [p for p in probe.points if p["point"].startswith("end")]
    best = {name: max(p[name] for p in ends) for name in ("raw", *AVERAGES)}
    print(
        json.dumps(
            {
                "row": args.row,
                "mode": args.mode,
                "seed": args.seed,
                "settings": settings,
                "metric": metric,
                "kept_raw": result.metrics.get(metric),  # the engine's kept epoch without averaging
                "best_epoch_end": best,  # per variant, its best epoch-end score (what the engine would keep)
                "held_out_choice": held_out_choice(probe.points),
                "points": [{k: v for k, v in p.items() if k != "ema_correct"} for p in probe.points],
                "wall_s": round(time.perf_counter() - start, 1),
                "device": args.device,
            }
        )
    )


def _setting(item: str) -> tuple[str, object]:
    """'lr=1e-4' -> ('lr', 0.0001): numbers as numbers, JSON objects as dicts, the rest as strings."""
    key, _, value = item.partition("=")
    if value.startswith("{"):
        return key, json.loads(value)  # e.g. model_overrides={"hidden_dropout_prob": 0}
    for kind in (int, float):
        try:
            return key, kind(value)
        except ValueError:
            pass
    return key, value


if __name__ == "__main__":
    main()
