"""gankit sequence: tiny end-to-end fit / sample / eval, and one-line errors (exit 2) for bad input."""

import json

import pytest

from gankit.cli import main
from gankit.data import sequences as sq

WORDS = ["banana", "bandana", "cabana", "canal", "panama", "nadal", "alpaca", "lambda", "salsa", "mamba",
         "sandal", "badland", "caravan", "anagram", "cascade", "palm", "llama", "dance", "candle", "pedal",
         "ample", "camel", "ladle", "planet"]
TINY = ["--hidden", "16", "--batch-size", "8", "--quiet", "--set", "emb=8", "--set", "d_width=8"]


@pytest.fixture(scope="module")
def words_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("seq") / "words.txt"
    path.write_text("\n".join(WORDS) + "\n")
    return path


def test_lm_fit_sample_eval(words_file, tmp_path, capsys):
    run = tmp_path / "lm"
    assert main(["sequence", "fit", str(words_file), "--level", "char", "--out", str(run), "--steps", "15", *TINY]) == 0
    assert json.loads((run / "vocab.json").read_text())["level"] == "char"
    assert (run / "heldout.txt").read_text().strip()  # 24 sequences -> a held-out split of 1
    assert main(["sequence", "sample", str(run), "--n", "7", "--out", str(tmp_path / "s.txt"), "--seed", "3"]) == 0
    lines = (tmp_path / "s.txt").read_text().splitlines()
    assert len(lines) == 7
    assert main(["sequence", "sample", str(run), "--n", "7", "--out", str(tmp_path / "t.txt"), "--seed", "3"]) == 0
    assert (tmp_path / "t.txt").read_text().splitlines() == lines  # same seed, same samples
    capsys.readouterr()
    assert main(["sequence", "eval", str(run), "--ref", str(words_file), "--n", "20", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    for key in ("bleu4", "self_bleu4", "novelty", "lm_nll_of_samples", "heldout_nll", "heldout_ppl"):
        assert key in result, key
    assert 0 <= result["bleu4"] <= 1 and result["heldout_ppl"] > 1


@pytest.mark.parametrize("estimator", ["gumbel", "reinforce"])
def test_gan_fit_through_engine(words_file, tmp_path, estimator):
    run = tmp_path / estimator
    assert main(["sequence", "fit", str(words_file), "--level", "char", "--model", "gan", "--estimator", estimator,
                 "--out", str(run), "--steps", "5", "--pretrain-steps", "3", "--rollouts", "1", *TINY]) == 0
    logs = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]  # the engine's log
    assert logs and logs[-1]["step"] == 5 and "loss_d" in logs[-1]
    assert ("tau" if estimator == "gumbel" else "reward") in logs[-1]
    assert main(["sequence", "sample", str(run), "--n", "4", "--out", str(tmp_path / "g.txt")]) == 0
    assert len((tmp_path / "g.txt").read_text().splitlines()) == 4


def test_midi_lm_and_pianoroll(tmp_path):
    from test_sequence import make_midi

    folder = tmp_path / "mids"
    folder.mkdir()
    for i in range(3):
        notes = [(60 + (j * 5 + i) % 12, 4 * j, 4 * j + 3) for j in range(64)]
        sq.write_midi(notes, folder / f"p{i}.mid")
    make_midi(folder / "q.mid")
    run = tmp_path / "ev"
    assert main(["sequence", "fit", str(folder), "--out", str(run), "--steps", "3", *TINY]) == 0
    assert main(["sequence", "sample", str(run), "--n", "2", "--out", str(tmp_path / "ev.mid")]) == 0
    assert (tmp_path / "ev-000.mid").is_file() and (tmp_path / "ev-001.mid").is_file()
    roll_run = tmp_path / "roll"
    assert main(["sequence", "fit", str(folder), "--model", "pianoroll-gan", "--out", str(roll_run), "--steps", "2",
                 *TINY]) == 0
    assert main(["sequence", "sample", str(roll_run), "--n", "1", "--out", str(tmp_path / "r.mid")]) == 0
    sq.read_midi(tmp_path / "r.mid")  # a valid MIDI file


def bad_input(tmp_path, capsys, *args):
    code = main(["sequence", *map(str, args)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    return err


def test_bad_inputs_exit_2(tmp_path, capsys, words_file):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    assert "empty" in bad_input(tmp_path, capsys, "fit", empty, "--out", tmp_path / "r1")
    binary = tmp_path / "model.bin"
    binary.write_bytes(bytes(range(256)) * 4)
    assert "binary" in bad_input(tmp_path, capsys, "fit", binary, "--out", tmp_path / "r2")
    corrupt = tmp_path / "broken.mid"
    corrupt.write_bytes(b"MThd\x00\x00\x00\x06\x00\x01\x00\x02\x01\xe0MTrk\xff\xff")
    assert "not a readable MIDI file" in bad_input(tmp_path, capsys, "fit", corrupt, "--out", tmp_path / "r3")
    assert "more than the model's maximum of 4" in bad_input(
        tmp_path, capsys, "fit", words_file, "--level", "char", "--max-len", "5", "--out", tmp_path / "r4")
    assert "needs MIDI data" in bad_input(tmp_path, capsys, "fit", words_file, "--kind", "text",
                                          "--model", "pianoroll-gan", "--out", tmp_path / "r5")
    assert "run folder not found" in bad_input(tmp_path, capsys, "sample", tmp_path / "nope", "--out", tmp_path / "x")
