"""Networks for tables (Xu et al., 2019, "CTGAN"): a residual generator whose outputs are tanh scalars
and Gumbel-softmax one-hot groups, and a PacGAN critic that judges ``pack`` rows jointly.

Both take the encoded layout as a list of ``(start, width, act)`` spans from
:class:`gankit.data.table_transform.TableTransformer`; nothing here knows about pandas.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from contextlib import nullcontext
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class BlockLinear(nn.Module):
    """A linear layer on the concatenation ``[h, x]`` whose weight is kept as its two column blocks, ``w_h``
    for ``h`` and ``w_x`` for ``x`` (initialised as ``nn.Linear(len(h) + len(x), out)``). Every layer of
    CTGAN's residual generator sees ``x = (z, cond)``: kept apart, x's share needs no input gradient, and no
    weight is sliced or concatenated in a step (BENCHMARKS.md, tables: what it saves)."""

    def __init__(self, h: int, x: int, o: int):
        super().__init__()
        full = nn.Linear(h + x, o)  # the usual initialisation, then split
        self.w_h = nn.Parameter(full.weight.detach()[:, :h].clone()) if h else None
        self.w_x = nn.Parameter(full.weight.detach()[:, h:].clone())
        self.bias = nn.Parameter(full.bias.detach().clone())

    def forward(self, h: Tensor | None, x: Tensor) -> Tensor:
        y = torch.addmm(self.bias, x, self.w_x.t())
        return y if h is None else torch.addmm(y, h, self.w_h.t())

    def forward_t(self, h: Tensor | None, x: Tensor) -> Tensor:
        """The output transposed, (out, rows): a product whose last dimension is a few output columns runs
        at half the speed of its transpose on a CPU, forward and backward."""
        y = torch.addmm(self.bias.unsqueeze(1), self.w_x, x.t())
        return y if h is None else torch.addmm(y, self.w_h, h.t())


class SpanLayout(nn.Module):
    """Where each encoded column sits among the generator's raw outputs, which come *grouped*: first the
    tanh scalars, then for each one-hot width w its groups laid out (category, group). Each activation
    then works on one contiguous block of rows, so a table with fifty columns costs a handful of tensor
    operations rather than fifty, with no gathers."""

    def __init__(self, spans: Sequence[tuple[int, int, str]], dim: int):
        super().__init__()
        tanh = [s for s, w, a in spans if a == "tanh"]
        groups: dict[int, list[int]] = defaultdict(list)
        for s, w, a in spans:
            if a == "softmax":
                groups[w].append(s)
        self.widths = sorted(groups)
        self.counts = [len(groups[w]) for w in self.widths]  # groups of each width
        order = list(tanh) + [s + j for w in self.widths for j in range(w) for s in groups[w]]
        if sorted(order) != list(range(dim)):
            raise ValueError("spans must tile the encoded vector exactly")
        # grouped row i holds encoded column order[i]; encoded column j is grouped row position[j]
        self.register_buffer("order", torch.tensor(order, dtype=torch.long), persistent=False)
        self.register_buffer("position", torch.argsort(self.order), persistent=False)
        self.n_tanh = len(tanh)

    def activate(self, raw_t: Tensor, tau: float, hard: bool) -> Tensor:
        """tanh on scalars, Gumbel-softmax (Jang et al., 2017) on one-hot groups; ``hard`` gives exact
        one-hots (a sample from each group's softmax, gradients straight through) for generation.
        ``raw_t``: the raw outputs as (grouped row, batch row); returns (batch row, encoded column)."""
        # Worked on as (column, row): reductions over a leading dimension read contiguous memory (a CPU
        # softmax over a last dimension of 4-6 categories took four times as long).
        n, t = raw_t.shape[1], self.n_tanh
        parts = [torch.tanh(raw_t[:t])]
        # One uniform draw for every group's Gumbel noise, -log(-log u): on CPU PyTorch's exponential
        # sampler (what F.gumbel_softmax uses) costs about three times as much, once per group.
        u = torch.rand(raw_t.shape[0] - t, n, device=raw_t.device, dtype=raw_t.dtype)
        noisy = raw_t[t:] + u.clamp_(min=torch.finfo(raw_t.dtype).tiny).log_().neg_().log_().neg_()
        straight_through = hard and torch.is_grad_enabled() and raw_t.requires_grad
        if not hard or straight_through:
            noisy = noisy / tau
        at = 0
        for w, k in zip(self.widths, self.counts):
            logits = noisy[at : at + w * k].view(w, k, n)
            at += w * k
            if hard and not straight_through:
                # Sampling without gradients: the Gumbel-max trick, the one-hot of the noisy logits' argmax
                # (the softmax's argmax too), without the softmax. max's indices, not argmax: on a CPU argmax
                # over a leading dimension is some 20x slower.
                y = torch.zeros_like(logits).scatter_(0, logits.max(dim=0, keepdim=True).indices, 1.0)
            else:
                y = torch.softmax(logits, dim=0)
                if hard:
                    one_hot = torch.zeros_like(y).scatter_(0, y.max(dim=0, keepdim=True).indices, 1.0)
                    y = one_hot - y.detach() + y
            parts.append(y.flatten(0, 1))
        return torch.cat(parts).index_select(0, self.position).t()


class TabularGenerator(nn.Module):
    """z and the conditional vector -> one encoded row (Xu et al., 2019): residual blocks
    ``h_k = relu(bn(W_k [h_{k-1}, ..., h_1, x] + b_k))`` with ``x = (z, cond)``, then a linear layer on
    ``[h_K, ..., h_1, x]``, computed without the concatenations of x (:class:`BlockLinear`). ``forward``
    returns (activated rows in encoded order, raw logits with columns in ``layout.order``)."""

    def __init__(self, z_dim: int, cond_dim: int, spans: Sequence[tuple[int, int, str]], data_dim: int,
                 hidden: Sequence[int] = (256, 256), tau: float = 0.2):
        super().__init__()
        self.z_dim, self.cond_dim, self.tau = z_dim, cond_dim, tau
        d, width, blocks = z_dim + cond_dim, 0, []
        for h in hidden:
            block = nn.Module()
            block.fc, block.bn = BlockLinear(width, d, h), nn.BatchNorm1d(h)
            blocks.append(block)
            width += h
        self.body = nn.ModuleList(blocks)
        self.out = BlockLinear(width, d, data_dim)
        self.layout = SpanLayout(spans, data_dim)
        with torch.no_grad():  # the output layer's rows in grouped order (see SpanLayout)
            for p in (self.out.w_h, self.out.w_x, self.out.bias):
                if p is not None:
                    p.copy_(p[self.layout.order])

    def forward(self, z: Tensor, cond: Tensor, hard: bool = False) -> tuple[Tensor, Tensor]:
        x = torch.cat([z, cond], dim=1)
        hidden: list[Tensor] = []  # newest first, the order the blocks concatenate in
        for block in self.body:
            pre = block.fc(_cat(hidden), x)
            hidden.insert(0, F.relu(block.bn(pre), inplace=True))  # batch norm's backward needs no output
        # float32 from here (a no-op unless autocast made the products bfloat16): the Gumbel noise needs
        # uniform draws finer than bfloat16's 8 bits, and the softmax's outputs are the rows themselves.
        raw_t = self.out.forward_t(_cat(hidden), x)
        raw_t = raw_t.to(torch.promote_types(raw_t.dtype, torch.float32))
        return self.layout.activate(raw_t, self.tau, hard), raw_t.t()

    @staticmethod
    def from_plain(state: dict[str, Tensor], z_dim: int, cond_dim: int, order: Tensor) -> dict[str, Tensor]:
        """A state dict of the plain network (``body.k.fc`` and ``out`` as ``nn.Linear`` on the concatenated
        input, outputs in encoded order: gankit's model files of version 1) in this class's layout."""
        d, new = z_dim + cond_dim, {}
        for key, value in state.items():
            layer, _, name = key.rpartition(".")
            if name == "weight" and (layer == "out" or layer.endswith(".fc")):
                if layer == "out":
                    value = value[order]
                if value.shape[1] > d:
                    new[f"{layer}.w_h"] = value[:, :-d]
                new[f"{layer}.w_x"] = value[:, -d:]
            elif name == "bias" and (layer == "out" or layer.endswith(".fc")):
                new[key] = value[order] if layer == "out" else value
            else:
                new[key] = value
        return new


def _cat(tensors: list[Tensor]) -> Tensor | None:
    if not tensors:
        return None
    return tensors[0] if len(tensors) == 1 else torch.cat(tensors, dim=1)


# Per float dtype: the integer type whose random words give the mask bits, the fair bits in one word, and
# the bit whose setting alone spells 2.0 (dropout 0.5's scale) in that float format.
_MASK_WORDS = {torch.float32: (torch.int32, 31, 30), torch.bfloat16: (torch.int16, 15, 14)}
_SHIFTS = {t: torch.arange(bits, dtype=t) for t, bits, _ in _MASK_WORDS.values()}


def dropout_scale(shape: Sequence[int], p: float, like: Tensor) -> Tensor:
    """A dropout mask times its scale (0 or 1/(1-p)), shaped ``shape``, on ``like``'s device and dtype.

    On a CPU, PyTorch's samplers cost 4-5 ns a number (Bernoulli more), which made the critic's masks a
    tenth of a tabular step. For p = 0.5 in float32 (CTGAN's critic) each 31-bit random integer gives 31
    masks: bit j shifted to bit 30 is the IEEE single-precision pattern of 2.0, the scale, or 0. bfloat16
    (float32's top half) does the same with 15-bit words and bit 14."""
    if p == 0.5 and like.dtype in _MASK_WORDS and like.device.type == "cpu":
        int_type, bits, top = _MASK_WORDS[like.dtype]
        n = math.prod(shape)
        words = torch.empty(-(-n // bits), dtype=int_type).random_()  # uniform on [0, 2^bits): fair bits
        masks = (words.unsqueeze(1) >> _SHIFTS[int_type]).bitwise_and_(1).bitwise_left_shift_(top)
        return masks.view(like.dtype).flatten()[:n].view(shape)
    # drawn in float32: a bfloat16 uniform has 8 bits, too coarse for a keep rate of exactly 1 - p
    return ((torch.rand(shape, device=like.device) >= p) * (1.0 / (1.0 - p))).to(like.dtype)


class CheapMaskDropout(nn.Dropout):
    """nn.Dropout whose masks cost less on a CPU: drawn by :func:`dropout_scale` (random bits for p = 0.5,
    uniform draws otherwise; the critic applies dropout eight times a step). Other devices use the native fused
    kernel. (Called ``UniformDropout`` before masks came from random bits.)"""

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0 or x.device.type != "cpu":
            return super().forward(x)
        return x * dropout_scale(x.shape, self.p, x)


class PackedCritic(nn.Module):
    """PacGAN (Lin et al., 2018) critic: ``pack`` rows (with their conditional vectors) side by side
    form one input, so a generator that repeats itself is easy to spot."""

    def __init__(self, in_dim: int, hidden: Sequence[int] = (256, 256), pack: int = 10, dropout: float = 0.5,
                 slope: float = 0.2):
        super().__init__()
        self.pack, self.dropout, self.slope = pack, dropout, slope
        layers, width = [], in_dim * pack
        for h in hidden:
            layers += [nn.Linear(width, h), nn.LeakyReLU(slope), CheapMaskDropout(dropout)]
            width = h
        layers.append(nn.Linear(width, 1))
        self.body = nn.Sequential(*layers)

    def packed(self, x: Tensor) -> Tensor:
        if x.shape[0] % self.pack:
            raise ValueError(f"batch size {x.shape[0]} is not a multiple of pack={self.pack}")
        return x.reshape(x.shape[0] // self.pack, -1)

    def forward(self, x: Tensor) -> Tensor:
        return self.body(self.packed(x))

    def wgan_gp_loss(self, real: Tensor, fake: Tensor, gp: float) -> tuple[Tensor, dict[str, Tensor]]:
        """The critic's WGAN-GP loss, ``mean D(fake) - mean D(real) + gp * mean (||grad D(x_hat)|| - 1)^2``
        on random interpolates of the packs (Gulrajani et al., 2017), with the gradients for the critic's
        weights worked out by hand (:class:`_CriticWGANGP`): the same value and gradients as the loss
        written with ``losses.gradient_penalty`` and autograd's double backward, in far fewer operations.
        This is most of a tabular critic step. ``real`` and ``fake`` take no gradient. Returns the loss
        and detached ``critic_real``, ``critic_fake`` and ``gp`` (the unweighted penalty)."""
        real, fake = self.packed(real.detach()), self.packed(fake.detach())
        alpha = torch.rand(real.shape[0], 1, device=real.device, dtype=real.dtype) if gp else None
        linears = [m for m in self.body if isinstance(m, nn.Linear)]
        params = [t for lin in linears for t in (lin.weight, lin.bias)]
        p = self.dropout if self.training else 0.0
        kind = real.device.type
        compute = torch.get_autocast_dtype(kind) if torch.is_autocast_enabled(kind) else real.dtype
        loss, real_mean, fake_mean, penalty = _CriticWGANGP.apply(real, fake, alpha, float(gp), self.slope, p,
                                                                  compute, *params)
        return loss, {"critic_real": real_mean, "critic_fake": fake_mean, "gp": penalty}


class _CriticWGANGP(torch.autograd.Function):
    """The packed critic's WGAN-GP loss and its weight gradients in one forward pass; the backward pass only
    hands them out. Autograd records some sixty operations for the penalty's double backward; written by
    hand for this network (linear -> leaky ReLU -> dropout, repeated, then a linear output) it is a few
    matrix products per layer.

    Notation: rows = real packs, fake packs, interpolates (n each); layer l computes h_l = a_{l-1} W_l^T + b_l
    and a_l = h_l * k_l, where k_l holds each unit's leaky-ReLU slope (1 or ``slope``) times its dropout
    scale (0 or 1/(1-p)); the output is y = a_L w^T + b.
    * d_l = dy/dh_l, back-propagated from ``dy`` (-1/n on real rows, +1/n on fake rows, 1 on interpolates):
      on real and fake rows it is the WGAN loss's gradient, on interpolates the chain whose end,
      g = d_1 W_1, is the input gradient that the penalty judges.
    * e_l = the penalty's gradient with respect to d_{l+1} W_{l+1} (e_0: with respect to g), carried
      upwards: e_l = (e_{l-1} W_l^T) * k_l. The slopes k_l do not depend on the weights (almost
      everywhere), so the penalty reaches W_l only through g's chain: dP/dW_l = d_l^T e_{l-1} on interpolates.
    * Both terms of a weight's gradient are then one product: dW_l = d_l^T [a_{l-1} (real, fake); e_{l-1}].

    ``compute``: the dtype of the products and activations (bfloat16 under a bf16 autocast, as autograd would
    use). The means, the gradient norm and the penalty keep the inputs' dtype (float32), and so do the weight
    gradients handed out.
    """

    @staticmethod
    def forward(ctx: Any, real: Tensor, fake: Tensor, alpha: Tensor | None, gp: float, slope: float, p: float,
                compute: torch.dtype, *params: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        kind = real.device.type  # under autocast every dtype below is chosen by hand, so it is switched off
        with torch.autocast(kind, enabled=False) if torch.is_autocast_enabled(kind) else nullcontext():
            return _CriticWGANGP._forward(ctx, real, fake, alpha, gp, slope, p, compute, params)

    @staticmethod
    def _forward(ctx: Any, real: Tensor, fake: Tensor, alpha: Tensor | None, gp: float, slope: float, p: float,
                 compute: torch.dtype, params: Sequence[Tensor]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        weights = [w.to(compute) for w in params[0::2]]
        biases = [b.to(compute) for b in params[1::2]]
        n, penalised = real.shape[0], alpha is not None
        rows = [real, fake] + ([torch.lerp(fake, real, alpha)] if penalised else [])
        a = torch.cat(rows).to(compute)
        acts, pres, masks = [a], [], []
        for W, b in zip(weights[:-1], biases[:-1]):
            h = torch.addmm(b, a, W.t())
            a = F.leaky_relu(h, slope)
            m = dropout_scale(h.shape, p, h) if p > 0 else None
            if m is not None:
                a = a.mul_(m)
            acts.append(a)
            pres.append(h)
            masks.append(m)

        def keep(grad: Tensor, layer: int, part: slice = slice(None)) -> Tensor:
            """``grad`` (with respect to a layer's output, rows ``part``) times k_l: dropout scale, then slope."""
            if masks[layer] is not None:
                grad = grad.mul_(masks[layer][part])
            return torch.ops.aten.leaky_relu_backward(grad, pres[layer][part], slope, False)

        y = torch.addmm(biases[-1], a, weights[-1].t()).squeeze(1)
        real_mean, fake_mean = y[:n].to(real.dtype).mean(), y[n : 2 * n].to(real.dtype).mean()
        loss = fake_mean - real_mean

        dy = y.new_full((len(rows) * n, 1), 1.0)
        dy[:n], dy[n : 2 * n] = -1.0 / n, 1.0 / n
        d = [dy]  # d[l-1] = d_l, the gradient with respect to layer l's pre-activation; d[-1] = dy
        for layer in reversed(range(len(pres))):
            d.insert(0, keep(d[0] @ weights[layer + 1], layer))
        penalty = real_mean.new_zeros(())
        if penalised:
            # e_l goes where the interpolates' activations were (the forward pass is done with them), so that
            # each weight's gradient below is one product over the rows [real, fake, interpolates] as they lie.
            interp = slice(2 * n, None)
            g = torch.mm(d[0][interp], weights[0], out=acts[0][interp])
            norm = g.to(real.dtype).norm(dim=1, keepdim=True)
            penalty = ((norm - 1.0) ** 2).mean()
            loss = loss + gp * penalty
            # autograd's convention where the norm's gradient is undefined: 0 at g = 0
            g.mul_((torch.where(norm > 0, (norm - 1.0) / norm, 0.0) * (2.0 * gp / n)).to(compute))
            for layer, W in enumerate(weights[:-1]):
                acts[layer + 1][interp] = keep(acts[layer][interp] @ W.t(), layer, interp)
        grads: list[Tensor] = []
        for a_in, d_out, W, b in zip(acts, d, params[0::2], params[1::2]):
            grads.append((d_out.t() @ a_in).to(W.dtype))
            grads.append(d_out[: 2 * n].sum(0, dtype=b.dtype))
        ctx.grads = grads
        ctx.mark_non_differentiable(real_mean, fake_mean, penalty)
        return loss, real_mean, fake_mean, penalty

    @staticmethod
    def backward(ctx: Any, grad_loss: Tensor, *_: Any) -> tuple[Tensor | None, ...]:
        grads, ctx.grads = ctx.grads, None
        return (None,) * 7 + tuple(g.mul_(grad_loss) for g in grads)
