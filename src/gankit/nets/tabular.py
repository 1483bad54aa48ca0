"""Networks for tables (Xu et al., 2019, "CTGAN"): a residual generator whose outputs are tanh scalars
and Gumbel-softmax one-hot groups, and a PacGAN critic that judges ``pack`` rows jointly.

Both take the encoded layout as a list of ``(start, width, act)`` spans from
:class:`gankit.data.table_transform.TableTransformer`; nothing here knows about pandas.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class Residual(nn.Module):
    """Linear -> BatchNorm -> ReLU, its output concatenated to its input (the CTGAN block)."""

    def __init__(self, i: int, o: int):
        super().__init__()
        self.fc, self.bn = nn.Linear(i, o), nn.BatchNorm1d(o)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([F.relu(self.bn(self.fc(x))), x], dim=1)


class SpanLayout(nn.Module):
    """Index tensors that apply the output activations to all spans of one kind and width at once, so
    a table with fifty columns costs a handful of tensor operations rather than fifty."""

    def __init__(self, spans: Sequence[tuple[int, int, str]], dim: int):
        super().__init__()
        tanh = [s for s, w, a in spans if a == "tanh"]
        groups: dict[int, list[int]] = defaultdict(list)
        for s, w, a in spans:
            if a == "softmax":
                groups[w].append(s)
        self.widths = sorted(groups)
        self.register_buffer("tanh_idx", torch.tensor(tanh, dtype=torch.long), persistent=False)
        order = list(tanh)
        for w in self.widths:
            # Laid out (category, group), so that activate() can take each group's softmax over a leading
            # dimension.
            idx = torch.tensor([[s + j for s in groups[w]] for j in range(w)], dtype=torch.long)
            self.register_buffer(f"soft_{w}", idx, persistent=False)
            order += idx.flatten().tolist()
        if sorted(order) != list(range(dim)):
            raise ValueError("spans must tile the encoded vector exactly")
        self.register_buffer("inverse", torch.argsort(torch.tensor(order)), persistent=False)
        self.n_soft = dim - len(tanh)  # positions that get Gumbel noise

    def groups(self) -> list[tuple[int, Tensor]]:
        return [(w, getattr(self, f"soft_{w}")) for w in self.widths]

    def activate(self, raw: Tensor, tau: float, hard: bool) -> Tensor:
        """tanh on scalars, Gumbel-softmax (Jang et al., 2017) on one-hot groups; ``hard`` gives exact
        one-hots (a sample from each group's softmax, gradients straight through) for generation."""
        # Worked on as (column, row): the generator computes its output transposed, so these row gathers
        # and reductions over a leading dimension read contiguous memory (index_select on rows is several
        # times faster than gathering columns).
        cols = raw.t()
        parts = [torch.tanh(cols.index_select(0, self.tanh_idx))]
        # One uniform draw for every group's Gumbel noise, -log(-log u): on CPU PyTorch's exponential
        # sampler (what F.gumbel_softmax uses) costs about three times as much, once per group.
        u = torch.rand(self.n_soft, raw.shape[0], device=raw.device, dtype=raw.dtype)
        gumbel, at = -torch.log(-torch.log(u.clamp_(min=torch.finfo(raw.dtype).tiny))), 0
        for w, idx in self.groups():
            k = idx.shape[1]
            logits = cols.index_select(0, idx.flatten()) + gumbel[at : at + w * k]
            at += w * k
            y = torch.softmax(logits.view(w, k, raw.shape[0]) / tau, dim=0)
            if hard:
                one_hot = torch.zeros_like(y).scatter_(0, y.argmax(dim=0, keepdim=True), 1.0)
                y = one_hot - y.detach() + y
            parts.append(y.flatten(0, 1))
        return torch.cat(parts).index_select(0, self.inverse).t()


class TabularGenerator(nn.Module):
    """z and the conditional vector -> one encoded row; ``forward`` returns (activated, raw logits)."""

    def __init__(self, z_dim: int, cond_dim: int, spans: Sequence[tuple[int, int, str]], data_dim: int,
                 hidden: Sequence[int] = (256, 256), tau: float = 0.2):
        super().__init__()
        self.z_dim, self.cond_dim, self.tau = z_dim, cond_dim, tau
        blocks, width = [], z_dim + cond_dim
        for h in hidden:
            blocks.append(Residual(width, h))
            width += h
        self.body = nn.Sequential(*blocks)
        self.out = nn.Linear(width, data_dim)
        self.layout = SpanLayout(spans, data_dim)

    def forward(self, z: Tensor, cond: Tensor, hard: bool = False) -> tuple[Tensor, Tensor]:
        x = torch.cat([z, cond], dim=1)
        # The same function as ``out(body(x))``, computed without the concatenations: every layer sees x
        # (the last columns of its input), so one product gives x's share of all layers, and the backward
        # pass computes no input gradient for x, which needs none (BENCHMARKS.md, tables: what it saves).
        layers = [block.fc for block in self.body] + [self.out]
        d = x.shape[1]
        shares = F.linear(x, torch.cat([lin.weight[:, -d:] for lin in layers]), torch.cat([lin.bias for lin in layers]))
        shares = shares.split([lin.out_features for lin in layers], dim=1)
        hidden: list[Tensor] = []  # newest first, the order the blocks concatenate in
        for i, block in enumerate(self.body):
            # (a column slice is copied: batch norm's backward is several times slower on a strided input)
            pre = shares[i].contiguous() if not hidden else torch.addmm(shares[i], _cat(hidden), _own(block.fc, d).t())
            hidden.insert(0, F.relu(block.bn(pre)))
        if not hidden:
            raw = shares[-1]
        else:
            # Computed transposed: a product whose last dimension is the few output columns runs at half the
            # speed of its transpose on a CPU, forward and backward.
            raw = torch.addmm(shares[-1].t(), _own(self.out, d), _cat(hidden).t()).t()
        return self.layout.activate(raw, self.tau, hard), raw


def _own(lin: nn.Linear, d: int) -> Tensor:
    """The weights of ``lin`` for the inputs other than the last ``d``, contiguous: the backward pass then
    computes their gradient in the faster of its two layouts."""
    return lin.weight[:, :-d].contiguous()


def _cat(tensors: list[Tensor]) -> Tensor:
    return tensors[0] if len(tensors) == 1 else torch.cat(tensors, dim=1)


class UniformDropout(nn.Dropout):
    """nn.Dropout with the mask drawn as ``uniform >= p``. On a CPU PyTorch's Bernoulli sampler costs about
    twice as much as uniform draws, and the critic applies dropout eight times a step (two layers, four
    passes); on other devices the native fused kernel is used."""

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0 or x.device.type != "cpu":
            return super().forward(x)
        return x * ((torch.rand_like(x) >= self.p) * (1.0 / (1.0 - self.p)))


class PackedCritic(nn.Module):
    """PacGAN (Lin et al., 2018) critic: ``pack`` rows (with their conditional vectors) side by side
    form one input, so a generator that repeats itself is easy to spot."""

    def __init__(self, in_dim: int, hidden: Sequence[int] = (256, 256), pack: int = 10, dropout: float = 0.5):
        super().__init__()
        self.pack = pack
        layers, width = [], in_dim * pack
        for h in hidden:
            layers += [nn.Linear(width, h), nn.LeakyReLU(0.2), UniformDropout(dropout)]
            width = h
        layers.append(nn.Linear(width, 1))
        self.body = nn.Sequential(*layers)

    def packed(self, x: Tensor) -> Tensor:
        if x.shape[0] % self.pack:
            raise ValueError(f"batch size {x.shape[0]} is not a multiple of pack={self.pack}")
        return x.reshape(x.shape[0] // self.pack, -1)

    def forward(self, x: Tensor) -> Tensor:
        return self.body(self.packed(x))
