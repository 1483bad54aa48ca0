"""Benchmark: gankit eval on digits with classifier features. Prints one JSON object.

1. A classifier trained on the digits train split (`digits:train`, 1438 images at 16x16, seed 0); its
   accuracy on the test split (`digits:test`, 359 images).
2. FID / KID / precision / recall / density / coverage (and IS) in that classifier's feature space,
   always against the test split:
   - floor: the train split itself (real vs real: the best any generator can hope for at these sizes);
   - each --run: its EMA generator, as many samples as the train split;
   - untrained: the same generator architecture with its initial weights.
   The ratio of each run's FID to the floor is reported.
3. Speed: features and metrics (fid, kid, pr, dc) for 10,000 generated digits against 10,000 reference
   digits (the 1797 real digits, each repeated with random shifts of up to 1 pixel), wall time.

Train the generator first, on the train split so that the test split stays unseen, e.g.:
  python -c "from gankit.eval import open_set; import numpy as np; x, y = open_set('digits:train').collect(); \
np.savez('/tmp/digits_train.npz', images=x.numpy(), labels=y.numpy())"
  gankit train --preset digits --set data.source=/tmp/digits_train.npz --out /tmp/evalbench_run
  python benchmarks/eval_digits.py --run /tmp/evalbench_run
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from gankit.classifier import Classifier, train_classifier
from gankit.eval import SampleSet, _tensor_reader, open_set, score, stream_features
from gankit.metrics.features import ClassifierExtractor
from gankit.tasks.gan import Generator, build_nets, load

METRICS = ["fid", "kid", "pr", "dc", "is"]


def features(sset, extractor, batch_size=256):
    feats, logits, _, _ = stream_features(sset, extractor, batch_size=batch_size, progress=False)
    return feats, logits


def in_memory(name, x):
    return SampleSet(name, "image", tuple(x.shape[1:]), len(x), _tensor_reader(x, None))


def untrained(run_dir: Path) -> Generator:
    gen = load(run_dir)
    torch.manual_seed(gen.config.train.seed)
    G, _ = build_nets(gen.config, gen.data_meta)
    return Generator(G, gen.config, gen.data_meta, 0)


def sample(gen: Generator, n: int, seed: int) -> torch.Tensor:
    return gen.sample(n, seed=seed)


def shifted_digits(n: int, seed: int) -> torch.Tensor:
    """n real digits at 16x16: the 1797 digits repeated, each copy shifted by up to 1 pixel."""
    x, _ = open_set("digits").collect()
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(x), n)
    shifts = rng.integers(-1, 2, (n, 2))
    out = torch.empty(n, *x.shape[1:])
    for i, (j, (dy, dx)) in enumerate(zip(idx, shifts)):
        out[i] = torch.roll(x[j], shifts=(int(dy), int(dx)), dims=(1, 2))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", action="append", default=[], help="a digits run folder (repeatable)")
    p.add_argument("--classifier", help="reuse this classifier file instead of training one")
    p.add_argument("--save-classifier", default="/tmp/evalbench_digits_clf.safetensors")
    p.add_argument("--speed-n", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: PyTorch's default)")
    p.add_argument("--speed-only", action="store_true", help="only the 10k vs 10k speed check")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    result: dict = {"machine": f"{platform.machine()} {torch.get_num_threads()} torch threads",
                    "python": sys.version.split()[0], "torch": torch.__version__, "seed": args.seed}

    train_set, test_set = open_set("digits:train"), open_set("digits:test")
    t0 = time.time()
    if args.classifier:
        clf = Classifier.load(args.classifier)
    else:
        x, y = train_set.collect()
        clf = train_classifier(x, y, seed=args.seed, classes=train_set.classes)
        clf.save(args.save_classifier)
    xt, yt = test_set.collect()
    result["classifier"] = {"train_seconds": round(time.time() - t0, 1), "test_accuracy": clf.accuracy(xt, yt.numpy()),
                            "file": args.classifier or args.save_classifier}
    extractor = ClassifierExtractor(clf)

    ref_feats, ref_logits = features(test_set, extractor)
    n = train_set.n

    def measure(feats, logits):
        out = score(ref_feats, feats, METRICS, real_logits=ref_logits, fake_logits=logits, features="classifier",
                    seed=args.seed)
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in out.items()}

    floor = measure(*features(train_set, extractor)) if not args.speed_only else {"fid": float("nan")}
    if not args.speed_only:
        result["floor_train_vs_test"] = floor
    for run in args.run if not args.speed_only else []:
        gen = load(run)
        entry = measure(*features(in_memory("gen", sample(gen, n, args.seed + 1)), extractor))
        entry["step"] = gen.step
        entry["fid_ratio_to_floor"] = round(entry["fid"] / floor["fid"], 3)
        result[f"trained:{run}"] = entry
    if args.run and not args.speed_only:
        gen0 = untrained(Path(args.run[0]))
        entry = measure(*features(in_memory("untrained", sample(gen0, n, args.seed + 1)), extractor))
        entry["fid_ratio_to_floor"] = round(entry["fid"] / floor["fid"], 3)
        result["untrained"] = entry

    # Speed: 10k generated vs 10k reference digits, features + metrics (generation timed apart).
    m = args.speed_n
    t0 = time.time()
    fake = sample(load(args.run[0]), m, args.seed + 2) if args.run else shifted_digits(m, args.seed + 2)
    gen_s = time.time() - t0
    real = shifted_digits(m, args.seed + 3)
    t0, cpu0 = time.time(), time.process_time()
    rf, _ = features(in_memory("real", real), extractor)
    ff, _ = features(in_memory("fake", fake), extractor)
    t_feat = time.time() - t0
    per_metric, values = {}, {}
    for name in ("fid", "kid", "pr,dc"):  # pr and dc share one pass over the pairwise distances
        t1 = time.time()
        values.update(score(rf, ff, name.split(","), features="classifier", seed=args.seed))
        per_metric[name] = round(time.time() - t1, 2)
    t_metrics = sum(per_metric.values())
    cpu = time.process_time() - cpu0
    result["speed"] = {"n_real": m, "n_fake": m, "features_seconds": round(t_feat, 2),
                       "metrics_seconds": round(t_metrics, 2), "per_metric_seconds": per_metric,
                       "total_seconds": round(t_feat + t_metrics, 2), "cpu_seconds_all_threads": round(cpu, 2),
                       "generation_seconds_not_counted": round(gen_s, 2), "target_seconds": 60,
                       "fid": round(values["fid"], 4), "precision": round(values["precision"], 4)}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
