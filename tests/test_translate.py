"""CycleGAN: network shapes, the history pool, loss weights, the lr schedule, fit/apply end to end, bad input."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from gankit.cli import main
from gankit.nets.cyclegan import PatchDiscriminator, ResnetGenerator, default_blocks, receptive_field
from gankit.tasks.translate import CycleGAN, ImagePool, TranslateConfig, build_nets, linear_decay, load


@pytest.mark.parametrize("size,patches", [(32, 2), (64, 6), (128, 14), (256, 30)])
def test_shapes_for_sizes(size, patches):
    G = ResnetGenerator(3, 3, width=2, n_blocks=default_blocks(size))
    D = PatchDiscriminator(3, width=2)
    x = torch.rand(1, 3, size, size) * 2 - 1
    with torch.no_grad():
        y = G(x)
        assert y.shape == x.shape and y.abs().max() <= 1
        assert D(x).shape == (1, 1, patches, patches)  # 30x30 patches at 256 px, as pix2pix / CycleGAN
    assert sum(isinstance(m, torch.nn.Module) and type(m).__name__ == "ResnetBlock" for m in G.modules()) == (
        9 if size >= 256 else 6)


def test_patchgan_receptive_field_and_grey():
    assert receptive_field(3) == 70
    G = ResnetGenerator(1, 1, width=4, n_blocks=1)
    assert G(torch.zeros(2, 1, 32, 48)).shape == (2, 1, 32, 48)


@pytest.mark.parametrize("down", [0, 1, 2])
def test_generator_downsampling_stages(down):
    G = ResnetGenerator(1, 1, width=4, n_blocks=1, down=down)
    assert G.multiple == 2**down
    strided = [m for m in G.modules() if isinstance(m, torch.nn.Conv2d) and m.stride == (2, 2)]
    assert len(strided) == down
    assert G(torch.zeros(2, 1, 36, 44)).shape == (2, 1, 36, 44)  # multiples of 4 suit every setting


def test_pool_behaviour():
    torch.manual_seed(0)
    assert torch.equal(ImagePool(0).query(x := torch.rand(3, 1, 2, 2)), x)
    pool = ImagePool(4, seed=0)
    first = torch.arange(4.0).view(4, 1, 1, 1)
    assert torch.equal(pool.query(first), first)  # not full yet: returned as given, and stored
    assert len(pool.images) == 4
    old = {float(v) for v in first.flatten()}
    swapped = 0
    for i in range(50):
        new = torch.full((2, 1, 1, 1), 100.0 + i)
        out = pool.query(new).flatten().tolist()
        assert len(pool.images) == 4
        for v in out:
            assert v == 100.0 + i or v in old  # either the new image or an older one from the pool
            swapped += v != 100.0 + i
        old = {float(t.flatten()[0]) for t in pool.images} | old
    assert 30 <= swapped <= 70  # about half of 100 queries


def _task(lambda_cycle=10.0, lambda_identity=0.5):
    cfg = TranslateConfig(size=32, g_width=4, g_blocks=1, d_width=4, lambda_cycle=lambda_cycle,
                          lambda_identity=lambda_identity, pool_size=0)
    torch.manual_seed(0)
    G, D = build_nets(cfg, 3)
    return CycleGAN(G, D, cfg)


def test_loss_weights_applied():
    batch = {"a": torch.rand(2, 3, 32, 32) * 2 - 1, "b": torch.rand(2, 3, 32, 32) * 2 - 1}
    task = _task()
    with torch.no_grad():
        loss, logs = task.g_loss(batch, task.generate(batch), 0)
        expect = logs["loss_g_adv"] + 10 * logs["loss_cycle"] + 5 * logs["loss_identity"]
        assert loss.item() == pytest.approx(expect.item(), rel=1e-5)
        assert logs["loss_cycle"] > 0 and logs["loss_identity"] > 0
        task.cfg.lambda_cycle = 20.0
        loss2, _ = task.g_loss(batch, task.generate(batch), 0)
        assert (loss2 - loss).item() == pytest.approx((10 * logs["loss_cycle"] + 5 * logs["loss_identity"]).item(),
                                                     rel=1e-4)
        task.cfg.lambda_identity = 0.0
        _, logs3 = task.g_loss(batch, task.generate(batch), 0)
        assert logs3["loss_identity"] == 0
        d, dlogs = task.d_loss(batch, task.generate(batch), 0)
        assert d.item() == pytest.approx((dlogs["loss_d_a"] + dlogs["loss_d_b"]).item())


def test_linear_decay():
    f = linear_decay(100, 0.5)
    assert f(0) == f(50) == 1.0
    assert 1.0 > f(51) > f(75) > f(99) > 0
    assert f(99) == pytest.approx(2 / 51)  # the authors' lambda_rule: never exactly 0


def _write(folder, n, mode, size=(40, 36), seed=0):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        shape = (size[1], size[0]) + ((3,) if mode == "RGB" else ())
        Image.fromarray(rng.integers(0, 256, shape).astype(np.uint8), mode).save(folder / f"{i}.png")
    return folder


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("translate")
    a, b = _write(root / "a", 6, "L"), _write(root / "b", 5, "RGB", seed=1)
    args = ["translate", "fit", "--a", a, "--b", b, "--out", root / "run", "--size", "32", "--steps", "4", "--quiet",
            "--set", "g_width=4", "--set", "g_blocks=1", "--set", "d_width=4", "--set", "batch_size=2",
            "--set", "log.every=2", "--set", "log.checkpoint_every=2", "--set", "log.sample_every=2"]
    assert main([str(x) for x in args]) == 0
    return root


def test_fit_and_apply_end_to_end(run, tmp_path, capsys):
    t = load(run / "run")
    assert t.step == 4 and t.channels == 3  # grey A and colour B are both trained in RGB
    lines = (run / "run" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2 and '"loss_cycle"' in lines[0]
    assert "lr_g" in lines[-1]
    assert list((run / "run" / "samples").glob("*.png"))
    lr_before = [json.loads(line)["lr_g"] for line in lines]
    assert lr_before[1] < lr_before[0] == 2e-4  # constant, then the linear decay has begun
    # a file, at another size: scaled to the training size on its short side, aspect kept
    Image.fromarray(np.zeros((50, 75), np.uint8)).save(tmp_path / "in.png")
    assert main(["translate", "apply", str(run / "run"), "--in", str(tmp_path / "in.png"), "--out",
                 str(tmp_path / "out.png"), "--direction", "b2a"]) == 0
    assert Image.open(tmp_path / "out.png").size == (48, 32)
    assert main(["translate", "apply", str(run / "run"), "--in", str(tmp_path / "in.png"), "--out",
                 str(tmp_path / "native.png"), "--native"]) == 0
    assert Image.open(tmp_path / "native.png").size == (75, 50)
    # a folder
    assert main(["translate", "apply", str(run / "run"), "--in", str(run / "a"), "--out", str(tmp_path / "o")]) == 0
    assert len(list((tmp_path / "o").glob("*.png"))) == 6


def test_resume_continues(run, tmp_path):
    import shutil

    shutil.copytree(run / "run", tmp_path / "run")
    assert main(["translate", "fit", "--a", str(run / "a"), "--b", str(run / "b"), "--out", str(tmp_path / "run"),
                 "--resume", "--steps", "6", "--quiet"]) == 0
    assert load(tmp_path / "run").step == 6
    assert main(["translate", "fit", "--a", str(run / "a"), "--b", str(run / "b"), "--out", str(tmp_path / "run"),
                 "--resume", "--quiet"]) == 0  # nothing left to do: the saved step count stands
    assert load(tmp_path / "run").step == 6


def _error(capsys, *args):
    code = main([str(x) for x in args])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and "error" in err
    return err


def test_bad_input(run, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert "no images" in _error(capsys, "translate", "fit", "--a", run / "a", "--b", tmp_path / "empty",
                                 "--out", tmp_path / "r")
    assert "not found" in _error(capsys, "translate", "fit", "--a", tmp_path / "nope", "--b", run / "b",
                                 "--out", tmp_path / "r")
    assert "size" in _error(capsys, "translate", "fit", "--a", run / "a", "--b", run / "b", "--out", tmp_path / "r",
                            "--size", "30")
    assert "already holds a run" in _error(capsys, "translate", "fit", "--a", run / "a", "--b", run / "b",
                                           "--out", run / "run")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "tiny.png")
    assert "too small" in _error(capsys, "translate", "apply", run / "run", "--in", tmp_path / "tiny.png",
                                 "--out", tmp_path / "x.png", "--native")
    assert "unknown image format" in _error(capsys, "translate", "apply", run / "run", "--in",
                                            run / "a" / "0.png", "--out", tmp_path / "x.txt")


# ---------------------------------------------------------------------------------------------
# semantic consistency (CyCADA)


class _Judge(torch.nn.Module):
    """A fixed linear classifier of 3 classes on the mean of each image third: easy to reason about."""

    def forward(self, x):
        h = x.shape[-2] // 3
        return torch.stack([x[..., i * h : (i + 1) * h, :].mean(dim=(1, 2, 3)) for i in range(3)], dim=1) * 10


def _semantic_task(lambda_semantic, judges):
    cfg = TranslateConfig(size=32, g_width=4, g_blocks=1, d_width=4, pool_size=0, lambda_semantic=lambda_semantic)
    torch.manual_seed(0)
    G, D = build_nets(cfg, 1)
    return CycleGAN(G, D, cfg, judges)


def test_semantic_loss_weight_and_targets():
    torch.manual_seed(1)
    batch = {"a": torch.rand(4, 1, 32, 32) * 2 - 1, "b": torch.rand(4, 1, 32, 32) * 2 - 1,
             "y_a": torch.tensor([0, 1, 2, 0]), "y_b": torch.tensor([2, 2, 1, 0])}
    judge_a, judge_b = _Judge(), _Judge()
    task = _semantic_task(2.0, {"a": judge_a, "b": judge_b})
    fake = task.generate(batch)
    loss, logs = task.g_loss(batch, fake, 0)
    plain, plain_logs = _semantic_task(0.0, {}).g_loss(batch, fake, 0)
    assert "loss_semantic" not in plain_logs
    assert loss.item() == pytest.approx(plain.item() + 2.0 * logs["loss_semantic"].item(), rel=1e-5)
    # both labelled: the target domain's classifier reads each translation against its source's label
    ce = torch.nn.functional.cross_entropy
    expect = ce(judge_b(fake["b"]), batch["y_a"]) + ce(judge_a(fake["a"]), batch["y_b"])
    assert logs["loss_semantic"].item() == pytest.approx(expect.item(), rel=1e-5)
    # only A labelled (CyCADA's source): A's classifier both ways, a pseudo-label for B's images
    only_a = _semantic_task(1.0, {"a": judge_a})
    unlabelled = {k: v for k, v in batch.items() if k != "y_b"}
    sem = only_a.semantic_loss(unlabelled, fake)
    pseudo = judge_a(batch["b"]).argmax(dim=1)
    expect = ce(judge_a(fake["b"]), batch["y_a"]) + ce(judge_a(fake["a"]), pseudo)
    assert sem.item() == pytest.approx(expect.item(), rel=1e-5)
    with pytest.raises(Exception, match="labelled domain"):
        _semantic_task(1.0, {})


def test_semantic_loss_trains_generator_not_judge():
    judge = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(32 * 32, 3)).requires_grad_(False)
    task = _semantic_task(1.0, {"a": judge, "b": judge})
    batch = {"a": torch.rand(2, 1, 32, 32), "b": torch.rand(2, 1, 32, 32),
             "y_a": torch.tensor([0, 1]), "y_b": torch.tensor([2, 0])}
    task.semantic_loss(batch, task.generate(batch)).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in task.G["a2b"].parameters() if p.ndim > 1)
    assert all(p.grad is None for p in judge.parameters())


def test_semantic_fit_with_class_folders(tmp_path, capsys):
    for dom, mode in (("a", "L"), ("b", "L")):
        for k in ("cat", "dog"):
            _write(tmp_path / dom / k, 3, mode, seed=ord(dom) + len(k))
    args = ["translate", "fit", "--a", tmp_path / "a", "--b", tmp_path / "b", "--out", tmp_path / "run", "--size", "32",
            "--steps", "2", "--quiet", "--semantic", "1", "--set", "semantic_epochs=1", "--set", "g_width=4",
            "--set", "g_blocks=1", "--set", "d_width=4", "--set", "batch_size=2", "--set", "log.every=1",
            "--set", "log.checkpoint_every=1"]
    assert main([str(x) for x in args]) == 0
    assert sorted(p.name for p in (tmp_path / "run" / "judges").iterdir()) == ["a.safetensors", "b.safetensors"]
    data = json.loads((tmp_path / "run" / "data.json").read_text())
    assert data["semantic"]["classes"] == ["cat", "dog"] and data["semantic"]["labelled"] == ["a", "b"]
    first = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all(m["loss_semantic"] > 0 for m in first)
    judge = (tmp_path / "run" / "judges" / "a.safetensors").read_bytes()
    assert main([str(x) for x in args[:10] + ["--resume", "--steps", "3", "--quiet"]]) == 0
    assert (tmp_path / "run" / "judges" / "a.safetensors").read_bytes() == judge  # reused, not retrained
    assert load(tmp_path / "run").step == 3
    # no labels, or different classes: one line, exit code 2
    _write(tmp_path / "flat", 4, "L")
    assert "sub-folder per class" in _error(capsys, "translate", "fit", "--a", tmp_path / "flat", "--b",
                                            tmp_path / "flat", "--out", tmp_path / "r", "--semantic", "1")
    _write(tmp_path / "c" / "cow", 3, "L")
    _write(tmp_path / "c" / "dog", 3, "L", seed=5)
    assert "different classes" in _error(capsys, "translate", "fit", "--a", tmp_path / "a", "--b", tmp_path / "c",
                                         "--out", tmp_path / "r", "--semantic", "1")
    assert "lambda_semantic" in _error(capsys, "translate", "fit", "--a", tmp_path / "a", "--b", tmp_path / "b",
                                       "--out", tmp_path / "r", "--semantic", "-1")


def test_info_reads_a_translate_run(run, capsys):
    assert main(["info", str(run / "run"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["kind"] == "translate" and data["checkpoints"][-1] == 4 and data["steps"] == 4
    assert data["config"]["size"] == 32 and "loss_cycle" in data["last"]


def test_pool_state_round_trip():
    pool = ImagePool(3, seed=0)
    pool.query(torch.rand(5, 1, 2, 2))
    twin = ImagePool(3, seed=7)
    twin.load_state_dict(pool.state_dict())
    new = torch.rand(4, 1, 2, 2)
    assert torch.equal(pool.query(new), twin.query(new))  # same stored images, same swap decisions
    empty = ImagePool(3)
    empty.load_state_dict(ImagePool(3).state_dict())
    assert empty.images == []


def test_resume_is_exact_with_a_full_pool(run, tmp_path):
    """A run stopped and resumed ends with the same weights as one that ran through: the history pool
    (full after the first step here) is part of the checkpoint."""
    a, b = run / "a", run / "b"
    common = ["translate", "fit", "--a", a, "--b", b, "--size", "32", "--quiet", "--set", "g_width=4",
              "--set", "g_blocks=1", "--set", "d_width=4", "--set", "batch_size=2", "--set", "pool_size=2",
              "--set", "log.checkpoint_every=3"]
    assert main([str(x) for x in common + ["--out", tmp_path / "through", "--steps", "6"]]) == 0
    assert main([str(x) for x in common + ["--out", tmp_path / "split", "--steps", "3"]]) == 0
    assert main([str(x) for x in common + ["--out", tmp_path / "split", "--steps", "6", "--resume"]]) == 0
    through, split = load(tmp_path / "through"), load(tmp_path / "split")
    for (name, p), q in zip(through.G.named_parameters(), split.G.parameters()):
        assert torch.equal(p, q), name


# ---------------------------------------------------------------------------------------------
# evaluation: gankit.metrics.translation and `gankit translate eval`


def _bars(n, seed, negate=False):
    """Class 0: a horizontal bar, class 1: a vertical bar, at random positions, on a 16 px canvas; domain B
    is the negative (dark bars on white)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.full((n, 1, 16, 16), -1.0)
    y = torch.arange(n) % 2
    for i in range(n):
        p = int(torch.randint(2, 12, (), generator=g))
        if y[i] == 0:
            x[i, 0, p : p + 3, 2:14] = 1.0
        else:
            x[i, 0, 2:14, p : p + 3] = 1.0
    x = x + 0.1 * torch.randn(x.shape, generator=g)
    return (-x if negate else x).clamp(-1, 1), y


class _Map(torch.nn.Module):
    multiple = 1

    def __init__(self, sign):
        super().__init__()
        self.sign = torch.nn.Parameter(torch.tensor(sign), requires_grad=False)  # the Translator finds its device

    def forward(self, x):
        return self.sign * x


def _translator(sign):
    from gankit.tasks.translate import Translator

    G = torch.nn.ModuleDict({"a2b": _Map(sign), "b2a": _Map(sign)})
    return Translator(G, TranslateConfig(size=16), {"channels": 1}, 0)


def test_translation_scores_known_answers():
    from gankit.data import Dataset
    from gankit.metrics.translation import translation_scores

    (xa, ya), (xb, yb) = _bars(60, 0), _bars(60, 1, negate=True)
    a, b = Dataset(x=xa, y=ya, classes=["h", "v"]), Dataset(x=xb, y=yb, classes=["h", "v"])
    perfect = translation_scores(_translator(-1.0), a, b, epochs=4)  # A -> B is exactly negation here
    assert perfect["judges"]["domain_accuracy_real"] == 1.0
    assert perfect["judges"]["label_accuracy_real_a"] >= 0.9 and perfect["judges"]["label_accuracy_real_b"] >= 0.9
    for d in ("a2b", "b2a"):
        assert perfect[d]["judged_target"] >= 0.95 and perfect[d]["label_kept"] >= 0.9
        assert perfect[d]["cycle_l1"] == 0.0 and perfect[d]["n"] == 30
    idle = translation_scores(_translator(1.0), a, b, epochs=4)  # returns its input: still the source domain
    assert idle["a2b"]["judged_target"] <= 0.05 and idle["b2a"]["judged_target"] <= 0.05
    unlabelled = translation_scores(_translator(-1.0), Dataset(x=xa), b, epochs=1)
    assert unlabelled["a2b"]["label_kept"] is None and "label_accuracy_real_a" not in unlabelled["judges"]


def test_translate_eval_cli(run, tmp_path, capsys):
    a, b = _write(tmp_path / "a", 8, "L", seed=3), _write(tmp_path / "b", 8, "RGB", seed=4)
    capsys.readouterr()
    assert main(["translate", "eval", str(run / "run"), "--a", str(a), "--b", str(b), "--epochs", "1", "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["a2b"]["n"] == 4 and 0 <= scores["b2a"]["judged_target"] <= 1 and scores["a2b"]["label_kept"] is None
    assert main(["translate", "eval", str(run / "run"), "--a", str(a), "--b", str(b), "--epochs", "1"]) == 0
    assert "judged target" in capsys.readouterr().out
    (tmp_path / "few").mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "few" / "0.png")
    assert main(["translate", "eval", str(run / "run"), "--a", str(tmp_path / "few"), "--b", str(b)]) == 2
    assert "at least 4" in capsys.readouterr().err
