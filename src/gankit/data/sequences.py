"""Token sequences from text and music: vocabularies, text files, MIDI (event tokens and piano-rolls).

Text is one sequence per line (or per fortune), split into characters or words. Music is read with
``mido`` into quantised notes ``(pitch, start, end)`` in steps of a sixteenth note; from notes come
both representations the sequence models use: event tokens (``on_60``, ``off_60``, ``shift_4``, after
Oore et al., 2018) and piano-rolls (bars x steps x pitches, after MuseGAN, Dong et al., 2018).
Built-in data needs no download: ``words`` (Debian's wamerican word list), ``fortunes`` (Debian's
fortunes-min) and ``chorales`` (the Bach chorales bundled with music21).
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from gankit.errors import UserError

PAD, BOS, EOS, UNK = 0, 1, 2, 3
SPECIALS = ["<pad>", "<bos>", "<eos>", "<unk>"]

WORDS_FILE = Path("/usr/share/dict/words")
FORTUNES_DIR = Path("/usr/share/games/fortunes")
TEXT_BUILTINS = ("words", "fortunes")
MIDI_BUILTINS = ("chorales",)

STEPS_PER_BEAT = 4  # sixteenth notes in 4/4
STEPS_PER_BAR = 16
LOW_PITCH, N_PITCHES = 36, 48  # piano-roll range C2..B5: four octaves, where the chorales live
MAX_SHIFT = 16  # the longest single time-shift token, in steps (one bar)
TICKS_PER_BEAT = 480


# ---------------------------------------------------------------------------------------------
# vocabulary


@dataclass
class Vocab:
    """Tokens <-> ids. Ids 0-3 are <pad>, <bos>, <eos>, <unk>. ``level`` says how tokens join into text."""

    tokens: list[str]
    level: str = "char"  # char | word | event

    def __post_init__(self) -> None:
        self.index = {t: i for i, t in enumerate(self.tokens)}

    @classmethod
    def build(cls, seqs: Iterable[list[str]], level: str, min_count: int = 1) -> Vocab:
        counts = Counter(t for s in seqs for t in s)
        kept = sorted(t for t, c in counts.items() if c >= min_count and t not in SPECIALS)
        return cls(SPECIALS + kept, level)

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, seq: list[str]) -> list[int]:
        return [self.index.get(t, UNK) for t in seq] + [EOS]

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Tokens up to the first <eos>; <pad> and <bos> are skipped."""
        out = []
        for i in ids:
            i = int(i)
            if i == EOS:
                break
            if i in (PAD, BOS):
                continue
            out.append(self.tokens[i] if 0 <= i < len(self.tokens) else SPECIALS[UNK])
        return out

    def join(self, tokens: list[str]) -> str:
        return "".join(tokens) if self.level == "char" else " ".join(tokens)

    def to_dict(self) -> dict[str, Any]:
        return {"level": self.level, "tokens": self.tokens}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Vocab:
        if not isinstance(d, dict) or d.get("tokens", [None] * 4)[:4] != SPECIALS:
            raise UserError("vocabulary: expected a mapping with 'tokens' starting with the special tokens")
        return cls(list(d["tokens"]), d.get("level", "char"))

    def save(self, path: str | Path) -> None:
        from gankit.checkpoint import atomic_write_json

        atomic_write_json(Path(path), self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> Vocab:
        path = Path(path)
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            raise UserError(f"{path}: cannot read the vocabulary ({exc})") from None


def encode_all(seqs: list[list[str]], vocab: Vocab, max_len: int, name: str = "data") -> Tensor:
    """(N, max_len) int64 ids, each sequence followed by <eos> and padded. ``max_len`` counts the <eos>."""
    out = np.full((len(seqs), max_len), PAD, dtype=np.int64)
    for i, s in enumerate(seqs):
        if len(s) + 1 > max_len:
            raise UserError(f"{name}: sequence {i + 1} has {len(s)} tokens, more than the model's maximum "
                            f"of {max_len - 1}")
        out[i, : len(s) + 1] = vocab.encode(s)
    return torch.from_numpy(out)


def tokenize(text: str, level: str) -> list[str]:
    if level == "char":
        return list(text)
    if level == "word":
        return re.findall(r"\w+(?:'\w+)*|[^\w\s]", text)
    raise UserError(f"unknown text level '{level}'; choose char or word")


# ---------------------------------------------------------------------------------------------
# text


def read_text_file(path: Path) -> str:
    """The file's text, refusing missing, binary and empty files with one-line errors."""
    if not path.is_file():
        raise UserError(f"text data not found: {path}" + ("" if path.exists() else
                        f"; built-in data sets are {', '.join(TEXT_BUILTINS + MIDI_BUILTINS)}"))
    raw = path.read_bytes()
    if b"\x00" in raw[:65536]:
        raise UserError(f"{path}: looks like a binary file, not text (it holds NUL bytes)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text (bad byte at offset {exc.start}); is it a binary file?") from None
    if not text.strip():
        raise UserError(f"{path}: the text file is empty")
    return text


def builtin_words() -> list[str]:
    """Lower-case alphabetic words of at most 15 letters from Debian's wamerican list (about 60,000)."""
    if not WORDS_FILE.is_file():
        raise UserError(f"built-in 'words' needs {WORDS_FILE} (Debian: apt-get install wamerican)")
    words = {w.strip() for w in WORDS_FILE.read_text(encoding="utf-8", errors="replace").splitlines()}
    return sorted(w for w in words if re.fullmatch(r"[a-z]{1,15}", w))


def builtin_fortunes(max_chars: int = 80) -> list[str]:
    """Fortunes of at most ``max_chars`` characters (whitespace collapsed) from Debian's fortunes-min."""
    files = sorted(p for p in FORTUNES_DIR.glob("*") if p.is_file() and not p.suffix) if FORTUNES_DIR.is_dir() else []
    if not files:
        raise UserError(f"built-in 'fortunes' needs fortune files in {FORTUNES_DIR} "
                        "(Debian: apt-get install fortunes-min)")
    out = []
    for p in files:
        for block in re.split(r"\n%\n", p.read_text(encoding="utf-8", errors="replace")):
            text = " ".join(block.split())
            if 0 < len(text) <= max_chars and text != "%":
                out.append(text)
    return out


def load_text(source: str, level: str = "auto") -> tuple[list[list[str]], str, str]:
    """Token sequences from a built-in name or a text file (one sequence per non-blank line).

    Returns ``(sequences, level, name)``; ``level`` 'auto' is char for ``words`` and word otherwise."""
    if source == "words":
        lines, name = builtin_words(), "words"
    elif source == "fortunes":
        lines, name = builtin_fortunes(), "fortunes"
    else:
        path = Path(source).expanduser()
        lines = [ln.strip() for ln in read_text_file(path).splitlines() if ln.strip()]
        name = path.name
    if level == "auto":
        level = "char" if source == "words" else "word"
    seqs = [tokenize(ln, level) for ln in lines]
    seqs = [s for s in seqs if s]
    if not seqs:
        raise UserError(f"{source}: no tokens found")
    return seqs, level, name


# ---------------------------------------------------------------------------------------------
# MIDI <-> notes

Note = tuple[int, int, int]  # (pitch, start step, end step), end exclusive


def read_midi(path: str | Path, steps_per_beat: int = STEPS_PER_BEAT) -> list[Note]:
    """Quantised notes of every non-drum channel of a MIDI file, sorted by start then pitch."""
    import mido

    path = Path(path)
    if not path.is_file():
        raise UserError(f"MIDI file not found: {path}")
    try:
        mid = mido.MidiFile(path)
        messages = list(mido.merge_tracks(mid.tracks))
    except (OSError, EOFError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise UserError(f"{path}: not a readable MIDI file ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    if mid.type == 2:
        raise UserError(f"{path}: MIDI type 2 (independent patterns) is not supported")
    tpb = mid.ticks_per_beat or TICKS_PER_BEAT
    tick, notes, open_notes = 0, [], {}
    for msg in messages:
        tick += msg.time
        if msg.type not in ("note_on", "note_off") or msg.channel == 9:
            continue
        step = round(tick * steps_per_beat / tpb)
        key = (msg.channel, msg.note)
        if msg.type == "note_on" and msg.velocity > 0:
            if key in open_notes:  # a repeated note-on closes the sounding one
                notes.append((msg.note, open_notes[key], max(step, open_notes[key] + 1)))
            open_notes[key] = step
        elif key in open_notes:
            start = open_notes.pop(key)
            notes.append((msg.note, start, max(step, start + 1)))
    for (_, pitch), start in open_notes.items():
        notes.append((pitch, start, start + 1))
    return sorted(set(notes), key=lambda n: (n[1], n[0], n[2]))


def write_midi(notes: Iterable[Note], path: str | Path | None = None, steps_per_beat: int = STEPS_PER_BEAT,
               bpm: float = 100.0, program: int = 0):
    """A one-track MIDI file of ``notes`` (returned as ``mido.MidiFile``; saved when ``path`` is given)."""
    import mido

    ticks = TICKS_PER_BEAT // steps_per_beat
    events = []
    for pitch, start, end in notes:
        if not 0 <= pitch <= 127 or end <= start:
            continue
        events.append((start * ticks, 1, pitch))
        events.append((end * ticks, 0, pitch))  # at equal times, note-offs (0) come before note-ons (1)
    events.sort()
    track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=0),
                            mido.Message("program_change", program=program, time=0)])
    now = 0
    for tick, on, pitch in events:
        track.append(mido.Message("note_on" if on else "note_off", note=pitch, velocity=80 if on else 0,
                                  time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=0))
    mid = mido.MidiFile(ticks_per_beat=TICKS_PER_BEAT, tracks=[track])
    if path is not None:
        mid.save(str(path))
    return mid


def notes_to_events(notes: Iterable[Note], max_shift: int = MAX_SHIFT) -> list[str]:
    """Event tokens: at each time, note-offs then note-ons, with ``shift_k`` tokens between times."""
    points = []
    for pitch, start, end in notes:
        points.append((start, 1, pitch))
        points.append((end, 0, pitch))
    points.sort()
    out, now = [], 0
    for time, on, pitch in points:
        gap = time - now
        while gap > 0:
            k = min(gap, max_shift)
            out.append(f"shift_{k}")
            gap -= k
        now = time
        out.append(f"{'on' if on else 'off'}_{pitch}")
    return out


def events_to_notes(events: Iterable[str]) -> list[Note]:
    """The inverse of :func:`notes_to_events`; tolerant of model output (stray offs, unclosed ons)."""
    now, open_notes, notes = 0, {}, []
    for ev in events:
        kind, _, arg = ev.partition("_")
        if not arg.isdigit():
            continue
        value = int(arg)
        if kind == "shift":
            now += value
        elif kind == "on":
            if value in open_notes and open_notes[value] < now:
                notes.append((value, open_notes[value], now))
            open_notes[value] = now
        elif kind == "off" and value in open_notes:
            start = open_notes.pop(value)
            if now > start:
                notes.append((value, start, now))
    notes.extend((p, s, max(now, s + 1)) for p, s in open_notes.items())
    return sorted(notes, key=lambda n: (n[1], n[0], n[2]))


def window_notes(notes: list[Note], start: int, length: int) -> list[Note]:
    """Notes sounding in [start, start + length), clipped to it and shifted to begin at 0."""
    out = []
    for p, s, e in notes:
        if e > start and s < start + length:
            out.append((p, max(s, start) - start, min(e, start + length) - start))
    return out


def fold_pitch(p: int, low: int = LOW_PITCH, n: int = N_PITCHES) -> int:
    """Move a pitch by octaves into [low, low + n)."""
    while p < low:
        p += 12
    while p >= low + n:
        p -= 12
    return p


def notes_to_roll(notes: Iterable[Note], n_steps: int, low: int = LOW_PITCH, n_pitches: int = N_PITCHES) -> np.ndarray:
    """A boolean piano-roll (n_steps, n_pitches); pitches outside the range move by octaves into it."""
    roll = np.zeros((n_steps, n_pitches), dtype=bool)
    for p, s, e in notes:
        if s < n_steps:
            roll[max(s, 0) : min(e, n_steps), fold_pitch(p, low, n_pitches) - low] = True
    return roll


def roll_to_notes(roll: np.ndarray, low: int = LOW_PITCH) -> list[Note]:
    """Notes from a (steps, pitches) boolean roll: each run of active steps in a pitch is one note."""
    roll = np.asarray(roll, dtype=bool)
    padded = np.zeros((roll.shape[0] + 2, roll.shape[1]), dtype=np.int8)
    padded[1:-1] = roll
    diff = np.diff(padded, axis=0)
    notes = []
    for j in range(roll.shape[1]):
        starts = np.flatnonzero(diff[:, j] == 1)
        ends = np.flatnonzero(diff[:, j] == -1)
        notes.extend((low + j, int(s), int(e)) for s, e in zip(starts, ends))
    return sorted(notes, key=lambda n: (n[1], n[0], n[2]))


# ---------------------------------------------------------------------------------------------
# music data sets


def cache_dir() -> Path:
    base = os.environ.get("GANKIT_CACHE") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "gankit")
    return Path(base).expanduser()


def builtin_chorales(limit: int = 0) -> list[list[Note]]:
    """The 4/4 Bach chorales bundled with music21, all voices in one part, bar 1 starting at step 0.
    Parsed once (a few minutes) and cached as JSON under ``~/.cache/gankit``."""
    path = cache_dir() / "chorales-v1.json"
    if path.is_file():
        pieces = json.loads(path.read_text())
    else:
        try:
            from music21 import corpus
        except ImportError:
            raise UserError("built-in 'chorales' needs music21 (pip install 'gankit[extra]')") from None
        from tqdm import tqdm

        paths = [p for p in corpus.getComposer("bach") if p.suffix in (".mxl", ".xml")]
        if not paths:
            raise UserError("music21's bundled corpus has no Bach chorales here")
        pieces = []
        for p in tqdm(paths, desc="parse chorales (once)", unit="file"):
            notes = _music21_notes(corpus.parse(p))
            if notes:
                pieces.append(notes)
        from gankit.checkpoint import atomic_write_json

        atomic_write_json(path, pieces)
    pieces = [[tuple(n) for n in piece] for piece in pieces]
    return pieces[:limit] if limit else pieces


def _music21_notes(score: Any) -> list[Note]:
    sigs = score.flatten().getTimeSignatures()
    if not sigs or sigs[0].ratioString != "4/4":
        return []
    try:
        first = score.parts[0].measure(1)
        origin = float(first.getOffsetBySite(score.parts[0])) if first is not None else 0.0
    except Exception:  # noqa: BLE001 (music21 raises many kinds for odd scores; the piece then starts at 0)
        origin = 0.0
    notes = []
    for el in score.stripTies().flatten().notes:
        start = round((float(el.offset) - origin) * STEPS_PER_BEAT)
        end = round((float(el.offset + el.quarterLength) - origin) * STEPS_PER_BEAT)
        if start < 0 or end <= start:
            continue
        notes.extend((int(p.midi), start, end) for p in el.pitches)
    return sorted(set(notes), key=lambda n: (n[1], n[0], n[2]))


def load_midi(source: str) -> tuple[list[list[Note]], str]:
    """Note lists, one per piece: ``chorales``, a ``.mid`` file, or a folder of them."""
    if source == "chorales":
        return builtin_chorales(), "chorales"
    path = Path(source).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in (".mid", ".midi"))
        if not files:
            raise UserError(f"{path}: no .mid or .midi files in this folder")
    elif path.exists():
        files = [path]
    else:
        raise UserError(f"MIDI data not found: {source}; built-in music data: {', '.join(MIDI_BUILTINS)}")
    pieces = [read_midi(f) for f in files]
    pieces = [p for p in pieces if p]
    if not pieces:
        raise UserError(f"{source}: the MIDI data holds no notes")
    return pieces, path.name


def segments(pieces: list[list[Note]], bars: int, hop_bars: int = 1) -> list[list[Note]]:
    """Windows of ``bars`` bars every ``hop_bars`` bars, empty windows dropped."""
    length, out = bars * STEPS_PER_BAR, []
    for notes in pieces:
        end = max(e for _, _, e in notes)
        for start in range(0, max(end - length, 0) + 1, hop_bars * STEPS_PER_BAR):
            w = window_notes(notes, start, length)
            if w:
                out.append(w)
    return out


def pianorolls(windows: list[list[Note]], bars: int) -> np.ndarray:
    """(N, bars, steps per bar, pitches) booleans."""
    rolls = [notes_to_roll(w, bars * STEPS_PER_BAR) for w in windows]
    return np.stack(rolls).reshape(len(rolls), bars, STEPS_PER_BAR, N_PITCHES) if rolls else \
        np.zeros((0, bars, STEPS_PER_BAR, N_PITCHES), dtype=bool)


@dataclass
class SequenceData:
    """What a sequence model trains on: token sequences (text or events) or piano-rolls."""

    kind: str  # text | midi
    name: str
    seqs: list[list[str]] = field(default_factory=list)
    level: str = "char"
    rolls: np.ndarray | None = None


def detect_kind(source: str) -> str:
    if source in MIDI_BUILTINS:
        return "midi"
    path = Path(source)
    if path.suffix.lower() in (".mid", ".midi"):
        return "midi"
    if path.is_dir() and any(p.suffix.lower() in (".mid", ".midi") for p in path.rglob("*")):
        return "midi"
    return "text"


def load_sequences(source: str, kind: str = "auto", level: str = "auto", bars: int = 2,
                   rolls: bool = False) -> SequenceData:
    """Text sequences, MIDI event sequences (windows of ``bars`` bars) or piano-rolls (``rolls=True``)."""
    kind = detect_kind(source) if kind == "auto" else kind
    if kind == "text":
        if source in MIDI_BUILTINS:
            raise UserError(f"'{source}' is music; use --kind midi")
        seqs, level, name = load_text(source, level)
        return SequenceData("text", name, seqs=seqs, level=level)
    if kind != "midi":
        raise UserError(f"unknown data kind '{kind}'; choose text or midi")
    if source in TEXT_BUILTINS:
        raise UserError(f"'{source}' is text; use --kind text")
    pieces, name = load_midi(source)
    windows = segments(pieces, bars)
    if not windows:
        raise UserError(f"{source}: no {bars}-bar window holds any notes")
    if rolls:
        return SequenceData("midi", name, rolls=pianorolls(windows, bars), level="event")
    return SequenceData("midi", name, seqs=[notes_to_events(w) for w in windows], level="event")
