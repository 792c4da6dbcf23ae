"""MLE-bench's own graders agree with this project's metrics on the paper's six competitions.

Needs the ``mlebench`` package (github.com/openai/mle-bench); skipped without it. Each competition's replica
(``mlebench_replicas``) gets a few random valid submissions in the competition's own format; MLE-bench's
``grade(submission, answers)`` on the raw frames must equal ``check_and_score`` (this project's alignment and metric)
and ``score_aligned`` (which uses MLE-bench's grader when it is importable).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from exit_jax.domains.mle import mlebench
from exit_jax.domains.mle.competition import compute_metric, load_user_competitions, score_aligned
from exit_jax.domains.mle.grading import SubmissionError, check_and_score
from tests.domains.mle import mlebench_replicas as replicas

pytest.importorskip("mlebench")


@pytest.fixture(scope="module")
def competitions(tmp_path_factory):
    root = replicas.build_all(tmp_path_factory.mktemp("mlebench-data"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EXIT_JAX_CACHE", str(tmp_path_factory.mktemp("cache")))
        return {c.name: c for c in load_user_competitions([root])}


def _random_submission(competition, rng) -> pd.DataFrame:
    sample = pd.read_csv(competition.public_dir / competition.sample_submission)
    n, k = len(sample), len(competition.target_columns)
    if competition.metric == "multiclass_logloss":
        values = rng.dirichlet(np.ones(k), n)
    elif competition.metric == "rmsle":
        values = rng.rand(n, k) * 3
    else:
        values = np.round(rng.rand(n, k), 2)  # ties
    sample[list(competition.target_columns)] = values
    return sample


def _ours(competition, submission: pd.DataFrame, path) -> float:
    if competition.passthrough_columns:  # check_and_score does not accept insults' Date yet: align here
        answers = pd.read_csv(competition.answers_path)
        answers.index = answers[competition.id_column].astype(str)
        truth = answers.loc[submission[competition.id_column].astype(str), list(competition.target_columns)]
        return compute_metric(competition.metric, truth.reset_index(drop=True),
                              submission[list(competition.target_columns)].reset_index(drop=True))
    submission.to_csv(path, index=False)
    return check_and_score(competition, str(path))


@pytest.mark.parametrize("name", list(replicas.BUILDERS))
def test_mlebench_graders_agree(name, competitions, tmp_path):
    from mlebench.utils import read_csv

    competition = competitions[name]
    grade = mlebench.package_grader(name)
    assert grade is not None, f"mlebench is installed but has no grader for {name}"
    rng = np.random.RandomState(0)
    for draw in range(3):
        # MLE-bench's graders get the rows in the answers' order: nomad2018's pairs rows by position, not by id.
        # Ours get them shuffled: check_and_score matches rows by id.
        submission = _random_submission(competition, rng)
        path = tmp_path / f"submission{draw}.csv"
        submission.to_csv(path, index=False)
        theirs = grade(read_csv(path), read_csv(competition.answers_path))
        submission = read_csv(path).sample(frac=1.0, random_state=draw)
        assert _ours(competition, submission, tmp_path / "ours.csv") == pytest.approx(theirs, abs=1e-9)
        answers = pd.read_csv(competition.answers_path)
        answers.index = answers[competition.id_column].astype(str)
        truth = answers.loc[submission[competition.id_column].astype(str), list(competition.target_columns)]
        assert score_aligned(competition, truth.reset_index(drop=True),
                             submission[list(competition.target_columns)].reset_index(drop=True)) == \
            pytest.approx(theirs, abs=1e-9)


def test_both_refuse_unnormalised_spooky_rows(competitions, tmp_path):
    from mlebench.grade_helpers import InvalidSubmissionError

    competition = competitions["spooky-author-identification"]
    submission = _random_submission(competition, np.random.RandomState(1))
    submission[list(competition.target_columns)] *= 0.9
    path = tmp_path / "bad.csv"
    submission.to_csv(path, index=False)
    with pytest.raises(InvalidSubmissionError):
        mlebench.package_grader(competition.name)(pd.read_csv(path), pd.read_csv(competition.answers_path))
    with pytest.raises(SubmissionError):
        check_and_score(competition, str(path))
