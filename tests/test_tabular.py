"""Tabular GAN: types, the reversible encoding, training-by-sampling, the model API, metrics, report."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from gankit.data.table_sampler import ConditionalBatches
from gankit.data.table_transform import TableTransformer
from gankit.data.tables import infer_types, read_csv
from gankit.errors import UserError
from gankit.metrics.tabular import evaluate, fidelity, privacy
from gankit.tasks.tabular import TabularGAN, constraint_mask

# fp32: the same arithmetic on every CPU (the default, auto, picks bf16 where bfloat16 is native); bf16 has
# tests of its own
SMALL = {"epochs": 3, "batch_size": 50, "z_dim": 16, "g_dims": [32], "d_dims": [32], "pack": 5, "max_modes": 3,
         "verbose": False, "threads": 1, "precision": "fp32"}


def mixed_table(n: int = 120, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "amount": np.concatenate([rng.normal(10, 1, n // 2), rng.normal(50, 2, n - n // 2)]).round(2),
        "count": rng.integers(0, 1000, n),
        "colour": rng.choice(["red", "green", "blue", "violet"], n, p=[0.5, 0.3, 0.15, 0.05]),
        "member": rng.choice([True, False], n),
        "joined": pd.to_datetime("2021-01-01") + pd.to_timedelta(rng.integers(0, 700, n), unit="D"),
    })
    df["limit"] = df["amount"] + rng.uniform(0, 5, n).round(2)
    df.loc[rng.random(n) < 0.15, "amount"] = np.nan
    df["colour"] = df["colour"].astype(object)
    df.loc[rng.random(n) < 0.1, "colour"] = np.nan
    df["joined"] = df["joined"].astype(object)
    df.loc[rng.random(n) < 0.1, "joined"] = None
    return df


@pytest.fixture(scope="module")
def fitted() -> tuple[TabularGAN, pd.DataFrame]:
    df = mixed_table()
    return TabularGAN(**SMALL, constraints=["amount <= limit"]).fit(df), df


# ---------------------------------------------------------------------------------------------
# types and reading


def test_infer_types_every_kind(tmp_path):
    df = mixed_table()
    path = tmp_path / "t.csv"
    df.to_csv(path, index=False)
    types = infer_types(read_csv(path))
    assert types == {"amount": "continuous", "count": "integer", "colour": "categorical", "member": "boolean",
                     "joined": "datetime", "limit": "continuous"}
    codes = pd.DataFrame({"rating": [1, 2, 3, 4, 5] * 4, "yes": ["yes", "no"] * 10, "x": np.arange(20) / 3})
    assert infer_types(codes) == {"rating": "categorical", "yes": "boolean", "x": "continuous"}
    assert infer_types(codes, discrete_columns=["x"])["x"] == "categorical"
    assert infer_types(codes, column_types={"rating": "integer"})["rating"] == "integer"
    with pytest.raises(UserError, match="no column 'nope'"):
        infer_types(codes, discrete_columns=["nope"])
    with pytest.raises(UserError, match="unknown type"):
        infer_types(codes, column_types={"x": "float"})
    ids = pd.DataFrame({"id": [f"user{i}" for i in range(200)], "v": np.arange(200) % 7})
    with pytest.raises(UserError, match="column 'id' has 200 distinct values"):
        infer_types(ids)
    assert infer_types(ids, discrete_columns=["id"])["id"] == "categorical"  # forced: the user's call
    with pytest.raises(UserError, match="non-numeric"):
        infer_types(pd.DataFrame({"a": ["x", "y", "z"]}), column_types={"a": "integer"})


@pytest.mark.parametrize("content, message", [
    (b"", "empty"),
    (b"a,b\n", "no data rows"),
    (b"\x89PNG\r\n\x1a\n\x00\x00binary", "not a CSV"),
    (b"PK\x03\x04zipdata", "not a CSV"),
    (b"a,b\n1,2\n3,4,5,6\n", "Expected 2 fields"),
])
def test_read_csv_refuses_bad_files(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(UserError, match=message):
        read_csv(path)


def test_read_csv_encodings(tmp_path):
    (tmp_path / "bom.csv").write_bytes("\ufeffname,score\nJosé,1\nZoë,2\n".encode("utf-8"))
    df = read_csv(tmp_path / "bom.csv")
    assert list(df.columns) == ["name", "score"] and df["name"][0] == "José"
    (tmp_path / "latin.csv").write_bytes("name,score\nJosé,1\nZoë,2\n".encode("latin-1"))
    assert read_csv(tmp_path / "latin.csv")["name"][1] == "Zoë"
    (tmp_path / "u16.csv").write_bytes("name,score\nA,1\nB,2\n".encode("utf-16"))
    assert list(read_csv(tmp_path / "u16.csv").columns) == ["name", "score"]
    with pytest.raises(UserError, match="not found"):
        read_csv(tmp_path / "missing.csv")


@pytest.mark.parametrize("df, message", [
    (pd.DataFrame({"a": [1.0], "b": ["x"]}), "1 row"),
    (pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": ["x", "x", "x"]}), "column 'b' is constant"),
    (pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [np.nan] * 3}), "column 'b' is entirely missing"),
    (pd.DataFrame(index=range(3)), "no columns"),
])
def test_unusable_tables(df, message):
    with pytest.raises(UserError, match=message):
        TabularGAN(**SMALL).fit(df)


# ---------------------------------------------------------------------------------------------
# encoding


def test_transformer_round_trip_every_type_with_missing_values():
    df = mixed_table(200)
    types = infer_types(df)
    tr = TableTransformer.fit(df, types, max_modes=5, seed=0)
    encoded = tr.transform(df, seed=0)
    assert encoded.shape == (len(df), tr.output_dim) and encoded.dtype == np.float32
    back = tr.inverse_transform(encoded)
    assert list(back.columns) == list(df.columns)
    for col in df.columns:
        pd.testing.assert_series_equal(back[col].isna(), df[col].isna(), check_names=False)
    ok = df["amount"].notna()
    np.testing.assert_allclose(back["amount"][ok], df["amount"][ok], atol=1e-6)
    assert (back["count"] == df["count"]).all() and back["count"].dtype == np.int64
    assert back["colour"].fillna("<na>").tolist() == df["colour"].fillna("<na>").tolist()
    assert back["member"].dtype == bool and (back["member"] == df["member"]).all()
    joined = pd.to_datetime(df["joined"])
    assert (back["joined"][joined.notna()] == joined[joined.notna()]).all()
    # the JSON form rebuilds the same decoder
    again = TableTransformer.from_dict(json.loads(json.dumps(tr.to_dict())))
    pd.testing.assert_frame_equal(again.inverse_transform(encoded), back)


def test_inverse_transform_keeps_ranges_and_integers():
    df = mixed_table(200)
    tr = TableTransformer.fit(df, infer_types(df), max_modes=5)
    noise = np.random.default_rng(0).normal(0, 3, (500, tr.output_dim))
    out = tr.inverse_transform(noise)
    assert out["amount"].min() >= df["amount"].min() and out["amount"].max() <= df["amount"].max()
    assert out["count"].min() >= df["count"].min() and out["count"].max() <= df["count"].max()
    assert np.allclose(out["amount"].dropna(), out["amount"].dropna().round(2))


def test_mode_specific_normalisation_finds_two_modes():
    df = pd.DataFrame({"x": np.r_[np.random.default_rng(0).normal(0, 1, 300), np.random.default_rng(1).normal(20, 1, 300)]})
    spec = TableTransformer.fit(df, {"x": "continuous"}, max_modes=10).columns[0]
    big = sorted(m for m, w in zip(spec["means"], spec["weights"]) if w > 0.2)
    assert len(big) == 2 and abs(big[0]) < 1 and abs(big[1] - 20) < 1


def test_batched_mixtures_agree_with_scikit_learn():
    """The columns-at-once variational fit finds what scikit-learn's BayesianGaussianMixture finds, column by
    column, for columns of different lengths and numbers of distinct values (padding must not leak)."""
    import warnings

    from sklearn.mixture import BayesianGaussianMixture

    from gankit.data.mixture import fit_mixtures

    rng = np.random.default_rng(0)
    cols = [np.r_[rng.normal(-2, 0.3, 700), rng.normal(1.5, 0.5, 300)],  # 70 / 30 two modes
            np.r_[rng.normal(0, 0.2, 100), rng.normal(3, 0.2, 100), rng.normal(6, 0.2, 200)],  # three, shorter
            rng.integers(0, 2, 150).astype(float)]  # two distinct values: at most two components
    cols = [(c - c.mean()) / c.std() for c in cols]
    fits = fit_mixtures(cols, max_modes=10, seed=0)
    assert len(fits[2][0]) == 2
    for col, (w, mu, var) in zip(cols, fits):
        assert abs(w.sum() - 1) < 1e-9 and (var > 0).all()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = BayesianGaussianMixture(n_components=min(10, len(np.unique(col))), weight_concentration_prior=1e-3,
                                          weight_concentration_prior_type="dirichlet_process", max_iter=300,
                                          random_state=0).fit(col[:, None])
        big, ref_big = w > 0.05, ref.weights_ > 0.05
        assert big.sum() == ref_big.sum()
        order, ref_order = np.argsort(mu[big]), np.argsort(ref.means_[ref_big, 0])
        np.testing.assert_allclose(mu[big][order], ref.means_[ref_big, 0][ref_order], atol=0.05)
        np.testing.assert_allclose(w[big][order], ref.weights_[ref_big][ref_order], atol=0.03)


def test_mixture_fit_on_distinct_values_and_counts_is_the_fit_on_rows():
    """A column of a few values repeated (ages in 5-year steps) is fitted on its distinct values weighted by
    their counts: the result is the fit on the rows, here the same rows made all distinct by a nudge far
    below the column's spread (so that every row is its own value, with count 1)."""
    from gankit.data.mixture import fit_mixtures

    rng = np.random.default_rng(0)
    ages = rng.choice([17.5, 22, 27, 32, 37, 42], size=2000, p=[0.1, 0.3, 0.25, 0.15, 0.12, 0.08])
    ages = (ages - ages.mean()) / ages.std()
    nudged = ages + np.arange(len(ages)) * 1e-13
    assert len(np.unique(ages)) == 6 and len(np.unique(nudged)) == len(ages)
    for seed in (0, 1):  # one call each, so that both are seeded with the same random draws
        [(w, mu, var)] = fit_mixtures([ages], max_modes=6, seed=seed)
        [(w_rows, mu_rows, var_rows)] = fit_mixtures([nudged], max_modes=6, seed=seed)
        np.testing.assert_allclose(w, w_rows, atol=1e-7)
        np.testing.assert_allclose(mu, mu_rows, atol=1e-7)
        np.testing.assert_allclose(var, var_rows, rtol=1e-5, atol=1e-9)


def test_training_by_sampling_matches_rows_and_boosts_rare_categories():
    df = pd.DataFrame({"c": ["a"] * 950 + ["b"] * 50, "x": np.arange(1000.0)})
    tr = TableTransformer.fit(df, {"c": "categorical", "x": "continuous"}, max_modes=2)
    x = torch.from_numpy(tr.transform(df))
    batches = ConditionalBatches(x, tr.discrete_spans(), batch_size=4000, seed=0)
    b = next(batches)
    span = tr.discrete_spans()[0]
    real_cat = b["x"][:, span.start : span.start + span.width].argmax(1)
    assert torch.equal(real_cat, b["cat"]) and torch.equal(b["c"].argmax(1), b["cat"])
    rare = (b["cat"] == 1).float().mean().item()
    expected = np.log1p(50) / (np.log1p(50) + np.log1p(950))
    assert abs(rare - expected) < 0.03  # log-frequency, far above the real 5 %
    state = batches.state_dict()
    first = next(batches)
    batches.load_state_dict(state)
    assert torch.equal(next(batches)["x"], first["x"])


def test_training_by_sampling_draws_categories_at_log_frequency():
    df = pd.DataFrame({"c": ["a"] * 700 + ["b"] * 200 + ["c"] * 90 + ["d"] * 10,
                       "k": ["x", "y"] * 500, "v": np.arange(1000.0)})
    tr = TableTransformer.fit(df, {"c": "categorical", "k": "categorical", "v": "continuous"}, max_modes=2)
    batches = ConditionalBatches(torch.from_numpy(tr.transform(df)), tr.discrete_spans(), batch_size=20000, seed=1)
    b = next(batches)
    assert set(b["col"].tolist()) == {0, 1}
    for j, counts in enumerate([[700, 200, 90, 10], [500, 500]]):
        cats = b["cat"][b["col"] == j]
        assert int(cats.max()) < len(counts)
        weights = np.log1p(counts) / np.log1p(counts).sum()
        freq = np.bincount(cats.numpy(), minlength=len(counts)) / len(cats)
        np.testing.assert_allclose(freq, weights, atol=0.015)


# ---------------------------------------------------------------------------------------------
# the model


def test_fit_reports_types_and_samples_in_original_types(fitted):
    gan, df = fitted
    assert gan.types["joined"] == "datetime" and gan.types["member"] == "boolean"
    s = gan.sample(300, seed=0)
    assert list(s.columns) == list(df.columns) and len(s) == 300
    assert s["count"].dtype == np.int64 and s["member"].dtype == bool
    assert pd.api.types.is_datetime64_any_dtype(s["joined"])
    assert set(s["colour"].dropna()) <= {"red", "green", "blue", "violet"}
    assert s["count"].between(df["count"].min(), df["count"].max()).all()
    assert (s["amount"].dropna() <= s["limit"][s["amount"].notna()]).all()  # the constraint


def test_conditional_sampling_yields_requested_values(fitted):
    gan, _ = fitted
    assert (gan.sample(40, conditions={"colour": "violet"}, seed=1)["colour"] == "violet").all()
    both = gan.sample(20, conditions={"member": "true", "colour": "blue"}, seed=2)
    assert both["member"].all() and (both["colour"] == "blue").all()
    with pytest.raises(UserError, match="no value 'purple'"):
        gan.sample(5, conditions={"colour": "purple"})
    with pytest.raises(UserError, match="categorical and boolean columns only"):
        gan.sample(5, conditions={"amount": 3})
    with pytest.raises(UserError, match="no column 'nope'"):
        gan.sample(5, conditions={"nope": 1})


def test_sampling_generates_few_rows_beyond_those_asked_for(fitted, monkeypatch):
    gan, _ = fitted
    drawn = []
    generate = gan._generate

    def spy(keep_every):  # a generator that honours its conditional vector in 1 row of every `keep_every`
        def wrapped(cond, col, cat, **kw):
            drawn.append(cond.shape[0])
            df, ok = generate(cond, col, cat, **kw)
            return df, np.arange(len(ok)) % keep_every == 0
        return wrapped

    monkeypatch.setattr(gan, "_generate", spy(1))
    assert len(gan.sample(2000, seed=0, constraints=[])) == 2000  # (no rejection but the spy's)
    assert drawn == [2264]  # 10 % to spare (and 64 rows); it was 2x before
    drawn.clear()
    monkeypatch.setattr(gan, "_generate", spy(4))
    assert len(gan.sample(2000, seed=0, constraints=[])) == 2000  # (no rejection but the spy's)
    # the first round keeps a quarter; the second asks for the rest at that rate, with the same margin
    assert len(drawn) == 2 and drawn[1] == int((2000 - 566) / (566 / 2264) * 1.1) + 64, drawn
    drawn.clear()
    # conditions that are never met fail after as many rows as before: 50 tries of max(2n, 256)
    with pytest.raises(UserError, match="could draw only 0 of 40 rows .* in 12800 generated rows"):
        gan.sample(40, seed=0, constraints=["count > 1e9"])
    assert sum(drawn) == 12800, drawn


def test_same_data_and_seed_give_the_same_model(fitted):
    gan, df = fitted
    again = TabularGAN(**SMALL, constraints=["amount <= limit"]).fit(df)
    pd.testing.assert_frame_equal(again.sample(200, seed=5), gan.sample(200, seed=5))
    other = TabularGAN(**{**SMALL, "seed": 1}, constraints=["amount <= limit"]).fit(df)
    assert not other.sample(200, seed=5).equals(gan.sample(200, seed=5))

def test_save_load_gives_identical_samples(fitted, tmp_path):
    gan, _ = fitted
    gan.save(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["model.json", "model.safetensors"]
    loaded = TabularGAN.load(tmp_path / "m")
    pd.testing.assert_frame_equal(loaded.sample(100, seed=7), gan.sample(100, seed=7))
    assert not gan.sample(50, seed=7).equals(gan.sample(50, seed=8))
    raw = bytearray((tmp_path / "m" / "model.safetensors").read_bytes())
    raw[-1] ^= 0xFF
    (tmp_path / "m" / "model.safetensors").write_bytes(bytes(raw))
    with pytest.raises(UserError, match="SHA-256"):
        TabularGAN.load(tmp_path / "m")
    with pytest.raises(UserError, match="not a tabular model"):
        TabularGAN.load(tmp_path)


def test_sample_chunks_pieces_conditions_and_errors(fitted):
    gan, _ = fitted
    pieces = list(gan.sample_chunks(130, seed=3, chunk_rows=50, conditions={"colour": "blue"}))
    assert [len(p) for p in pieces] == [50, 50, 30] and all((p["colour"] == "blue").all() for p in pieces)
    pd.testing.assert_frame_equal(pieces[0], gan.sample(50, seed=3, conditions={"colour": "blue"}))
    again = list(gan.sample_chunks(130, seed=3, chunk_rows=50, conditions={"colour": "blue"}))
    assert all(a.equals(b) for a, b in zip(pieces, again)) and not pieces[0].equals(pieces[1])
    negative = [len(p) for p in gan.sample_chunks(120, seed=-1, chunk_rows=50)]  # any seed sample() takes
    assert negative == [50, 50, 20]
    # arguments are checked when the call is made, not at the first piece
    for kwargs, message in [({"n": 0}, "must be positive"), ({"n": 10, "chunk_rows": 0}, "chunk_rows"),
                            ({"n": 10, "conditions": {"colour": "teal"}}, "teal")]:
        with pytest.raises(UserError, match=message):
            gan.sample_chunks(**kwargs)


def test_config_and_constraint_errors():
    with pytest.raises(UserError, match="unknown tabular option 'epoch'"):
        TabularGAN(epoch=3)
    with pytest.raises(UserError, match="multiple of pack"):
        TabularGAN(batch_size=55)
    with pytest.raises(UserError, match="expected 'column OP"):
        TabularGAN(constraints=["a ~ b"])
    df = pd.DataFrame({"a": [1, 2, np.nan], "b": [2, 1, 0]})
    assert constraint_mask(df, ["a <= b"]).tolist() == [True, False, True]
    assert constraint_mask(df, ["b > 0.5"]).tolist() == [True, True, False]
    with pytest.raises(UserError, match="neither a column nor a number"):
        constraint_mask(df, ["a <= c"])
    with pytest.raises(UserError, match="not fitted"):
        TabularGAN().sample(3)


# ---------------------------------------------------------------------------------------------
# metrics and report


def test_fidelity_is_one_for_identical_tables_and_lower_for_noise():
    df = mixed_table(300)
    types = infer_types(df)
    same = fidelity(df, df.copy(), types)
    assert same["overall"] == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    broken = df.apply(lambda c: c.sample(frac=1, random_state=1).to_numpy())  # kills pair trends only
    broken["count"] = rng.integers(0, 10, len(df))  # and one column's shape
    worse = fidelity(df, broken, types)
    assert worse["column_shapes"]["count"] < 0.2 and worse["column_shapes"]["colour"] == pytest.approx(1.0)
    assert worse["pair_trend_score"] < same["pair_trend_score"] and worse["overall"] < 0.95


def test_evaluate_keys_and_privacy_figures(fitted):
    gan, df = fitted
    types = gan.types
    holdout = mixed_table(80, seed=5)
    res = evaluate(df, gan.sample(120, seed=0), types, holdout, ["member", "count"])
    assert set(res) == {"rows", "fidelity", "utility", "privacy"}
    assert set(res["fidelity"]) >= {"overall", "column_shape_score", "pair_trend_score", "column_shapes",
                                    "pair_trends"}
    assert res["utility"]["member"]["metric"] == "macro_f1" and res["utility"]["count"]["metric"] == "r2"
    assert set(res["utility"]["member"]["synthetic"]) == {"logistic_regression", "random_forest"}
    assert set(res["privacy"]) >= {"exact_copies_share", "dcr_synthetic_median", "dcr_holdout_median", "dcr_ratio"}
    copies = privacy(df, df, types, holdout)
    assert copies["exact_copies_share"] == 1.0 and copies["dcr_synthetic_median"] == 0.0
    with pytest.raises(UserError, match="needs a real holdout"):
        evaluate(df, df, types, None, ["member"])


def test_report_html_has_scores_and_plots(fitted):
    from gankit.report_tabular import render

    gan, df = fitted
    synth = gan.sample(100, seed=0)
    res = evaluate(df, synth, gan.types, mixed_table(60, seed=3), ["member"])
    page = render(res, df, synth, gan.types)
    assert page.startswith("<!doctype html>") and page.count("data:image/png;base64,") == 2
    for word in ("Fidelity", "Utility", "Privacy", "amount", "logistic_regression", "exact_copies_share"):
        assert word in page


@pytest.mark.slow
def test_training_learns_modes_rare_categories_conditions_and_missing_values():
    rng = np.random.default_rng(0)
    n = 1000
    group = rng.choice(["common", "middle", "rare"], n, p=[0.75, 0.2, 0.05])
    x = np.where(group == "rare", rng.normal(30, 1, n), np.where(rng.random(n) < 0.5, rng.normal(0, 1, n),
                                                                   rng.normal(10, 1, n)))
    df = pd.DataFrame({"x": x.round(3), "group": group, "n": rng.integers(0, 50, n)})
    df.loc[rng.random(n) < 0.2, "n"] = np.nan
    gan = TabularGAN(epochs=150, batch_size=200, z_dim=32, g_dims=[128, 128], d_dims=[128, 128], verbose=False,
                     threads=1, seed=0).fit(df)
    s = gan.sample(2000, seed=0)
    share = s["group"].value_counts(normalize=True)
    assert 0.01 < share.get("rare", 0) < 0.15  # the rare group is generated, near its real 5 %
    near = [(np.abs(s["x"] - m) < 3).mean() for m in (0, 10)]
    assert min(near) > 0.15, near  # both modes of the common groups are generated
    rare_x = gan.sample(300, conditions={"group": "rare"}, seed=1)["x"].mean()
    common_x = gan.sample(300, conditions={"group": "common"}, seed=1)["x"].mean()
    assert rare_x > common_x + 4, (rare_x, common_x)  # the condition carries the rare group's own mode
    assert 0.03 < s["n"].isna().mean() < 0.4  # missing values are generated (real rate 20 %)
    assert fidelity(df, s, gan.types)["overall"] > 0.75


def test_lazy_gradient_penalty_every_k_steps_weighted_k_times():
    from gankit.nets.tabular import PackedCritic
    from gankit.tasks.tabular import TabularTask

    torch.manual_seed(0)
    D = PackedCritic(6, (16,), pack=2, dropout=0.0)
    task = TabularTask(None, D, [(3, 3)], gp=10.0, gp_every=4)
    batch = {"x": torch.randn(8, 3), "c": torch.randn(8, 3)}
    fake = {"x": torch.randn(8, 3)}
    plain, logs_plain = task.d_loss(batch, fake, step=3)
    lazy, logs_lazy = task.d_loss(batch, fake, step=4)
    assert torch.equal(plain, logs_plain["loss_d_adv"])  # no penalty off the interval
    assert lazy.item() == pytest.approx(logs_lazy["loss_d_adv"].item() + 10.0 * 4 * logs_lazy["gp"].item(), rel=1e-5)
    assert logs_lazy["gp"].item() > 0


@pytest.mark.parametrize("hidden, dropout, gp, dtype", [((32, 16), 0.5, 10.0, torch.float64),
                                                       ((32, 16), 0.5, 10.0, torch.float32),
                                                       ((24,), 0.0, 10.0, torch.float64),
                                                       ((32, 16), 0.3, 0.0, torch.float64),
                                                       ((), 0.0, 3.0, torch.float64)])
def test_critic_wgan_gp_gradients_are_autograds(monkeypatch, hidden, dropout, gp, dtype):
    """The critic's hand-derived WGAN-GP step gives the loss and weight gradients that autograd's double
    backward gives, with the same interpolates and dropout masks."""
    import gankit.nets.tabular as nets

    masks = []
    draw = nets.dropout_scale
    monkeypatch.setattr(nets, "dropout_scale", lambda *a: masks.append(draw(*a)) or masks[-1])
    D = nets.PackedCritic(7, hidden, pack=3, dropout=dropout).to(dtype)
    real, fake = torch.randn(12, 7, dtype=dtype), torch.randn(12, 7, dtype=dtype)
    torch.manual_seed(5)
    loss, logs = D.wgan_gp_loss(real, fake, gp)
    loss.backward()
    fast = [p.grad.clone() for p in D.parameters()]
    D.zero_grad()

    torch.manual_seed(5)
    n, rows = 4, [D.packed(real), D.packed(fake)]
    if gp:
        alpha = torch.rand(n, 1, dtype=dtype)  # drawn first, as the critic does
        rows.append((alpha * rows[0] + (1 - alpha) * rows[1]).requires_grad_(True))
    a, used = torch.cat(rows), iter(masks)
    for m in D.body:
        if isinstance(m, torch.nn.Linear):
            a = m(a)
        elif isinstance(m, torch.nn.LeakyReLU):
            a = torch.nn.functional.leaky_relu(a, 0.2)
        elif dropout:
            a = a * next(used)
    y = a.squeeze(1)
    ref = y[n : 2 * n].mean() - y[:n].mean()
    if gp:
        (g,) = torch.autograd.grad(y[2 * n :].sum(), rows[2], create_graph=True)
        penalty = ((g.norm(dim=1) - 1) ** 2).mean()
        ref = ref + gp * penalty
        assert logs["gp"].item() == pytest.approx(penalty.item(), rel=1e-5)
    ref.backward()
    tol = 1e-10 if dtype == torch.float64 else 1e-4
    assert loss.item() == pytest.approx(ref.item(), rel=tol)
    assert logs["critic_real"].item() == pytest.approx(y[:n].mean().item(), rel=tol)
    assert len(masks) == (len(hidden) if dropout else 0)
    for got, p in zip(fast, D.parameters()):
        assert torch.allclose(got, p.grad, rtol=tol, atol=tol * p.grad.abs().max()), (got - p.grad).abs().max()


@pytest.mark.parametrize("dropout", [0.0, 0.5])
def test_critic_wgan_gp_under_bf16_autocast(monkeypatch, dropout):
    """Under a bf16 autocast the hand-derived critic step multiplies in bfloat16 (as autograd would) and hands
    out float32 gradients close to the float32 step's: the same loss and gradients to bfloat16's precision.
    The float32 step's dropout masks are replayed in bfloat16 (0 and 2 are exact in both)."""
    import gankit.nets.tabular as nets

    masks, draw = [], nets.dropout_scale
    monkeypatch.setattr(nets, "dropout_scale", lambda *a: masks.append(draw(*a)) or masks[-1])
    torch.manual_seed(0)
    D = nets.PackedCritic(7, (64, 32), pack=3, dropout=dropout)
    real, fake = torch.randn(30, 7), torch.randn(30, 7) + 0.5
    results = []
    for autocast in (False, True):
        D.zero_grad()
        torch.manual_seed(5)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss, logs = D.wgan_gp_loss(real, fake, 10.0)
        loss.backward()
        assert loss.dtype == torch.float32 and all(v.dtype == torch.float32 for v in logs.values())
        results.append((loss.item(), logs["gp"].item(), [p.grad.clone() for p in D.parameters()]))
        replay = iter(list(masks))
        monkeypatch.setattr(nets, "dropout_scale", lambda shape, p, like, replay=replay: next(replay).to(like.dtype))
    (loss32, gp32, grads32), (loss16, gp16, grads16) = results
    assert all(g.dtype == torch.float32 for g in grads16)
    assert len(masks) == (2 if dropout else 0)
    assert loss16 != loss32  # the products really ran in bfloat16
    assert loss16 == pytest.approx(loss32, rel=0.03, abs=0.03) and gp16 == pytest.approx(gp32, rel=0.05)
    for g16, g32 in zip(grads16, grads32):
        assert (g16 - g32).norm() <= 0.05 * g32.norm(), (g16 - g32).norm() / g32.norm()


def test_bf16_dropout_masks_are_fair():
    from gankit.nets.tabular import dropout_scale

    torch.manual_seed(0)
    like = torch.zeros(1, dtype=torch.bfloat16)
    mask = dropout_scale((300, 310), 0.5, like)
    kept = (mask > 0).float()
    assert mask.dtype == torch.bfloat16 and set(mask.unique().tolist()) == {0.0, 2.0}
    assert abs(float(kept.mean()) - 0.5) < 0.01
    assert (kept.mean(0) - 0.5).abs().max() < 0.12 and (kept.mean(1) - 0.5).abs().max() < 0.12
    assert not torch.equal(mask, dropout_scale((300, 310), 0.5, like))


def test_precision_auto_follows_the_cpu(monkeypatch):
    import gankit.tasks.tabular as tab

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert tab.native_bf16(cuda) is False  # the real probe, before it is replaced below
    assert tab.native_bf16(cpu) is bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    for native, expected in [(True, "bf16"), (False, "fp32")]:
        monkeypatch.setattr(tab, "native_bf16", lambda device, native=native: native and device.type == "cpu")
        assert tab.resolve_precision("auto", cpu) == expected
        assert tab.resolve_precision("auto", cuda) == "fp32"
        assert tab.resolve_precision("fp32", cpu) == "fp32"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert tab.resolve_precision("bf16", cpu) == "bf16"
        # asking for bf16 where it is emulated works, with a warning that it is slower
        emulated = [str(w.message) for w in caught if "emulated" in str(w.message)]
        assert len(emulated) == (0 if native else 1) and all("auto picks fp32 here" in m for m in emulated)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    with pytest.raises(UserError, match="no bfloat16 support"):
        tab.resolve_precision("bf16", cuda)
    with pytest.raises(UserError, match="precision must be fp32, bf16 or auto"):
        TabularGAN(precision="fp16")


def test_bf16_fit_keeps_float32_weights_and_reproduces(tmp_path):
    """A bf16 fit trains float32 weights (only the step's products are bfloat16), reports its precision,
    gives the same model for the same seed, and the saved model samples the same rows."""
    df = mixed_table()
    gan = TabularGAN(**{**SMALL, "precision": "bf16"}).fit(df)
    assert gan.fit_info["precision"] == "bf16"
    assert all(p.dtype == torch.float32 for p in gan.G.parameters())
    synth = gan.sample(100, seed=3)
    assert list(synth.columns) == list(df.columns) and set(synth["colour"].dropna()) <= set(df["colour"].dropna())
    gan.save(tmp_path / "m")
    pd.testing.assert_frame_equal(TabularGAN.load(tmp_path / "m").sample(100, seed=3), synth)
    pd.testing.assert_frame_equal(TabularGAN(**{**SMALL, "precision": "bf16"}).fit(df).sample(100, seed=3), synth)
    plain = TabularGAN(**SMALL).fit(df)
    assert plain.fit_info["precision"] == "fp32"
    assert not plain.sample(100, seed=3).equals(synth)


def test_infinite_values_are_refused():
    df = pd.DataFrame({"x": [1.0, 2.0, np.inf, 4.0], "y": ["a", "b", "a", "b"]})
    with pytest.raises(UserError, match="infinite"):
        TableTransformer.fit(df, {"x": "continuous", "y": "categorical"})


def test_conditional_loss_is_ctgans_masked_sum():
    from gankit.tasks.tabular import TabularTask

    torch.manual_seed(0)
    discrete = [(1, 3), (4, 2), (7, 3), (10, 4)]  # (start, width) of four one-hot groups in a 14-wide output
    task = TabularTask(None, None, discrete, gp=10.0)
    raw = torch.randn(64, 14, requires_grad=True)
    col = torch.randint(len(discrete), (64,))
    cat = torch.tensor([int(torch.randint(discrete[j][1], ())) for j in col])
    loss = task.cond_loss(raw, col, cat)
    # the reference: every column's cross-entropy, masked to the chosen column, summed, over the batch
    ref = 0
    for j, (s, w) in enumerate(discrete):
        ce = torch.nn.functional.cross_entropy(raw[:, s : s + w], torch.where(col == j, cat, 0), reduction="none")
        ref = ref + (ce * (col == j)).sum()
    ref = ref / 64
    assert loss.item() == pytest.approx(ref.item(), rel=1e-6)
    g1, = torch.autograd.grad(loss, raw)
    g2, = torch.autograd.grad(ref, raw)
    assert torch.allclose(g1, g2, atol=1e-7) and torch.isfinite(g1).all()
    assert g1[:, [0, 6]].abs().sum() == 0  # positions of no discrete column get no gradient


def test_conditional_loss_reads_the_generators_grouped_columns():
    """With a generator, the task finds each discrete column's logits where the generator's layout puts
    them (grouped by width, not in encoded order): the loss is the encoded-order reference's."""
    from gankit.nets.tabular import TabularGenerator
    from gankit.tasks.tabular import TabularTask

    spans = [(0, 3, "softmax"), (3, 1, "tanh"), (4, 2, "softmax"), (6, 3, "softmax"), (9, 4, "softmax")]
    discrete = [(0, 3), (4, 2), (6, 3), (9, 4)]
    G = TabularGenerator(4, 12, spans, 13, hidden=[8])
    assert G.layout.order.tolist() != list(range(13))  # the layout does reorder these columns
    task = TabularTask(G, None, discrete, gp=10.0)
    torch.manual_seed(0)
    encoded = torch.randn(64, 13, requires_grad=True)
    raw = encoded[:, G.layout.order]  # what the generator would return for these logits
    col = torch.randint(len(discrete), (64,))
    cat = torch.tensor([int(torch.randint(discrete[j][1], ())) for j in col])
    ref = TabularTask(None, None, discrete, gp=10.0).cond_loss(encoded, col, cat)
    assert task.cond_loss(raw, col, cat).item() == pytest.approx(ref.item(), rel=1e-6)


def test_gumbel_softmax_groups_and_cheap_mask_dropout():
    from gankit.nets.tabular import CheapMaskDropout, SpanLayout

    spans = [(0, 1, "tanh"), (1, 3, "softmax"), (4, 2, "softmax"), (6, 1, "tanh"), (7, 3, "softmax")]
    layout = SpanLayout(spans, 10)
    # grouped rows: the tanh scalars, then the 2-wide group, then the two 3-wide ones laid out (category, group)
    assert layout.order.tolist() == [0, 6, 4, 5, 1, 7, 2, 8, 3, 9]
    torch.manual_seed(0)
    raw = torch.randn(4000, 10) * 2
    def activate(r, **kw):
        return layout.activate(r[:, layout.order].t(), tau=0.2, **kw)

    soft = activate(raw, hard=False)
    hard = activate(raw, hard=True)
    for s, w, act in spans:
        if act == "tanh":
            assert torch.equal(soft[:, s], torch.tanh(raw[:, s]))
            continue
        assert torch.allclose(soft[:, s : s + w].sum(1), torch.ones(4000), atol=1e-5)
        assert torch.equal(hard[:, s : s + w].sum(1), torch.ones(4000)) and set(hard[:, s:s + w].unique().tolist()) <= {0, 1}
    # the hard samples follow softmax(raw): a Gumbel-max sample per group
    freq = hard[:, 1:4].mean(0)
    expect = torch.softmax(raw[:, 1:4], dim=1).mean(0)
    assert torch.allclose(freq, expect, atol=0.03), (freq, expect)
    # Without gradients the hard path is Gumbel-max (no softmax); with them it is straight-through. Same noise,
    # same one-hots, and only the second passes gradients to the logits.
    torch.manual_seed(1)
    fast = activate(raw, hard=True)
    torch.manual_seed(1)
    leaf = raw.clone().requires_grad_()
    through = activate(leaf, hard=True)
    assert torch.allclose(fast, through.detach(), atol=1e-6) and not fast.requires_grad
    real_softmax = torch.softmax
    torch.softmax = None  # the sampling path must not need it
    try:
        activate(raw, hard=True)
    finally:
        torch.softmax = real_softmax
    (through * torch.rand(through.shape)).sum().backward()
    assert leaf.grad[:, 1:4].abs().sum() > 0
    torch.manual_seed(0)
    for p in (0.5, 0.2):  # 0.5 takes its masks from random bits, other rates from uniform draws
        drop = CheapMaskDropout(p)
        x = torch.ones(300, 310)
        y = drop(x)
        kept = (y > 0).float()
        assert set(y.unique().tolist()) == {0.0, 1 / (1 - p)}
        assert abs(float(kept.mean()) - (1 - p)) < 0.01
        # no position is favoured: per-column and per-row keep rates within sampling noise
        assert (kept.mean(0) - (1 - p)).abs().max() < 0.12 and (kept.mean(1) - (1 - p)).abs().max() < 0.12
        assert not torch.equal(y, drop(x))
    assert torch.equal(drop.eval()(x), x)


@pytest.mark.parametrize("reuse, passes", [(False, 2), (True, 1)])
def test_generator_passes_per_step(monkeypatch, reuse, passes):
    """By default each step draws fresh fakes for the generator step, as CTGAN (reuse_fake=True shares the
    critic step's, one generator pass a step)."""
    from gankit.tasks.tabular import TabularTask

    calls = []
    original = TabularTask.generate
    monkeypatch.setattr(TabularTask, "generate", lambda self, batch: calls.append(1) or original(self, batch))
    gan = TabularGAN(**{**SMALL, "epochs": 3}, reuse_fake=reuse).fit(mixed_table())
    steps = gan.fit_info["steps"]
    assert steps == 6 and len(calls) == steps * passes  # 120 rows in batches of 50: 2 steps an epoch


@pytest.mark.parametrize("hidden", [[32, 16], [24], []])
def test_generator_forward_is_the_residual_network(hidden):
    """The generator computes CTGAN's plain network (``nn.Linear`` layers on the concatenated input, outputs
    in encoded order) without its concatenations: loaded with the plain network's weights, it gives the same
    outputs and the same weight gradients, and a version-1 model file's layout converts to it."""
    from gankit.nets.tabular import TabularGenerator

    spans = [(0, 1, "tanh"), (1, 3, "softmax"), (4, 2, "softmax"), (6, 1, "tanh"), (7, 3, "softmax")]
    torch.manual_seed(0)
    G = TabularGenerator(8, 5, spans, 10, hidden=hidden)
    body, width = [], 13
    for h in hidden:
        body.append((torch.nn.Linear(width, h), torch.nn.BatchNorm1d(h)))
        width += h
    out = torch.nn.Linear(width, 10)
    plain = {f"body.{k}.{name}.{p}": v for k, (fc, bn) in enumerate(body) for name, mod in (("fc", fc), ("bn", bn))
             for p, v in mod.state_dict().items()}
    plain.update({f"out.{p}": v for p, v in out.state_dict().items()})
    G.load_state_dict(TabularGenerator.from_plain(plain, 8, 5, G.layout.order))

    def reference(x):
        for fc, bn in body:
            x = torch.cat([torch.relu(bn(fc(x))), x], dim=1)
        return out(x)

    z, c = torch.randn(40, 8), torch.eye(5)[torch.randint(5, (40,))]
    _, raw = G(z, c)
    ref = reference(torch.cat([z, c], dim=1))
    assert torch.allclose(raw[:, G.layout.position], ref, atol=1e-5)  # raw's columns in grouped order
    w = torch.randn_like(ref)
    fast = torch.autograd.grad((raw[:, G.layout.position] * w).sum(), list(G.parameters()))
    params = [p for fc, bn in body for p in (*fc.parameters(), *bn.parameters())] + list(out.parameters())
    slow = dict(zip([f"body.{k}.{n}.{p}" for k in range(len(body)) for n in ("fc", "bn") for p in ("weight", "bias")]
                    + ["out.weight", "out.bias"], torch.autograd.grad((ref * w).sum(), params)))
    converted = TabularGenerator.from_plain(slow, 8, 5, G.layout.order)
    for (name, _), grad in zip(G.named_parameters(), fast):
        assert torch.allclose(grad, converted[name], atol=1e-4), (name, (grad - converted[name]).abs().max())


def test_version_1_model_files_load_and_sample_as_before(tmp_path):
    """A model saved by the version-1 code (plain layout, tests/data/tabular_v1, with the samples that code
    drew) loads into the new layout and draws the same rows (exactly, since these numbers are rounded to two
    decimals; unrounded ones could differ by float rounding); a newer or malformed format version is refused."""
    folder = Path(__file__).parent / "data" / "tabular_v1"
    model = TabularGAN.load(folder)
    assert model.sample(40, seed=7).to_csv(index=False) == (folder / "samples_seed7.csv").read_text()
    blue = model.sample(40, seed=7, conditions={"colour": "blue"})
    assert blue.to_csv(index=False) == (folder / "samples_seed7_blue.csv").read_text()
    model.save(tmp_path / "v3")
    again = TabularGAN.load(tmp_path / "v3")
    saved = json.loads((tmp_path / "v3" / "model.json").read_text())
    assert saved["version"] == 3 and "precision" in saved["config"]
    assert again.sample(40, seed=7).to_csv(index=False) == (folder / "samples_seed7.csv").read_text()
    # version 2: the same weights, a config without precision
    saved["config"].pop("precision")
    (tmp_path / "v3" / "model.json").write_text(json.dumps({**saved, "version": 2}))
    assert TabularGAN.load(tmp_path / "v3").sample(40, seed=7).to_csv(index=False) == (
        folder / "samples_seed7.csv").read_text()
    shutil.copytree(folder, tmp_path / "future")
    meta = json.loads((tmp_path / "future" / "model.json").read_text())
    # checked before anything else in the file is read: a newer file may have settings this version lacks
    future = {**meta, "version": 4, "config": {**meta["config"], "a_later_option": 1}}
    (tmp_path / "future" / "model.json").write_text(json.dumps(future))
    with pytest.raises(UserError, match="version 4 is newer"):
        TabularGAN.load(tmp_path / "future")
    (tmp_path / "future" / "model.json").write_text(json.dumps({**meta, "version": "2"}))
    with pytest.raises(UserError, match="bad model format version '2'"):
        TabularGAN.load(tmp_path / "future")


def test_a_table_without_discrete_columns_fits_and_samples():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": rng.normal(size=200), "b": rng.random(200)})
    s = TabularGAN(**{**SMALL, "epochs": 2}).fit(df).sample(20, seed=0)
    assert list(s.columns) == ["a", "b"] and len(s) == 20 and s.notna().all().all()


def test_samples_come_from_the_generator_ema():
    # the default averages the generator's weights (ema=0.9); ema=0 keeps the last weights, as CTGAN. The
    # same seed trains the same way, so only the weights the model keeps can differ.
    assert TabularGAN().config.ema == 0.9
    gan = TabularGAN(**{**SMALL, "epochs": 2}).fit(mixed_table())
    last = TabularGAN(**{**SMALL, "epochs": 2, "ema": 0.0}).fit(mixed_table())
    same = dict(last.G.named_parameters())
    differs = [n for n, p in gan.G.named_parameters() if not torch.equal(p, same[n])]
    assert differs, "ema=0.9 gave the same weights as ema=0"
