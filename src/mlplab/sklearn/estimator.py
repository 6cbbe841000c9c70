"""MLPClassifier: scikit-learn's MLP classifier, with its names and defaults, on mlplab's engines.

fit() validates the arrays as scikit-learn does, turns the labels into class indices and
trains through mlplab's Trainer (the fast engine for plain MLPs, on CPU or GPU); predictions
run in float64 numpy on the fitted coefs_, so they are identical on any row subset. X may
be scipy sparse: it stays sparse, and only each batch is made dense, on the device.
"""

from __future__ import annotations

import sys
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets, unique_labels
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from mlplab.config import TrainConfig
from mlplab.errors import MlplabError
from mlplab.nn.spec import ModelSpec
from mlplab.sklearn import fitting, forward, persist
from mlplab.sklearn.params import ACTIVATIONS, ParameterError, check_params
from mlplab.training.device import pick_device

_DTYPES = (np.float32, np.float64)  # what predictions take; training takes float32
_SPARSE = ["csr", "csc"]  # other sparse formats are converted to CSR


class MLPClassifier(ClassifierMixin, BaseEstimator):
    """A multi-layer perceptron classifier: scikit-learn's API, mlplab's training engines.

    The parameters shared with sklearn.neural_network.MLPClassifier have its names, defaults
    and meaning; solver="lbfgs" is not supported (a ValueError at fit time). Differences:
    alpha is applied as L2 weight decay alpha / batch_size on every parameter (scikit-learn
    exempts the intercepts), and Adam's eps is added after bias correction, as torch does.
    Labels may be of any type; one class, binary and multiclass targets are supported,
    multilabel targets are not. X may be dense or scipy sparse (CSR, CSC, or any format
    scipy converts to CSR). fit and partial_fit take sample_weight, as scikit-learn does.

    Parameters beyond scikit-learn's:
        device: where to train: "auto" (cuda, then mps, then cpu), "cpu", "cuda", ...
        dropout: dropout after each hidden layer (trained by the autograd engine).
        lr_schedule: "constant" (scikit-learn's), "step", "cosine" or "onecycle".
        label_smoothing: of the cross-entropy's targets.
        engine: "auto" (fast where the model allows it), "fast" or "autograd".
        log: tracking targets, as `mlplab train --log` takes them: ("tensorboard",) writes
            tb/<date-time>-mlpclassifier/ (with "tensorboard=DIR", DIR/...), and
            ("mlflow",) or ("mlflow=TRACKING_URI",) logs each fit as an MLflow run.

    Fitted attributes are scikit-learn's: classes_, n_features_in_, feature_names_in_
    (from a DataFrame), loss_curve_, best_loss_, validation_scores_,
    best_validation_score_, n_iter_, t_, coefs_, intercepts_, n_layers_, n_outputs_,
    out_activation_. save(path) and MLPClassifier.load(path) keep a fitted estimator in
    one safetensors file with JSON metadata, which loads without unpickling anything.
    """

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate_init=0.001,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        device="auto",
        dropout=0.0,
        lr_schedule="constant",
        label_smoothing=0.0,
        engine="auto",
        log=(),
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.device = device
        self.dropout = dropout
        self.lr_schedule = lr_schedule
        self.label_smoothing = label_smoothing
        self.engine = engine
        self.log = log

    # --- fitting -----------------------------------------------------------------------

    def fit(self, X, y, sample_weight=None):
        """Train for up to max_iter epochs (continuing the current weights if warm_start).

        Args:
            X: (n_samples, n_features) numbers, dense or scipy sparse.
            y: (n_samples,) labels of any type.
            sample_weight: (n_samples,) each row's weight in the loss; None: all 1.
        Returns:
            self.
        """
        hidden = check_params(self.get_params())
        again = self.warm_start and hasattr(self, "coefs_")
        X, y, weights = self._validate_fit(X, y, sample_weight, reset=not again)
        classes = unique_labels(y)
        if again:
            if set(classes) != set(self.classes_):
                raise ValueError(
                    "warm_start can only be used where `y` has the same classes as in the "
                    f"previous call to fit. Previously got {self.classes_}, `y` has {classes}"
                )
        else:
            self.classes_ = classes
            self._reset()
        self._train(X, self._encode(y), weights, hidden, self.max_iter, incremental=False)
        return self

    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch over (X, y); `classes` (every label there will be) on the first call.

        Args:
            X: as fit takes it.
            y: as fit takes it.
            sample_weight: as fit takes it.
            classes: every label there will be, on the first call.
        Returns:
            self.
        """
        hidden = check_params(self.get_params())
        if self.early_stopping:
            raise ValueError("partial_fit does not support early_stopping=True")
        first = not hasattr(self, "classes_")
        if first and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit.")
        X, y, weights = self._validate_fit(X, y, sample_weight, reset=first)
        if first:
            self.classes_ = unique_labels(classes)
            self._reset()
        elif classes is not None and not np.array_equal(unique_labels(classes), self.classes_):
            raise ValueError(
                f"`classes={unique_labels(classes)!r}` is not the same as on the last call "
                f"to partial_fit, was: {self.classes_!r}"
            )
        self._train(X, self._encode(y), weights, hidden, 1, incremental=True)
        return self

    def _validate_fit(self, X, y, sample_weight, reset: bool) -> tuple:
        """X as float32 (a value beyond float32's range is a ValueError, as scikit-learn
        says), y, and the sample weights as float32 (None when not given)."""
        with np.errstate(over="ignore"):  # an overflow to inf is reported as a ValueError
            X, y = validate_data(self, X, y, reset=reset, accept_sparse=_SPARSE, dtype=np.float32)
            check_classification_targets(y)
            if sample_weight is not None:
                sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float32)
        if sample_weight is not None and not sample_weight.sum(dtype=np.float64) > 0:
            raise ValueError(
                "sample_weight: the weights must add up to a positive number, got "
                f"{sample_weight.sum(dtype=np.float64)}"
            )
        return X, y, sample_weight

    def _reset(self) -> None:
        """Forget the weights and the record of a previous fit."""
        for name in ("coefs_", "intercepts_", "_optimizer_state"):
            self.__dict__.pop(name, None)
        self._store_progress(fitting.Progress.fresh(self.early_stopping))

    def _encode(self, y: np.ndarray) -> np.ndarray:
        """Labels as indices into classes_ (int64); labels outside it are an error."""
        codes = np.searchsorted(self.classes_, y)
        known = codes < len(self.classes_)
        known[known] = self.classes_[codes[known]] == y[known]
        if not known.all():
            raise ValueError(
                f"`y` has classes not in `self.classes_`. `self.classes_` has "
                f"{self.classes_}. 'y' has {unique_labels(y)}."
            )
        return codes.astype(np.int64)

    def _start(self, n_features: int, hidden: tuple[int, ...], rng) -> tuple:
        """The network to train (softmax over every class) and the model it starts from:
        the fitted weights when continuing, else scikit-learn's initialisation."""
        binary = len(self.classes_) == 2
        units = [n_features, *hidden, 1 if binary else len(self.classes_)]
        if hasattr(self, "coefs_"):
            _check_shapes(self.coefs_, units)
            coefs, intercepts = self.coefs_, self.intercepts_
        else:
            coefs, intercepts = fitting.glorot_init(units, self.activation, rng)
        spec = ModelSpec(
            (n_features, *hidden, len(self.classes_)),
            activation=ACTIVATIONS[self.activation],
            dropout=float(self.dropout),
        )
        return units, fitting.to_model(spec, coefs, intercepts)

    def _train(self, X, codes, weights, hidden: tuple[int, ...], epochs: int, incremental: bool):
        rng = check_random_state(self.random_state)
        n, n_features = X.shape
        units, start = self._start(n_features, hidden, rng)
        seed = (int(rng.randint(2**31 - 1)) + self.n_iter_) % 2**31  # a new shuffle per call
        early = self.early_stopping and not incremental
        n_val = int(np.ceil(self.validation_fraction * n)) if early else 0
        if early and not 2 <= n_val < n:
            raise ValueError(
                "The validation set is too small. Increase 'validation_fraction' or the size "
                "of your dataset."
            )
        mean = float(weights.mean(dtype=np.float64)) if weights is not None else 1.0
        config = self._config(str(start.spec), n - n_val, epochs, seed, n_val, mean)
        progress = self._progress(early)
        book = fitting.EpochBook(progress, self._stop_rule(early, not incremental, mean))
        data = fitting.make_dataset(X, codes, weights, len(self.classes_))
        with fitting.Tracking(config) as tracking:
            model, self._optimizer_state, stopped = fitting.train_epochs(
                config,
                data,
                start,
                book,
                getattr(self, "_optimizer_state", None) if incremental else None,
                tracking.trackers,
            )
            binary = len(self.classes_) == 2
            self.coefs_, self.intercepts_ = fitting.from_model(model, binary)
            self.n_layers_ = len(units)
            self.n_outputs_ = units[-1]
            self.out_activation_ = "logistic" if binary else "softmax"
            self._store_progress(progress)
            tracking.fitted(self)
        if not incremental and not stopped:
            warnings.warn(
                f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and the "
                "optimization hasn't converged yet.",
                ConvergenceWarning,
                stacklevel=3,
            )

    def _config(self, spec: str, n_train: int, epochs: int, seed: int, n_val: int, mean: float):
        """The Trainer's config; `mean` is the rows' mean sample weight (1 without weights)."""
        if self.batch_size == "auto":
            batch = min(200, n_train)
        else:
            if self.batch_size > n_train:
                warnings.warn(
                    "Got `batch_size` less than 1 or larger than sample size. It is going to "
                    "be clipped",
                    stacklevel=4,
                )
            batch = int(np.clip(self.batch_size, 1, n_train))
        sgd = self.solver == "sgd"
        try:
            config = TrainConfig(
                dataset="sklearn",
                model=spec,
                normalization="none",
                optimizer=self.solver,
                lr=float(self.learning_rate_init),
                momentum=float(self.momentum) if sgd else 0.0,
                nesterov=bool(sgd and self.nesterovs_momentum and self.momentum > 0),
                # scikit-learn divides its L2 term by the batch's sum of sample weights
                weight_decay=float(self.alpha) / (batch * mean),
                label_smoothing=float(self.label_smoothing),
                engine=self.engine,
                beta1=float(self.beta_1),
                beta2=float(self.beta_2),
                eps=float(self.epsilon),
                batch_size=batch,
                shuffle=bool(self.shuffle),
                epochs=epochs,
                schedule=self.lr_schedule,
                seed=seed,
                device=self.device,
                val_size=n_val,
                log=tuple(self.log) if isinstance(self.log, list | tuple) else self.log,
            )
            pick_device(config.device)
        except MlplabError as e:
            raise ParameterError(str(e)) from None
        return config

    def _stop_rule(self, early: bool, stop: bool, mean: float) -> fitting.StopRule:
        # verbose is scikit-learn's contract: progress lines on stdout, as its MLP prints
        log = (lambda line: print(line, file=sys.stdout, flush=True)) if self.verbose else None
        binary = len(self.classes_) == 2
        return fitting.StopRule(
            float(self.alpha),
            float(self.tol),
            int(self.n_iter_no_change),
            early,
            stop,
            log,
            binary,
            mean,
        )

    def _progress(self, early: bool) -> fitting.Progress:
        p = fitting.Progress(
            loss_curve=list(self.loss_curve_),
            validation_scores=None
            if self.validation_scores_ is None
            else list(self.validation_scores_),
            best_loss=self.best_loss_,
            best_validation_score=self.best_validation_score_,
            no_improvement=self._no_improvement_count,
            n_iter=self.n_iter_,
            t=self.t_,
        )
        if early and p.validation_scores is None:  # a warm start that turned it on
            p.validation_scores, p.best_validation_score = [], -np.inf
        if not early and p.best_loss is None:
            p.best_loss = np.inf
        return p

    def _store_progress(self, p: fitting.Progress) -> None:
        self.loss_curve_ = p.loss_curve
        self.validation_scores_ = p.validation_scores
        self.best_loss_ = p.best_loss
        self.best_validation_score_ = p.best_validation_score
        self._no_improvement_count = p.no_improvement
        self.n_iter_ = p.n_iter
        self.t_ = p.t

    # --- predicting --------------------------------------------------------------------

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities (n_samples, n_classes), float64, columns as classes_."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, accept_sparse=_SPARSE, dtype=_DTYPES)
        return forward.probabilities(
            X, self.coefs_, self.intercepts_, self.activation, self.out_activation_
        )

    def predict_log_proba(self, X) -> np.ndarray:
        """log(predict_proba(X))."""
        return np.log(self.predict_proba(X))

    def predict(self, X) -> np.ndarray:
        """The most probable class of each row, as a label from classes_."""
        probs = self.predict_proba(X)  # first: it checks that the estimator is fitted
        return self.classes_[np.argmax(probs, axis=1)]

    # --- persistence and tags ----------------------------------------------------------

    def save(self, path) -> None:
        """Write the fitted estimator to one safetensors file (weights plus JSON metadata)."""
        check_is_fitted(self)
        persist.save(self, path)

    @classmethod
    def load(cls, path) -> MLPClassifier:
        """A fitted estimator from a file written by save(); nothing is unpickled."""
        return persist.load(cls, path)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.input_tags.allow_nan = False
        tags.classifier_tags.multi_label = False
        return tags


def _check_shapes(coefs: list[np.ndarray], units: list[int]) -> None:
    want = [(i, o) for i, o in zip(units[:-1], units[1:], strict=True)]
    have = [tuple(c.shape) for c in coefs]
    if have != want:
        raise ValueError(
            f"warm_start: the fitted coefs_ have shapes {have}, but hidden_layer_sizes and "
            f"the data need {want}; set warm_start=False to start over"
        )
