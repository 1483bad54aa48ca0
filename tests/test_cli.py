"""The CLI: outputs of each verb, and one-line errors with exit code 2 for bad input."""

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from gankit.cli import main


def run_cli(*args):
    """Run gankit in a subprocess so that tracebacks and exit codes are exactly what a user sees."""
    proc = subprocess.run([sys.executable, "-m", "gankit", *map(str, args)], capture_output=True, text=True,
                          timeout=300, check=False)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "toy"
    assert main(["train", "--preset", "ring8", "--out", str(out), "--steps", "20", "--quiet",
                 "--set", "g.width=16", "--set", "d.width=16", "--set", "log.every=10"]) == 0
    return out


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "digits"
    assert main(["train", "--out", str(out), "--steps", "4", "--quiet", "--set", "data.size=8",
                 "--set", "g.width=8", "--set", "d.width=8", "--set", "log.every=2"]) == 0
    return out


def test_sample_formats(digits_run, tmp_path):
    assert main(["sample", str(digits_run), "--n", "9", "--out", str(tmp_path / "g.png")]) == 0
    grid = np.asarray(Image.open(tmp_path / "g.png"))
    assert grid.std() > 0  # not a constant picture
    assert main(["sample", str(digits_run), "--n", "5", "--out", str(tmp_path / "s.npz")]) == 0
    assert np.load(tmp_path / "s.npz")["samples"].shape == (5, 1, 8, 8)
    assert main(["sample", str(digits_run), "--n", "3", "--out", str(tmp_path / "folder")]) == 0
    assert len(list((tmp_path / "folder").glob("*.png"))) == 3


def test_sample_points_npz_in_data_units(toy_run, tmp_path):
    assert main(["sample", str(toy_run), "--n", "50", "--seed", "3", "--out", str(tmp_path / "p.npz")]) == 0
    pts = np.load(tmp_path / "p.npz")["samples"]
    assert pts.shape == (50, 2)
    assert main(["sample", str(toy_run), "--n", "50", "--out", str(tmp_path / "p.png")]) == 0


def test_interpolate_and_info(digits_run, tmp_path, capsys):
    assert main(["interpolate", str(digits_run), "--out", str(tmp_path / "i.png"), "--frames", "5"]) == 0
    assert main(["interpolate", str(digits_run), "--out", str(tmp_path / "i.gif"), "--frames", "3"]) == 0
    assert Image.open(tmp_path / "i.gif").n_frames == 4  # there and back
    assert main(["info", str(digits_run), "--json"]) == 0
    assert '"trained_steps": 4' in capsys.readouterr().out


def test_print_config_and_help():
    code, out, _ = run_cli("train", "--out", "x", "--print-config", "--set", "loss.name=hinge")
    assert code == 0 and "name: hinge" in out
    code, out, _ = run_cli("--help")
    assert code == 0 and "train" in out and "sample" in out


def _bad_folders(tmp_path):
    (tmp_path / "empty").mkdir()
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    Image.new("L", (8, 8)).save(mixed / "ok.png")
    (mixed / "readme.txt").write_text("not an image")
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    Image.new("L", (8, 8)).save(corrupt / "ok.png")
    (corrupt / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    return tmp_path


BAD_TRAIN = [
    (["--set", "data.source=/does/not/exist"], "data not found"),
    (["--set", "data.source={tmp}/empty"], "no images found"),
    (["--set", "data.source={tmp}/mixed"], "not an image file"),
    (["--set", "data.source={tmp}/corrupt"], "cannot read image"),
    (["--preset", "digitz"], "unknown preset"),
    (["--set", "train.stpes=5"], "did you mean 'train.steps'"),
    (["--set", "loss.name=nope"], "unknown loss"),
    (["--steps", "-3"], "--steps must be >= 0"),
    (["--set", "opt_g.lr=fast"], "opt_g.lr"),
    (["--config", "{tmp}/missing.yaml"], "config file not found"),
]


@pytest.mark.parametrize("args, message", BAD_TRAIN)
def test_train_bad_input_is_one_line_exit_2(tmp_path, args, message):
    _bad_folders(tmp_path)
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    code, _, err = run_cli("train", "--out", tmp_path / "run", "--quiet", *args)
    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert message in err
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_sample_bad_input(digits_run, tmp_path):
    cases = [
        (["sample", tmp_path / "nope", "--out", tmp_path / "x.png"], "run folder not found"),
        (["sample", tmp_path, "--out", tmp_path / "x.png"], "no checkpoint"),
        (["sample", digits_run, "--n", "0", "--out", tmp_path / "x.png"], "--n must be positive"),
        (["sample", digits_run, "--out", tmp_path / "x.bmpx"], "unknown output format"),
        (["sample", digits_run, "--class", "3", "--out", tmp_path / "x.png"], "not conditional"),
        (["sample", digits_run, "--truncation", "2", "--out", tmp_path / "x.png"], "--truncation"),
        (["interpolate", digits_run, "--out", tmp_path / "x.mp4"], ".png or .gif"),
        (["info", tmp_path / "nope"], "run folder not found"),
        (["sample", digits_run], "required"),
    ]
    for args, message in cases:
        code, _, err = run_cli(*args)
        assert code == 2 and message in err and "Traceback" not in err, (args, err)
        assert len(err.strip().splitlines()) == 1, err
