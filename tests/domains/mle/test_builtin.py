"""Every built-in competition: deterministic build, sane layout, and references in both formats beat a constant."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from exit_jax.domains.mle import builtin
from exit_jax.domains.mle.domain import solution_code
from exit_jax.domains.mle.grading import Evaluator

# Reasonable, cheap compact references (not the best; the point is "clearly above a constant").
REFERENCE_SPECS = {
    "friedman1-rmse": "model=svm scale=std",
    "hastie-auc": "model=lin scale=std feat=poly2",
    "synth3-logloss": "model=knn scale=std k=30 w=dist",
    "moons-acc": "model=knn scale=std k=30 w=dist",
    "star98-rmse": "model=lin scale=std",
    "grunfeld-rmse": "model=lin scale=std xf=log target=log impute=ind",
    "fair-logloss": "model=lin scale=std",
    "digits-logloss": "model=lin scale=std",
    "housing-rmse": "model=lin scale=std xf=log target=log impute=ind",
    "churn-auc": "model=lin scale=std",
    "friedman3-rmse": "model=lin scale=std feat=poly2",
    "circles-auc": "model=lin scale=std feat=poly2",
    "credit-logloss": "model=lin scale=std",
    "friedman2-rmse": "model=lin scale=std feat=poly2",
    "xor-acc": "model=knn scale=std k=30 w=dist",
    "blobs-logloss": "model=lin scale=std feat=poly2",
    "insurance-rmse": "model=lin scale=std feat=poly2",
    "loans-auc": "model=lin scale=std",
    "energy-logloss": "model=lin scale=std",
}
# An independent hand-written python reference: one-hot encoding + gradient boosting (native missing values).
PYTHON_REFERENCE = '''
import os
import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

METRIC = "{metric}"
data = os.environ["PUBLIC_RESOURCE_PATH"]
train = pd.read_csv(os.path.join(data, "train.csv"))
test = pd.read_csv(os.path.join(data, "test.csv"))
sample = pd.read_csv(os.path.join(data, "sample_submission.csv"))
features = pd.get_dummies(pd.concat([train.drop(columns=["id", "target"]), test.drop(columns=["id"])]))
x_train, x_test = features.iloc[: len(train)], features.iloc[len(train):]
if METRIC == "rmse":
    model = HistGradientBoostingRegressor(max_iter=100, early_stopping=True, random_state=0)
    model.fit(x_train, train["target"])
    sample["target"] = model.predict(x_test)
else:
    y = train["target"].astype(str)
    model = HistGradientBoostingClassifier(max_iter=100, early_stopping=True, random_state=0).fit(x_train, y)
    if METRIC == "accuracy":
        sample["target"] = model.predict(x_test)
    elif METRIC == "auc":
        sample["target"] = model.predict_proba(x_test)[:, list(model.classes_).index("1")]
    else:
        probs = model.predict_proba(x_test)
        for j, name in enumerate(model.classes_):
            sample[name] = probs[:, j]
sample.to_csv("submission.csv", index=False)
'''


def constant_score(competition) -> float:
    """The best constant prediction chosen from train, scored with scikit-learn (an independent reference)."""
    train = pd.read_csv(competition.public_dir / "train.csv")
    answers = pd.read_csv(competition.answers_path)
    if competition.metric == "rmse":
        return float(np.sqrt(skm.mean_squared_error(answers["target"], np.full(len(answers),
                                                                              train["target"].mean()))))
    if competition.metric == "auc":
        return float(skm.roc_auc_score(answers["target"], np.zeros(len(answers))))
    if competition.metric == "accuracy":
        majority = train["target"].astype(str).mode()[0]
        return float(skm.accuracy_score(answers["target"].astype(str), np.full(len(answers), majority)))
    classes = list(competition.target_columns)
    priors = train["target"].astype(str).value_counts(normalize=True).reindex(classes).to_numpy()
    truth = answers[classes].to_numpy().argmax(axis=1)
    return float(skm.log_loss(truth, np.tile(priors, (len(answers), 1)), labels=list(range(len(classes)))))


@pytest.fixture(scope="module")
def competitions(tmp_path_factory):
    root = tmp_path_factory.mktemp("builtin_cache")
    return {name: builtin.get_competition(name, root=root) for name in builtin.builtin_names()}


def test_set_shape():
    train, heldout = builtin.builtin_names("train"), builtin.builtin_names("heldout")
    assert len(train) + len(heldout) >= 12 and len(heldout) >= 6
    metrics = {builtin.BUILTIN_BY_NAME[n].metric for n in train + heldout}
    tasks = {builtin.BUILTIN_BY_NAME[n].task for n in train + heldout}
    assert metrics == {"auc", "accuracy", "logloss", "rmse"}
    assert tasks == {"binary", "multiclass", "regression"}
    assert set(REFERENCE_SPECS) == set(train + heldout)


def test_layout_and_determinism(competitions, tmp_path):
    with_missing = with_categorical = 0
    for name, competition in competitions.items():
        train = pd.read_csv(competition.public_dir / "train.csv")
        test = pd.read_csv(competition.public_dir / "test.csv")
        sample = pd.read_csv(competition.public_dir / "sample_submission.csv")
        answers = pd.read_csv(competition.answers_path)
        assert "target" in train and "target" not in test, name
        assert list(sample.columns) == list(answers.columns) == ["id", *competition.target_columns]
        assert sample["id"].tolist() == test["id"].tolist() == answers["id"].tolist()
        assert not set(train["id"]) & set(test["id"])
        assert len(test) >= 80, name
        assert (competition.answers_path.stat().st_mode & 0o077) == 0  # owner-only
        assert constant_score(competition) == pytest.approx(competition.worst), name
        with_missing += bool(train.isna().any().any())
        with_categorical += bool(train.drop(columns="target").dtypes.map(lambda d: d.kind == "O").any())
    assert with_missing >= 4 and with_categorical >= 4
    rebuilt = builtin.get_competition("fair-logloss", root=tmp_path)
    original = competitions["fair-logloss"]
    for part in ("public/train.csv", "public/test.csv", "private/answers.csv"):
        assert (rebuilt.root / part).read_bytes() == (original.root / part).read_bytes()


@pytest.mark.parametrize("solution_format", ["compact", "python"])
def test_references_beat_a_constant(sandbox, competitions, solution_format):
    evaluator = Evaluator(sandbox)
    names = sorted(competitions)
    codes = []
    for name in names:
        competition = competitions[name]
        if solution_format == "compact":
            codes.append(solution_code(REFERENCE_SPECS[name], competition, "compact"))
        else:
            codes.append(PYTHON_REFERENCE.format(metric=competition.metric))
    results = evaluator.evaluate_many([competitions[n] for n in names], codes)
    for name, result in zip(names, results, strict=True):
        competition = competitions[name]
        assert result.valid, (name, result.error, result.feedback[-800:])
        baseline = constant_score(competition)
        margin = abs(competition.best - competition.worst) * 0.2
        better = baseline - result.score if competition.worst > competition.best else result.score - baseline
        assert better > margin, (name, result.score, baseline)
        assert result.normalized_score > 0.2, (name, result.normalized_score)
        if solution_format == "compact":
            assert result.validation_score is not None
