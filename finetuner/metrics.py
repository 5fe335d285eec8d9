"""Evaluation metrics, computed by kept libraries: scikit-learn for classes and label sets, seqeval (strict IOB2) for
entities, scipy for correlations; per-label threshold tuning for multi-label models."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support


def classification_metrics(gold: list[int], pred: list[int], labels: list[str]) -> dict:
    """Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix (rows: gold, cols: pred).

    >>> classification_metrics([0, 1, 1], [0, 1, 0], ["neg", "pos"])["accuracy"]
    0.6666666666666666
    """
    ids = list(range(len(labels)))
    precision, recall, f1, support = precision_recall_fscore_support(gold, pred, labels=ids, zero_division=0)
    return {
        "accuracy": float(accuracy_score(gold, pred)),
        "macro_f1": float(f1_score(gold, pred, labels=ids, average="macro", zero_division=0)),
        "per_class": {
            name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for name, p, r, f, s in zip(labels, precision, recall, f1, support, strict=True)
        },
        "confusion_matrix": confusion_matrix(gold, pred, labels=ids).tolist(),
        "labels": list(labels),
    }


def entity_metrics(gold_tags: list[list[str]], pred_tags: list[list[str]]) -> dict:
    """Entity-level precision/recall/F1 by the CoNLL convention (seqeval strict IOB2), per type, and token accuracy.

    >>> entity_metrics([["B-PER", "I-PER", "O"]], [["B-PER", "I-PER", "O"]])["f1"]
    1.0
    """
    from seqeval.metrics import classification_report, precision_score, recall_score
    from seqeval.metrics import f1_score as seq_f1
    from seqeval.scheme import IOB2

    strict = {"mode": "strict", "scheme": IOB2, "zero_division": 0}
    report = classification_report(gold_tags, pred_tags, output_dict=True, **strict)
    flat_gold = [t for seq in gold_tags for t in seq]
    flat_pred = [t for seq in pred_tags for t in seq]
    return {
        "f1": float(seq_f1(gold_tags, pred_tags, **strict)),
        "precision": float(precision_score(gold_tags, pred_tags, **strict)),
        "recall": float(recall_score(gold_tags, pred_tags, **strict)),
        "accuracy": float(accuracy_score(flat_gold, flat_pred)),  # token-level, 'O' included
        "per_class": {
            name: {
                "precision": float(v["precision"]),
                "recall": float(v["recall"]),
                "f1": float(v["f1-score"]),
                "support": int(v["support"]),
            }
            for name, v in report.items()
            if not name.endswith("avg")
        },
    }


THRESHOLD_GRID = [round(0.05 * i, 2) for i in range(1, 20)]  # 0.05, 0.10, ..., 0.95


def tune_thresholds(probs: list[list[float]], gold: list[list[float]], labels: list[str]) -> dict[str, float]:
    """Per label, the grid threshold (0.05..0.95) that maximises that label's F1 on these rows.

    A tie goes to the threshold nearest 0.5 (the lower of two equally near); a label with no positive row, or no
    rows at all, keeps 0.5: there is nothing to tune it on.

    >>> tune_thresholds([[0.3], [0.2], [0.1]], [[1.0], [0.0], [0.0]], ["a"])
    {'a': 0.3}
    """
    out = {}
    for k, name in enumerate(labels):
        p = np.array([row[k] for row in probs], dtype=float)
        y = np.array([row[k] for row in gold], dtype=float) > 0.5
        if not y.any():
            out[name] = 0.5
            continue
        scores = [(_f1(p >= t, y), -round(abs(t - 0.5), 6), -t, t) for t in THRESHOLD_GRID]
        out[name] = max(scores)[3]
    return out


def _f1(pred: np.ndarray, gold: np.ndarray) -> float:
    tp = int((pred & gold).sum())
    wrong = int((pred != gold).sum())
    return 2 * tp / (2 * tp + wrong) if tp else 0.0


def multilabel_metrics(
    gold: list[list[float]], probs: list[list[float]], labels: list[str], thresholds: dict[str, float]
) -> dict:
    """Micro-/macro-F1, subset accuracy (every label right) and per-label precision/recall/F1/support, at thresholds.

    >>> multilabel_metrics([[1, 0], [1, 1]], [[0.9, 0.2], [0.8, 0.4]], ["a", "b"], {"a": 0.5, "b": 0.5})["micro_f1"]
    0.8
    """
    y = np.array(gold, dtype=float).reshape(-1, len(labels)) > 0.5
    cut = np.array([thresholds[name] for name in labels])
    pred = np.array(probs, dtype=float).reshape(-1, len(labels)) >= cut
    precision, recall, f1, support = precision_recall_fscore_support(y, pred, zero_division=0)
    return {
        "micro_f1": float(f1_score(y, pred, average="micro", zero_division=0)),
        "macro_f1": float(f1_score(y, pred, average="macro", zero_division=0)),
        "subset_accuracy": float(accuracy_score(y, pred)),  # on indicator rows sklearn scores exact matches
        "per_class": {
            name: {
                "precision": float(p),
                "recall": float(r),
                "f1": float(f),
                "support": int(s),
                "threshold": float(thresholds[name]),
            }
            for name, p, r, f, s in zip(labels, precision, recall, f1, support, strict=True)
        },
        "labels": list(labels),
        "thresholds": {name: float(thresholds[name]) for name in labels},
    }


def regression_metrics(gold: list[float], pred: list[float]) -> dict:
    """Pearson and Spearman correlation, RMSE and MSE of predicted scores against gold ones.

    A correlation is undefined when the predictions (or the gold scores) are all equal; it is reported as 0.0 (no
    relation measured), so the best-evaluation ranking never meets a NaN.

    >>> regression_metrics([1.0, 2.0, 3.0], [1.0, 2.0, 5.0])["spearman"]
    1.0
    """
    from scipy.stats import pearsonr, spearmanr

    y, p = np.asarray(gold, dtype=float), np.asarray(pred, dtype=float)
    mse = float(np.mean((p - y) ** 2)) if len(y) else 0.0
    varied = len(y) > 1 and np.ptp(y) > 0 and np.ptp(p) > 0
    return {
        "pearson": float(pearsonr(p, y)[0]) if varied else 0.0,
        "spearman": float(spearmanr(p, y)[0]) if varied else 0.0,
        "rmse": float(np.sqrt(mse)),
        "mse": mse,
    }
