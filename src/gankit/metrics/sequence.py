"""Sequence metrics: BLEU-4 (quality), self-BLEU (diversity), novelty, and MuseGAN-style music statistics.

BLEU follows Papineni et al. (2002) per sentence, with every reference sequence as a reference (clipped
n-gram counts, brevity penalty against the closest reference length, uniform weights over 1..4-grams)
and Chen & Cherry's (2014) smoothing 1 (a zero n-gram match count becomes 0.1), as in NLTK's
``sentence_bleu(..., smoothing_function=SmoothingFunction().method1)`` used by Texygen (Zhu et al., 2018).
Self-BLEU scores each sample against all the other samples: 1 means all samples are alike.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Sequence

import numpy as np

Tokens = Sequence[Hashable]
EPSILON = 0.1  # smoothing 1


def ngrams(seq: Tokens, n: int) -> Counter:
    return Counter(tuple(seq[i : i + n]) for i in range(len(seq) - n + 1))


class References:
    """The clipping counts of a reference set: for each n-gram, its largest count in any one reference."""

    def __init__(self, refs: Sequence[Tokens], max_n: int = 4):
        self.max_n = max_n
        self.max_counts: list[dict[tuple, int]] = [{} for _ in range(max_n + 1)]
        for ref in refs:
            for n in range(1, max_n + 1):
                table = self.max_counts[n]
                for g, c in ngrams(ref, n).items():
                    if c > table.get(g, 0):
                        table[g] = c
        self.lengths = np.array(sorted({len(r) for r in refs}))
        if len(self.lengths) == 0:
            raise ValueError("BLEU needs at least one reference")

    def closest_length(self, length: int) -> int:
        """The reference length closest to ``length`` (the shorter on ties, as NLTK)."""
        i = int(np.argmin(np.abs(self.lengths - length) * 2 + (self.lengths > length)))
        return int(self.lengths[i])


def bleu_from_counts(matches: list[int], totals: list[int], hyp_len: int, ref_len: int) -> float:
    """BLEU from clipped n-gram matches and n-gram totals (orders 1..N), with smoothing 1."""
    if hyp_len == 0:
        return 0.0
    if matches[0] == 0:
        return 0.0  # no unigram in common: NLTK returns 0 here too
    log_p = 0.0
    for m, t in zip(matches, totals):
        t = max(t, 1)
        log_p += math.log((m if m > 0 else EPSILON) / t)
    bp = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / hyp_len)
    return bp * math.exp(log_p / len(matches))


def sentence_bleu(hyp: Tokens, refs: References, max_n: int = 4) -> float:
    matches, totals = [], []
    for n in range(1, max_n + 1):
        counts = ngrams(hyp, n)
        table = refs.max_counts[n]
        matches.append(sum(min(c, table.get(g, 0)) for g, c in counts.items()))
        totals.append(sum(counts.values()))
    return bleu_from_counts(matches, totals, len(hyp), refs.closest_length(len(hyp)))


def bleu(hyps: Sequence[Tokens], refs: Sequence[Tokens] | References, max_n: int = 4) -> float:
    """Mean sentence BLEU-``max_n`` of ``hyps`` against the whole reference set."""
    table = refs if isinstance(refs, References) else References(refs, max_n)
    if not hyps:
        return 0.0
    return float(np.mean([sentence_bleu(h, table, max_n) for h in hyps]))


def self_bleu(samples: Sequence[Tokens], max_n: int = 4) -> float:
    """Mean BLEU of each sample against all the others (Zhu et al., 2018). Lower = more diverse."""
    if len(samples) < 2:
        raise ValueError("self-BLEU needs at least two samples")
    # For leave-one-out clipping keep, per n-gram, the two largest counts and how many samples hold the largest.
    top: list[dict[tuple, list[int]]] = [{} for _ in range(max_n + 1)]
    per_sample = [[ngrams(s, n) for n in range(max_n + 1)] for s in samples]
    for grams in per_sample:
        for n in range(1, max_n + 1):
            table = top[n]
            for g, c in grams[n].items():
                first, holders, second = table.get(g, (0, 0, 0))
                if c > first:
                    first, holders, second = c, 1, first
                elif c == first:
                    holders += 1
                elif c > second:
                    second = c
                table[g] = [first, holders, second]
    lengths = Counter(len(s) for s in samples)
    scores = []
    for s, grams in zip(samples, per_sample):
        matches, totals = [], []
        for n in range(1, max_n + 1):
            m = 0
            for g, c in grams[n].items():
                first, holders, second = top[n][g]
                others = first if (c < first or holders > 1) else second
                m += min(c, others)
            matches.append(m)
            totals.append(sum(grams[n].values()))
        lengths[len(s)] -= 1
        others_len = np.array([k for k, v in lengths.items() if v > 0])
        lengths[len(s)] += 1
        ref_len = int(others_len[np.argmin(np.abs(others_len - len(s)) * 2 + (others_len > len(s)))])
        scores.append(bleu_from_counts(matches, totals, len(s), ref_len))
    return float(np.mean(scores))


def novelty(samples: Sequence[Tokens], train: set[tuple]) -> float:
    """Share of samples that are not a training sequence."""
    if not samples:
        return 0.0
    return float(np.mean([tuple(s) not in train for s in samples]))


def unique_share(samples: Sequence[Tokens]) -> float:
    return len({tuple(s) for s in samples}) / max(len(samples), 1)


def text_metrics(samples: Sequence[Tokens], refs: Sequence[Tokens], train: set[tuple] | None = None,
                 self_bleu_n: int = 500) -> dict[str, float]:
    """BLEU-4 against ``refs``, self-BLEU-4 (on at most ``self_bleu_n`` samples), novelty, uniqueness, length."""
    out = {"bleu4": bleu(samples, refs), "self_bleu4": self_bleu(list(samples)[:self_bleu_n]),
           "unique": unique_share(samples), "mean_len": float(np.mean([len(s) for s in samples])),
           "ref_mean_len": float(np.mean([len(r) for r in refs]))}
    if train is not None:
        out["novelty"] = novelty(samples, train)
    return out


# ---------------------------------------------------------------------------------------------
# music (MuseGAN, Dong et al., 2018)

MAJOR = np.array([0, 2, 4, 5, 7, 9, 11])


def _runs(roll: np.ndarray) -> np.ndarray:
    """Lengths of all runs of active steps, pitch by pitch, in a (steps, pitches) roll."""
    padded = np.zeros((roll.shape[0] + 2, roll.shape[1]), dtype=np.int8)
    padded[1:-1] = roll
    d = np.diff(padded, axis=0)
    starts = np.argwhere(d.T == 1)
    ends = np.argwhere(d.T == -1)
    return ends[:, 1] - starts[:, 1]  # both ordered by pitch, then time


def music_stats(rolls: np.ndarray, low_pitch: int = 36, min_len: int = 2) -> dict[str, float]:
    """MuseGAN-style statistics of boolean piano-rolls (N, bars, steps, pitches):

    - ``empty_bar_rate``: share of bars with no note;
    - ``pitch_classes_per_bar``: used pitch classes per non-empty bar;
    - ``qualified_note_rate``: share of notes at least ``min_len`` steps long (MuseGAN counts notes of at
      least a 32nd; at this roll's 16th-note resolution that would be every note, so an 8th is used);
    - ``in_scale_rate``: share of sounding note-steps in the best-fitting major scale of each sample;
    - ``polyphony``: mean number of pitches sounding at steps where any sounds.
    """
    rolls = np.asarray(rolls, dtype=bool)
    n, bars, steps, pitches = rolls.shape
    per_bar = rolls.reshape(n * bars, steps, pitches)
    active_bars = per_bar.any(axis=(1, 2))
    pc = np.zeros((n * bars, 12), dtype=bool)
    classes = (np.arange(pitches) + low_pitch) % 12
    for c in range(12):
        pc[:, c] = per_bar[:, :, classes == c].any(axis=(1, 2))
    upc = float(pc[active_bars].sum(1).mean()) if active_bars.any() else 0.0
    run_lengths = np.concatenate([_runs(r.reshape(bars * steps, pitches)) for r in rolls]) if n else np.zeros(0)
    qualified = float((run_lengths >= min_len).mean()) if run_lengths.size else 0.0
    in_scale = []
    for r in rolls:
        hist = np.bincount(classes, weights=r.reshape(-1, pitches).sum(0), minlength=12)
        if hist.sum() > 0:
            in_scale.append(max(hist[(MAJOR + k) % 12].sum() for k in range(12)) / hist.sum())
    steps_flat = rolls.reshape(-1, pitches).sum(1)
    sounding = steps_flat[steps_flat > 0]
    return {"empty_bar_rate": float(1 - active_bars.mean()), "pitch_classes_per_bar": upc,
            "qualified_note_rate": qualified, "in_scale_rate": float(np.mean(in_scale)) if in_scale else 0.0,
            "polyphony": float(sounding.mean()) if sounding.size else 0.0}


def music_distances(real: dict[str, float], fake: dict[str, float]) -> dict[str, float]:
    """|real - generated| for each statistic."""
    return {k: abs(real[k] - fake[k]) for k in real}
