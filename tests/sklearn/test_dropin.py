"""mlplab.MLPClassifier as a drop-in for scikit-learn's: sample weights, sparse input, one
class, scikit-learn's errors, and scikit-learn's loss curve and stopping rule."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch
from scipy import sparse
from sklearn.datasets import load_digits, make_blobs, make_classification
from sklearn.metrics import recall_score
from sklearn.neural_network import MLPClassifier as SkMLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from mlplab import MLPClassifier
from mlplab.errors import MlplabError
from mlplab.sklearn import sparse as sparse_rows
from mlplab.sklearn.sparse import SparseRows

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(return_X_y=True)
    return x / 16, y


def plain_sgd(**kw) -> dict:
    """Settings under which both estimators take the same steps from the same start
    (scikit-learn's initialisation, no shuffling, SGD without momentum): the loss curves
    then differ by float32 rounding, and by alpha's decay of the intercepts (mlplab's)."""
    params = dict(
        hidden_layer_sizes=(16,), solver="sgd", momentum=0.0, learning_rate_init=0.2,
        shuffle=False, random_state=0, max_iter=6,
    )  # fmt: skip
    return {**params, **kw}


# --- the loss curve and the stopping rule -----------------------------------------------------


@pytest.mark.parametrize("alpha, epoch_1, later", [(0.0, 1e-7, 1e-7), (1e-2, 5e-7, 1e-4)])
def test_the_loss_curve_is_sklearns(digits, alpha, epoch_1, later):
    """Each epoch's loss is scikit-learn's: the batches' mean log-loss plus their L2 term, with
    the weights each batch saw. Measured: 1.1e-8 apart at the first epoch without alpha,
    1.6e-7 with it (2.3e-6 when the L2 term was taken with the weights of the epoch's end);
    at most 3.7e-8 and 1.6e-5 over 6 epochs, the second from the intercepts' decay."""
    x, y = digits
    params = plain_sgd(alpha=alpha, hidden_layer_sizes=(64,), learning_rate_init=0.05)
    ours = MLPClassifier(**params).fit(x, y).loss_curve_
    theirs = SkMLPClassifier(**params).fit(x, y).loss_curve_
    assert len(ours) == len(theirs) == 6
    assert abs(ours[0] - theirs[0]) < epoch_1
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=later)


def test_weighted_loss_curve_is_sklearns(digits):
    x, y = digits
    w = np.random.RandomState(1).randint(1, 4, len(y)).astype(float)
    ours = MLPClassifier(**plain_sgd(alpha=0.0)).fit(x, y, sample_weight=w).loss_curve_
    theirs = SkMLPClassifier(**plain_sgd(alpha=0.0)).fit(x, y, sample_weight=w).loss_curve_
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-6)  # measured: 1.2e-7


@pytest.mark.parametrize("alpha", [0.0, 1e-2])
def test_training_stops_at_sklearns_epoch(digits, alpha):
    x, y = digits
    params = plain_sgd(alpha=alpha, max_iter=300, tol=3e-3, n_iter_no_change=3)
    ours = MLPClassifier(**params).fit(x, y)
    theirs = SkMLPClassifier(**params).fit(x, y)
    assert ours.n_iter_ == theirs.n_iter_ < 300  # measured: 49 and 48
    assert ours.best_loss_ == pytest.approx(theirs.best_loss_, abs=1e-4)


# --- sample weights ---------------------------------------------------------------------------


def test_fit_and_partial_fit_take_sklearns_arguments():
    for method in ("fit", "partial_fit"):
        ours = inspect.signature(getattr(MLPClassifier, method)).parameters
        theirs = inspect.signature(getattr(SkMLPClassifier, method)).parameters
        assert list(ours) == list(theirs), method


def test_integer_weights_are_duplicated_rows():
    """Full batches, no shuffle: a row of weight k is k copies of it, and weight 0 no row."""
    x, y = make_blobs(n_samples=60, centers=3, random_state=0)
    w = np.random.RandomState(0).randint(0, 4, len(y))
    params = dict(hidden_layer_sizes=(16,), max_iter=20, shuffle=False, random_state=0)
    weighted = MLPClassifier(**params).fit(x, y, sample_weight=w)
    repeated = MLPClassifier(**params).fit(x.repeat(w, axis=0), y.repeat(w))
    assert weighted.loss_curve_[0] == pytest.approx(repeated.loss_curve_[0], rel=1e-6)
    np.testing.assert_allclose(weighted.loss_curve_, repeated.loss_curve_, rtol=1e-5)
    np.testing.assert_allclose(weighted.predict_proba(x), repeated.predict_proba(x), atol=1e-5)


def test_partial_fit_weighs_rows_too():
    x, y = make_blobs(n_samples=60, centers=3, random_state=0)
    keep = np.arange(60) % 3 != 0
    params = dict(hidden_layer_sizes=(16,), shuffle=False, random_state=0)
    a, b = MLPClassifier(**params), MLPClassifier(**params)
    for _ in range(5):
        a.partial_fit(x, y, keep.astype(float), classes=[0, 1, 2])
        b.partial_fit(x[keep], y[keep], classes=[0, 1, 2])
    np.testing.assert_allclose(a.loss_curve_, b.loss_curve_, rtol=1e-5)
    np.testing.assert_allclose(a.predict_proba(x), b.predict_proba(x), atol=1e-5)


def test_a_class_of_weight_zero_is_never_learned():
    x, y = make_blobs(n_samples=300, centers=3, random_state=0)
    clf = MLPClassifier(max_iter=100, random_state=0).fit(x, y, sample_weight=(y != 2) * 1.0)
    assert clf.classes_.tolist() == [0, 1, 2] and clf.predict_proba(x).shape == (300, 3)
    assert 2 not in clf.predict(x)
    assert clf.score(x, y, sample_weight=(y != 2) * 1.0) > 0.9


def test_upweighting_a_class_shifts_predictions_toward_it():
    """A gate: on an imbalanced problem, weighing the rare class as much as the common one
    finds more of it (measured: recall 0.56 unweighted, 0.82 weighted, on held-out rows)."""
    x, y = make_classification(
        n_samples=3000, n_features=10, weights=[0.9, 0.1], class_sep=0.6, random_state=0
    )
    x_fit, y_fit, x_test, y_test = x[:2000], y[:2000], x[2000:], y[2000:]
    params = dict(hidden_layer_sizes=(32,), max_iter=60, random_state=0)
    plain = MLPClassifier(**params).fit(x_fit, y_fit)
    balanced = MLPClassifier(**params).fit(x_fit, y_fit, sample_weight=np.where(y_fit, 9.0, 1.0))
    before = recall_score(y_test, plain.predict(x_test))
    after = recall_score(y_test, balanced.predict(x_test))
    assert after > before + 0.15
    assert balanced.predict(x_test).sum() > 1.5 * plain.predict(x_test).sum()


def test_early_stopping_scores_the_weighted_validation_rows():
    """Equal weights of 2 train as no weights (alpha 0) and score as no weights."""
    x, y = make_blobs(n_samples=200, centers=3, cluster_std=3.0, random_state=0)
    params = dict(alpha=0.0, early_stopping=True, max_iter=30, random_state=0)
    plain = MLPClassifier(**params).fit(x, y)
    doubled = MLPClassifier(**params).fit(x, y, sample_weight=np.full(200, 2.0))
    assert doubled.validation_scores_ == plain.validation_scores_
    assert doubled.best_validation_score_ == plain.best_validation_score_
    np.testing.assert_allclose(doubled.predict_proba(x), plain.predict_proba(x), atol=1e-5)


# --- sparse input -----------------------------------------------------------------------------


def _categories(n: int = 400, seed: int = 0):
    rng = np.random.RandomState(seed)
    x = rng.randint(0, 6, size=(n, 4)).astype(str)
    y = (x[:, 0] == "1").astype(int) + 2 * (x[:, 1] < "2")
    return x, y


def test_one_hot_encoded_sparse_input_fits_as_the_dense_one():
    x, y = _categories()
    params = dict(hidden_layer_sizes=(16,), max_iter=30, learning_rate_init=0.01, random_state=0)
    sparse_pipe = make_pipeline(OneHotEncoder(), MLPClassifier(**params)).fit(x, y)
    dense_pipe = make_pipeline(OneHotEncoder(sparse_output=False), MLPClassifier(**params))
    dense_pipe.fit(x, y)
    assert sparse.issparse(sparse_pipe[0].transform(x))
    np.testing.assert_array_equal(sparse_pipe.predict(x), dense_pipe.predict(x))
    np.testing.assert_allclose(
        sparse_pipe.predict_proba(x), dense_pipe.predict_proba(x), rtol=1e-12
    )
    assert sparse_pipe[-1].loss_curve_ == dense_pipe[-1].loss_curve_
    assert sparse_pipe.score(x, y) > 0.95


@pytest.mark.parametrize("kind", [sparse.csr_matrix, sparse.csc_matrix, sparse.csr_array])
def test_sparse_input_is_never_made_dense_on_the_host(kind, monkeypatch):
    x, y = _categories()
    encoded = kind(OneHotEncoder().fit_transform(x))

    def refuse(*args, **kw):
        raise AssertionError("densified on the host")

    for cls in (sparse.csr_matrix, sparse.csc_matrix, sparse.csr_array, sparse.csc_array):
        monkeypatch.setattr(cls, "toarray", refuse)
        monkeypatch.setattr(cls, "todense", refuse)
    clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=3, random_state=0)
    clf.fit(encoded, y).partial_fit(encoded, y)
    assert clf.predict(encoded).shape == (400,) and clf.n_iter_ == 4
    early = MLPClassifier(hidden_layer_sizes=(8,), max_iter=3, early_stopping=True).fit(encoded, y)
    assert len(early.validation_scores_) == 3


def test_sparse_early_stopping_holds_out_the_same_rows_as_dense():
    x, y = _categories()
    encoded = OneHotEncoder().fit_transform(x)
    params = dict(hidden_layer_sizes=(8,), max_iter=10, early_stopping=True, random_state=0)
    a = MLPClassifier(**params).fit(encoded, y)
    b = MLPClassifier(**params).fit(encoded.toarray(), y)
    assert a.validation_scores_ == b.validation_scores_ and a.loss_curve_ == b.loss_curve_


def test_sparse_rows_densify_exactly(monkeypatch):
    m = sparse.random(30, 12, density=0.3, format="coo", random_state=0, dtype=np.float32)
    # a duplicate entry (scipy adds them up) and an empty row
    m = sparse.coo_matrix(
        (np.r_[m.data, 1.5, 2.5], (np.r_[m.row, 3, 3], np.r_[m.col, 4, 4])), shape=m.shape
    ).tocsr()
    m = m.tolil()
    m[7] = 0
    m = m.tocsr()
    dense = torch.from_numpy(m.toarray())
    rows = SparseRows.from_scipy(m)
    idx = torch.tensor([3, 7, 0, 29, 3])
    assert torch.equal(rows.index_select(0, idx), dense[idx])
    assert torch.equal(torch.cat(list(rows.split(8))), dense)
    monkeypatch.setattr(sparse_rows, "CHUNK", 30)  # evaluation's chunks: 2 rows of 12 at most
    assert [len(c) for c in rows.split(10_000)][:2] == [2, 2]
    assert torch.equal(torch.cat(list(rows.split(10_000))), dense)
    part = rows[torch.tensor([29, 7, 3])]
    assert len(part) == 3 and part.shape == (3, 12)
    assert torch.equal(part.index_select(0, torch.arange(3)), dense[[29, 7, 3]])


# --- one class, and scikit-learn's errors -----------------------------------------------------


def test_one_class_fits_and_predicts_it(tmp_path):
    x = np.random.RandomState(0).rand(20, 3)
    y = np.full(20, "only")
    clf = MLPClassifier(max_iter=50, random_state=0).fit(x, y)
    assert SkMLPClassifier(max_iter=50, random_state=0).fit(x, y).predict(x[:2]).tolist() == [
        "only",
        "only",
    ]
    assert clf.classes_.tolist() == ["only"] and clf.predict(x).tolist() == ["only"] * 20
    np.testing.assert_array_equal(clf.predict_proba(x), np.ones((20, 1)))
    assert 1 <= clf.n_iter_ < 50  # the loss is 0 from the start: it stops on tol
    clf.save(tmp_path / "one.safetensors")
    back = MLPClassifier.load(tmp_path / "one.safetensors")
    assert back.predict(x[:3]).tolist() == ["only"] * 3
    partial = MLPClassifier(random_state=0).partial_fit(x, y, classes=["only"])
    assert partial.predict(x[:1]).tolist() == ["only"]


def _sklearn_error(fit) -> tuple[type, str]:
    with pytest.raises(Exception) as caught:
        fit()
    return type(caught.value), str(caught.value)


@pytest.mark.parametrize(
    "x, w",
    [
        ([[1e39, 0.0], [0.0, 1.0], [1.0, 1.0]], None),  # beyond float32's range
        ([[np.nan, 0.0], [0.0, 1.0], [1.0, 1.0]], None),
        ([[np.inf, 0.0], [0.0, 1.0], [1.0, 1.0]], None),
        ([[0.0, 0.0], [0.0, 1.0], [1.0, 1.0]], [1.0, 1.0]),  # one weight short
        ([[0.0, 0.0], [0.0, 1.0], [1.0, 1.0]], [0.0, 0.0, 0.0]),
        ([[0.0, 0.0], [0.0, 1.0], [1.0, 1.0]], [[1.0], [1.0], [1.0]]),
        ([[0.0, 0.0], [0.0, 1.0], [1.0, 1.0]], [1.0, np.nan, 1.0]),
    ],
)
def test_bad_input_raises_sklearns_error(x, w):
    """The error type scikit-learn's MLPClassifier raises, with its message (float32 is the
    dtype it names for values beyond float32's range, as for its own float32 input)."""
    y = [0, 1, 1]
    ours = _sklearn_error(lambda: MLPClassifier().fit(np.array(x), y, sample_weight=w))
    with np.errstate(over="ignore"):  # scikit-learn trains in float64 where given it
        x32 = np.array(x, dtype=np.float32)
    theirs = _sklearn_error(lambda: SkMLPClassifier().fit(x32, y, sample_weight=w))
    assert ours == theirs
    assert ours[0] is ValueError and not issubclass(ours[0], MlplabError)


def test_weights_that_add_up_to_nothing_are_a_value_error():
    with pytest.raises(ValueError, match=r"^sample_weight: the weights must add up to a positive"):
        MLPClassifier().fit([[0.0], [1.0]], [0, 1], sample_weight=[1.0, -1.0])
