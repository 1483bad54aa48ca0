"""Evaluate what a GAN learned: sample sets, streamed features, cached reference features, metrics.

Three entry points:
- :func:`evaluate`: a run folder (its EMA generator) against reference data, or two sets directly;
  this is ``gankit eval``.
- :func:`open_set`: a built-in data set (``digits``, ``digits:train``, ``digits:test``, ``ring8``...),
  an image folder, or a ``.npy`` / ``.npz`` file, read lazily in batches (:class:`SampleSet`).
- :class:`EvalHook` / :func:`make_eval_hook`: periodic evaluation during training (``eval.every``),
  written into ``metrics.jsonl``, keeping the best checkpoint by ``eval.best``.

Features are extracted batch by batch, so only the features of a set are ever held in memory (images
are read, or generated, one batch at a time). The reference set's features are cached on disk under
``$GANKIT_HOME/cache/`` keyed by a SHA-256 of the data (file bytes, or the samples of a built-in
set, plus the preprocessing) and of the feature extractor, so a second evaluation against the same
data reads them back instead of recomputing them.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import time
import warnings
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from gankit import distributed
from gankit.errors import UserError
from gankit.metrics import DEFAULT_METRICS, METRICS, compute_metrics
from gankit.metrics.features import Extractor, extract_features, gankit_home, get_extractor

CACHE_VERSION = 1
SPLITS = ("train", "test")
TEST_FRACTION = 0.2  # built-in splits: a fixed seed-0 permutation, the first 20 % is the test split
EXTRA_METRICS = ("cas", "agreement")  # need labels and samples, not only features: computed here
HIGHER_IS_BETTER = {"precision", "recall", "density", "coverage", "is_mean", "cas", "agreement", "modes", "hq"}
LOWER_IS_BETTER = {"fid", "kid_mean", "reverse_kl"}
BEST_ALIASES = {"kid": "kid_mean", "is": "is_mean"}

Batch = tuple[Tensor, "Tensor | None"]


# ---------------------------------------------------------------------------------------------
# sample sets


@dataclass
class SampleSet:
    """A set of samples to evaluate, read lazily: images (C, H, W) in [-1, 1] or vectors in data units.

    ``fingerprint`` is a SHA-256 of the content and its preprocessing ("" for generated samples, which
    are never cached). ``reader(batch_size)`` yields (x, labels or None) batches.
    """

    name: str
    kind: str  # image | vector
    shape: tuple[int, ...]
    n: int
    reader: Callable[[int], Iterator[Batch]]
    classes: list[str] = field(default_factory=list)
    labelled: bool = False
    fingerprint: str = ""
    mixture: str | None = None  # a built-in toy mixture: enables the modes metric

    def batches(self, batch_size: int = 256) -> Iterator[Batch]:
        return self.reader(batch_size)

    def collect(self, limit: int | None = None, batch_size: int = 256) -> tuple[Tensor, Tensor | None]:
        """The first ``limit`` samples (default all) and their labels, in memory."""
        xs, ys, count = [], [], 0
        for x, y in self.batches(batch_size):
            if limit is not None and count + len(x) > limit:
                x, y = x[: limit - count], (y[: limit - count] if y is not None else None)
            xs.append(x)
            if y is not None:
                ys.append(y)
            count += len(x)
            if limit is not None and count >= limit:
                break
        if not xs:
            raise UserError(f"{self.name}: no samples")
        return torch.cat(xs), (torch.cat(ys) if ys and len(ys) == len(xs) else None)


def split_indices(n: int, split: str) -> np.ndarray:
    """Indices of a built-in set's fixed ``train`` or ``test`` split (seed-0 permutation, 20 % test)."""
    order = np.random.default_rng(0).permutation(n)
    n_test = round(TEST_FRACTION * n)
    return np.sort(order[:n_test] if split == "test" else order[n_test:])


def _sha(*parts: bytes | str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode() if isinstance(p, str) else p)
        h.update(b"\0")
    return h.hexdigest()


def _tensor_reader(x: Tensor, y: Tensor | None) -> Callable[[int], Iterator[Batch]]:
    def read(batch_size: int) -> Iterator[Batch]:
        for i in range(0, len(x), batch_size):
            yield x[i : i + batch_size], (y[i : i + batch_size] if y is not None else None)

    return read


def builtin_set(spec: str, size: int = 16, channels: int = 0) -> SampleSet:
    """``NAME`` or ``NAME:train`` / ``NAME:test`` of a built-in data set (vectors in data units)."""
    from gankit.config import DataConfig
    from gankit.data import to_data_units
    from gankit.data.builtin import BUILTINS, MIXTURES

    name, _, split = spec.partition(":")
    if split and split not in SPLITS:
        raise UserError(f"unknown split '{split}' in '{spec}'; use {name}:train or {name}:test")
    ds = BUILTINS[name](DataConfig(source=name, size=size, channels=channels))
    x, y = to_data_units(ds.x, ds.meta()), ds.y
    if split:
        idx = torch.from_numpy(split_indices(len(x), split))
        x, y = x[idx], (y[idx] if y is not None else None)
    fingerprint = _sha("builtin", spec, x.numpy().tobytes(), y.numpy().tobytes() if y is not None else b"")
    return SampleSet(spec, ds.kind, tuple(x.shape[1:]), len(x), _tensor_reader(x, y), ds.classes,
                     y is not None, fingerprint, name if name in MIXTURES else None)


def _images_to_unit(x: np.ndarray, scale: str, size: int | None, channels: int) -> Tensor:
    """One batch of (N, C, H, W) images to float [-1, 1], resized to ``size`` and converted to ``channels``."""
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(x)).float()
    if scale == "255":
        t = t / 127.5 - 1
    elif scale == "01":
        t = t * 2 - 1
    if size and (t.shape[-1] != size or t.shape[-2] != size):
        t = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    if channels == 3 and t.shape[1] == 1:
        t = t.repeat(1, 3, 1, 1)
    elif channels == 1 and t.shape[1] == 3:
        t = t.mean(dim=1, keepdim=True)
    return t.clamp(-1, 1)


def array_set(path: Path, size: int | None = None, channels: int = 0) -> SampleSet:
    """A ``.npy`` (memory-mapped) or ``.npz`` file: array ``samples`` or ``images`` (also ``x``, ``data``),
    optional ``labels`` and ``classes``. Images: uint8 0..255 or floats in [0, 1] or [-1, 1]."""
    from gankit.data.arrays import _read

    if path.suffix.lower() == ".npy":
        try:
            x, labels, classes = np.load(path, mmap_mode="r", allow_pickle=False), None, []
        except (OSError, ValueError, EOFError) as exc:
            raise UserError(f"{path}: not a readable NumPy file ({type(exc).__name__})") from None
    else:
        x, labels, classes = _read(path)
    if x.dtype.kind not in "fiub" or x.ndim < 2 or len(x) == 0:
        raise UserError(f"{path}: expected a non-empty numeric array of rank >= 2, got {x.dtype} {x.shape}")
    y = None
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (len(x),) or labels.dtype.kind not in "iu" or labels.min() < 0:
            raise UserError(f"{path}: 'labels' must be {len(x)} integers >= 0, got {labels.dtype} {labels.shape}")
        classes = classes or [str(i) for i in range(int(labels.max()) + 1)]
        y = torch.from_numpy(labels.astype(np.int64))
    lo, hi = float(np.min(x)), float(np.max(x))
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise UserError(f"{path}: the array holds NaN or infinite values")
    with open(path, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest() if hasattr(hashlib, "file_digest") else \
            hashlib.sha256(f.read()).hexdigest()

    if x.ndim == 2:  # vectors, in the file's own units
        shape, kind = (x.shape[1],), "vector"

        def convert(b: np.ndarray) -> Tensor:
            return torch.from_numpy(np.array(b, dtype=np.float32))  # a copy: memory-mapped arrays are read-only
    else:
        if x.ndim == 3:
            x = x[:, None]
        elif x.ndim == 4 and x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
            x = x.transpose(0, 3, 1, 2)
        if x.ndim != 4 or x.shape[1] not in (1, 3) or x.shape[2] != x.shape[3] and size is None:
            raise UserError(f"{path}: image arrays must be square (N,H,W), (N,H,W,C) or (N,C,H,W) with C 1 or 3; "
                            f"got {x.shape}")
        scale = "255" if x.dtype == np.uint8 or hi > 1.0 else ("01" if lo >= 0 else "11")
        size = size or x.shape[-1]
        out_c = channels or x.shape[1]
        shape, kind = (out_c, size, size), "image"

        def convert(b: np.ndarray) -> Tensor:
            return _images_to_unit(np.asarray(b), scale, size, out_c)

    def read(batch_size: int) -> Iterator[Batch]:
        for i in range(0, len(x), batch_size):
            yield convert(x[i : i + batch_size]), (y[i : i + batch_size] if y is not None else None)

    fingerprint = _sha("array", digest, str(shape))
    return SampleSet(str(path), kind, shape, len(x), read, classes, y is not None, fingerprint)


def folder_set(root: Path, size: int | None = None, channels: int = 0) -> SampleSet:
    """An image folder (recursive; first-level sub-folders are classes), read one batch at a time.

    Images are scaled on their short side to ``size`` (default: the first image's short side) and
    centre-cropped, as for training."""
    from gankit.data.images import IMAGE_SUFFIXES, _is_grey, list_images, read_image, resize_center_crop

    files = list_images(root)
    if not files:
        raise UserError(f"{root}: no images found (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    if size is None:
        size = min(read_image(files[0], 1).size)  # read_image turns unreadable files into UserErrors
    channels = channels or (1 if all(_is_grey(f) for f in files) else 3)
    parents = [f.relative_to(root).parts[:-1] for f in files]
    labelled = all(len(p) >= 1 for p in parents)
    classes = sorted({p[0] for p in parents}) if labelled else []
    labels = torch.tensor([classes.index(p[0]) for p in parents]) if labelled else None
    h = hashlib.sha256()
    for f in files:
        try:
            data = f.read_bytes()
        except OSError as exc:  # a dangling link, a link loop, no permission
            raise UserError(f"{f}: cannot read ({exc.strerror or type(exc).__name__})") from None
        h.update(str(f.relative_to(root)).encode() + b"\0" + data)

    def read(batch_size: int) -> Iterator[Batch]:
        for i in range(0, len(files), batch_size):
            arrs = [np.asarray(resize_center_crop(read_image(f, channels), size)).reshape(size, size, channels)
                    for f in files[i : i + batch_size]]
            x = torch.from_numpy(np.stack(arrs)).permute(0, 3, 1, 2).float() / 127.5 - 1
            yield x, (labels[i : i + batch_size] if labels is not None else None)

    fingerprint = _sha("folder", h.hexdigest(), str((channels, size, size)))
    return SampleSet(str(root), "image", (channels, size, size), len(files), read, classes, labelled, fingerprint)


def open_set(spec: str | Path, *, size: int | None = None, channels: int = 0) -> SampleSet:
    """A built-in name (optionally ``:train`` / ``:test``), an image folder, or a ``.npy`` / ``.npz`` file.

    ``size`` and ``channels`` resize images (built-ins default to 16 pixels); None/0 keeps the data's own.
    """
    from gankit.data.builtin import BUILTINS

    text = str(spec)
    if text.partition(":")[0] in BUILTINS and not Path(text).exists():
        return builtin_set(text, size or 16, channels)
    path = Path(text).expanduser()
    if not path.exists():
        hint = f"; built-in data sets are {', '.join(BUILTINS)} (add :train or :test for a split)" \
            if "/" not in text else ""
        raise UserError(f"data not found: {text}{hint}")
    if path.is_dir():
        return folder_set(path, size, channels)
    if path.suffix.lower() in (".npy", ".npz"):
        return array_set(path, size, channels)
    raise UserError(f"{path}: expected an image folder, a .npy or a .npz file")


def generator_set(gen: Any, n: int, *, seed: int = 0, truncation: float = 1.0) -> SampleSet:
    """``n`` samples of a trained :class:`gankit.tasks.gan.Generator`, drawn batch by batch (the same
    seed gives the same samples). Conditional runs draw the classes in turn."""
    if n <= 0:
        raise UserError(f"--n must be positive, got {n}")
    if not 0.0 <= truncation <= 1.0:
        raise UserError(f"--truncation must be in [0, 1], got {truncation}")
    k = len(gen.classes)

    def read(batch_size: int) -> Iterator[Batch]:
        g = torch.Generator().manual_seed(seed)
        for i in range(0, n, batch_size):
            m = min(batch_size, n - i)
            z = torch.randn(m, gen.z_dim, generator=g) * truncation
            y = (torch.arange(i, i + m) % k) if k else None
            yield gen.decode(z, y, batch_size=batch_size), y

    meta = gen.data_meta
    return SampleSet(f"generator (step {gen.step})", meta["kind"], tuple(meta["shape"]), n, read,
                     gen.classes, bool(k))


def check_compatible(real: SampleSet, fake: SampleSet) -> None:
    """Both sets must hold samples of one shape (and so one channel count)."""
    if real.shape != fake.shape:
        what = "shapes"
        if real.kind == fake.kind == "image" and real.shape[0] != fake.shape[0]:
            what = f"channels ({real.shape[0]} vs {fake.shape[0]})"
        raise UserError(f"real and fake samples differ in {what}: {real.name} is {list(real.shape)}, "
                        f"{fake.name} is {list(fake.shape)}")


# ---------------------------------------------------------------------------------------------
# features, with the reference cache


def cache_dir() -> Path:
    return gankit_home() / "cache"


def module_digest(module: torch.nn.Module) -> str:
    """SHA-256 of a network's weights: identifies an in-memory classifier in cache keys."""
    h = hashlib.sha256()
    for name, t in module.state_dict().items():
        h.update(name.encode() + b"\0" + t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def extractor_id(extractor: Extractor) -> str:
    """What identifies an extractor's output: its name and, for networks, a digest of its weights."""
    from gankit.metrics.features import INCEPTION_SHA256

    if extractor.name == "classifier":
        return "classifier:" + module_digest(extractor.classifier.net)
    if extractor.name == "inception":
        return "inception:" + INCEPTION_SHA256
    return extractor.name


def stream_features(
    sset: SampleSet, extractor: Extractor, *, batch_size: int = 256, progress: bool | None = None,
    keep: int = 0
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, tuple[Tensor, Tensor | None] | None]:
    """Features, logits and labels of a set, one batch at a time; also the first ``keep`` samples."""
    labels: list[Tensor] = []
    kept: list[Tensor] = []
    kept_labels: list[Tensor] = []
    count = 0

    def xs() -> Iterator[Tensor]:
        nonlocal count
        for x, y in sset.batches(batch_size):
            if y is not None:
                labels.append(y)
            if count < keep:
                kept.append(x[: keep - count])
                if y is not None:
                    kept_labels.append(y[: keep - count])
            count += len(x)
            yield x

    feats, logits = extract_features(xs(), extractor, progress=progress, total=sset.n,
                                     desc=f"features {Path(sset.name).name or sset.name}")
    y = torch.cat(labels).numpy() if labels and sum(map(len, labels)) == len(feats) else None
    sample = None
    if kept:
        sample = (torch.cat(kept), torch.cat(kept_labels) if kept_labels else None)
    return feats, logits, y, sample


def cached_features(
    sset: SampleSet, extractor: Extractor, *, batch_size: int = 256, progress: bool | None = None,
    cache: bool = True, where: Path | None = None
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, bool]:
    """Features, logits and labels of a reference set, read from the cache when this data and this
    extractor were seen before. Returns (..., cached)."""
    path = None
    if cache and sset.fingerprint:
        key = _sha(f"v{CACHE_VERSION}", sset.fingerprint, extractor_id(extractor))[:32]
        path = (where or cache_dir()) / f"ref-{key}.npz"
        if path.is_file():
            try:
                with np.load(path, allow_pickle=False) as z:
                    logits = z["logits"] if "logits" in z.files else None
                    labels = z["labels"] if "labels" in z.files else None
                    return z["features"], logits, labels, True
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
                path.unlink(missing_ok=True)  # a damaged cache entry is recomputed
    feats, logits, labels, _ = stream_features(sset, extractor, batch_size=batch_size, progress=progress)
    if path is not None:
        arrays = {"features": feats}
        if logits is not None:
            arrays["logits"] = logits
        if labels is not None:
            arrays["labels"] = labels
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
            os.replace(tmp, path)
        except OSError as exc:  # a read-only cache only costs time
            warnings.warn(f"could not write the reference cache {path}: {exc}", stacklevel=2)
    return feats, logits, labels, False


def reference_classifier(sset: SampleSet, *, cache: bool = True, where: Path | None = None, seed: int = 0,
                         progress: bool | None = None) -> Any:
    """A classifier trained on ``sset`` (labelled), cached by the data's fingerprint: the default
    feature network for labelled data when no ``--classifier`` is given."""
    from gankit.classifier import Classifier, train_classifier

    if not sset.labelled or len(sset.classes) < 2:
        raise UserError(f"{sset.name} has no class labels to train a feature classifier on; pass a classifier "
                        "file (gankit classifier train) or use --features raw")
    path = None
    if cache and sset.fingerprint:
        path = (where or cache_dir()) / "classifiers" / f"clf-{_sha('clf-v1', sset.fingerprint, str(seed))[:32]}" \
            ".safetensors"
        if path.is_file():
            try:
                return Classifier.load(path)
            except UserError:
                path.unlink(missing_ok=True)
    x, y = sset.collect()
    if progress is not False or path is not None:
        print(f"training a feature classifier on {sset.name} ({len(x)} samples; cached for next time)",
              file=sys.stderr)
    clf = train_classifier(x, y, seed=seed, classes=sset.classes)
    if path is not None:
        try:
            clf.save(path)
        except OSError as exc:
            warnings.warn(f"could not cache the classifier at {path}: {exc}", stacklevel=2)
    return clf


def choose_features(features: str, classifier: Any, ref: SampleSet) -> str:
    """``auto``: classifier features when a classifier is given or the reference is labelled, else raw."""
    if features != "auto":
        return features
    if classifier is not None or (ref.labelled and len(ref.classes) >= 2):
        return "classifier"
    return "raw"


def build_extractor(features: str, ref: SampleSet, *, classifier: Any = None, weights: Any = None,
                    cache: bool = True, where: Path | None = None, seed: int = 0,
                    progress: bool | None = None) -> Extractor:
    if features == "classifier" and classifier is None:
        classifier = reference_classifier(ref, cache=cache, where=where, seed=seed, progress=progress)
    extractor = get_extractor(features, weights=weights, classifier=classifier)
    if features == "classifier":
        want = list(extractor.classifier.spec.input_shape)
        if want != list(ref.shape):
            raise UserError(f"the classifier expects samples of shape {want}, the data has {list(ref.shape)}")
    return extractor


# ---------------------------------------------------------------------------------------------
# metrics


def parse_metrics(metrics: str | Sequence[str]) -> list[str]:
    names = [m.strip() for m in (metrics.split(",") if isinstance(metrics, str) else metrics) if m.strip()]
    if not names:
        raise UserError("no metrics given; choose from " + ", ".join([*METRICS, *EXTRA_METRICS]))
    for name in names:
        if name not in METRICS and name not in EXTRA_METRICS:
            raise UserError(f"unknown metric '{name}'; choose from {', '.join([*METRICS, *EXTRA_METRICS])}")
    return list(dict.fromkeys(names))


def score(
    real_feats: np.ndarray, fake_feats: np.ndarray, names: Sequence[str], *,
    real_logits: np.ndarray | None = None, fake_logits: np.ndarray | None = None,
    fake_labels: np.ndarray | None = None, mixture: str | None = None, features: str = "raw",
    fake_sample: tuple[Tensor, Tensor | None] | None = None, real_sample: tuple[Tensor, Tensor | None] | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """All requested metrics on extracted features (and, for cas, on samples)."""
    from gankit.metrics.cas import classification_accuracy_score, label_agreement

    centers = std = None
    if "modes" in names:
        from gankit.data.builtin import MIXTURES

        if mixture is None or features != "raw":
            raise UserError("the modes metric needs a built-in toy mixture (ring8, grid25) as reference and "
                            "--features raw")
        centers, std = MIXTURES[mixture]
    out = compute_metrics(real_feats, fake_feats, [n for n in names if n in METRICS], real_logits=real_logits,
                          fake_logits=fake_logits, centers=centers, mode_std=std, seed=seed) \
        if any(n in METRICS for n in names) else {"n_real": len(real_feats), "n_fake": len(fake_feats)}
    if "agreement" in names:
        if fake_logits is None or fake_labels is None:
            raise UserError("label agreement needs a conditional run (or labelled fakes) and classifier features")
        out.update(label_agreement(fake_logits, fake_labels))
    if "cas" in names:
        if fake_sample is None or fake_sample[1] is None or real_sample is None or real_sample[1] is None:
            raise UserError("cas needs labelled generated samples (a conditional run) and a labelled reference")
        out["cas"] = classification_accuracy_score(*fake_sample, *real_sample, seed=seed)
    return out


CAS_SAMPLES = 10_000  # generated and real samples held in memory for cas (the only metric that needs them)


def evaluate(
    run_dir: str | Path | None = None,
    *,
    ref: str | Path | None = None,
    real: str | Path | SampleSet | None = None,
    fake: str | Path | SampleSet | None = None,
    n: int = 10_000,
    metrics: str | Sequence[str] = DEFAULT_METRICS,
    features: str = "auto",
    classifier: Any = None,
    weights: str | Path | None = None,
    batch_size: int = 256,
    seed: int = 0,
    truncation: float = 1.0,
    device: str = "cpu",
    cache: bool = True,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Metrics of a run's EMA generator against ``ref`` (default: the run's training data), or of
    ``fake`` against ``real``. Returns the metric keys plus n_real, n_fake, features (and step,
    ref_cached). ``features``: auto | classifier | inception | raw; ``classifier`` is a file or a
    :class:`~gankit.classifier.Classifier`."""
    names = parse_metrics(metrics)
    if batch_size <= 0:
        raise UserError(f"--batch-size must be positive, got {batch_size}")
    out: dict[str, Any] = {}
    if run_dir is not None:
        if real is not None or fake is not None:
            raise UserError("give either RUN_DIR (with --ref) or --real and --fake, not both")
        from gankit.engine import resolve_device
        from gankit.tasks.gan import load

        gen = load(run_dir, device=str(resolve_device(device)))
        meta = gen.data_meta
        ref = ref if ref is not None else gen.config.data.source
        if meta["kind"] == "image":
            real_set = open_set(ref, size=meta["shape"][-1], channels=gen.config.data.channels or 0)
            if real_set.shape[0] != meta["shape"][0] and str(ref).partition(":")[0] in _builtins():
                real_set = open_set(ref, size=meta["shape"][-1], channels=meta["shape"][0])
        else:
            real_set = open_set(ref)
        fake_set = generator_set(gen, n, seed=seed, truncation=truncation)
        out["step"] = gen.step
    else:
        if real is None or fake is None:
            raise UserError("give a RUN_DIR, or both --real and --fake")
        real_set, fake_set = _open_pair(real, fake)
    check_compatible(real_set, fake_set)
    if classifier is not None and features not in ("auto", "classifier"):
        raise UserError(f"--classifier is for --features classifier, not {features}")
    features = choose_features(features, classifier, real_set)
    # The reference classifier's seed stays 0: --seed varies the samples, not the feature space.
    extractor = build_extractor(features, real_set, classifier=classifier, weights=weights, cache=cache,
                                progress=progress)
    if features == "classifier" and fake_set.classes and extractor.classifier.spec.classes \
            and "agreement" in names and fake_set.classes != extractor.classifier.spec.classes[: len(fake_set.classes)]:
        raise UserError(f"the classifier's classes {extractor.classifier.spec.classes} are not the generator's "
                        f"{fake_set.classes}")

    t0 = time.time()
    real_feats, real_logits, _, cached = cached_features(real_set, extractor, batch_size=batch_size,
                                                         progress=progress, cache=cache)
    keep = CAS_SAMPLES if "cas" in names else 0
    fake_feats, fake_logits, fake_labels, fake_sample = stream_features(fake_set, extractor, batch_size=batch_size,
                                                                        progress=progress, keep=keep)
    real_sample = real_set.collect(CAS_SAMPLES) if "cas" in names and real_set.labelled else None
    out.update(score(real_feats, fake_feats, names, real_logits=real_logits, fake_logits=fake_logits,
                     fake_labels=fake_labels, mixture=real_set.mixture, features=features,
                     fake_sample=fake_sample, real_sample=real_sample, seed=seed))
    out["features"] = features
    out["ref_cached"] = cached
    out["seconds"] = round(time.time() - t0, 3)
    return out


def _builtins() -> set[str]:
    from gankit.data.builtin import BUILTINS

    return set(BUILTINS)


def _open_pair(real: str | Path | SampleSet, fake: str | Path | SampleSet) -> tuple[SampleSet, SampleSet]:
    """Open two sets; a built-in one takes the other's image size and channels."""
    def is_builtin(s: Any) -> bool:
        return not isinstance(s, SampleSet) and str(s).partition(":")[0] in _builtins() and not Path(str(s)).exists()

    sets: dict[str, SampleSet] = {}
    for key, spec in (("real", real), ("fake", fake)):
        if isinstance(spec, SampleSet):
            sets[key] = spec
        elif not is_builtin(spec):
            sets[key] = open_set(spec)
    for key, spec in (("real", real), ("fake", fake)):
        if key not in sets:
            other = sets.get("fake" if key == "real" else "real")
            if other is not None and other.kind == "image":
                sets[key] = open_set(spec, size=other.shape[-1], channels=other.shape[0])
            else:
                sets[key] = open_set(spec)
    return sets["real"], sets["fake"]


def format_table(result: dict[str, Any]) -> str:
    """A readable table of a result from :func:`evaluate`."""
    rows = []
    for key, value in result.items():
        if key in ("n_real", "n_fake", "features", "step", "ref_cached", "seconds") or key.startswith("agreement_"):
            continue
        better = "higher" if key in HIGHER_IS_BETTER else "lower" if key in LOWER_IS_BETTER else ""
        if key in ("kid_std", "is_std"):
            better = ""
        rows.append((key, f"{value:.6g}" if isinstance(value, float) else str(value), better))
    width = max([len(r[0]) for r in rows] + [6])
    lines = [f"{'metric':<{width}}  {'value':>12}  better", f"{'-' * width}  {'-' * 12}  ------"]
    lines += [f"{k:<{width}}  {v:>12}  {b}" for k, v, b in rows]
    info = f"n_real {result.get('n_real')}, n_fake {result.get('n_fake')}, features {result.get('features')}"
    if "step" in result:
        info += f", step {result['step']}"
    if result.get("ref_cached"):
        info += ", reference features from cache"
    lines.append(info)
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# during training


def best_key(name: str) -> str:
    return BEST_ALIASES.get(name, name)


class EvalHook:
    """Evaluates ``config.eval.metrics`` on the EMA generator every ``eval.every`` steps (at the first
    logging step at or after each multiple, and at the last step), adds them to the step's record in
    ``metrics.jsonl`` and keeps the best checkpoint by ``eval.best`` (written to ``best.json``).

    Features: ``eval.classifier`` if set; else, with ``eval.features=classifier`` and labelled data, a
    classifier trained once on the real data and cached under ``$GANKIT_HOME/cache/classifiers``
    (a few seconds on digits); unlabelled data falls back to raw features, with a warning.
    """

    def __init__(self, config: Any, data: Any, device: Any, *, progress: bool = False):
        from gankit.data import to_data_units

        cfg = config.eval
        self.every, self.n = cfg.every, cfg.n
        self.names = parse_metrics(cfg.metrics)
        # Refuse now what would fail at the first evaluation: k-NN metrics need k + 1 samples, IS 10 splits.
        need = max([2] + [{"pr": 4, "dc": 6, "is": 10}.get(m, 2) for m in self.names])
        if distributed.world().size > self.n:  # every process embeds a share of the samples
            raise UserError(f"eval.n={self.n} is smaller than the number of processes ({distributed.world().size})")
        if min(self.n, len(data)) < need:
            raise UserError(f"eval.metrics={cfg.metrics} needs at least {need} samples; eval.n is {self.n} and the "
                            f"data set has {len(data)}")
        self.best = best_key(cfg.best) if cfg.best else ""
        self.meta = data.meta()
        self.device = device
        self.conditional = bool(config.data.conditional)
        self.z_dim = config.train.z_dim
        self.steps = config.train.steps
        x = to_data_units(data.x, self.meta)
        y = data.y
        real = SampleSet(data.name or "training data", data.kind, tuple(x.shape[1:]), len(x), _tensor_reader(x, y),
                         data.classes, y is not None,
                         _sha("train-data", x.numpy().tobytes(), y.numpy().tobytes() if y is not None else b""))
        from gankit.data.builtin import MIXTURES

        real.mixture = data.name if data.kind == "vector" and data.name in MIXTURES else None
        self.features = cfg.features
        classifier = cfg.classifier or None
        if self.features == "classifier" and classifier is None and not (real.labelled and len(real.classes) >= 2):
            warnings.warn("eval: the data has no class labels to train a feature classifier on; using raw "
                          "features (set eval.classifier=FILE for classifier features)", stacklevel=2)
            self.features = "raw"
        self.extractor = build_extractor(self.features, real, classifier=classifier, weights=cfg.weights or None,
                                         progress=progress)
        self.real_feats, self.real_logits, _, _ = stream_features(real, self.extractor, progress=progress)
        self.real = real
        self.real_sample = real.collect(CAS_SAMPLES) if "cas" in self.names else None
        if self.best and not self._produces(self.best):
            raise UserError(f"eval.best={cfg.best} is not among the values of eval.metrics={cfg.metrics}")
        if self.best and self.best not in HIGHER_IS_BETTER | LOWER_IS_BETTER:
            raise UserError(f"eval.best={cfg.best}: no better direction is known; choose one of "
                            f"{', '.join(sorted(HIGHER_IS_BETTER | LOWER_IS_BETTER))}")
        gen = torch.Generator().manual_seed(97)  # the same latents at every evaluation: comparable numbers
        self.z = torch.randn(self.n, self.z_dim, generator=gen)
        k = len(data.classes)
        self.y = torch.arange(self.n) % k if self.conditional and k else None
        self.prev_step: int | None = None
        self.best_value: float | None = None
        self.restored = False

    def _produces(self, key: str) -> bool:
        produced = {"fid": {"fid"}, "kid": {"kid_mean", "kid_std"}, "is": {"is_mean", "is_std"},
                    "pr": {"precision", "recall"}, "dc": {"density", "coverage"}, "modes": {"modes", "hq", "reverse_kl"},
                    "cas": {"cas"}, "agreement": {"agreement"}}
        return any(key in produced.get(n, set()) for n in self.names)

    def _restore_best(self, trainer: Any) -> None:
        """A resumed run keeps competing against the best it recorded (if that checkpoint still exists)."""
        from gankit.checkpoint import read_manifest

        best = read_best(trainer.run_dir)
        if not best or best.get("metric") != self.best or best.get("step", 1 << 62) > trainer.state.step:
            return
        if any(e.get("step") == best["step"] for e in read_manifest(trainer.ckpt_dir)):
            self.best_value = float(best["value"])
            trainer.best_steps = {int(best["step"])}

    @torch.no_grad()
    def sample(self, G: torch.nn.Module, z: Tensor, y: Tensor | None) -> Tensor:
        from gankit.data import to_data_units

        outs = [torch.empty(0, *self.real.shape)]
        for i in range(0, len(z), 256):
            yb = y[i : i + 256].to(self.device) if y is not None else None
            outs.append(G(z[i : i + 256].to(self.device), yb).float().cpu())
        return to_data_units(torch.cat(outs), self.meta)

    def evaluate(self, G: torch.nn.Module) -> dict[str, float]:
        """Under torchrun each rank generates and embeds its own share of the ``eval.n`` samples; the
        features are gathered, so every rank scores the same whole set (and takes the same decisions)."""
        part = distributed.shard(self.n)
        y = self.y[part] if self.y is not None else None
        x = self.sample(G, self.z[part], y)
        if not distributed.all_ranks(bool(torch.isfinite(x).all())):
            return {}
        fake = SampleSet("generated", self.real.kind, self.real.shape, len(x), _tensor_reader(x, y),
                         self.real.classes, self.y is not None)
        keep = CAS_SAMPLES if "cas" in self.names else 0
        feats, logits, labels, sample = stream_features(fake, self.extractor, progress=False, keep=keep)
        feats, logits, labels = (distributed.gather_rows(a) for a in (feats, logits, labels))
        if sample is not None:
            xs, ys = distributed.gather_rows(sample[0]), distributed.gather_rows(sample[1])
            sample = (xs[:keep], ys[:keep] if ys is not None else None)
        return score(self.real_feats, feats, self.names, real_logits=self.real_logits, fake_logits=logits,
                     fake_labels=labels, mixture=self.real.mixture, features=self.features, fake_sample=sample,
                     real_sample=self.real_sample)

    def due(self, trainer: Any, step: int) -> bool:
        prev = self.prev_step if self.prev_step is not None else step - trainer.log_cfg.every
        self.prev_step = step
        return step // self.every > max(prev, 0) // self.every or step == self.steps

    def on_log(self, trainer: Any, record: dict[str, Any]) -> None:
        step = record["step"]
        if trainer.state.step != step:  # an earlier hook rolled the run back: this record is void
            self.prev_step = trainer.state.step
            return
        if not self.restored:
            self.restored = True
            if self.best:
                self._restore_best(trainer)
        if not self.due(trainer, step):
            return
        t0 = time.time()
        values = self.evaluate(trainer.G_ema)
        if not values:
            record["eval_nonfinite"] = 1
            return
        values.pop("n_real", None)
        values.pop("n_fake", None)
        record.update({k: float(v) for k, v in values.items()})
        record["eval_seconds"] = round(time.time() - t0, 3)
        if self.best and math.isfinite(values[self.best]):
            value = float(values[self.best])
            better = self.best_value is None or (value > self.best_value if self.best in HIGHER_IS_BETTER
                                                 else value < self.best_value)
            if distributed.from_rank0(better):  # saving ends in a barrier: every rank must take this branch
                self.best_value = value
                trainer.best_steps = {step}
                trainer.save()
                from gankit.checkpoint import atomic_write_json

                atomic_write_json(trainer.run_dir / "best.json", {"step": step, "metric": self.best, "value": value})
                record["best_step"] = step


def make_eval_hook(config: Any, data: Any, device: Any) -> EvalHook | None:
    """The periodic-evaluation hook for :func:`gankit.tasks.gan.train`, or None when ``eval.every`` is 0."""
    if config.eval.every <= 0:
        return None
    return EvalHook(config, data, device)


def read_best(run_dir: str | Path) -> dict[str, Any] | None:
    """The best checkpoint recorded by :class:`EvalHook` (``best.json``), or None."""
    path = Path(run_dir) / "best.json"
    return json.loads(path.read_text()) if path.is_file() else None
