"""How good is an unpaired translation? Three measures per direction, as in the CycleGAN literature.

* ``judged_target``: the share of translations that a domain classifier (A vs B, trained on real
  images) assigns to the target domain: does A->B look like B?
* ``label_kept``: where both domains have class labels (one sub-folder per class, the same names),
  the share of translations that a classifier of the target domain, trained on its real images, reads
  as the source image's class: is a 3 still a 3 after translation?
* ``cycle_l1``: the mean absolute error of translating there and back (images in [-1, 1]).

The judges are fresh networks (:func:`gankit.classifier.train_classifier`), never the classifiers a
semantic-consistency run trained against, and they are trained on one part of each domain's images
while the other part is translated and judged. Their accuracy on the real held-out images is reported
beside the scores, so a weak judge shows.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from gankit.data import Dataset
from gankit.errors import UserError


def _judge_view(x: Tensor, size: int) -> Tensor:
    """Images as the judges see them: at most ``size`` pixels on a side (cheap on a CPU, and translation
    quality at that scale is what the labels and domains are about)."""
    if max(x.shape[-2:]) <= size:
        return x
    return F.interpolate(x, size=(size, size), mode="area")


def _split(n: int, share: float, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    perm = torch.randperm(n, generator=gen)
    cut = min(max(round(n * share), 1), n - 1)
    return perm[:cut], perm[cut:]


JUDGE_STEPS = 600  # optimizer steps a judge gets at least (batches of 64): a few hundred images need many epochs


def judge_epochs(n: int, batch_size: int = 64) -> int:
    """Epochs that give a judge trained on ``n`` images about JUDGE_STEPS updates (8 to 200)."""
    return int(min(200, max(8, math.ceil(JUDGE_STEPS / math.ceil(n / batch_size)))))


def translation_scores(translator: Any, a: Dataset, b: Dataset, *, judge_share: float = 0.5,
                       epochs: int | None = None, judge_size: int = 32, seed: int = 0) -> dict[str, Any]:
    """Scores of a :class:`gankit.tasks.translate.Translator` on real images of both domains (``x`` in
    [-1, 1] at the training size; ``y`` class indices or None). ``judge_share`` of each domain trains the
    judges; the rest is translated and judged. ``epochs``: judge training epochs (None: enough for
    about JUDGE_STEPS updates)."""
    from gankit.classifier import train_classifier
    from gankit.tasks.translate import check_same_classes, with_channels

    if not 0.0 < judge_share < 1.0:
        raise UserError(f"judge_share must be in (0, 1), got {judge_share}")
    for name, ds in (("A", a), ("B", b)):
        if len(ds.x) < 4:
            raise UserError(f"domain {name} has {len(ds.x)} image(s); the evaluation needs at least 4 "
                            "(half train the judges, half are translated)")
    check_same_classes(a, b, "label preservation")
    labelled = a.y is not None and b.y is not None
    gen = torch.Generator().manual_seed(seed)
    x = {"a": with_channels(a.x, translator.channels), "b": with_channels(b.x, translator.channels)}
    y = {"a": a.y, "b": b.y}
    parts = {dom: _split(len(x[dom]), judge_share, gen) for dom in "ab"}
    fit_x = {dom: x[dom][parts[dom][0]] for dom in "ab"}
    test_x = {dom: x[dom][parts[dom][1]] for dom in "ab"}

    def view(t: Tensor) -> Tensor:
        return _judge_view(t, judge_size)

    def n_epochs(n: int) -> int:
        return epochs if epochs is not None else judge_epochs(n)

    n_fit = len(fit_x["a"]) + len(fit_x["b"])
    domain_judge = train_classifier(view(torch.cat([fit_x["a"], fit_x["b"]])),
                                    np.r_[np.zeros(len(fit_x["a"])), np.ones(len(fit_x["b"]))],
                                    epochs=n_epochs(n_fit), seed=seed)
    judges: dict[str, Any] = {"domain_accuracy_real": domain_judge.accuracy(
        view(torch.cat([test_x["a"], test_x["b"]])), np.r_[np.zeros(len(test_x["a"])), np.ones(len(test_x["b"]))])}
    label_judge = {}
    if labelled:
        n_classes = int(max(y["a"].max(), y["b"].max())) + 1
        for dom in "ab":
            fit_y, test_y = y[dom][parts[dom][0]], y[dom][parts[dom][1]]
            # one output per class of either domain, even one missing from this judge's part
            label_judge[dom] = train_classifier(view(fit_x[dom]), fit_y.numpy(), epochs=n_epochs(len(fit_y)), seed=seed,
                                                classes=[str(i) for i in range(n_classes)])
            judges[f"label_accuracy_real_{dom}"] = label_judge[dom].accuracy(view(test_x[dom]), test_y.numpy())

    scores: dict[str, Any] = {}
    for src, dst in (("a", "b"), ("b", "a")):
        forward, back = f"{src}2{dst}", f"{dst}2{src}"
        out = translator.translate(test_x[src], forward)
        rec = translator.translate(out, back)
        target = 1 if dst == "b" else 0
        row = {"judged_target": float((domain_judge.predict(view(out)) == target).mean()),
               "label_kept": None,
               "cycle_l1": float((rec - test_x[src]).abs().mean()),
               "n": len(out)}
        if labelled:
            source_labels = y[src][parts[src][1]].numpy()
            row["label_kept"] = float((label_judge[dst].predict(view(out)) == source_labels).mean())
        scores[forward] = row
    return {**scores, "judges": judges, "judge_share": judge_share, "judge_size": judge_size, "seed": seed}
