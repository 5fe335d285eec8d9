"""Tiny separable data sets for the engine tests (a module, so module-scoped fixtures can use it too)."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

POSITIVE = ["good", "great", "lovely", "wonderful", "superb", "excellent"]
NEGATIVE = ["bad", "awful", "terrible", "horrible", "dreadful", "poor"]
PEOPLE = ["alice", "bob", "carol", "dave"]
PLACES = ["paris", "london", "berlin", "madrid"]


def make_examples(task: str, n: int = 24, seed: int = 0) -> list[dict]:
    """A separable toy set for the task: sentiment words decide the label; names and cities are the entities."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        positive = i % 2 == 0
        word = rng.choice(POSITIVE if positive else NEGATIVE)
        if task == "sequence":
            out.append({"text": f"the film was {word}", "label": "pos" if positive else "neg"})
        elif task == "pair":
            out.append(
                {
                    "text": "how was the film ?",
                    "text_pair": f"it was {word}",
                    "label": "yes" if positive else "no",
                }
            )
        else:
            person, place = rng.choice(PEOPLE), rng.choice(PLACES)
            if positive:
                out.append(
                    {
                        "tokens": [person, "smith", "lives", "in", place],
                        "tags": ["B-PER", "I-PER", "O", "O", "B-LOC"],
                    }
                )
            else:
                out.append(
                    {
                        "tokens": ["we", "visited", place, "with", person],
                        "tags": ["O", "O", "B-LOC", "O", "B-PER"],
                    }
                )
    return out


def run_python_outside_repo(code: str) -> str:
    """Run code in a fresh interpreter that cannot import this project (cwd and sys.path outside the repo)."""
    guard = (
        f"import sys; sys.path = [p for p in sys.path if p and not (p.startswith({str(ROOT)!r}) "
        "and 'site-packages' not in p)]\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", guard + code],
        stdin=subprocess.DEVNULL,  # a "run custom code? [y/N]" prompt reads EOF and shows up in the output
        capture_output=True,
        text=True,
        cwd="/",
        env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout + proc.stderr
