"""gankit report: a self-contained, well-formed HTML page with plots, sample grids and the diagnosis."""

import base64
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PIL import Image
from test_doctor import write_run
from test_health import records

from gankit.cli import main


@pytest.fixture
def run_dir(tmp_path):
    recs = records(diversity=lambda i: 1.0 if i < 20 else 0.2)
    recs.append({"step": 2000, "fid": 12.5, "kid_mean": 0.01})  # an evaluation record
    recs.insert(10, {"step": 500, "fid": 40.0, "kid_mean": 0.05})
    run = write_run(tmp_path / "run", recs, [{"step": 900, "event": "resume", "to_step": 500}])
    (run / "samples").mkdir()
    for step in (500, 1000, 2000):
        Image.fromarray((np.random.default_rng(step).random((32, 32)) * 255).astype(np.uint8)).save(
            run / "samples" / f"step-{step:08d}.png")
    return run


def test_report_is_self_contained_and_well_formed(run_dir, capsys):
    assert main(["report", str(run_dir)]) == 0
    path = run_dir / "report" / "index.html"
    assert capsys.readouterr().out.strip() == str(path)
    text = path.read_text()
    assert text.startswith("<!DOCTYPE html>")
    root = ET.fromstring(text.split("\n", 1)[1])  # well-formed: every tag closed, entities escaped
    links = [el.get(a) for el in root.iter() for a in ("src", "href") if el.get(a)]
    assert not [u for u in links if not u.startswith("data:")]  # nothing to fetch
    assert not re.search(r"(src|href)\s*=\s*[\"']?\s*(https?:)?//", text)
    imgs = [el for el in root.iter("img")]
    # 3 sample grids + 5 training plots + the evaluation plot
    assert len(imgs) == 9
    for img in imgs:
        png = base64.b64decode(img.get("src").split(",", 1)[1])
        assert png.startswith(b"\x89PNG")
    body = ET.tostring(root, encoding="unicode")
    assert "mode_collapse" in body and "verdict: unhealthy" in body and "step-00002000" in body
    assert "Evaluation (last)" in body and "12.5" in body and "kid_mean" in body
    assert "resume" in body  # the events table


def test_report_errors(tmp_path, capsys):
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "run folder not found" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian chromium not installed")
def test_report_renders_in_headless_chromium(run_dir, tmp_path):
    from gankit.report import build_report

    page = build_report(run_dir)
    shot = tmp_path / "shot.png"
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--screenshot={shot}", "--window-size=1000,1400", page.resolve().as_uri()],
                   capture_output=True, timeout=120, check=True)
    img = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert img.shape == (1400, 1000) and img.std() > 10  # rendered content, not a blank page
