"""gankit doctor: JSON schema, text output and one-line errors on bad run folders."""

import json

import pytest
from test_health import records

from gankit.cli import main


def write_run(path, recs, events=()):
    path.mkdir(parents=True, exist_ok=True)
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    if events:
        (path / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


def test_doctor_json_schema(tmp_path, capsys):
    run = write_run(tmp_path / "run", records(d_real=lambda i: 0.95, d_fake=lambda i: 0.05))
    assert main(["doctor", str(run), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["verdict"] == "unhealthy"
    (f,) = out["findings"]
    assert set(f) == {"code", "first_step", "last_step", "evidence", "remedy"}
    assert f["code"] == "d_overpowers" and f["first_step"] == 600 and f["last_step"] == 2000  # default warm-up
    assert f["evidence"]["d_real"] == pytest.approx(0.95) and f["remedy"]


def test_doctor_text_and_healthy_verdict(tmp_path, capsys):
    run = write_run(tmp_path / "run", records())
    assert main(["doctor", str(run)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("verdict: healthy") and "converging  steps 1850-2000" in out and "remedy:" in out


def test_doctor_uses_the_runs_health_settings(tmp_path, capsys):
    import gankit

    run = write_run(tmp_path / "run", records(d_real=lambda i: 0.95, d_fake=lambda i: 0.05))
    cfg = gankit.preset("ring8")
    cfg.health.warmup = 1000
    cfg.save(run / "config.yaml")
    assert main(["doctor", str(run), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["findings"][0]["first_step"] == 1000


@pytest.mark.parametrize("setup, message", [
    (lambda p: None, "run folder not found"),
    (lambda p: p.mkdir(), "no metrics.jsonl records"),
    (lambda p: write_run(p, []) and (p / "metrics.jsonl").write_text('{"step": 1}\nnot json\n{"step": 2}\n'),
     "line 2 is not valid JSON"),
])
def test_doctor_bad_run_folder_is_one_line_error(tmp_path, capsys, setup, message):
    run = tmp_path / "run"
    setup(run)
    assert main(["doctor", str(run)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
