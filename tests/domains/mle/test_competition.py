"""Metrics against scikit-learn, normalisation, submission checks, and the MLE-bench layout adapter."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from exit_jax.domains.mle.competition import compute_metric, load_mlebench_competition, normalise
from exit_jax.domains.mle.grading import SubmissionError, check_and_score, parse_validation_score


def test_metrics_match_sklearn():
    rng = np.random.RandomState(0)
    labels = rng.randint(0, 2, 200)
    scores = np.round(rng.rand(200), 2)  # ties exercise average ranks
    frame = lambda a, cols=("t",): pd.DataFrame(np.asarray(a).reshape(len(a), -1), columns=list(cols))
    assert compute_metric("auc", frame(labels), frame(scores)) == pytest.approx(skm.roc_auc_score(labels, scores))
    guesses = rng.randint(0, 2, 200)
    assert compute_metric("accuracy", frame(labels), frame(guesses)) == pytest.approx(
        skm.accuracy_score(labels, guesses))
    classes = rng.randint(0, 3, 200)
    probs = rng.dirichlet(np.ones(3), 200)
    onehot = np.eye(3)[classes]
    assert compute_metric("logloss", frame(onehot, "abc"), frame(probs, "abc")) == pytest.approx(
        skm.log_loss(classes, probs, labels=[0, 1, 2]))
    assert compute_metric("logloss", frame(labels), frame(scores.clip(0.01, 0.99))) == pytest.approx(
        skm.log_loss(labels, scores.clip(0.01, 0.99)))
    values, preds = rng.randn(200), rng.randn(200)
    assert compute_metric("rmse", frame(values), frame(preds)) == pytest.approx(
        np.sqrt(skm.mean_squared_error(values, preds)))


def test_normalise_both_directions_and_clips():
    assert normalise(0.75, worst=0.5, best=1.0) == pytest.approx(0.5)
    assert normalise(3.0, worst=4.0, best=2.0) == pytest.approx(0.5)  # a loss: lower is better
    assert normalise(5.0, worst=4.0, best=2.0) == 0.0
    assert normalise(0.0, worst=0.5, best=0.1) == 1.0
    assert normalise(float("nan"), 0.0, 1.0) == 0.0


def test_parse_validation_score():
    assert parse_validation_score("epoch 1\nvalidation_score: 0.25\nvalidation_score: 0.5\n") == 0.5
    assert parse_validation_score("Validation score = 1e-3") == pytest.approx(1e-3)
    assert parse_validation_score("nothing here") is None
    assert parse_validation_score("validation_score: nan") is None


@pytest.mark.parametrize("mutate, message", [
    (lambda s: s.iloc[:-1], "rows"),
    (lambda s: pd.concat([s, s.iloc[:1]]), "rows"),
    (lambda s: s.assign(id=s["id"].where(s.index != 0, s["id"].iloc[1])), "duplicate"),
    (lambda s: s.assign(id=s["id"] + 1000), "ids"),
    (lambda s: s.rename(columns={"target": "prediction"}), "columns"),
    (lambda s: s.assign(extra=1.0), "columns"),
    (lambda s: s.assign(target=np.nan), "non-numeric"),
    (lambda s: s.assign(target="abc"), "non-numeric"),
])
def test_wrong_rows_or_columns_are_refused(toy_competition, tmp_path, mutate, message):
    good = pd.read_csv(toy_competition.public_dir / "sample_submission.csv")
    path = tmp_path / "submission.csv"
    good.to_csv(path, index=False)
    check_and_score(toy_competition, str(path))  # the well-formed one scores
    mutate(good).to_csv(path, index=False)
    with pytest.raises(SubmissionError, match=message):
        check_and_score(toy_competition, str(path))


def test_rows_are_aligned_by_id(toy_competition, tmp_path):
    answers = pd.read_csv(toy_competition.answers_path)
    shuffled = answers.sample(frac=1.0, random_state=0)
    path = tmp_path / "submission.csv"
    shuffled.to_csv(path, index=False)
    assert check_and_score(toy_competition, str(path)) == 0.0
    assert toy_competition.normalise(0.0) == 1.0


def test_mlebench_adapter_on_prepared_layout(tmp_path):
    prepared = tmp_path / "toy-auc" / "prepared"
    (prepared / "public").mkdir(parents=True)
    (prepared / "private").mkdir()
    rng = np.random.RandomState(1)
    pd.DataFrame({"request_id": range(30), "text_len": rng.rand(30), "label": rng.randint(0, 2, 30)}).to_csv(
        prepared / "public" / "train.csv", index=False)
    pd.DataFrame({"request_id": range(30, 40), "text_len": rng.rand(10)}).to_csv(
        prepared / "public" / "test.csv", index=False)
    pd.DataFrame({"request_id": range(30, 40), "label": 0.5}).to_csv(
        prepared / "public" / "sample_submission.csv", index=False)
    truth = pd.DataFrame({"request_id": range(30, 40), "label": [0, 1] * 5})
    truth.to_csv(prepared / "private" / "test.csv", index=False)
    (prepared / "public" / "description.md").write_text("# Toy AUC\nPredict label.")
    competition = load_mlebench_competition(tmp_path / "toy-auc", metric="auc", worst=0.0, best=1.0)
    assert competition.id_column == "request_id" and competition.target_columns == ("label",)
    assert competition.task == "binary" and competition.split == "heldout"
    assert "Toy AUC" in competition.description
    submission = truth.assign(label=truth["label"] * 0.8 + 0.1)
    submission.to_csv(tmp_path / "sub.csv", index=False)
    assert check_and_score(competition, str(tmp_path / "sub.csv")) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="metric"):
        load_mlebench_competition(tmp_path / "toy-auc", metric="f1", worst=0.0, best=1.0)
