"""The generative/discriminative loop: a conditional GAN's samples judged by a classifier of real data,
written out as synthetic labelled data, and the measured gain of adding them to a small training set.

``label_agreement`` answers "does my classifier agree these are class c?"; ``write_augmentation`` writes
K synthetic samples per class; ``augment_report`` runs the whole experiment (real only, classic
augmentation, synthetic data, both, synthetic only) over seeds and label budgets.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gankit.config import Config, apply_overrides, preset
from gankit.data import Dataset, load_data
from gankit.errors import UserError

ARMS = ("real", "real_classic", "real_synth", "real_classic_synth", "synth")


def label_agreement(generator: Any, classifier: Any, n_per_class: int = 100, seed: int = 0) -> dict[str, Any]:
    """Share of generated samples of class c that ``classifier`` (trained on real data) puts in class c.

    Returns ``overall`` and ``per_class`` (by class name). The classifier's accuracy on real test data
    is the ceiling this can honestly reach.
    """
    classes = generator.classes
    if not classes:
        raise UserError("label agreement needs a conditional run (train with --set data.conditional=true)")
    if classifier.n_classes != len(classes):
        raise UserError(f"the classifier knows {classifier.n_classes} classes but the run has {len(classes)}")
    labels = generator.balanced_labels(n_per_class * len(classes))
    x = generator.sample(len(labels), seed=seed, labels=labels)
    pred = classifier.predict(x)
    hit = pred == labels.numpy()
    per_class = {name: float(hit[labels.numpy() == c].mean()) for c, name in enumerate(classes)}
    return {"overall": float(hit.mean()), "per_class": per_class, "n": len(labels)}


def intra_class_spread(generator: Any, x_real: Any, y_real: Any, n_per_class: int = 100,
                       seed: int = 0) -> dict[str, Any]:
    """Variety within each class: the mean per-pixel (per-feature) standard deviation of generated
    samples of class c over that of real samples of class c. 1 is as varied as the data; near 0 the
    generator draws the same sample for every z (intra-class collapse, which label agreement alone
    rewards)."""
    import numpy as np

    classes = generator.classes
    if not classes:
        raise UserError("intra-class spread needs a conditional run (train with --set data.conditional=true)")
    labels = generator.balanced_labels(n_per_class * len(classes))
    x = np.asarray(generator.sample(len(labels), seed=seed, labels=labels), dtype=np.float64)
    x_real, y_real = np.asarray(x_real, dtype=np.float64), np.asarray(y_real)
    per_class = {}
    for c, name in enumerate(classes):
        real = x_real[y_real == c]
        if len(real) < 2:
            continue
        per_class[name] = float(x[labels.numpy() == c].std(0).mean() / max(real.std(0).mean(), 1e-12))
    return {"overall": float(np.mean(list(per_class.values()))), "per_class": per_class}


def write_augmentation(generator: Any, n_per_class: int, out: str | Path, seed: int = 0,
                       truncation: float = 1.0) -> Path:
    """K synthetic samples per class: a folder tree (one sub-folder per class) or an ``.npz`` with
    ``samples``, ``labels`` and ``classes``. Written to a temporary name first, so a failure leaves
    nothing half-written."""
    from gankit.data.images import save_image

    if not generator.classes:
        raise UserError("augmentation needs a conditional run (train with --set data.conditional=true)")
    if n_per_class <= 0:
        raise UserError(f"--n-per-class must be positive, got {n_per_class}")
    out = Path(out)
    if out.exists() and (out.is_file() or any(out.iterdir())):
        raise UserError(f"{out} already exists and is not empty; choose another --out")
    if not out.parent.is_dir():
        raise UserError(f"output folder does not exist: {out.parent}")
    labels = generator.balanced_labels(n_per_class * len(generator.classes))
    x = generator.sample(len(labels), seed=seed, truncation=truncation, labels=labels)
    tmp = out.with_name(f".{out.name}.partial")
    if out.suffix.lower() == ".npz":
        with open(tmp, "wb") as f:
            np.savez_compressed(f, samples=x.numpy(), labels=labels.numpy(), classes=np.array(generator.classes))
    elif out.suffix:
        raise UserError(f"unknown output format '{out.suffix}'; use .npz or a folder")
    else:
        if generator.data_meta["kind"] != "image":
            raise UserError("a folder of files needs image samples; use .npz for vectors")
        tmp.mkdir()
        for i, (img, c) in enumerate(zip(x, labels.tolist())):
            folder = tmp / generator.classes[c]
            folder.mkdir(exist_ok=True)
            save_image(img, folder / f"synth-{i:06d}.png")
        if out.exists():
            out.rmdir()
    tmp.rename(out)
    return out


# ---------------------------------------------------------------------------------------------
# the augmentation experiment


def split_few_labels(ds: Dataset, per_class: int, seed: int, test_fraction: float = 0.3
                     ) -> tuple[Dataset, Dataset]:
    """A small labelled train set (``per_class`` per class) and a held-out real test set. The test set
    depends only on the seed, so every label budget is judged on the same images."""
    y = ds.y.numpy()
    rng = np.random.default_rng(seed)
    train_idx, test_idx = [], []
    for c in range(ds.num_classes):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_test = round(test_fraction * len(idx))
        if len(idx) - n_test < per_class:
            raise UserError(f"class '{ds.classes[c]}' has {len(idx) - n_test} training images; "
                            f"--labeled-per-class {per_class} is too many")
        test_idx.append(idx[:n_test])
        train_idx.append(idx[n_test : n_test + per_class])
    tr, te = np.concatenate(train_idx), np.concatenate(test_idx)

    def subset(i: np.ndarray) -> Dataset:
        t = torch.as_tensor(i)
        return Dataset(x=ds.x[t], y=ds.y[t], classes=ds.classes, kind=ds.kind, name=ds.name)

    return subset(tr), subset(te)


def gan_config(data: str, size: int, steps: int, seed: int, overrides: list[str]) -> Config:
    """The conditional GAN used on the small labelled set: the digits preset, made conditional."""
    cfg = preset("digits")
    cfg = apply_overrides(cfg, [f"data.source={data}", f"data.size={size}", "data.conditional=true",
                                f"train.steps={steps}", f"train.seed={seed}", "log.progress=false",
                                "log.sample_every=100000", f"log.checkpoint_every={steps}", "health.enabled=false",
                                *overrides])
    return cfg


def _classifier_accuracy(x: torch.Tensor, y: torch.Tensor, test: Dataset, augment: bool, seed: int,
                         steps: int, classes: list[str]) -> float:
    """Train the same small classifier for a fixed number of updates (not epochs, so that arms with
    more data are not also given more updates) and return its accuracy on the real test set."""
    from gankit.classifier import train_classifier

    batch = 64
    epochs = max(1, round(steps * batch / len(x)))
    clf = train_classifier(x, y, epochs=epochs, seed=seed, batch_size=batch, augment=augment, classes=classes)
    return clf.accuracy(test.x, test.y.numpy())


def augment_report(data: str = "digits", labeled_per_class: list[int] | tuple[int, ...] = (10,),
                   seeds: int = 5, size: int = 16, gan_steps: int = 1500, synth_per_class: int = 100,
                   classifier_steps: int = 400, overrides: list[str] | None = None,
                   progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the augmentation experiment; returns a JSON-ready dict (see ``gankit augment-report --help``)."""
    from gankit.config import DataConfig
    from gankit.tasks.gan import load, train

    if seeds <= 0:
        raise UserError(f"--seeds must be positive, got {seeds}")
    if not labeled_per_class or min(labeled_per_class) <= 0:
        raise UserError("--labeled-per-class needs positive counts, e.g. 5,10,50")
    ds = load_data(DataConfig(source=data, size=size))
    if ds.y is None or ds.num_classes < 2:
        raise UserError(f"{data}: augmentation needs labelled data with at least two classes")
    if ds.kind != "image":
        raise UserError(f"{data}: augment-report supports image data (its classic augmentation is shifting)")
    results = []
    for per_class in labeled_per_class:
        acc: dict[str, list[float]] = {arm: [] for arm in ARMS}
        for seed in range(seeds):
            train_ds, test_ds = split_few_labels(ds, per_class, seed)
            with tempfile.TemporaryDirectory() as run:
                cfg = gan_config(data, size, gan_steps, seed, list(overrides or []))
                cfg.data.batch_size = min(cfg.data.batch_size, len(train_ds))  # 5 per class: 50 images
                train(cfg, run, data=train_ds)
                gen = load(run)
                labels = gen.balanced_labels(synth_per_class * ds.num_classes)
                synth = gen.sample(len(labels), seed=seed, labels=labels)
            xr, yr = train_ds.x, train_ds.y
            xs, ys = synth, labels
            both_x, both_y = torch.cat([xr, xs]), torch.cat([yr, ys])
            arms = {"real": (xr, yr, False), "real_classic": (xr, yr, True), "real_synth": (both_x, both_y, False),
                    "real_classic_synth": (both_x, both_y, True), "synth": (xs, ys, False)}
            for arm, (x, y, classic) in arms.items():
                acc[arm].append(_classifier_accuracy(x, y, test_ds, classic, seed, classifier_steps, ds.classes))
            if progress:
                progress(f"labeled_per_class={per_class} seed={seed}: "
                         + ", ".join(f"{a}={acc[a][-1]:.3f}" for a in ARMS))
        entry: dict[str, Any] = {"labeled_per_class": per_class}
        for arm in ARMS:
            v = np.array(acc[arm])
            entry[arm] = {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
                          "runs": [round(a, 4) for a in acc[arm]]}
        entry["gain_synth_over_real"] = entry["real_synth"]["mean"] - entry["real"]["mean"]
        entry["gain_synth_over_classic"] = entry["real_classic_synth"]["mean"] - entry["real_classic"]["mean"]
        results.append(entry)
    return {"data": data, "size": size, "seeds": seeds, "gan_steps": gan_steps,
            "synth_per_class": synth_per_class, "classifier_steps": classifier_steps,
            "test": "30 % of each class, held out per seed", "results": results}


def plot_report(report: dict[str, Any], path: str | Path) -> None:
    """Test accuracy against labelled images per class, one line per arm, with +-1 std bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [r["labeled_per_class"] for r in report["results"]]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for arm in ARMS:
        means = [r[arm]["mean"] for r in report["results"]]
        stds = [r[arm]["std"] for r in report["results"]]
        ax.errorbar(xs, means, yerr=stds, marker="o", capsize=3, label=arm)
    ax.set_xscale("log")
    ax.set_xticks(xs, [str(x) for x in xs])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("labelled real images per class")
    ax.set_ylabel("test accuracy on held-out real data")
    ax.set_title(f"{report['data']}: does synthetic data help? ({report['seeds']} seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)

