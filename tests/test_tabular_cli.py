"""`gankit tabular fit / sample / report`: the happy path once, and bad input as one line + exit code 2."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from gankit.cli import main


def write_table(path, n: int = 60) -> None:
    rng = np.random.default_rng(0)
    pd.DataFrame({"size": rng.normal(5, 1, n).round(1), "kind": rng.choice(["a", "b", "c"], n),
                  "ok": rng.choice([True, False], n)}).to_csv(path, index=False)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tab")
    write_table(tmp / "train.csv")
    write_table(tmp / "hold.csv", 40)
    assert main(["tabular", "fit", str(tmp / "train.csv"), "--out", str(tmp / "run"), "--epochs", "2",
                 "--batch-size", "30", "--threads", "1"]) == 0
    return tmp


def test_fit_writes_a_complete_run_folder(run_dir, capsys):
    names = {p.name for p in (run_dir / "run").iterdir()}
    assert {"model.json", "model.safetensors", "checkpoints", "summary.json", "metrics.jsonl"} <= names
    assert not [p for p in run_dir.iterdir() if ".partial-" in p.name]


def test_info_shows_the_tabular_fit(run_dir, capsys):
    capsys.readouterr()
    assert main(["info", str(run_dir / "run"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    fit = json.loads((run_dir / "run" / "model.json").read_text())["fit"]
    assert info["kind"] == "tabular" and info["columns"] == 3 and info["rows"] == 60
    assert info["steps"] == fit["steps"] == info["trained_steps"] and info["precision"] == fit["precision"]


def test_sample_with_condition(run_dir):
    out = run_dir / "s.csv"
    assert main(["tabular", "sample", str(run_dir / "run"), "--n", "25", "--out", str(out),
                 "--condition", "kind=b", "--seed", "3"]) == 0
    df = pd.read_csv(out)
    assert len(df) == 25 and (df["kind"] == "b").all() and list(df.columns) == ["size", "kind", "ok"]


def test_sample_progress_bar_on_a_terminal_changes_no_rows(run_dir, monkeypatch):
    import io
    import sys

    from gankit.tasks.tabular import TabularGAN

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    gan = TabularGAN.load(run_dir / "run")
    plain = gan.sample(3000, seed=4)
    monkeypatch.setattr(sys, "stderr", Terminal())
    pd.testing.assert_frame_equal(gan.sample(3000, seed=4, progress=True), plain)
    assert "sample:" in sys.stderr.getvalue() and "row" in sys.stderr.getvalue()


def test_sample_writes_large_tables_in_pieces(run_dir, monkeypatch, capsys):
    """`tabular sample` generates and writes CHUNK_ROWS rows at a time (one header, every row, no piece held
    beyond its write): the file is TabularGAN.sample_chunks' pieces, its first piece sample()'s rows; a
    failure in a later piece leaves an existing file as it was."""
    import gankit.cli.tabular as cli
    from gankit.tasks.tabular import TabularGAN

    monkeypatch.setattr(cli, "CHUNK_ROWS", 40)
    out = run_dir / "big.csv"
    assert main(["tabular", "sample", str(run_dir / "run"), "--n", "100", "--out", str(out), "--seed", "5"]) == 0
    assert "wrote 100 rows" in capsys.readouterr().out
    gan = TabularGAN.load(run_dir / "run")
    pieces = list(gan.sample_chunks(100, seed=5, chunk_rows=40))
    assert [len(p) for p in pieces] == [40, 40, 20]
    pd.testing.assert_frame_equal(pieces[0], gan.sample(40, seed=5))
    expect = pd.concat(pieces, ignore_index=True)
    assert out.read_text() == expect.to_csv(index=False) and not pieces[1].equals(pieces[0])

    drawn = []
    original = TabularGAN._draw

    def fails_on_the_third(self, *args, **kwargs):
        drawn.append(1)
        if len(drawn) == 3:
            raise OSError(28, "No space left on device")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(TabularGAN, "_draw", fails_on_the_third)
    before = out.read_text()
    assert main(["tabular", "sample", str(run_dir / "run"), "--n", "100", "--out", str(out), "--seed", "6"]) == 1
    assert out.read_text() == before and not list(run_dir.glob(".big.csv*"))


def test_sample_pieces_keep_one_datetime_format(tmp_path, monkeypatch):
    """pandas writes a datetime column as bare dates when every value in a frame is midnight; written piece by
    piece, a column with times keeps its times in every piece."""
    import gankit.cli.tabular as cli
    from gankit.tasks.tabular import TabularGAN

    rng = np.random.default_rng(0)
    stamps = pd.Timestamp("2021-01-01") + pd.to_timedelta(rng.integers(0, 10**7, 60), unit="s")
    pd.DataFrame({"at": stamps, "kind": rng.choice(["a", "b"], 60)}).to_csv(tmp_path / "t.csv", index=False)
    assert main(["tabular", "fit", str(tmp_path / "t.csv"), "--out", str(tmp_path / "run"), "--epochs", "1",
                 "--batch-size", "30", "--threads", "1"]) == 0
    pieces = [pd.DataFrame({"at": pd.to_datetime(["2021-03-04 05:06:07"]), "kind": ["a"]}),
              pd.DataFrame({"at": pd.to_datetime(["2021-03-05 00:00:00", None]), "kind": ["b", "a"]})]
    monkeypatch.setattr(TabularGAN, "sample_chunks", lambda self, *a, **k: (p.copy() for p in pieces))
    monkeypatch.setattr(cli, "CHUNK_ROWS", 1)
    out = tmp_path / "s.csv"
    assert main(["tabular", "sample", str(tmp_path / "run"), "--n", "3", "--out", str(out)]) == 0
    assert out.read_text().splitlines() == ["at,kind", "2021-03-04 05:06:07,a", "2021-03-05 00:00:00,b", ",a"]


def test_sample_writes_atomically_through_symlinks_with_the_file_mode(run_dir, monkeypatch, capsys):
    import errno
    import os

    run = str(run_dir / "run")
    out = run_dir / "keep.csv"
    out.write_text("precious\n")

    def dies(src, dst):  # the process "dies" between writing the temporary file and the rename
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", dies)
    assert main(["tabular", "sample", run, "--n", "5", "--out", str(out)]) == 130  # interrupted
    assert out.read_text() == "precious\n" and sorted(p.name for p in run_dir.glob(".keep.csv*")) == []
    monkeypatch.undo()

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    capsys.readouterr()
    assert main(["tabular", "sample", run, "--n", "5", "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    # one line, naming the file asked for (not the temporary one)
    assert len(err.splitlines()) == 1 and err.endswith(f"No space left on device: {out}"), err
    assert out.read_text() == "precious\n" and sorted(p.name for p in run_dir.glob(".keep.csv*")) == []
    monkeypatch.undo()

    target = run_dir / "target.csv"
    target.write_text("old\n")
    target.chmod(0o640)
    link = run_dir / "link.csv"
    link.symlink_to(target)
    assert main(["tabular", "sample", run, "--n", "5", "--out", str(link)]) == 0
    assert link.is_symlink() and target.read_text().startswith("size,kind,ok")
    assert target.stat().st_mode & 0o777 == 0o640
    fresh = run_dir / "fresh.csv"
    assert main(["tabular", "sample", run, "--n", "5", "--out", str(fresh)]) == 0
    umask = os.umask(0o022)
    os.umask(umask)
    assert fresh.stat().st_mode & 0o777 == 0o666 & ~umask  # as any new file, not mkstemp's 0600
    _fails(["tabular", "sample", run, "--n", "5", "--out", str(run_dir)], capsys, "expected a .csv")
    (run_dir / "dir.csv").mkdir()
    _fails(["tabular", "sample", run, "--n", "5", "--out", str(run_dir / "dir.csv")], capsys, "a folder")


def test_report_json_and_html(run_dir, capsys):
    out = run_dir / "r.html"
    capsys.readouterr()
    assert main(["tabular", "report", str(run_dir / "run"), "--real", str(run_dir / "train.csv"), "--holdout",
                 str(run_dir / "hold.csv"), "--target", "ok", "--out", str(out), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert set(res) >= {"fidelity", "utility", "privacy", "model"} and "ok" in res["utility"]
    assert 0.0 <= res["fidelity"]["overall"] <= 1.0
    page = out.read_text()
    assert page.startswith("<!doctype html>")
    fit = res["model"]["fit"]
    assert f"steps {fit['steps']}, precision {fit['precision']}" in page  # how the model was trained


def _fails(argv, capsys, message):
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err


@pytest.mark.parametrize("content, message", [
    (b"", "empty"),
    (b"x,y\n1,a\n", "1 row"),
    (b"x,y\n1,a\n2,a\n3,a\n", "column 'y' is constant"),
    (b"x,y\n1,\n2,\n3,\n", "column 'y' is entirely missing"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00", "not a CSV"),
])
def test_fit_bad_input_exit_2_and_no_run_folder(tmp_path, capsys, content, message):
    data = tmp_path / "d.csv"
    data.write_bytes(content)
    _fails(["tabular", "fit", str(data), "--out", str(tmp_path / "run"), "--epochs", "1"], capsys, message)
    assert [p.name for p in tmp_path.iterdir()] == ["d.csv"]  # nothing half-written


def test_fit_refuses_existing_run_and_bad_options(run_dir, tmp_path, capsys):
    _fails(["tabular", "fit", str(run_dir / "train.csv"), "--out", str(run_dir / "run")], capsys, "not empty")
    _fails(["tabular", "fit", str(run_dir / "train.csv"), "--out", str(tmp_path / "r"), "--discrete", "nope"],
           capsys, "no column 'nope'")
    _fails(["tabular", "fit", str(run_dir / "train.csv"), "--out", str(tmp_path / "r"), "--batch-size", "33"],
           capsys, "multiple of pack")
    _fails(["tabular", "fit", str(run_dir / "train.csv"), "--out", str(tmp_path / "r"), "--set", "reuse_fakes=1"],
           capsys, "did you mean 'reuse_fake'")
    _fails(["tabular", "fit", str(run_dir / "train.csv"), "--out", str(tmp_path / "r"), "--set", "ema=2"],
           capsys, "ema must be in [0, 1)")
    assert not (tmp_path / "r").exists()



def test_fit_under_torchrun_with_several_processes_is_refused(run_dir, tmp_path, capsys, monkeypatch):
    # What torchrun --nproc_per_node=2 sets: every rank would otherwise fit alone and write the same folder.
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    _fails(["tabular", "fit", str(run_dir / "train.csv"), "--out", str(tmp_path / "r")], capsys, "one process")
    assert list(tmp_path.iterdir()) == []
    from gankit.errors import UserError
    from gankit.tasks.tabular import TabularGAN

    with pytest.raises(UserError, match="torchrun started 2"):
        TabularGAN(epochs=1).fit(pd.read_csv(run_dir / "train.csv"))
    monkeypatch.setenv("WORLD_SIZE", "1")  # torchrun with one process: allowed
    monkeypatch.setenv("RANK", "0")
    assert main(["tabular", "fit", str(run_dir / "train.csv"), "--out", str(tmp_path / "r"), "--epochs", "1",
                 "--batch-size", "30", "--threads", "1"]) == 0

def test_fit_set_reaches_the_model(run_dir, tmp_path):
    assert main(["tabular", "fit", str(run_dir / "train.csv"), "--out", str(tmp_path / "r"), "--epochs", "1",
                 "--batch-size", "30", "--threads", "1", "--set", "reuse_fake=true", "--set", "g_dims=[16, 8]",
                 "--set", "gp_every=2"]) == 0
    config = json.loads((tmp_path / "r" / "model.json").read_text())["config"]
    assert config["reuse_fake"] is True and config["g_dims"] == [16, 8] and config["gp_every"] == 2


def test_fit_precision_reaches_the_model(run_dir, tmp_path, capsys):
    capsys.readouterr()
    assert main(["tabular", "fit", str(run_dir / "train.csv"), "--out", str(tmp_path / "r"), "--epochs", "1",
                 "--batch-size", "30", "--threads", "1", "--precision", "bf16"]) == 0
    assert "bf16);" in capsys.readouterr().out  # the summary line names the precision used
    model = json.loads((tmp_path / "r" / "model.json").read_text())
    assert model["config"]["precision"] == "bf16" and model["fit"]["precision"] == "bf16"
    _fails(["tabular", "fit", str(run_dir / "train.csv"), "--out", str(tmp_path / "q"), "--set", "precision=fp16"],
           capsys, "precision must be fp32, bf16 or auto")
    assert not (tmp_path / "q").exists()


def test_cli_warnings_are_one_line(run_dir, tmp_path, capsys, monkeypatch):
    import gankit.tasks.tabular as tab

    monkeypatch.setattr(tab, "native_bf16", lambda device: False)  # a CPU that emulates bfloat16
    capsys.readouterr()
    assert main(["tabular", "fit", str(run_dir / "train.csv"), "--out", str(tmp_path / "r"), "--epochs", "1",
                 "--batch-size", "30", "--threads", "1", "--precision", "bf16"]) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if "warning" in line.lower()]
    expected = ("gankit tabular: warning: precision bf16: this CPU has no native bfloat16 products, so they are "
                "emulated and slower than fp32; auto picks fp32 here")
    assert err == [expected]


def test_sample_and_report_bad_input(run_dir, capsys):
    run = str(run_dir / "run")
    _fails(["tabular", "sample", run, "--n", "5", "--out", str(run_dir / "x.csv"), "--condition", "kind=zzz"],
           capsys, "no value 'zzz'")
    _fails(["tabular", "sample", run, "--n", "5", "--out", str(run_dir / "x.csv"), "--condition", "kind"],
           capsys, "expected COL=VALUE")
    _fails(["tabular", "sample", run, "--n", "5", "--out", str(run_dir / "x.parquet")], capsys, ".csv")
    _fails(["tabular", "sample", run, "--n", "0", "--out", str(run_dir / "x.csv")], capsys, "must be positive")
    assert not (run_dir / "x.csv").exists() and not list(run_dir.glob(".x.csv*"))  # nothing written, no temp file
    _fails(["tabular", "sample", str(run_dir), "--n", "5", "--out", str(run_dir / "x.csv")], capsys,
           "not a tabular model folder")
    _fails(["tabular", "report", run, "--real", str(run_dir / "train.csv"), "--target", "ok", "--out",
            str(run_dir / "r2.html")], capsys, "needs --holdout")
