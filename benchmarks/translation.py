"""Unpaired translation: handwritten digits (scikit-learn) <-> digits typeset from the fonts on this machine.

Domain A: scikit-learn's 8x8 handwritten digits, enlarged to --size. Domain B: the digits 0-9 rendered
with Pillow from the TrueType fonts under /usr/share/fonts (random font, size and position). CycleGAN
(`gankit.tasks.translate.fit`) sees the two training sets without labels and without pairs. On held-out
images of each domain it reports, per direction:
  * judged_target: share of translations a domain classifier (A vs B, trained on real images) assigns
    to the target domain (target >= 90 %);
  * label_kept: share whose digit a classifier trained on real images of the target domain reads as the
    digit of the input (target >= 80 %);
  * cycle_l1: mean absolute reconstruction error after translating there and back (images in [-1, 1]).
  * label_kept_svm: the same reading by a different kind of judge (an RBF support-vector machine on the
    16x16 pixels), in case the generator learnt to please CNN classifiers rather than to draw the digit.
With --semantic W the CycleGAN adds CyCADA's semantic consistency loss and sees the labels of the
domains named by --labels (its own classifiers, trained at the training size; the judges above are
separate networks).
Prints JSON; writes a grid (input / translation / reconstruction) to --figure.

    .venv/bin/python benchmarks/translation.py --steps 1500
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


def font_files() -> list[Path]:
    fonts = sorted(p for p in Path("/usr/share/fonts").rglob("*") if p.suffix.lower() in (".ttf", ".otf"))
    return [p for p in fonts if "Math" not in p.name]  # DejaVu Math has no plain digit style of its own


def typeset_digits(n: int, size: int, seed: int) -> tuple[torch.Tensor, np.ndarray, list[str]]:
    """(n, 1, size, size) in [-1, 1], white digits on black like the handwritten set, and their labels."""
    from PIL import Image, ImageDraw, ImageFont

    fonts = font_files()
    if not fonts:
        raise SystemExit("no TrueType fonts under /usr/share/fonts (apt-get install fonts-dejavu-core)")
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    out = np.zeros((n, size, size), np.uint8)
    for i, d in enumerate(labels):
        font = ImageFont.truetype(str(fonts[rng.integers(len(fonts))]), int(rng.integers(size * 5 // 8, size * 7 // 8)))
        im = Image.new("L", (size, size), 0)
        draw = ImageDraw.Draw(im)
        x0, y0, x1, y1 = draw.textbbox((0, 0), str(d), font=font)
        dx, dy = rng.integers(-size // 10, size // 10 + 1, 2)
        draw.text(((size - (x1 - x0)) / 2 - x0 + dx, (size - (y1 - y0)) / 2 - y0 + dy), str(d), fill=255, font=font)
        out[i] = np.asarray(im)
    return torch.from_numpy(out).float()[:, None] / 127.5 - 1, labels, [f.name for f in fonts]


def handwritten_digits(size: int) -> tuple[torch.Tensor, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.from_numpy(bunch.images).float()[:, None] / 16.0
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)
    return x * 2 - 1, bunch.target


def small(x: torch.Tensor) -> torch.Tensor:
    """Classifiers read 16x16: four times cheaper on a shared CPU, and enough for digits."""
    return F.adaptive_avg_pool2d(x, 16)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--g-width", type=int, default=8)
    p.add_argument("--g-blocks", type=int, default=3)
    p.add_argument("--g-down", type=int, default=2, help="stride-2 stages in G (the paper's 2; 0 or 1 keep more shape)")
    p.add_argument("--identity", type=float, default=0.5, help="identity loss weight as a fraction of lambda_cycle")
    p.add_argument("--semantic", type=float, default=0.0, help="CyCADA semantic consistency weight (0: the paper)")
    p.add_argument("--labels", default="ab", choices=("a", "b", "ab"),
                   help="domains whose labels the CycleGAN sees when --semantic > 0 (a: handwritten only, as CyCADA)")
    p.add_argument("--d-width", type=int, default=16)
    p.add_argument("--d-layers", type=int, default=2, help="2: 34x34 patches (a 70x70 patch exceeds 32 px)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--classifier-epochs", type=int, default=4)
    p.add_argument("--run-dir", default="")
    p.add_argument("--figure", default="docs/translation.png")
    args = p.parse_args()

    from gankit.classifier import train_classifier
    from gankit.data.images import make_grid
    from gankit.tasks.translate import TranslateConfig, fit, load, translation_grid

    torch.set_num_threads(args.threads)
    t_start = time.time()
    xa, ya = handwritten_digits(args.size)
    perm = np.random.default_rng(args.seed).permutation(len(xa))
    tr, te = perm[:1300], perm[1300:]
    xa_tr, ya_tr, xa_te, ya_te = xa[tr], ya[tr], xa[te], ya[te]
    xb_tr, yb_tr, fonts = typeset_digits(1300, args.size, seed=args.seed + 1)
    xb_te, yb_te, _ = typeset_digits(len(te), args.size, seed=args.seed + 2)

    # judges, trained on real images only (labels are never shown to the CycleGAN)
    clf_domain = train_classifier(small(torch.cat([xa_tr, xb_tr])), np.r_[np.zeros(len(tr)), np.ones(len(xb_tr))],
                                  epochs=args.classifier_epochs, seed=args.seed)
    clf_a = train_classifier(small(xa_tr), ya_tr, epochs=args.classifier_epochs, seed=args.seed)
    clf_b = train_classifier(small(xb_tr), yb_tr, epochs=args.classifier_epochs, seed=args.seed)
    sanity = {"domain_acc_real": clf_domain.accuracy(small(torch.cat([xa_te, xb_te])),
                                                     np.r_[np.zeros(len(te)), np.ones(len(te))]),
              "digit_acc_real_a": clf_a.accuracy(small(xa_te), ya_te),
              "digit_acc_real_b": clf_b.accuracy(small(xb_te), yb_te)}
    from sklearn.svm import SVC

    svm = {dom: SVC(C=10.0).fit(small(x).flatten(1).numpy(), y) for dom, x, y in (("a", xa_tr, ya_tr), ("b", xb_tr, yb_tr))}
    sanity["digit_acc_real_a_svm"] = float((svm["a"].predict(small(xa_te).flatten(1).numpy()) == ya_te).mean())
    sanity["digit_acc_real_b_svm"] = float((svm["b"].predict(small(xb_te).flatten(1).numpy()) == yb_te).mean())
    t_classifiers = time.time() - t_start

    cfg = TranslateConfig(size=args.size, g_width=args.g_width, g_blocks=args.g_blocks, g_down=args.g_down,
                          d_width=args.d_width, d_layers=args.d_layers, batch_size=args.batch_size,
                          lambda_identity=args.identity, lambda_semantic=args.semantic)
    cfg.train.steps, cfg.train.seed, cfg.train.device = args.steps, args.seed, "cpu"
    cfg.log.every, cfg.log.checkpoint_every, cfg.log.sample_every = 100, 500, 500
    run_dir = Path(args.run_dir) if args.run_dir else Path(tempfile.mkdtemp(prefix="translation-")) / "run"
    t0 = time.time()
    from gankit.data import Dataset

    seen = args.labels if args.semantic > 0 else ""
    fit(Dataset(x=xa_tr, y=torch.as_tensor(ya_tr) if "a" in seen else None),
        Dataset(x=xb_tr, y=torch.as_tensor(yb_tr) if "b" in seen else None), run_dir, cfg)
    train_s = time.time() - t0

    tr_model = load(run_dir)
    results = {}
    for name, x, y, fwd, back, target, clf, sv in (("a2b", xa_te, ya_te, "a2b", "b2a", 1, clf_b, svm["b"]),
                                                   ("b2a", xb_te, yb_te, "b2a", "a2b", 0, clf_a, svm["a"])):
        out = tr_model.translate(x, fwd)
        rec = tr_model.translate(out, back)
        results[name] = {
            "judged_target": float((clf_domain.predict(small(out)) == target).mean()),
            "label_kept": float((clf.predict(small(out)) == y).mean()),
            "label_kept_svm": float((sv.predict(small(out).flatten(1).numpy()) == y).mean()),
            "cycle_l1": float((rec - x).abs().mean()),
            "n": len(x),
        }
    grid = translation_grid(tr_model.G, xa_te[:8], xb_te[:8])  # A triples, then B triples
    grid = grid.view(2, 8, 3, *grid.shape[1:]).transpose(0, 1).reshape(-1, *grid.shape[1:])
    Path(args.figure).parent.mkdir(parents=True, exist_ok=True)
    make_grid(grid, nrow=6, scale=2).save(args.figure)  # columns: A, A->B, A->B->A, B, B->A, B->A->B
    met = all(r["judged_target"] >= 0.9 and r["label_kept"] >= 0.8 for r in results.values())
    print(json.dumps({
        "benchmark": "translation_digits_handwritten_vs_typeset",
        "config": {"steps": args.steps, "size": args.size, "g_width": args.g_width, "g_blocks": args.g_blocks,
                   "g_down": args.g_down, "identity": args.identity, "semantic": args.semantic,
                   "labels_seen": seen,
                   "d_width": args.d_width, "d_layers": args.d_layers, "batch_size": args.batch_size,
                   "seed": args.seed},
        "fonts": len(fonts), "n_train": {"a": len(tr), "b": len(xb_tr)},
        "classifiers_on_real_test_images": sanity,
        "results": results, "targets_met": met,
        "train_seconds": round(train_s, 1), "classifier_seconds": round(t_classifiers, 1),
        "machine": f"{platform.machine()} CPU, {args.threads} thread(s)",
        "figure": args.figure,
    }, indent=1))


if __name__ == "__main__":
    main()
