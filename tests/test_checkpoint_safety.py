"""Safe model files: nothing is unpickled, files that are not what they claim are refused with one clear
error, and names read from a manifest cannot leave the run folder. The bad run folders built here are
also used by tests/test_bad_input.py, which runs every CLI command over them."""

import json
import pickle
import re
import shutil
from pathlib import Path

import pytest
import torch

import gankit
from gankit import checkpoint as ckpt
from gankit.errors import UserError

SRC = Path(__file__).resolve().parents[1] / "src" / "gankit"


class Payload:
    """Unpickling this runs ``exec`` on code that writes ``marker``: a stand-in for malware."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('pwned')",))


def malicious_pickle(marker: Path) -> bytes:
    return pickle.dumps({"G_ema.net.0.weight": Payload(marker)})


def _manifest(run: Path) -> dict:
    return json.loads((run / "checkpoints" / ckpt.MANIFEST).read_text())


def _rewrite(run: Path, *, weights: bytes | None = None, meta: dict | None = None, rehash: bool = True,
             entry: dict | None = None) -> None:
    """Replace the (single) checkpoint's files and, with ``rehash``, make the manifest agree with them,
    as an attacker who controls the whole folder would."""
    d = run / "checkpoints"
    man = _manifest(run)
    e = man["checkpoints"][-1]
    if weights is not None:
        (d / e["weights"]).write_bytes(weights)
        if rehash:
            e["sha256"] = ckpt.sha256(weights)
    if meta is not None:
        data = (json.dumps(meta) + "\n").encode()
        (d / e["meta"]).write_bytes(data)
        if rehash:
            e["meta_sha256"] = ckpt.sha256(data)
    if entry is not None:
        e.update(entry)
    (d / ckpt.MANIFEST).write_text(json.dumps(man))


def build_good_run(root: Path) -> Path:
    cfg = gankit.preset("digits")
    cfg.data.size, cfg.g.width, cfg.d.width, cfg.data.batch_size = 8, 8, 8, 16
    cfg.log.every, cfg.log.sample_every, cfg.log.checkpoint_every = 2, 1000, 1000
    cfg.log.n_samples, cfg.log.progress, cfg.health.enabled = 16, False, False
    gankit.train(cfg, root / "good", steps=2)  # one checkpoint, so no older one to fall back on
    return root / "good"


def build_bad_runs(root: Path, good: Path, marker: Path) -> dict[str, Path]:
    """Run folders that must be refused, by name."""
    runs = {}

    def variant(name):
        runs[name] = root / name
        shutil.copytree(good, runs[name])
        return runs[name]

    weights_name = _manifest(good)["checkpoints"][-1]["weights"]
    weights = (good / "checkpoints" / weights_name).read_bytes()
    meta = json.loads((good / "checkpoints" / weights_name.replace(".safetensors", ".json")).read_text())

    _rewrite(variant("pickle_as_safetensors"), weights=malicious_pickle(marker))
    torch_zip = root / "torch_save.bin"
    torch.save({"G_ema.net.0.weight": Payload(marker)}, torch_zip)
    _rewrite(variant("torch_save_as_safetensors"), weights=torch_zip.read_bytes())
    _rewrite(variant("truncated"), weights=weights[: len(weights) // 2])
    flipped = bytearray(weights)
    flipped[-5] ^= 0xFF
    _rewrite(variant("hash_mismatch"), weights=bytes(flipped), rehash=False)
    wider = json.loads(json.dumps(meta))
    wider["config"]["g"]["width"] = 16
    _rewrite(variant("shape_mismatch"), meta=wider)
    other_data = json.loads(json.dumps(meta))
    other_data["data"]["shape"] = [3, 8, 8]
    _rewrite(variant("channels_mismatch"), meta=other_data)
    (root / "outside.safetensors").write_bytes(weights)
    _rewrite(variant("manifest_escape_dotdot"), entry={"weights": "../../outside.safetensors"})
    _rewrite(variant("manifest_escape_absolute"), entry={"weights": str(root / "outside.safetensors")})
    link_run = variant("manifest_escape_symlink")
    (link_run / "checkpoints" / "link.safetensors").symlink_to(root / "outside.safetensors")
    _rewrite(link_run, entry={"weights": "link.safetensors"})
    (variant("manifest_not_json") / "checkpoints" / ckpt.MANIFEST).write_text("{not json")
    (variant("manifest_wrong_types") / "checkpoints" / ckpt.MANIFEST).write_text('{"checkpoints": [{"step": "x"}]}')
    (variant("manifest_empty") / "checkpoints" / ckpt.MANIFEST).write_text('{"checkpoints": []}')
    _rewrite(variant("meta_not_object"), meta=[1, 2, 3])
    _rewrite(variant("meta_without_config"), meta={"kind": "gan", "step": 2})
    broken = json.loads(json.dumps(meta))
    broken["config"] = ["not", "a", "mapping"]
    _rewrite(variant("meta_config_not_mapping"), meta=broken)
    unknown = json.loads(json.dumps(meta))
    unknown["config"]["g"]["colour"] = "blue"
    _rewrite(variant("meta_config_unknown_key"), meta=unknown)
    (variant("config_yaml_corrupt") / "config.yaml").write_text("train: [")
    (root / "empty_folder").mkdir()
    runs["empty_folder"] = root / "empty_folder"
    runs["missing_folder"] = root / "does_not_exist"
    (root / "a_file").write_text("not a folder")
    runs["a_file"] = root / "a_file"
    return runs


# names whose refusal comes from loading the weights (info only lists the manifest)
WEIGHT_LEVEL = {"pickle_as_safetensors", "torch_save_as_safetensors", "truncated", "hash_mismatch",
                "shape_mismatch", "channels_mismatch", "manifest_escape_symlink", "meta_not_object",
                "meta_without_config", "meta_config_not_mapping", "meta_config_unknown_key"}


_BUILT: dict = {}


def bad_run_world(tmp_path_factory) -> tuple[Path, dict[str, Path], Path]:
    """(good run, bad runs by name, payload marker), built once per test session (read-only: a test
    that lets a command write into a run works on a copy)."""
    if not _BUILT:
        root = tmp_path_factory.mktemp("runs")
        marker = root / "PAYLOAD_RAN"
        good = build_good_run(root)
        _BUILT.update(good=good, runs=build_bad_runs(root, good, marker), marker=marker)
    return _BUILT["good"], _BUILT["runs"], _BUILT["marker"]


@pytest.fixture(scope="module")
def bad_runs(tmp_path_factory):
    good, runs, marker = bad_run_world(tmp_path_factory)
    yield good, runs, marker
    assert not marker.exists(), "a pickle payload was executed"


def test_payload_is_live():
    """The payload really would run if anything unpickled it, so its absence below means something."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        marker = Path(d) / "m"
        pickle.loads(malicious_pickle(marker))
        assert marker.exists()


EXPECT = {
    "pickle_as_safetensors": "not a safetensors file",
    "torch_save_as_safetensors": "not a safetensors file",
    "truncated": "corrupt safetensors file",
    "hash_mismatch": "SHA-256 does not match",
    "shape_mismatch": "has shape",
    "channels_mismatch": "has shape",
    "manifest_escape_dotdot": "refusing file name",
    "manifest_escape_absolute": "refusing file name",
    "manifest_escape_symlink": "refusing file name",
    "manifest_not_json": "corrupt manifest",
    "manifest_wrong_types": "corrupt manifest",
    "manifest_empty": "no checkpoint",
    "meta_not_object": "expected a JSON object",
    "meta_without_config": "no 'config' entry",
    "meta_config_not_mapping": "expected a mapping",
    "meta_config_unknown_key": "unknown key 'g.colour'",
    "empty_folder": "no checkpoint",
    "missing_folder": "run folder not found",
    "a_file": "run folder not found",
}


@pytest.mark.parametrize("name", sorted(EXPECT))
def test_load_refuses_with_a_clear_error(bad_runs, name):
    _, runs, marker = bad_runs
    with pytest.raises(UserError, match=re.escape(EXPECT[name])) as info:
        gankit.load(runs[name])
    assert "\n" not in str(info.value)
    assert not marker.exists()


def test_the_good_run_loads(bad_runs):
    good, _, _ = bad_runs
    assert gankit.load(good).sample(2, seed=0).shape == (2, 1, 8, 8)


def test_cli_refuses_and_writes_nothing(bad_runs, tmp_path, capsys):
    from gankit.cli import main

    _, runs, marker = bad_runs
    for name in ("pickle_as_safetensors", "torch_save_as_safetensors", "manifest_escape_dotdot"):
        for argv in (["sample", str(runs[name]), "--n", "4", "--out", str(tmp_path / "s.png")],
                     ["interpolate", str(runs[name]), "--out", str(tmp_path / "i.png")],
                     ["info", str(runs[name])]):
            code = main(argv)
            err = capsys.readouterr().err
            if argv[0] == "info" and name != "manifest_escape_dotdot":
                assert code == 0  # info lists the manifest; it never reads weights
                continue
            assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, (argv, err)
    assert not (tmp_path / "s.png").exists() and not (tmp_path / "i.png").exists()
    assert not marker.exists()


def test_inside_refuses_escaping_names(tmp_path):
    for name in ("../x", "..", "a/b", "/etc/passwd", "..\\x", ".hidden", "", "c:x", "a\x00b", None, 3):
        with pytest.raises(UserError, match="refusing file name"):
            ckpt.inside(tmp_path, name)
    assert ckpt.inside(tmp_path, "step-00000001.safetensors") == tmp_path / "step-00000001.safetensors"


def test_nothing_in_gankit_unpickles():
    """A static guard for the whole package: no pickle, no unsafe YAML, and torch.load only with
    weights_only=True (PyTorch's restricted loader, used for third-party reference networks)."""
    forbidden = re.compile(r"pickle\.loads?\(|allow_pickle\s*=\s*True|yaml\.load\(|yaml\.unsafe_load|"
                           r"marshal\.loads?\(|joblib\.load|dill\.load|shelve\.open")
    problems = []
    for path in SRC.rglob("*.py"):
        for i, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if forbidden.search(code) or ("torch.load(" in code and "weights_only=True" not in code):
                problems.append(f"{path.relative_to(SRC)}:{i}: {line.strip()}")
    assert not problems, "unsafe deserialisation:\n" + "\n".join(problems)


def test_atomic_open_names_the_target_only_for_its_own_errors(tmp_path):
    """An error of the write itself (no file name of its own, e.g. a full disk) names the target, not the
    temporary file; an error the caller raises inside the block about another file keeps its file name.
    Either way the temporary file is gone and an existing target is untouched. Text is UTF-8."""
    out = tmp_path / "out.csv"
    out.write_text("old\n")
    with pytest.raises(OSError) as err, ckpt.atomic_open(out, "w") as f:
        f.write("new")
        raise OSError(28, "No space left on device")
    assert err.value.filename == str(out)
    with pytest.raises(OSError) as err, ckpt.atomic_open(out, "w") as f:
        open(tmp_path / "missing.csv")  # noqa: SIM115 - the caller's own error
    assert err.value.filename == str(tmp_path / "missing.csv")
    assert out.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["out.csv"]
    with ckpt.atomic_open(out, "w") as f:
        f.write("café")
    assert out.read_bytes() == "café".encode()
    with pytest.raises(ValueError, match="mode"), ckpt.atomic_open(out, "a"):
        pass
