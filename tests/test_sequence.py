"""Sequences: vocabulary and MIDI round-trips, gradient estimators, rewards, and metrics on known cases."""

import math

import mido
import numpy as np
import pytest
import torch

from gankit.data import sequences as sq
from gankit.errors import UserError
from gankit.metrics import sequence as ms
from gankit.nets.sequence import (
    EOS,
    LSTMLM,
    PAD,
    CNNDiscriminator,
    PianorollDiscriminator,
    PianorollGenerator,
    mask_after_eos,
    rollout_rewards,
)
from gankit.tasks.sequence import SequenceConfig, TextGAN, policy_baseline


def test_vocab_round_trip(tmp_path):
    seqs = [list("hello"), list("world"), list("help")]
    vocab = sq.Vocab.build(seqs, "char")
    assert vocab.tokens[:4] == sq.SPECIALS
    ids = sq.encode_all(seqs, vocab, max_len=6)
    assert ids.shape == (3, 6) and int(ids[2, 4]) == sq.EOS and int(ids[2, 5]) == sq.PAD
    assert [vocab.join(vocab.decode(row)) for row in ids.tolist()] == ["hello", "world", "help"]
    vocab.save(tmp_path / "vocab.json")
    again = sq.Vocab.load(tmp_path / "vocab.json")
    assert again.tokens == vocab.tokens and again.level == "char"
    assert vocab.decode(vocab.encode(list("hex"))) == ["h", "e", "<unk>"]  # 'x' was never seen


def test_word_tokens_and_too_long():
    assert sq.tokenize("Don't panic, it's fine.", "word") == ["Don't", "panic", ",", "it's", "fine", "."]
    vocab = sq.Vocab.build([["a", "b"]], "word")
    with pytest.raises(UserError, match="sequence 2 has 3 tokens, more than the model's maximum of 2"):
        sq.encode_all([["a"], ["a", "b", "a"]], vocab, max_len=3, name="x")


def make_midi(path, ticks_per_beat=96):
    """C major chord for a beat, a rest, then E for two beats; on the 16th-note grid."""
    mid = mido.MidiFile(ticks_per_beat=ticks_per_beat)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    q = ticks_per_beat
    for p in (60, 64, 67):
        track.append(mido.Message("note_on", note=p, velocity=90, time=0))
    track.append(mido.Message("note_off", note=60, velocity=0, time=q))
    track.append(mido.Message("note_off", note=64, velocity=0, time=0))
    track.append(mido.Message("note_on", note=67, velocity=0, time=0))  # velocity-0 note-on ends a note
    track.append(mido.Message("note_on", note=64, velocity=80, time=q // 2))
    track.append(mido.Message("note_off", note=64, velocity=0, time=2 * q))
    mid.save(str(path))
    return [(60, 0, 4), (64, 0, 4), (67, 0, 4), (64, 6, 14)]


def test_midi_tokens_round_trip(tmp_path):
    expected = make_midi(tmp_path / "a.mid")
    notes = sq.read_midi(tmp_path / "a.mid")
    assert notes == expected
    events = sq.notes_to_events(notes)
    assert events[:3] == ["on_60", "on_64", "on_67"] and "shift_4" in events
    assert sq.events_to_notes(events) == notes
    sq.write_midi(sq.events_to_notes(events), tmp_path / "b.mid")
    assert sq.read_midi(tmp_path / "b.mid") == notes
    roll = sq.notes_to_roll(notes, 16)
    assert roll.shape == (16, sq.N_PITCHES) and roll.sum() == 3 * 4 + 8
    assert sq.roll_to_notes(roll) == notes


def test_long_gaps_use_several_shifts():
    events = sq.notes_to_events([(60, 0, 1), (62, 40, 41)])
    assert events == ["on_60", "shift_1", "off_60", "shift_16", "shift_16", "shift_7", "on_62", "shift_1", "off_62"]


def test_gumbel_softmax_gradients_flow():
    torch.manual_seed(0)
    G = LSTMLM(vocab_size=9, max_len=7, emb=8, hidden=16, z_dim=4)
    D = CNNDiscriminator(9, emb=8, channels=8)
    y = G.gumbel_sample(torch.randn(5, 4), tau=0.5)
    assert y.shape == (5, 7, 9)
    assert torch.allclose(y.sum(-1), torch.ones(5, 7))  # straight-through one-hots
    ids = y.argmax(-1)
    assert bool(((ids == PAD) == (mask_after_eos(ids) == 0)).all())  # <pad> exactly after the first <eos>
    D(y).mean().backward()
    for name, p in G.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert G.lstm.weight_hh_l0.grad.abs().sum() > 0 and G.init.weight.grad.abs().sum() > 0


def test_policy_gradient_rewards():
    torch.manual_seed(0)
    G = LSTMLM(vocab_size=9, max_len=6, emb=8, hidden=16, z_dim=4)
    D = CNNDiscriminator(9, emb=8, channels=8).eval()
    z = torch.randn(4, 4)
    ids = torch.tensor([[5, 6, EOS, 0, 0, 0], [4, 4, 4, 4, 4, 4], [EOS, 0, 0, 0, 0, 0], [7, 8, 5, EOS, 0, 0]])
    final = torch.sigmoid(D(ids))
    r0 = rollout_rewards(G, D, ids, z, rollouts=0)
    r3 = rollout_rewards(G, D, ids, z, rollouts=3)
    mask = mask_after_eos(ids)
    for r in (r0, r3):
        assert r.shape == (4, 6)
        assert bool(((r == 0) | (mask > 0)).all()) and bool((r[mask > 0] > 0).all()) and bool((r <= 1).all())
    assert torch.allclose(r0, final[:, None] * mask)
    last = mask.sum(1).long() - 1  # the reward of the last live token is D(whole sequence)
    assert torch.allclose(r3[torch.arange(4), last], final)
    assert not torch.allclose(r3[1], r0[1])  # earlier tokens: the mean over rollouts
    base = policy_baseline(r3, mask)
    assert base.shape == (4, 6) and torch.allclose(base[0, 0], r3[:, 0].mean())

    cfg = SequenceConfig(model="gan", estimator="reinforce", rollouts=2)
    task = TextGAN(G, D, cfg)
    loss, logs = task.g_loss({"x": ids}, {"x": ids, "z": z}, step=0)
    loss.backward()
    assert math.isfinite(loss.item()) and 0 < float(logs["reward"]) < 1
    assert G.head.weight.grad.abs().sum() > 0


def test_pianoroll_nets_shapes():
    G = PianorollGenerator(z_dim=8, bars=4, steps=16, pitches=48, width=4)
    D = PianorollDiscriminator(bars=4, steps=16, pitches=48, width=4)
    x = G(torch.randn(3, 8))
    assert x.shape == (3, 4, 16, 48) and float(x.detach().abs().max()) <= 1
    assert D(x).shape == (3,)


def test_bleu_known_cases():
    s = ["the", "cat", "sat", "on", "the", "mat"]
    assert ms.bleu([s], [s]) == pytest.approx(1.0)
    assert ms.self_bleu([s, s, s]) == pytest.approx(1.0)
    ref = ["the", "cat", "is", "on", "the", "mat"]
    # p1 = 5/6, p2 = 3/5, p3 = 1/4, p4 = 0/3 -> smoothed 0.1/3; equal lengths: no brevity penalty
    expected = math.exp((math.log(5 / 6) + math.log(3 / 5) + math.log(1 / 4) + math.log(0.1 / 3)) / 4)
    assert ms.bleu([s], [ref]) == pytest.approx(expected)
    # brevity penalty: a 4-token hypothesis against a 6-token reference
    short = ["the", "cat", "is", "on"]
    assert ms.bleu([short], [ref]) == pytest.approx(math.exp(1 - 6 / 4))
    assert ms.bleu([list("xyz")], [list("abcd")]) == 0.0
    assert ms.self_bleu([list("abcd"), list("efgh")]) == 0.0
    # self-BLEU leaves the sample itself out: a unique sample among copies of another scores low
    mixed = ms.self_bleu([list("abcdef"), list("abcdef"), list("uvwxyz")])
    assert mixed == pytest.approx(2 / 3)


def test_novelty_and_text_metrics():
    train = {tuple("cat"), tuple("dog")}
    assert ms.novelty([list("cat"), list("cow")], train) == 0.5
    out = ms.text_metrics([list("cats"), list("dogs")], [list("cats")], train)
    assert out["unique"] == 1.0 and out["novelty"] == 1.0 and out["bleu4"] < 1.0


def test_music_stats_known_roll():
    roll = np.zeros((1, 2, 16, sq.N_PITCHES), dtype=bool)  # bar 1: C-E-G chord for 4 steps, bar 2 empty
    for p in (60, 64, 67):
        roll[0, 0, 0:4, p - sq.LOW_PITCH] = True
    roll[0, 0, 8, 61 - sq.LOW_PITCH] = True  # a one-step C#: not in C major's best fit, not qualified
    st = ms.music_stats(roll)
    assert st["empty_bar_rate"] == 0.5
    assert st["pitch_classes_per_bar"] == 4.0
    assert st["qualified_note_rate"] == pytest.approx(3 / 4)
    assert st["in_scale_rate"] == pytest.approx(12 / 13)
    assert st["polyphony"] == pytest.approx((4 * 3 + 1) / 5)
    assert ms.music_distances(st, st) == dict.fromkeys(st, 0.0)
