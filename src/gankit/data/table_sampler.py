"""Training-by-sampling (Xu et al., 2019): conditional vectors and the real rows that match them.

Each batch row picks a categorical column uniformly, then one of its categories with probability
proportional to the log of its frequency (so rare categories are seen often enough to be learnt), then a
real row holding that category. All of it is vectorised: a batch costs a few tensor operations.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import Tensor

from gankit.data.table_transform import Span


class ConditionalBatches:
    """Endless batches ``{"x": rows, "c": conditional vectors, "col": column, "cat": category}``.

    ``x`` is the encoded table (N, D). Its own random generator makes the draws reproducible and
    resumable (``state_dict``), like :class:`gankit.data.Batches`.
    """

    def __init__(self, x: Tensor, discrete: Sequence[Span], batch_size: int, seed: int = 0,
                 log_frequency: bool = True):
        self.x, self.batch_size = x, batch_size
        self.gen = torch.Generator().manual_seed(seed)
        n = x.shape[0]
        self.widths = [s.width for s in discrete]
        self.n_columns = len(discrete)
        self.cond_dim = sum(self.widths)
        offsets = torch.tensor([0] + self.widths[:-1], dtype=torch.long).cumsum(0) if discrete else torch.zeros(0)
        self.cond_offset = offsets.long()
        width = max(self.widths, default=1)
        counts = torch.zeros(self.n_columns, width)
        rows, starts = [], torch.zeros(self.n_columns, width, dtype=torch.long)
        for j, s in enumerate(discrete):
            codes = x[:, s.start : s.start + s.width].argmax(dim=1)
            counts[j, : s.width] = torch.bincount(codes, minlength=s.width).float()
            rows.append(torch.argsort(codes, stable=True))
            starts[j, : s.width] = j * n + torch.cumsum(counts[j, : s.width], 0).long() - counts[j, : s.width].long()
        self.counts = counts  # (columns, max categories), zero-padded
        self.rows = torch.cat(rows) if rows else torch.zeros(0, dtype=torch.long)
        self.starts = starts
        weights = torch.log1p(counts) if log_frequency else counts.clone()
        weights[counts == 0] = 0.0
        self.train_probs = weights / weights.sum(dim=1, keepdim=True).clamp_min(1e-12)
        self.true_probs = counts / counts.sum(dim=1, keepdim=True).clamp_min(1e-12)
        # Categories are drawn by inverting the cumulative probabilities (torch.multinomial costs five times
        # as much per batch); a draw that rounding carries past the last category with any mass is clamped.
        self._train_cdf = self.train_probs.cumsum(dim=1)
        positions = torch.arange(width).expand_as(counts)
        self._last_drawable = torch.where(self.train_probs > 0, positions, 0).amax(dim=1) if discrete else None

    def __iter__(self) -> Iterator[dict[str, Tensor]]:
        return self

    def draw(self, n: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        """(column, category) for ``n`` rows: columns uniform, categories from ``train_probs``."""
        col = torch.randint(self.n_columns, (n,), generator=gen)
        u = torch.rand(n, 1, generator=gen)
        cat = torch.searchsorted(self._train_cdf[col], u, right=True).squeeze(1)
        return col, torch.minimum(cat, self._last_drawable[col])

    def cond(self, col: Tensor, cat: Tensor) -> Tensor:
        return torch.zeros(col.shape[0], self.cond_dim).scatter_(1, (self.cond_offset[col] + cat).unsqueeze(1), 1.0)

    def __next__(self) -> dict[str, Tensor]:
        b = self.batch_size
        if self.n_columns == 0:
            idx = torch.randint(self.x.shape[0], (b,), generator=self.gen)
            zeros = torch.zeros(b, dtype=torch.long, device=self.x.device)
            return {"x": self.x[idx.to(self.x.device)], "c": torch.zeros(b, 0, device=self.x.device),
                    "col": zeros, "cat": zeros}
        col, cat = self.draw(b, self.gen)
        pick = (torch.rand(b, generator=self.gen) * self.counts[col, cat]).long()
        idx = self.rows[self.starts[col, cat] + pick]
        dev = self.x.device
        return {"x": self.x.index_select(0, idx.to(dev)), "c": self.cond(col, cat).to(dev), "col": col.to(dev),
                "cat": cat.to(dev)}

    def state_dict(self) -> dict[str, Tensor]:
        return {"gen": self.gen.get_state()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.gen.set_state(state["gen"])
