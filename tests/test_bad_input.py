"""Every CLI command over the bad-input corpus (tests/data/bad, made by tests/data/make_bad.py, plus bad
run folders and a symlink loop made here): no traceback, every refusal one line on stderr with exit
code 2, and nothing left behind. Also property tests for config parsing.

Adding a command to gankit.cli.COMMANDS? Add its bad-input cases to CASES below; a command without an
entry fails ``test_every_command_has_bad_input_cases``.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_checkpoint_safety import WEIGHT_LEVEL, bad_run_world

from gankit.cli import COMMANDS, main
from gankit.config import Config, all_keys, apply_overrides
from gankit.errors import UserError

BAD = Path(__file__).resolve().parent / "data" / "bad"

IMAGES = sorted(p.name for p in (BAD / "images").iterdir()) + ["symlink_loop"]
ARRAYS = sorted(p.name for p in (BAD / "arrays").iterdir())
CONFIGS = sorted(p.name for p in (BAD / "configs").iterdir())
# Tables a fit must refuse; the others (BOM, Latin-1, constant, mixed, huge cardinality, ragged) are
# legitimate input whose handling tests/test_tabular*.py checks without training here.
TABLES = ["empty.csv", "header_only.csv", "one_row.csv", "all_missing.csv", "binary.csv"]
TEXTS = sorted(p.name for p in (BAD / "text").iterdir())
RUNS = sorted(WEIGHT_LEVEL | {"manifest_escape_dotdot", "manifest_escape_absolute", "manifest_not_json",
                              "manifest_wrong_types", "manifest_empty", "config_yaml_corrupt", "empty_folder",
                              "missing_folder", "a_file"})
NOT_A_RUN = {"empty_folder", "missing_folder", "a_file", "manifest_not_json", "manifest_wrong_types",
             "manifest_escape_dotdot", "manifest_escape_absolute"}
# Runs that commands reading only logs and the manifest (not the weights) may accept.
LOG_READERS_MAY_ACCEPT = set(RUNS) - NOT_A_RUN
# For commands that read only a run's logs (doctor, report): folders that are no run at all, and a few
# damaged runs whose logs are intact (they may be accepted, but must not crash or run a payload).
LOG_RUNS = ["empty_folder", "missing_folder", "a_file", "pickle_as_safetensors", "manifest_not_json",
            "config_yaml_corrupt"]
LOGS_INTACT = {"pickle_as_safetensors", "manifest_not_json", "config_yaml_corrupt"}
# --resume builds the networks from config.yaml, so damage confined to the checkpoint's copy of the
# config does not stop it; the weights themselves are still checked.
RESUME_MAY_ACCEPT = {"manifest_empty", "shape_mismatch", "channels_mismatch", "meta_config_not_mapping",
                     "meta_config_unknown_key", "meta_without_config"}
SETTINGS = ["train.stpes=5", "opt_g.lr=fast", "opt_g.lr=.nan", "train.ema=2", "data.batch_size=0",
            "loss.name=nope", "g.family=transformer", "train.nonfinite=ignore", "data.channels=2",
            "novalue", "=3", "data..size=8", "data=3", "train.device=tpu", "data.size=-4"]

# Per module in gankit.cli.COMMANDS: (argv template, which expansions must fail with exit 2).
# Placeholders expand over the corpus: {images} image folders, {arrays} .npy/.npz files, {config}
# YAML configs, {setting} bad --set values, {run} bad run folders, {csv} tables, {text} text files;
# {out} is a fresh output path that must not exist after a refusal. The second item is True (every
# expansion must be refused), or the set of expansion names that may legitimately succeed (they must
# still not crash).
TINY = ["--quiet"]
CASES: dict[str, list[tuple[list[str], bool | set[str]]]] = {
    "train": [
        (["train", "--out", "{out}", *TINY, "--set", "data.source={images}", "--set", "data.size=8"], True),
        (["train", "--out", "{out}", *TINY, "--set", "data.source={arrays}", "--set", "data.size=8"], True),
        (["train", "--out", "{out}", *TINY, "--config", "{config}"], True),
        (["train", "--out", "{out}", *TINY, "--set", "{setting}"], True),
        (["train", "--out", "{out}", "--preset", "ring8", "--config", "{config}"], True),  # conflicting
        (["train", "--out", "{run}", "--resume", "--steps", "3", *TINY], RESUME_MAY_ACCEPT),
    ],
    "sample": [(["sample", "{run}", "--n", "4", "--out", "{out}.png"], {"config_yaml_corrupt"}),
               (["sample", "{run}", "--n", "4", "--out", "{out}"], {"config_yaml_corrupt"})],
    "interpolate": [(["interpolate", "{run}", "--frames", "3", "--out", "{out}.gif"], {"config_yaml_corrupt"})],
    "info": [(["info", "{run}"], LOG_READERS_MAY_ACCEPT - {"config_yaml_corrupt", "manifest_empty"})],
    "eval": [(["eval", "{run}", "--n", "20", "--features", "raw", "--metrics", "fid", "--no-cache", "--quiet"],
              {"config_yaml_corrupt"}),
             (["eval", "--real", "{arrays}", "--fake", "{arrays}", "--features", "raw", "--quiet"], True),
             (["eval", "--real", "{images}", "--fake", "{images}", "--features", "raw", "--quiet"], True)],
    "classifier": [(["classifier", "train", "{images}", "--out", "{out}.safetensors", "--epochs", "1"], True),
                   (["classifier", "train", "{arrays}", "--out", "{out}.safetensors", "--epochs", "1"], True),
                   (["classifier", "predict", "{arrays}", "{arrays}"], True)],
    "doctor": [(["doctor", "{logrun}"], LOGS_INTACT)],
    "report": [(["report", "{logrun}"], LOGS_INTACT)],
    "augment": [(["augment", "{run}", "--n-per-class", "2", "--out", "{out}"], True),
                (["augment-report", "--data", "{images}", "--seeds", "1", "--gan-steps", "1"], True),
                (["agreement", "{run}", "--classifier", str(BAD / "odd_modes" / "rgb.png")], True)],
    "sequence": [(["sequence", "fit", "{text}", "--out", "{out}", "--steps", "1", "--quiet"],
                  {"one_line.txt", "binary.txt"}),
                 (["sequence", "sample", "{run}", "--n", "2", "--out", "{out}.txt"], True)],
    "translate": [(["translate", "fit", "--a", "{images}", "--b", "{images}", "--out", "{out}", "--steps", "1",
                    "--size", "32", "--quiet"], True),
                  (["translate", "fit", "--a", str(BAD / "odd_modes"), "--b", str(BAD / "odd_modes"), "--out", "{out}",
                    "--steps", "1", "--size", "32", "--quiet", "--set", "log.sample_every=0"], True),
                  (["translate", "apply", "{run}", "--in", str(BAD / "odd_modes" / "rgb.png"), "--out", "{out}.png"],
                   True),
                  (["translate", "eval", "{run}", "--a", str(BAD / "odd_modes"), "--b", str(BAD / "odd_modes"),
                    "--epochs", "1"], True)],
    "upscale": [(["upscale", "fit", "--data", "{images}", "--out", "{out}", "--steps", "1", "--quiet"], True),
                (["upscale", "fit", "--data", str(BAD / "odd_modes"), "--out", "{out}", "--steps", "1", "--quiet",
                  "--set", "log.checkpoint_every=0"], True),
                (["upscale", "apply", "{run}", "--in", str(BAD / "odd_modes" / "rgb.png"), "--out", "{out}.png"],
                 True)],
    "stylemix": [(["stylemix", "{run}", "--rows", "0,1", "--cols", "2", "--out", "{out}.png"], True)],
    "project": [(["project", "{run}", "--image", str(BAD / "odd_modes" / "rgb.png"), "--out", "{out}", "--steps", "1"],
                 True)],
    "tabular": [(["tabular", "fit", "{csv}", "--out", "{out}", "--epochs", "1", "--batch-size", "10"], True),
                (["tabular", "sample", "{run}", "--n", "5", "--out", "{out}.csv"], True)],
}
# Known bugs in other modules, by command: a strict xfail, so a fix makes the test fail until the entry goes.
KNOWN_BUGS: dict[str, str] = {}
PLACES = {"{images}": IMAGES, "{arrays}": ARRAYS, "{config}": CONFIGS, "{setting}": SETTINGS, "{run}": RUNS,
          "{logrun}": LOG_RUNS,
          "{csv}": TABLES, "{text}": TEXTS}


def test_every_command_has_bad_input_cases():
    missing = [name for name in COMMANDS if name not in CASES]
    assert not missing, (f"gankit.cli modules without bad-input cases: {missing}. Add entries for them to "
                         "CASES in tests/test_bad_input.py (argument templates over the corpus).")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Bad run folders, a symlink loop, and where each placeholder value lives."""
    root = tmp_path_factory.mktemp("bad")
    _, runs, marker = bad_run_world(tmp_path_factory)
    loop = root / "symlink_loop"
    (loop / "sub").mkdir(parents=True)
    shutil.copy(BAD / "odd_modes" / "grey.png", loop / "ok.png")
    (loop / "sub" / "back").symlink_to(loop, target_is_directory=True)  # a folder loop: walked once
    (loop / "a.png").symlink_to(loop / "b.png")  # a file loop: refused
    (loop / "b.png").symlink_to(loop / "a.png")
    where = {"{images}": lambda v: loop if v == "symlink_loop" else BAD / "images" / v,
             "{arrays}": lambda v: BAD / "arrays" / v, "{config}": lambda v: BAD / "configs" / v,
             "{setting}": lambda v: v, "{run}": lambda v: runs[v], "{logrun}": lambda v: runs[v], "{csv}": lambda v: BAD / "tables" / v,
             "{text}": lambda v: BAD / "text" / v}
    yield root, where
    assert not marker.exists(), "a pickle payload was executed"


def _listing(path: Path) -> list[tuple[str, int]]:
    if not path.exists():
        return []
    if path.is_file():
        return [(path.name, path.stat().st_size)]
    return sorted((str(p.relative_to(path)), p.stat().st_size if p.is_file() else -1) for p in path.rglob("*"))


def run_main(argv: list[str]) -> tuple[int, str, str]:
    """gankit.cli.main in-process; an exception escaping it is the traceback a user would see."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse
            code = exc.code if isinstance(exc.code, int) else 2
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("command", [
    pytest.param(c, marks=pytest.mark.xfail(strict=True, reason=KNOWN_BUGS[c])) if c in KNOWN_BUGS else c
    for c in sorted(CASES)])
def test_command_over_the_corpus(command, world, tmp_path):
    if command not in COMMANDS:
        pytest.skip(f"gankit {command} is not (yet) in gankit.cli.COMMANDS")
    _, where = world
    problems, n = [], 0
    for template, may_succeed in CASES[command]:
        place = next((p for p in PLACES if any(p in a for a in template)), None)
        for value in PLACES[place] if place else [None]:
            n += 1
            target = where[place](value) if place else None
            if place in ("{run}", "{logrun}") and isinstance(target, Path) and target.is_dir():
                copy = tmp_path / f"run{n}"  # commands may write into a run: use a copy
                shutil.copytree(target, copy, symlinks=True)
                target = copy
            out = tmp_path / f"out{n}"
            argv = [a.replace(place, str(target)) if place else a for a in template]
            argv = [a.replace("{out}", str(out)) for a in argv]
            before = _listing(target) if isinstance(target, Path) else None
            try:
                code, _, err = run_main(argv)
            except Exception as exc:  # noqa: BLE001 - exactly what this test hunts for
                problems.append(f"TRACEBACK {type(exc).__name__}: {exc!s:.200}\n    gankit {' '.join(argv)}")
                continue
            lines = err.strip().splitlines()
            if code == 0 and may_succeed is not True and value in may_succeed:
                continue
            if code != 2 or len(lines) != 1 or "Traceback" in err:
                problems.append(f"exit {code}, stderr {len(lines)} lines: {err.strip()[:300]!r}\n"
                                f"    gankit {' '.join(argv)}")
                continue
            leftovers = [p.name for p in tmp_path.iterdir() if p.name.split(".")[0] == f"out{n}"]
            if leftovers:
                problems.append(f"left output behind: {leftovers}\n    gankit {' '.join(argv)}")
            if before is not None and _listing(target) != before:
                problems.append(f"changed its input {target} although it failed\n    gankit {' '.join(argv)}")
    assert not problems, f"{len(problems)} of {n} cases:\n" + "\n".join(problems)


def test_real_process_exit_code_and_one_line(world, tmp_path):
    """The same contract through `python -m gankit`, as a user's shell sees it."""
    _, where = world
    for argv in (["sample", str(where["{run}"]("pickle_as_safetensors")), "--out", str(tmp_path / "x.png")],):
        proc = subprocess.run([sys.executable, "-m", "gankit", *argv], capture_output=True, text=True, timeout=300,
                              check=False)
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert "Traceback" not in proc.stderr
    assert not (tmp_path / "x.png").exists()


def test_odd_image_modes_are_converted(tmp_path):
    """16-bit, palette (with and without transparency), CMYK, alpha, bilevel, grey mixed with RGB and
    images smaller than the model all load, as documented in gankit.data.images.read_image."""
    import numpy as np

    from gankit.config import DataConfig
    from gankit.data import load_data
    from gankit.data.images import read_image

    ds = load_data(DataConfig(source=str(BAD / "odd_modes"), size=8))
    assert ds.x.shape == (len(list((BAD / "odd_modes").iterdir())), 3, 8, 8)
    assert ds.x.min() >= -1 and ds.x.max() <= 1
    grey16 = np.asarray(read_image(BAD / "odd_modes" / "grey16.png", 1), dtype=np.float64)
    assert 100 < grey16.mean() < 155  # uniform 16-bit noise scaled by 1/257, not by its own maximum
    white = np.asarray(read_image(BAD / "odd_modes" / "rgba.png", 3))
    assert white.shape == (12, 12, 3)


# ---------------------------------------------------------------------------------------------
# property tests: config parsing never fails with anything but a UserError

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=12))
yaml_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                            st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                           max_leaves=8)
keys = st.one_of(st.sampled_from(all_keys()), st.text(max_size=20))
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FAST
@given(key=keys, raw=st.text(st.characters(blacklist_categories=("Cs",)), max_size=20))
def test_set_parsing_gives_a_config_or_a_one_line_error(key, raw):
    code, out, err = run_main(["train", "--out", "unused", "--print-config", f"--set={key}={raw}"])
    assert (code == 0 and out and not err) or (code == 2 and len(err.strip().splitlines()) == 1), (code, err)
    if code == 0:
        assert Config.from_dict(yaml.safe_load(out)).validate()  # what was accepted round-trips


@FAST
@given(key=st.sampled_from(all_keys()), value=st.one_of(st.integers(-10**6, 10**6), st.booleans(),
                                                        st.text(alphabet="abcxyz_", min_size=1, max_size=8)))
def test_set_values_land_exactly_or_are_refused(key, value):
    text = str(value).lower() if isinstance(value, bool) else str(value)
    try:
        cfg = apply_overrides(Config(), [f"{key}={text}"])
    except UserError:
        return
    section, name = key.split(".")
    got = getattr(getattr(cfg, section), name)
    assert got == value or (isinstance(got, float) and got == float(value)) or got == text


@FAST
@given(data=st.dictionaries(st.one_of(st.sampled_from(["train", "data", "g", "opt_d", "log"]), st.text(max_size=6)),
                            yaml_values, max_size=4))
def test_yaml_load_gives_a_config_or_a_user_error(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("y") / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    code, out, err = run_main(["train", "--out", "unused", "--print-config", "--config", str(path)])
    assert (code == 0 and out and not err) or (code == 2 and len(err.strip().splitlines()) == 1), (code, err)
    if code == 0:
        assert Config.from_dict(yaml.safe_load(out)) == Config.load(path)


@FAST
@given(text=st.text(st.characters(blacklist_categories=("Cs",)), max_size=200))
def test_any_text_as_a_config_file(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("t") / "c.yaml"
    path.write_text(text)
    with contextlib.suppress(UserError):
        Config.load(path).validate()


@FAST
@given(train=st.fixed_dictionaries({}, optional={
    "steps": st.integers(0, 10**9), "ema": st.floats(0, 0.9999), "seed": st.integers(0, 2**31),
    "nonfinite": st.sampled_from(["skip", "rollback", "stop"]), "device": st.sampled_from(["cpu", "auto"])}))
def test_valid_configs_round_trip_through_yaml(tmp_path_factory, train):
    cfg = Config.from_dict({"train": train}).validate()
    path = tmp_path_factory.mktemp("r") / "config.yaml"
    cfg.save(path)
    assert Config.load(path) == cfg
    assert not [p for p in path.parent.iterdir() if p.name != "config.yaml"]  # the atomic save's temp file is gone

