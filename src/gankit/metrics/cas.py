"""Classifier scores for conditional generators: classification accuracy score and label agreement.

- CAS (Ravuri & Vinyals, 2019): train a classifier only on generated (sample, label) pairs and test it
  on real labelled data. It is high only when every class is generated recognisably *and* with its
  real variety; a generator that drops a class or draws one prototype per class scores low.
- Label agreement: the share of generated samples of class c that a classifier trained on real data
  puts in class c (per class and overall).
"""

from __future__ import annotations

import numpy as np
import torch

from gankit.errors import UserError


def classification_accuracy_score(
    fake_x: np.ndarray | torch.Tensor,
    fake_y: np.ndarray | torch.Tensor,
    real_x: np.ndarray | torch.Tensor,
    real_y: np.ndarray | torch.Tensor,
    *,
    epochs: int = 8,
    seed: int = 0,
) -> float:
    """Accuracy on real (real_x, real_y) of a classifier trained only on generated (fake_x, fake_y)."""
    from gankit.classifier import train_classifier

    if len(fake_x) != len(fake_y) or len(real_x) != len(real_y):
        raise UserError("CAS needs one label per sample in both sets")
    if len(fake_x) == 0 or len(real_x) == 0:
        raise UserError("CAS needs labelled generated and labelled real samples")
    clf = train_classifier(fake_x, fake_y, epochs=epochs, seed=seed)
    return clf.accuracy(real_x, np.asarray(real_y))


def label_agreement(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Overall and per-class share of samples whose predicted class (argmax of ``logits``) is their label.

    Keys: ``agreement`` and ``agreement_<c>`` for each class index c present in ``labels``.
    """
    logits, labels = np.asarray(logits), np.asarray(labels)
    if logits.ndim != 2 or len(logits) != len(labels) or len(labels) == 0:
        raise UserError(f"label agreement needs (N, K) logits and N labels, got {logits.shape} and {labels.shape}")
    hit = logits.argmax(axis=1) == labels
    out = {"agreement": float(hit.mean())}
    for c in np.unique(labels):
        out[f"agreement_{int(c)}"] = float(hit[labels == c].mean())
    return out
