"""gankit classifier: train, apply and test the small classifier used for features and label scores."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

DATA_HELP = ("a built-in data set (digits; digits:train / digits:test for a fixed 80/20 split), an image "
             "folder (sub-folders are the classes) or a .npy/.npz file (array 'samples' or 'images', "
             "integer 'labels', optional 'classes')")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("classifier", help="train, apply or test a classifier of real data",
                       description="A small CNN (images) or MLP (vectors) trained on labelled real data. Its "
                       "penultimate features give `gankit eval --features classifier` a domain feature space "
                       "(FID on these is often called FCD), and its predictions give label agreement.")
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=True, parser_class=type(p))

    t = verbs.add_parser("train", help="train a classifier on labelled data",
                         description="Train a classifier on labelled DATA and write it to --out (one .safetensors "
                         f"file: weights plus a JSON description; never pickle). DATA: {DATA_HELP}. A held-out "
                         "share (--val) is kept out of training to report accuracy on unseen samples; --val 0 "
                         "trains on everything.")
    t.add_argument("data", metavar="DATA")
    t.add_argument("--out", required=True, metavar="FILE", help="the classifier file to write (.safetensors)")
    t.add_argument("--size", type=int, help="image side in pixels (default: the data's own; built-ins 16)")
    t.add_argument("--epochs", type=int, default=8, help="passes over the data (default 8)")
    t.add_argument("--val", type=float, default=0.1, help="held-out share for the accuracy report (default 0.1)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--json", action="store_true", help="print one JSON object")
    t.set_defaults(func=run_train)

    pr = verbs.add_parser("predict", help="label samples with a trained classifier",
                          description="Print each sample's predicted class and probability. INPUT: one image "
                          f"file, or {DATA_HELP}.")
    pr.add_argument("file", metavar="FILE", help="a classifier written by `gankit classifier train`")
    pr.add_argument("input", metavar="INPUT")
    pr.add_argument("--limit", type=int, default=20, help="rows shown in the table (default 20; --json has all)")
    pr.add_argument("--json", action="store_true", help="print one JSON object with every prediction")
    pr.set_defaults(func=run_predict)

    e = verbs.add_parser("eval", help="accuracy of a classifier on labelled data",
                         description=f"Overall and per-class accuracy on labelled DATA: {DATA_HELP}.")
    e.add_argument("file", metavar="FILE")
    e.add_argument("data", metavar="DATA")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.set_defaults(func=run_eval)


def _load_labelled(spec: str, size: int | None = None, channels: int = 0):
    from gankit.errors import UserError
    from gankit.eval import open_set

    sset = open_set(spec, size=size, channels=channels)
    x, y = sset.collect()
    if y is None:
        raise UserError(f"{spec}: no labels (use class sub-folders or an npz array 'labels')")
    return sset, x, y


def _open_for(clf, spec: str):
    """Open INPUT at the classifier's input size and channels."""
    from gankit.eval import open_set

    shape = clf.spec.input_shape
    if clf.spec.kind == "cnn":
        return open_set(spec, size=shape[-1], channels=shape[0])
    return open_set(spec)


def run_train(args: argparse.Namespace) -> int:
    import numpy as np

    from gankit.classifier import train_classifier
    from gankit.errors import UserError

    if args.epochs <= 0:
        raise UserError(f"--epochs must be positive, got {args.epochs}")
    if not 0.0 <= args.val < 1.0:
        raise UserError(f"--val must be in [0, 1), got {args.val}")
    out = Path(args.out)
    if out.suffix != ".safetensors":
        raise UserError(f"--out {out}: the classifier file must end in .safetensors")
    if not out.parent.exists():
        raise UserError(f"output folder does not exist: {out.parent}")
    sset, x, y = _load_labelled(args.data, args.size)
    if len(sset.classes) < 2:
        raise UserError(f"{args.data}: a classifier needs at least two classes")
    order = np.random.default_rng(args.seed).permutation(len(x))
    n_val = round(args.val * len(x))
    result = {"data": sset.name, "n": len(x), "classes": sset.classes}
    val, tr = order[:n_val], order[n_val:]
    clf = train_classifier(x[tr], y[tr], epochs=args.epochs, seed=args.seed, classes=sset.classes)
    if n_val:
        result["val_accuracy"] = clf.accuracy(x[val], y[val].numpy())
        result["n_val"] = n_val
    result["train_accuracy"] = clf.spec.train_accuracy
    clf.save(out)
    result["out"] = str(out)
    if args.json:
        print(json.dumps(result))
    else:
        val = f", held-out accuracy {result['val_accuracy']:.4f} on {n_val}" if "val_accuracy" in result else ""
        print(f"trained a {clf.spec.kind} on {len(tr)} samples of {sset.name} ({len(sset.classes)} classes): "
              f"training accuracy {clf.spec.train_accuracy:.4f}{val}; wrote {out}")
    return 0


def run_predict(args: argparse.Namespace) -> int:
    from gankit.classifier import Classifier

    clf = Classifier.load(args.file)
    names = clf.spec.classes or [str(i) for i in range(clf.n_classes)]
    path = Path(args.input)
    if path.is_file() and path.suffix.lower() not in (".npy", ".npz"):
        x = _read_one_image(path, clf.spec.input_shape)
        ids = [path.name]
    else:
        sset = _open_for(clf, args.input)
        x, _ = sset.collect()
        ids = [str(i) for i in range(len(x))]
    probs = clf.predict_proba(x)
    pred = probs.argmax(1)
    rows = [{"sample": s, "class": names[p], "index": int(p), "probability": float(probs[i, p])}
            for i, (s, p) in enumerate(zip(ids, pred))]
    counts = {c: int((pred == i).sum()) for i, c in enumerate(names)}
    if args.json:
        print(json.dumps({"predictions": rows, "counts": counts}))
        return 0
    print(f"{'sample':<24}  {'class':<12}  probability")
    for r in rows[: args.limit]:
        print(f"{r['sample']:<24}  {r['class']:<12}  {r['probability']:.4f}")
    if len(rows) > args.limit:
        print(f"... {len(rows) - args.limit} more (--limit N, or --json for all)")
    print("counts: " + ", ".join(f"{c}: {k}" for c, k in counts.items()))
    return 0


def _read_one_image(path: Path, shape: list[int]):
    import numpy as np
    import torch

    from gankit.data.images import read_image, resize_center_crop
    from gankit.errors import UserError

    if len(shape) != 3:
        raise UserError(f"{path}: this classifier takes vectors of shape {shape}, not images")
    c, size = shape[0], shape[-1]
    arr = np.array(resize_center_crop(read_image(path, c), size)).reshape(size, size, c)
    return torch.from_numpy(arr).permute(2, 0, 1)[None].float() / 127.5 - 1


def run_eval(args: argparse.Namespace) -> int:
    import numpy as np

    from gankit.classifier import Classifier
    from gankit.errors import UserError

    clf = Classifier.load(args.file)
    sset = _open_for(clf, args.data)
    x, y = sset.collect()
    if y is None:
        raise UserError(f"{args.data}: no labels to test against (use class sub-folders or an npz array 'labels')")
    if clf.spec.classes and sset.classes and sset.classes != clf.spec.classes[: len(sset.classes)]:
        raise UserError(f"{args.data}: classes {sset.classes} are not the classifier's {clf.spec.classes}")
    pred, y = clf.predict(x), y.numpy()
    names = clf.spec.classes or [str(i) for i in range(clf.n_classes)]
    per_class = {names[c]: float((pred[y == c] == c).mean()) for c in np.unique(y)}
    result = {"accuracy": float((pred == y).mean()), "n": len(y), "per_class": per_class}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"accuracy {result['accuracy']:.4f} on {len(y)} samples of {sset.name}")
        print("per class: " + ", ".join(f"{c}: {a:.3f}" for c, a in per_class.items()))
    return 0
