"""Networks for sequences: an LSTM language model that doubles as the sequence GAN's generator, a CNN
text discriminator, and MuseGAN-style convolutional piano-roll networks.

Token ids follow :mod:`gankit.data.sequences`: 0 <pad>, 1 <bos>, 2 <eos>. A sequence is ``max_len``
ids, <eos> included, <pad> after it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

PAD, BOS, EOS = 0, 1, 2

State = tuple[Tensor, Tensor]


def mask_after_eos(ids: Tensor) -> Tensor:
    """1 for tokens up to and including the first <eos>, 0 after it (and for <pad>)."""
    is_eos = (ids == EOS).long()
    before = (is_eos.cumsum(1) - is_eos) == 0  # no <eos> strictly before this position
    return (before & (ids != PAD)).float()


def pad_after_eos(ids: Tensor) -> Tensor:
    return torch.where(mask_after_eos(ids) > 0, ids, torch.full_like(ids, PAD))


class LSTMLM(nn.Module):
    """A next-token LSTM (the maximum-likelihood baseline). With ``z_dim > 0`` its initial state is a
    function of a noise vector, which makes it the generator of a sequence GAN (SeqGAN, Yu et al., 2017;
    Gumbel-softmax GANs, Kusner & Hernandez-Lobato, 2016)."""

    def __init__(self, vocab_size: int, max_len: int, emb: int = 64, hidden: int = 256, layers: int = 1,
                 z_dim: int = 0, dropout: float = 0.0):
        super().__init__()
        self.vocab_size, self.max_len, self.z_dim = vocab_size, max_len, z_dim
        self.layers, self.hidden = layers, hidden
        self.embed = nn.Embedding(vocab_size, emb)
        self.lstm = nn.LSTM(emb, hidden, layers, batch_first=True, dropout=dropout if layers > 1 else 0.0)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, vocab_size)
        self.init = nn.Linear(z_dim, 2 * layers * hidden) if z_dim else None

    def initial_state(self, n: int, z: Tensor | None = None) -> State | None:
        if self.init is None:
            return None
        if z is None:
            z = torch.randn(n, self.z_dim, device=self.head.weight.device)
        h, c = torch.tanh(self.init(z)).view(n, 2, self.layers, self.hidden).permute(1, 2, 0, 3).contiguous()
        return h, c

    def forward(self, inputs: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """Logits for the next token after each input. Inputs are ids (B, T) or soft one-hots (B, T, V)."""
        e = self.embed(inputs) if inputs.dtype == torch.long else inputs @ self.embed.weight
        out, state = self.lstm(self.drop(e), state)
        return self.head(self.drop(out)), state

    def teacher_forced(self, ids: Tensor, z: Tensor | None = None) -> Tensor:
        """Logits (B, T, V) for each position of ``ids`` given the ones before it."""
        bos = torch.full_like(ids[:, :1], BOS)
        logits, _ = self(torch.cat([bos, ids[:, :-1]], 1), self.initial_state(ids.shape[0], z))
        return logits

    def token_log_probs(self, ids: Tensor, z: Tensor | None = None) -> Tensor:
        """log p(token_t | tokens before t) for each position (B, T); zero after <eos>."""
        logp = F.log_softmax(self.teacher_forced(ids, z), -1).gather(-1, ids.unsqueeze(-1)).squeeze(-1)
        return logp * mask_after_eos(ids)

    def nll(self, ids: Tensor, z: Tensor | None = None) -> Tensor:
        """Mean negative log-likelihood per token (nats), <eos> included, <pad> excluded."""
        mask = mask_after_eos(ids)
        return -(self.token_log_probs(ids, z)).sum() / mask.sum().clamp_min(1)

    @torch.no_grad()
    def sample(self, n: int, z: Tensor | None = None, temperature: float = 1.0, top_k: int = 0,
               generator: torch.Generator | None = None, prefix: Tensor | None = None,
               state: State | None = None) -> Tensor:
        """``n`` sequences (n, max_len) of ids, <pad> after <eos>. Lower ``temperature`` and ``top_k`` trade
        diversity for quality. With ``prefix`` (n, t) and ``state`` (the state after reading <bos> and
        prefix[:, :-1]) the rest of the sequence is sampled after the prefix."""
        device = self.head.weight.device
        if state is None:
            state = self.initial_state(n, z)
        t0 = 0 if prefix is None else prefix.shape[1]
        tokens = [] if prefix is None else list(prefix.unbind(1))
        x = torch.full((n, 1), BOS, dtype=torch.long, device=device) if prefix is None else prefix[:, -1:]
        for _ in range(t0, self.max_len):
            logits, state = self(x, state)
            logits = logits[:, -1] / max(temperature, 1e-6)
            if top_k:
                kth = logits.topk(min(top_k, logits.shape[-1]), -1).values[:, -1:]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            probs = F.softmax(logits.float(), -1)
            probs[:, BOS] = 0.0
            probs[:, PAD] = 0.0
            x = torch.multinomial(probs, 1, generator=generator)
            tokens.append(x[:, 0])
        return pad_after_eos(torch.stack(tokens, 1))

    def gumbel_sample(self, z: Tensor, tau: float, hard: bool = True) -> Tensor:
        """Whole sequences as relaxed one-hots (B, max_len, V) through the Gumbel-softmax (Jang et al., 2017;
        Maddison et al., 2017): differentiable in G's weights. ``hard`` uses the straight-through one-hot.
        After the first <eos> every position is a (constant) <pad> one-hot."""
        n = z.shape[0]
        state = self.initial_state(n, z)
        x = F.one_hot(torch.full((n, 1), BOS, device=z.device), self.vocab_size).float()
        forbid = torch.zeros(self.vocab_size, device=z.device)
        forbid[[PAD, BOS]] = float("-inf")
        outs = []
        for _ in range(self.max_len):
            logits, state = self(x, state)
            x = F.gumbel_softmax(logits[:, -1] + forbid, tau=tau, hard=hard).unsqueeze(1)
            outs.append(x)
        y = torch.cat(outs, 1)
        alive = mask_after_eos(y.argmax(-1)).unsqueeze(-1)  # a constant mask: no gradient through argmax
        pad = F.one_hot(torch.tensor(PAD, device=z.device), self.vocab_size).float()
        return y * alive + pad * (1 - alive)


@torch.no_grad()
def rollout_rewards(G: LSTMLM, D: nn.Module, ids: Tensor, z: Tensor, rollouts: int) -> Tensor:
    """SeqGAN's Monte-Carlo search (Yu et al., 2017): the reward of token t is the mean probability D gives
    to ``rollouts`` completions of the prefix ids[:, :t+1]; the last token's is D(whole sequence).
    With ``rollouts=0`` every token gets D(whole sequence). Returns (B, T) rewards, zero after <eos>."""
    n, T = ids.shape
    mask = mask_after_eos(ids)
    final = torch.sigmoid(D(ids)).unsqueeze(1).expand(n, T)
    if rollouts == 0:
        return final * mask
    rewards = final.clone()
    zr = z.repeat(rollouts, 1)
    idr = ids.repeat(rollouts, 1)
    state = G.initial_state(zr.shape[0], zr)
    x = torch.full((zr.shape[0], 1), BOS, dtype=torch.long, device=ids.device)
    for t in range(T - 1):
        _, state = G(x, state)  # the state after reading tokens 0..t-1 plus BOS
        x = idr[:, t : t + 1]
        done = G.sample(zr.shape[0], prefix=idr[:, : t + 1], state=state)
        rewards[:, t] = torch.sigmoid(D(done)).view(rollouts, n).mean(0)
    return rewards * mask


class CNNDiscriminator(nn.Module):
    """The text CNN of Kim (2014) as used by SeqGAN: embeddings, convolutions of several widths,
    max-over-time pooling, a highway layer and one logit. Reads ids (B, T) or (soft) one-hots (B, T, V)."""

    def __init__(self, vocab_size: int, emb: int = 64, channels: int = 64, widths: tuple[int, ...] = (2, 3, 4, 5),
                 dropout: float = 0.25):
        super().__init__()
        self.vocab_size = vocab_size
        self.embed = nn.Linear(vocab_size, emb, bias=False)
        self.convs = nn.ModuleList(nn.Conv1d(emb, channels, k, padding=k - 1) for k in widths)
        width = channels * len(widths)
        self.highway = nn.Linear(width, 2 * width)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(width, 1)

    def forward(self, x: Tensor) -> Tensor:
        if x.dtype == torch.long:
            x = F.one_hot(x, self.vocab_size).float()
        e = self.embed(x).transpose(1, 2)  # (B, E, T)
        h = torch.cat([F.leaky_relu(conv(e), 0.2).amax(-1) for conv in self.convs], 1)
        gate, value = self.highway(h).chunk(2, -1)
        gate = torch.sigmoid(gate)
        h = gate * F.relu(value) + (1 - gate) * h
        return self.out(self.drop(h)).squeeze(-1)


# ---------------------------------------------------------------------------------------------
# piano-rolls (MuseGAN-style, Dong et al., 2018)


class PianorollGenerator(nn.Module):
    """z -> (B, bars, steps, pitches) in [-1, 1]. A temporal network turns z into one code per bar; a bar
    generator of transposed convolutions (time, then pitch) turns [z, bar code] into each bar."""

    def __init__(self, z_dim: int, bars: int, steps: int, pitches: int, width: int = 64):
        super().__init__()
        if steps % 4 or pitches % 4:
            raise ValueError("piano-roll steps and pitches must be multiples of 4")
        self.z_dim, self.bars, self.steps, self.pitches = z_dim, bars, steps, pitches
        self.temporal = nn.Sequential(nn.Linear(z_dim, width * bars), nn.LeakyReLU(0.2))
        self.fc = nn.Sequential(nn.Linear(z_dim + width, 4 * width * (steps // 4) * (pitches // 4)),
                                nn.BatchNorm1d(4 * width * (steps // 4) * (pitches // 4)), nn.ReLU())
        self.bar = nn.Sequential(
            nn.ConvTranspose2d(4 * width, 2 * width, 4, 2, 1), nn.BatchNorm2d(2 * width), nn.ReLU(),
            nn.ConvTranspose2d(2 * width, width, 4, 2, 1), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, 1, 3, padding=1), nn.Tanh())
        self.width = width

    def forward(self, z: Tensor) -> Tensor:
        n = z.shape[0]
        codes = self.temporal(z).view(n, self.bars, self.width)
        h = torch.cat([z.unsqueeze(1).expand(n, self.bars, self.z_dim), codes], -1).reshape(n * self.bars, -1)
        h = self.fc(h).view(n * self.bars, 4 * self.width, self.steps // 4, self.pitches // 4)
        return self.bar(h).view(n, self.bars, self.steps, self.pitches)


class PianorollDiscriminator(nn.Module):
    """(B, bars, steps, pitches) -> one score. 3-D convolutions read, in turn, the pitches of an octave,
    the steps of a beat, a whole bar and the sequence of bars, as in MuseGAN's discriminator."""

    def __init__(self, bars: int, steps: int, pitches: int, width: int = 64):
        super().__init__()
        if pitches % 12 or steps % 4:
            raise ValueError("the piano-roll discriminator needs whole octaves and whole beats")
        act = nn.LeakyReLU(0.2)
        self.net = nn.Sequential(
            nn.Conv3d(1, width, (1, 1, 12), (1, 1, 12)), act,
            nn.Conv3d(width, 2 * width, (1, 4, 1), (1, 4, 1)), act,
            nn.Conv3d(2 * width, 4 * width, (1, steps // 4, pitches // 12)), act,
            nn.Conv3d(4 * width, 4 * width, (bars, 1, 1)), act,
            nn.Flatten(), nn.Linear(4 * width, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.unsqueeze(1)).squeeze(-1)
