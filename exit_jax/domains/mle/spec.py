"""The compact solution format: a one-line pipeline spec that compiles into a real ``solution.py``.

A spec is space-separated ``key=value`` tokens, short and regular enough for a ~3M-parameter policy to write::

    model=hgb+mlp impute=ind xf=log scale=std feat=poly2 sel=k20 target=log lr=0.05 n=300 depth=6 h=64x64

``model`` is required (up to three families joined by ``+`` form a soft-voting ensemble); every other key has a
default. Hyperparameter keys are shared: a key applies to each member family that uses it (``n`` is trees for
rf/et, boosting iterations for hgb and epochs for mlp). Unknown keys, bad values and repeated keys raise
``SpecError``; the domain turns that into an invalid solution with reward 0. The compiled program reads the public
data, prints its own validation score on a seeded 80/20 split of train (``validation_score: <float>``), refits on all
of train and writes ``submission.csv``.

An *edit* (``parse_patch`` / ``apply_patch``) is the same tokens without the ``model`` requirement; they replace those
keys of a previous spec, so ``scale=std feat=poly2`` turns ``model=svm`` into ``model=svm scale=std feat=poly2``.
Improve and debug steps of the compact format answer with an edit (``domain.solution_spec``).
"""

from __future__ import annotations

import re

FAMILIES = ("lin", "knn", "svm", "rf", "et", "hgb", "mlp")
CHOICES = {
    "impute": ("median", "mean", "zero", "ind"),
    "cat": ("onehot", "ordinal"),
    "xf": ("none", "log", "quant", "yeo"),
    "scale": ("none", "std", "minmax", "robust"),
    "feat": ("none", "poly2", "inter"),
    "sel": ("all", "k5", "k10", "k20", "k40", "p50"),
    "target": ("none", "log", "std", "quant"),
    "w": ("uni", "dist"),
}
# name: (type, low, high, default); type "f" float, "i" int.
NUMBERS = {
    "c": ("f", 1e-4, 1e4, 1.0),
    "k": ("i", 1, 200, 15),
    "n": ("i", 5, 1000, 100),
    "leaf": ("i", 1, 200, 1),
    "lr": ("f", 1e-4, 1.0, 0.1),
    "a": ("f", 0.0, 10.0, 1e-4),
    "l2": ("f", 0.0, 100.0, 0.0),
}
DEFAULTS = {"impute": "median", "cat": "onehot", "xf": "none", "scale": "none", "feat": "none", "sel": "all",
            "target": "none", "w": "uni", "g": "scale", "depth": "none", "mf": "sqrt", "h": "64"}
KEY_ORDER = ("model", "impute", "cat", "xf", "scale", "feat", "sel", "target", "c", "g", "k", "w", "n", "depth",
             "leaf", "mf", "lr", "l2", "h", "a")
_TOKEN = re.compile(r"^([a-z0-9]+)=([A-Za-z0-9.+\-_]+)$")


class SpecError(ValueError):
    """A spec that cannot be parsed; the message names the offending token."""


def _number(key: str, text: str) -> float | int:
    kind, low, high, _ = NUMBERS[key]
    try:
        value = int(text) if kind == "i" else float(text)
    except ValueError as err:
        raise SpecError(f"{key}={text}: not a{'n integer' if kind == 'i' else ' number'}") from err
    if not low <= value <= high:
        raise SpecError(f"{key}={text}: outside [{low}, {high}]")
    return value


def _parse_tokens(text: str) -> dict[str, object]:
    """Validated ``key=value`` tokens of one line, as given (no defaults, ``model`` not required)."""
    tokens = text.strip().split()
    spec: dict[str, object] = {}
    for token in tokens:
        match = _TOKEN.match(token)
        if not match:
            raise SpecError(f"token {token!r} is not key=value")
        key, value = match.groups()
        if key in spec:
            raise SpecError(f"key {key!r} repeated")
        if key == "model":
            members = value.split("+")
            if not 1 <= len(members) <= 3 or any(m not in FAMILIES for m in members):
                raise SpecError(f"model={value}: use 1-3 of {'/'.join(FAMILIES)} joined by '+'")
            if len(set(members)) != len(members):
                raise SpecError(f"model={value}: repeated family")
            spec[key] = "+".join(members)
        elif key in CHOICES:
            if value not in CHOICES[key]:
                raise SpecError(f"{key}={value}: expected one of {'/'.join(CHOICES[key])}")
            spec[key] = value
        elif key in NUMBERS:
            spec[key] = _number(key, value)
        elif key == "g":
            spec[key] = value if value == "scale" else _positive(key, value, 100.0)
        elif key == "depth":
            spec[key] = value if value == "none" else int(_positive(key, value, 32, integer=True))
        elif key == "mf":
            spec[key] = value if value == "sqrt" else _positive(key, value, 1.0)
        elif key == "h":
            layers = value.split("x")
            if not 1 <= len(layers) <= 3 or not all(s.isdigit() and 1 <= int(s) <= 512 for s in layers):
                raise SpecError(f"h={value}: 1-3 layer widths in [1, 512] joined by 'x'")
            spec[key] = value
        else:
            raise SpecError(f"unknown key {key!r}; keys are {' '.join(KEY_ORDER)}")
    return spec


def parse_spec(text: str) -> dict[str, object]:
    """Parse one spec line into a canonical dict (all keys present, defaults filled).

    Raises:
      SpecError: empty spec, missing ``model``, unknown or repeated key, or a value out of range.
    """
    if not text.strip():
        raise SpecError("empty spec")
    spec = _parse_tokens(text)
    if "model" not in spec:
        raise SpecError("missing model=<family>")
    full = {**DEFAULTS, **{k: v[3] for k, v in NUMBERS.items()}, **spec}
    return {k: full[k] for k in KEY_ORDER}


def parse_patch(text: str) -> dict[str, object]:
    """Parse an edit: ``key=value`` tokens that replace those keys of a previous spec (``model`` optional).

    Raises:
      SpecError: an empty edit, or a token ``parse_spec`` would reject.
    """
    if not text.strip():
        raise SpecError("empty edit")
    return _parse_tokens(text)


def apply_patch(previous: dict[str, object], patch: dict[str, object]) -> dict[str, object]:
    """The canonical spec ``previous`` (from ``parse_spec``) with the edited keys replaced."""
    return {k: patch.get(k, previous[k]) for k in KEY_ORDER}


def _positive(key: str, text: str, high: float, integer: bool = False) -> float:
    try:
        value = int(text) if integer else float(text)
    except ValueError as err:
        raise SpecError(f"{key}={text}: not a number") from err
    if not 0 < value <= high:
        raise SpecError(f"{key}={text}: outside (0, {high}]")
    return value


def format_spec(spec: dict[str, object]) -> str:
    """The canonical one-line text of a parsed spec, omitting default values."""
    defaults = {**DEFAULTS, **{k: v[3] for k, v in NUMBERS.items()}}
    return " ".join(f"{k}={spec[k]}" for k in KEY_ORDER if k == "model" or spec[k] != defaults[k])


def _first_line_with(response: str, marker: str, missing: str) -> str:
    """The first line of the response (fenced blocks first) that contains ``marker``, fences stripped."""
    fenced = re.findall(r"```[a-z]*\n(.*?)```", response, flags=re.S)
    for chunk in [*fenced, response]:
        for line in chunk.splitlines():
            if marker in line:
                return line.strip().strip("`").strip()
    raise SpecError(missing)


def extract_spec(response: str) -> str:
    """The spec line of a policy response: the first line containing ``model=`` (inside a fence if any)."""
    return _first_line_with(response, "model=", "no line with model=<family> in the response")


def extract_patch(response: str) -> str:
    """The edit line of a policy response: the first line containing ``=`` (inside a fence if any)."""
    return _first_line_with(response, "=", "no key=value edit in the response")


def compile_spec(spec: dict[str, object], metric: str, task: str, id_column: str,
                 target_columns: tuple[str, ...]) -> str:
    """The ``solution.py`` source for a parsed spec on a competition with the given metric and columns."""
    header = (
        f"# Compiled from the compact spec: {format_spec(spec)}\n"
        f"SPEC = {dict(spec)!r}\n"
        f"COMPETITION = {dict(metric=metric, task=task, id_column=id_column, target_columns=list(target_columns))!r}\n"
    )
    return header + _BODY


_BODY = '''
import os
import warnings

import numpy as np
import pandas as pd
from sklearn import compose, ensemble, feature_selection, impute, linear_model, metrics, model_selection
from sklearn import neighbors, neural_network, pipeline, preprocessing, svm

warnings.filterwarnings("ignore")
DATA = os.environ.get("PUBLIC_RESOURCE_PATH", "./public")
CLASSIFY = COMPETITION["task"] != "regression"


def signed_log(x):
    return np.sign(x) * np.log1p(np.abs(x))


def numeric_steps():
    s = SPEC
    fill = {"median": "median", "mean": "mean", "zero": "constant", "ind": "median"}[s["impute"]]
    steps = [("impute", impute.SimpleImputer(strategy=fill, fill_value=0, add_indicator=s["impute"] == "ind"))]
    if s["xf"] == "log":
        steps.append(("xf", preprocessing.FunctionTransformer(signed_log)))
    elif s["xf"] == "quant":
        steps.append(("xf", preprocessing.QuantileTransformer(n_quantiles=200, output_distribution="normal")))
    elif s["xf"] == "yeo":
        steps.append(("xf", preprocessing.PowerTransformer()))
    scaler = {"std": preprocessing.StandardScaler(), "minmax": preprocessing.MinMaxScaler(),
              "robust": preprocessing.RobustScaler()}.get(s["scale"])
    if scaler is not None:
        steps.append(("scale", scaler))
    return pipeline.Pipeline(steps)


def preprocessor(frame):
    categorical = [c for c in frame.columns if frame[c].dtype == object or str(frame[c].dtype) in ("string", "str")]
    numeric = [c for c in frame.columns if c not in categorical]
    if SPEC["cat"] == "onehot":
        encoder = preprocessing.OneHotEncoder(handle_unknown="ignore", sparse_output=False)
    else:
        encoder = preprocessing.OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)
    cat = pipeline.Pipeline([("impute", impute.SimpleImputer(strategy="constant", fill_value="missing")),
                             ("encode", encoder)])
    return compose.ColumnTransformer([("num", numeric_steps(), numeric), ("cat", cat, categorical)])


def member(family, proba):
    s = SPEC
    depth = None if s["depth"] == "none" else s["depth"]
    if family == "lin":
        if CLASSIFY:
            return linear_model.LogisticRegression(C=s["c"], max_iter=3000)
        return linear_model.Ridge(alpha=1.0 / s["c"])
    if family == "knn":
        weights = "uniform" if s["w"] == "uni" else "distance"
        cls = neighbors.KNeighborsClassifier if CLASSIFY else neighbors.KNeighborsRegressor
        return cls(n_neighbors=s["k"], weights=weights)
    if family == "svm":
        if CLASSIFY:
            return svm.SVC(C=s["c"], gamma=s["g"], probability=proba, random_state=0)
        return svm.SVR(C=s["c"], gamma=s["g"])
    if family in ("rf", "et"):
        name = {"rf": "RandomForest", "et": "ExtraTrees"}[family] + ("Classifier" if CLASSIFY else "Regressor")
        return getattr(ensemble, name)(n_estimators=s["n"], max_depth=depth, min_samples_leaf=s["leaf"],
                                       max_features=s["mf"], random_state=0, n_jobs=1)
    if family == "hgb":
        cls = ensemble.HistGradientBoostingClassifier if CLASSIFY else ensemble.HistGradientBoostingRegressor
        return cls(learning_rate=s["lr"], max_iter=s["n"], max_depth=depth, min_samples_leaf=max(2, s["leaf"]),
                   l2_regularization=s["l2"], random_state=0)
    hidden = tuple(int(v) for v in str(s["h"]).split("x"))
    cls = neural_network.MLPClassifier if CLASSIFY else neural_network.MLPRegressor
    return cls(hidden_layer_sizes=hidden, alpha=s["a"], learning_rate_init=min(s["lr"], 0.01),
               max_iter=s["n"], early_stopping=True, random_state=0)


def model():
    families = SPEC["model"].split("+")
    proba = COMPETITION["metric"] != "accuracy" or len(families) > 1
    members = [(f, member(f, proba)) for f in families]
    if len(members) == 1:
        estimator = members[0][1]
    elif CLASSIFY:
        estimator = ensemble.VotingClassifier(members, voting="soft")
    else:
        estimator = ensemble.VotingRegressor(members)
    steps = [("prep", None), ("model", estimator)]
    if SPEC["feat"] != "none":
        poly = preprocessing.PolynomialFeatures(2, interaction_only=SPEC["feat"] == "inter", include_bias=False)
        steps.insert(1, ("feat", poly))
    if SPEC["sel"] != "all":
        score = feature_selection.f_classif if CLASSIFY else feature_selection.f_regression
        if SPEC["sel"] == "p50":
            select = feature_selection.SelectPercentile(score, percentile=50)
        else:
            select = feature_selection.SelectKBest(score, k=int(SPEC["sel"][1:]))
        steps.insert(-1, ("sel", select))
    return steps


def fit(features, target):
    steps = model()
    steps[0] = ("prep", preprocessor(features))
    estimator = pipeline.Pipeline(steps)
    if not CLASSIFY and SPEC["target"] != "none":
        low = float(np.min(target))
        if SPEC["target"] == "log":
            estimator = compose.TransformedTargetRegressor(
                estimator, func=lambda y: np.log1p(y - low), inverse_func=lambda z: np.expm1(z) + low)
        elif SPEC["target"] == "std":
            estimator = compose.TransformedTargetRegressor(estimator, transformer=preprocessing.StandardScaler())
        else:
            estimator = compose.TransformedTargetRegressor(
                estimator, transformer=preprocessing.QuantileTransformer(n_quantiles=200,
                                                                         output_distribution="normal"))
    return estimator.fit(features, target)


def predict(estimator, features, column):
    metric = COMPETITION["metric"]
    if not CLASSIFY:
        return {column: estimator.predict(features)}
    if metric == "accuracy":
        return {column: estimator.predict(features)}
    if hasattr(estimator, "predict_proba"):
        probs = estimator.predict_proba(features)
    else:
        margin = estimator.decision_function(features)
        probs = np.column_stack([-margin, margin]) if margin.ndim == 1 else margin
    classes = [str(c) for c in estimator.classes_]
    if metric == "auc" or len(COMPETITION["target_columns"]) == 1:
        positive = classes.index("1") if "1" in classes else len(classes) - 1
        return {column: probs[:, positive]}
    out = {}
    for name in COMPETITION["target_columns"]:
        out[name] = probs[:, classes.index(name)] if name in classes else np.full(len(features), 1e-3)
    return out


def validation_score(truth, predicted):
    metric = COMPETITION["metric"]
    if metric == "rmse":
        return float(np.sqrt(np.mean((truth - predicted[next(iter(predicted))]) ** 2)))
    if metric == "accuracy":
        return float(np.mean(truth.astype(str) == predicted[next(iter(predicted))].astype(str)))
    if metric == "auc":
        return float(metrics.roc_auc_score(truth.astype(str) == "1", predicted[next(iter(predicted))]))
    if len(predicted) == 1:
        return float(metrics.log_loss(truth.astype(str) == "1", predicted[next(iter(predicted))]))
    names = list(predicted)
    probs = np.column_stack([predicted[n] for n in names])
    return float(metrics.log_loss(truth.astype(str), probs / probs.sum(1, keepdims=True), labels=names))


def main():
    train = pd.read_csv(os.path.join(DATA, "train.csv"))
    test = pd.read_csv(os.path.join(DATA, "test.csv"))
    ident = COMPETITION["id_column"]
    targets = [c for c in train.columns if c not in test.columns]
    features = [c for c in test.columns if c != ident]
    submission = pd.DataFrame({ident: test[ident]})
    scores = []
    for target in targets:
        y = train[target]
        if CLASSIFY:
            y = y.astype(str)
        column = target if target in COMPETITION["target_columns"] else COMPETITION["target_columns"][0]
        stratify = y if CLASSIFY and y.value_counts().min() >= 2 else None
        x_fit, x_val, y_fit, y_val = model_selection.train_test_split(
            train[features], y, test_size=0.2, random_state=0, stratify=stratify)
        scores.append(validation_score(y_val.to_numpy(), predict(fit(x_fit, y_fit), x_val, column)))
        for name, values in predict(fit(train[features], y), test[features], column).items():
            submission[name] = values
    print(f"rows={len(train)} features={len(features)} targets={targets}")
    print(f"validation_score: {np.mean(scores):.6f}")
    submission.to_csv("submission.csv", index=False)


if __name__ == "__main__":
    main()
'''
