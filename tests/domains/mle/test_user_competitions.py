"""Users' own competitions: the paper's six MLE-bench competitions from replicas of their prepared layouts, the
competition.json layout, the new metrics, the Table 3 presets, the config fields, errors, and a user's directory that
stays byte-for-byte unchanged."""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from exit_jax.domains.mle import mlebench
from exit_jax.domains.mle.competition import (
    compute_metric,
    load_mlebench_competition,
    load_user_competitions,
    score_aligned,
    user_cache_root,
    write_competition,
)
from exit_jax.domains.mle.domain import MLEConfig, MLEDomain
from exit_jax.domains.mle.grading import SubmissionError, check_and_score
from exit_jax.domains.registry import _mle_config
from exit_jax.types import Instance
from tests.domains.mle import mlebench_replicas as replicas

PAPER_SIX = tuple(replicas.BUILDERS)
TRAIN_THREE = ("detecting-insults-in-social-commentary", "random-acts-of-pizza", "spooky-author-identification")


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Each test's cache entries go to its own directory (the built-ins are not touched: nothing here builds them)."""
    monkeypatch.setenv("EXIT_JAX_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def data_root(tmp_path):
    return replicas.build_all(tmp_path / "mle-bench-data")


def _frame(values, columns):
    return pd.DataFrame(np.asarray(values, float).reshape(len(values), -1), columns=list(columns))


# ------------------------------------------------------------------------------------------------------------ metrics
def test_rmsle_against_hand_and_numpy():
    # Hand: column a: log1p errors (log 2 - log 1, 0) -> sqrt(log(2)^2 / 2); column b: both exact -> 0.
    truth, guess = _frame([[0, 3], [1, 0]], "ab"), _frame([[1, 3], [1, 0]], "ab")
    assert compute_metric("rmsle", truth, guess) == pytest.approx(np.sqrt(np.log(2) ** 2 / 2) / 2)
    rng = np.random.RandomState(0)
    t, p = rng.rand(50, 2) * 3, rng.rand(50, 2) * 3
    reference = np.mean(np.sqrt(np.mean((np.log1p(p) - np.log1p(t)) ** 2, axis=0)))
    assert compute_metric("rmsle", _frame(t, "ab"), _frame(p, "ab")) == pytest.approx(reference)
    with pytest.raises(SubmissionError, match="RMSLE"):
        compute_metric("rmsle", _frame(t, "ab"), _frame(p - 5, "ab"))


def _pairwise_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """AUC as the share of (positive, negative) pairs ordered right, ties half: a definition, not a rank formula."""
    pos, neg = scores[labels == 1], scores[labels == 0]
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0) + 0.5 * (diff == 0)).mean())


def test_mean_columnwise_auc_skips_unscored_rows():
    # Hand, one column: labels 1 0 1 0, scores .9 .8 .3 .1: pairs (.9>.8) (.9>.1) (.3<.8) (.3>.1) -> 3/4. The -1 row
    # (score 0) would lower it if it were scored as a negative... it is not.
    truth = _frame([1, 0, 1, 0, -1], "t")
    guess = _frame([0.9, 0.8, 0.3, 0.1, 0.95], "t")
    assert compute_metric("auc", truth, guess) == pytest.approx(0.75)
    rng = np.random.RandomState(1)
    labels = (rng.rand(80, 6) < 0.4).astype(float)
    labels[70:] = -1  # jigsaw's unscored rows
    scores = np.round(rng.rand(80, 6), 1)  # ties
    reference = np.mean([_pairwise_auc(labels[:70, j], scores[:70, j]) for j in range(6)])
    columns = replicas.JIGSAW_LABELS
    assert compute_metric("auc", _frame(labels, columns), _frame(scores, columns)) == pytest.approx(reference)


def test_multiclass_logloss_named_columns_and_refusals():
    # Hand: two rows, true classes HPL then EAP, p = .5 and .8 -> -(log .5 + log .8) / 2.
    truth = _frame([[0, 1, 0], [1, 0, 0]], ["EAP", "HPL", "MWS"])
    probs = _frame([[0.25, 0.5, 0.25], [0.8, 0.1, 0.1]], ["EAP", "HPL", "MWS"])
    assert compute_metric("multiclass_logloss", truth, probs) == pytest.approx(-(np.log(0.5) + np.log(0.8)) / 2)
    rng = np.random.RandomState(2)
    classes = rng.randint(0, 3, 100)
    p = rng.dirichlet(np.ones(3), 100)
    reference = -np.mean(np.log(p[np.arange(100), classes]))
    columns = ["EAP", "HPL", "MWS"]
    assert compute_metric("multiclass_logloss", _frame(np.eye(3)[classes], columns), _frame(p, columns)) == \
        pytest.approx(reference)
    with pytest.raises(SubmissionError, match="sum to 1"):
        compute_metric("multiclass_logloss", truth, probs * 0.9)
    with pytest.raises(SubmissionError, match=r"\[0, 1\]"):
        compute_metric("multiclass_logloss", truth, _frame([[1.2, -0.1, -0.1], [0.8, 0.1, 0.1]], columns))


# ------------------------------------------------------------------------------------------------------------ presets
@pytest.mark.parametrize("name", PAPER_SIX)
def test_preset_range_maps_worst_to_0_and_best_to_1(name, data_root):
    preset = mlebench.PRESETS[name]
    competition = {c.name: c for c in load_user_competitions([data_root])}[name]
    assert (competition.worst, competition.best) == (preset.worst, preset.best)
    assert competition.normalise(preset.worst) == 0.0
    assert competition.normalise(preset.best) == 1.0
    assert competition.normalise((preset.worst + preset.best) / 2) == pytest.approx(0.5)


def test_presets_are_table_3():
    table = {c: (p.metric, p.worst, p.best, p.split) for c, p in mlebench.PRESETS.items()}
    assert table == {
        "random-acts-of-pizza": ("auc", 0.0, 1.0, "train"),
        "spooky-author-identification": ("multiclass_logloss", 1.5, 1.0, "train"),
        "detecting-insults-in-social-commentary": ("auc", 0.0, 1.0, "train"),
        "nomad2018-predict-transparent-conductors": ("rmsle", 1.0, 0.0, "heldout"),
        "jigsaw-toxic-comment-classification-challenge": ("auc", 0.0, 1.0, "heldout"),
        "aerial-cactus-identification": ("auc", 0.0, 1.0, "heldout"),
    }


EXPECTED_LAYOUT = {
    "random-acts-of-pizza": ("request_id", ("requester_received_pizza",), (), "sampleSubmission.csv"),
    "spooky-author-identification": ("id", ("EAP", "HPL", "MWS"), (), "sample_submission.csv"),
    "detecting-insults-in-social-commentary": ("Comment", ("Insult",), ("Date",), "sample_submission_null.csv"),
    "nomad2018-predict-transparent-conductors": (
        "id", ("formation_energy_ev_natom", "bandgap_energy_ev"), (), "sample_submission.csv"),
    "jigsaw-toxic-comment-classification-challenge": ("id", tuple(replicas.JIGSAW_LABELS), (), "sample_submission.csv"),
    "aerial-cactus-identification": ("id", ("has_cactus",), (), "sample_submission.csv"),
}


def _perfect_and_sample(competition):
    """A submission holding the answers (in the sample's format, rows shuffled) and the sample submission itself."""
    sample = pd.read_csv(competition.public_dir / competition.sample_submission)
    answers = pd.read_csv(competition.answers_path)
    perfect = sample.copy()
    by_id = answers.set_index(answers[competition.id_column].astype(str))
    for column in competition.target_columns:
        perfect[column] = by_id.loc[sample[competition.id_column].astype(str), column].to_numpy()
    return perfect.sample(frac=1.0, random_state=0), sample


def _expected_sample_score(name, competition) -> float:
    """The sample submission's score computed here with NumPy (AUC of a constant is 0.5)."""
    answers = pd.read_csv(competition.answers_path)
    if name == "spooky-author-identification":
        priors = np.array([0.403493538995863, 0.287808366106543, 0.308698094897594])
        return float(-np.mean(np.log(answers[["EAP", "HPL", "MWS"]].to_numpy() @ priors)))
    if name == "nomad2018-predict-transparent-conductors":
        return float(np.mean([np.sqrt(np.mean((np.log1p(c) - np.log1p(answers[t])) ** 2))
                              for t, c in (("formation_energy_ev_natom", 0.1779), ("bandgap_energy_ev", 1.8892))]))
    return 0.5


@pytest.mark.parametrize("name", [n for n in PAPER_SIX if n != "detecting-insults-in-social-commentary"])
def test_paper_competitions_load_and_grade(name, data_root, tmp_path):
    competition = {c.name: c for c in load_user_competitions([data_root])}[name]
    id_column, targets, passthrough, sample_name = EXPECTED_LAYOUT[name]
    assert (competition.id_column, competition.target_columns, competition.passthrough_columns,
            competition.sample_submission) == (id_column, targets, passthrough, sample_name)
    assert competition.split == mlebench.PRESETS[name].split and competition.grader == name
    # Solutions see the competition's own public files; the answers are a private copy in the cache.
    assert competition.public_dir == (data_root / name / "prepared" / "public").resolve()
    assert competition.answers_path.is_relative_to(user_cache_root())
    assert stat.S_IMODE(competition.answers_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(competition.answers_path.parent.stat().st_mode) == 0o700
    assert competition.answers_path.read_bytes() == (data_root / name / "prepared/private/test.csv").read_bytes()
    assert "miniature replica" in competition.description
    perfect, sample = _perfect_and_sample(competition)
    perfect.to_csv(tmp_path / "perfect.csv", index=False)
    sample.to_csv(tmp_path / "sample.csv", index=False)
    best = check_and_score(competition, str(tmp_path / "perfect.csv"))
    assert competition.normalise(best) == pytest.approx(1.0)
    assert check_and_score(competition, str(tmp_path / "sample.csv")) == pytest.approx(
        _expected_sample_score(name, competition))


def test_insults_matches_rows_by_comment(data_root):
    competition = {c.name: c for c in load_user_competitions([data_root])}["detecting-insults-in-social-commentary"]
    assert (competition.id_column, competition.target_columns, competition.passthrough_columns,
            competition.sample_submission) == EXPECTED_LAYOUT[competition.name]
    assert competition.split == "train" and competition.grader == competition.name
    perfect, _ = _perfect_and_sample(competition)
    answers = pd.read_csv(competition.answers_path).set_index("Comment")
    aligned = answers.loc[perfect["Comment"], ["Insult"]].reset_index(drop=True)
    assert compute_metric("auc", aligned, perfect[["Insult"]].reset_index(drop=True)) == 1.0
    assert score_aligned(competition, aligned, perfect[["Insult"]].reset_index(drop=True)) == 1.0


def test_insults_kaggle_format_submission_grades(data_root, tmp_path):
    competition = {c.name: c for c in load_user_competitions([data_root])}["detecting-insults-in-social-commentary"]
    perfect, _ = _perfect_and_sample(competition)
    perfect.to_csv(tmp_path / "perfect.csv", index=False)
    assert check_and_score(competition, str(tmp_path / "perfect.csv")) == 1.0


def test_cactus_image_folders_and_test_ids(tmp_path):
    comp = replicas.cactus(tmp_path / "folders", folders=True)
    (competition,) = load_user_competitions([comp])
    assert competition.name == "aerial-cactus-identification"
    assert not (comp / "prepared/public/test.csv").exists()
    victim = sorted((comp / "prepared/public/test").iterdir())[0]
    victim.unlink()  # the test images no longer match the sample submission's ids
    with pytest.raises(ValueError, match="test entries"):
        load_user_competitions([comp])


def test_grader_hook_gets_id_aligned_frames(data_root, monkeypatch):
    """With mlebench importable, score_aligned hands MLE-bench's grader full frames with the id column restored."""
    by_name = {c.name: c for c in load_user_competitions([data_root])}
    competition = by_name["jigsaw-toxic-comment-classification-challenge"]
    seen = {}

    def fake_grade(submission, answers):
        seen["columns"] = (list(submission.columns), list(answers.columns))
        if (submission[replicas.JIGSAW_LABELS] > 1).any().any():
            raise ValueError("probabilities above 1")
        return 0.625

    monkeypatch.setattr(mlebench, "package_grader", lambda cid: fake_grade if cid == competition.name else None)
    answers = pd.read_csv(competition.answers_path)[replicas.JIGSAW_LABELS]
    guess = answers.clip(lower=0) * 0.5
    assert score_aligned(competition, answers, guess) == 0.625
    assert seen["columns"] == (["id", *replicas.JIGSAW_LABELS],) * 2
    with pytest.raises(SubmissionError, match="refused"):
        score_aligned(competition, answers, guess + 2)
    monkeypatch.setattr(mlebench, "package_grader", lambda cid: None)
    assert score_aligned(competition, answers, guess) == compute_metric("auc", answers, guess)


# --------------------------------------------------------------------------------------- the user's data, unchanged
PIZZA_SOLUTION = """```python
import json, os
import pandas as pd
public = os.environ["PUBLIC_RESOURCE_PATH"]
test = json.load(open(os.path.join(public, "test.json")))
pd.DataFrame({"request_id": [r["request_id"] for r in test],
              "requester_received_pizza": [r["requester_account_age_in_days_at_request"] / 900 for r in test]}
             ).to_csv("submission.csv", index=False)
print("validation_score: 0.5")
```"""
CACTUS_SOLUTION = """```python
import os, zipfile
import pandas as pd
public = os.environ["PUBLIC_RESOURCE_PATH"]
names = sorted(zipfile.ZipFile(os.path.join(public, "test.zip")).namelist())
sizes = [zipfile.ZipFile(os.path.join(public, "test.zip")).getinfo(n).file_size for n in names]
pd.DataFrame({"id": names, "has_cactus": [s / max(sizes) for s in sizes]}).to_csv("submission.csv", index=False)
```"""
NOMAD_SOLUTION = """```python
import os
import pandas as pd
public = os.environ["PUBLIC_RESOURCE_PATH"]
train, test = pd.read_csv(os.path.join(public, "train.csv")), pd.read_csv(os.path.join(public, "test.csv"))
assert len(os.listdir(os.path.join(public, "test"))) == len(test)
targets = ["formation_energy_ev_natom", "bandgap_energy_ev"]
test.assign(**{t: train[t].mean() for t in targets})[["id", *targets]].to_csv("submission.csv", index=False)
```"""


def test_user_directory_is_never_written(sandbox, data_root, tmp_path):
    json_layout = tmp_path / "own"
    rng = np.random.RandomState(7)
    x = rng.randn(30)
    frame = pd.DataFrame({"id": range(30), "x": x, "target": 3 * x})
    answers = frame.iloc[20:][["id", "target"]]
    write_competition(json_layout, "own-rmse", "# own\nPredict target.", frame.iloc[:20], frame.iloc[20:, :2],
                      answers, answers.assign(target=0.0),
                      {"metric": "rmse", "worst": 3.0, "best": 0.0, "id_column": "id", "target_columns": ["target"],
                       "task": "regression", "split": "heldout"})
    roots = (data_root, json_layout)
    before = {str(r): replicas.tree_digest(r) for r in roots}
    config = MLEConfig(competition_dirs=(str(data_root), str(json_layout / "own-rmse")), builtin_competitions=False)
    domain = MLEDomain(config, sandbox=sandbox)
    assert domain.task_ids("train") == sorted(TRAIN_THREE)
    assert domain.task_ids("heldout") == sorted(set(PAPER_SIX) - set(TRAIN_THREE)) + ["own-rmse"]
    for task_id in domain.task_ids("train") + domain.task_ids("heldout"):
        domain.render(Instance(task_id=task_id))
        assert domain.ceiling(task_id) == 1.0
    tasks = ["random-acts-of-pizza", "aerial-cactus-identification", "nomad2018-predict-transparent-conductors"]
    grades = domain.grade([Instance(task_id=t) for t in tasks], [PIZZA_SOLUTION, CACTUS_SOLUTION, NOMAD_SOLUTION])
    assert [g.valid for g in grades] == [True, True, True], [g.feedback for g in grades]
    # Each score against an independent computation from the user's files.
    answers = pd.read_csv(data_root / "random-acts-of-pizza/prepared/private/test.csv")
    test = json.loads((data_root / "random-acts-of-pizza/prepared/public/test.json").read_text())
    ages = {r["request_id"]: r["requester_account_age_in_days_at_request"] / 900 for r in test}
    scores = answers["request_id"].map(ages).to_numpy()
    assert grades[0].info["raw_score"] == pytest.approx(_pairwise_auc(answers["requester_received_pizza"].to_numpy(),
                                                                      scores))
    nomad = domain.competition("nomad2018-predict-transparent-conductors")
    assert grades[2].score == pytest.approx(nomad.normalise(grades[2].info["raw_score"]))
    assert {str(r): replicas.tree_digest(r) for r in roots} == before
    # Loading again (cache hit) and after the cache is gone (rebuild) leaves them unchanged too.
    MLEDomain(config, sandbox=sandbox)
    shutil.rmtree(user_cache_root())
    MLEDomain(config, sandbox=sandbox)
    assert {str(r): replicas.tree_digest(r) for r in roots} == before


def test_cache_entry_follows_the_files(data_root):
    comp = data_root / "random-acts-of-pizza"
    first = {c.name: c for c in load_user_competitions([comp])}["random-acts-of-pizza"]
    again = {c.name: c for c in load_user_competitions([comp])}["random-acts-of-pizza"]
    assert first.root == again.root  # same files, same entry
    answers = pd.read_csv(comp / "prepared/private/test.csv")
    answers["requester_received_pizza"] = 1 - answers["requester_received_pizza"]
    answers.to_csv(comp / "prepared/private/test.csv", index=False)
    changed = load_user_competitions([comp])[0]
    assert changed.root != first.root
    assert pd.read_csv(changed.answers_path).equals(answers)


def test_world_readable_answers_warn_and_stay_private_in_the_cache():
    base = Path(tempfile.mkdtemp(prefix="exit-jax-readable-"))
    try:
        os.chmod(base, 0o755)
        comp = replicas.pizza(base)
        with pytest.warns(UserWarning, match="readable by other users"):
            (competition,) = load_user_competitions([comp])
        assert stat.S_IMODE(competition.answers_path.stat().st_mode) == 0o600
    finally:
        shutil.rmtree(base)


# ------------------------------------------------------------------------------------------------ config and errors
def test_config_fields_and_splits(sandbox, data_root):
    both = MLEDomain(MLEConfig(competition_dirs=(str(data_root),)), sandbox=sandbox)
    assert set(PAPER_SIX) <= set(both.task_ids("train") + both.task_ids("heldout"))
    assert "hastie-auc" in both.task_ids("train")  # built-ins kept by default
    held = ("random-acts-of-pizza", "aerial-cactus-identification")
    only = MLEDomain(MLEConfig(competition_dirs=(str(data_root),), builtin_competitions=False,
                               heldout_competitions=held), sandbox=sandbox)
    assert only.task_ids("heldout") == sorted(held)
    assert only.task_ids("train") == sorted(set(PAPER_SIX) - set(held))
    with pytest.raises(KeyError, match="builtin_competitions=False"):
        only.competition("hastie-auc")
    # extra_competitions is an alias; the registry takes strings (split at commas) and lists.
    alias = MLEDomain(MLEConfig(extra_competitions=(str(data_root),), builtin_competitions=False), sandbox=sandbox)
    assert alias.task_ids("train") == sorted(TRAIN_THREE)
    config = _mle_config({"competition_dirs": str(data_root), "builtin_competitions": False,
                          "heldout_competitions": ",".join(held)})
    assert config.competition_dirs == (str(data_root),) and config.heldout_competitions == held
    with pytest.raises(ValueError, match="domain.heldout_competitions: no-such-thing is not a user competition"):
        MLEDomain(MLEConfig(competition_dirs=(str(data_root),), heldout_competitions=("no-such-thing",)))
    with pytest.raises(ValueError, match="hastie-auc: a built-in"):
        MLEDomain(MLEConfig(competition_dirs=(str(data_root),), heldout_competitions=("hastie-auc",)))
    with pytest.raises(ValueError, match="'heldout' split.*domain.heldout_competitions"):
        MLEDomain(MLEConfig(competition_dirs=(str(data_root / "random-acts-of-pizza"),), builtin_competitions=False))
    with pytest.raises(ValueError, match="no user competition is configured"):
        MLEDomain(MLEConfig(builtin_competitions=False))
    with pytest.raises(ValueError, match="list of strings"):
        MLEConfig(competition_dirs=(1, 2))


def test_directory_errors_name_the_directory_and_the_fix(data_root, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"domain.competition_dirs: .*missing is not a directory"):
        load_user_competitions([tmp_path / "missing"])
    (tmp_path / "empty" / "notes").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"holds no competition.*prepared"):
        load_user_competitions([tmp_path / "empty"])
    (tmp_path / "half" / "prepared" / "public").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"half/prepared lacks private/; re-run `mlebench prepare -c half`"):
        load_user_competitions([tmp_path / "half"])
    (data_root / "random-acts-of-pizza/prepared/public/sampleSubmission.csv").unlink()
    with pytest.raises(FileNotFoundError, match=r"sampleSubmission.csv is missing; `mlebench prepare -c random"):
        load_user_competitions([data_root / "random-acts-of-pizza"])
    # Two directories holding a competition of the same name.
    twin = tmp_path / "twin"
    replicas.spooky(twin)
    with pytest.raises(ValueError, match="two competitions are named 'spooky-author-identification'"):
        load_user_competitions([data_root / "spooky-author-identification", twin])


def test_unknown_mlebench_competition_needs_its_metric(tmp_path):
    comp = replicas.spooky(tmp_path)
    renamed = comp.with_name("some-other-competition")
    comp.rename(renamed)
    with pytest.raises(ValueError, match=r"no preset .* write a competition.json in .*some-other-competition"):
        load_user_competitions([renamed])
    (renamed / "competition.json").write_text(json.dumps({"metric": "logloss", "worst": 1.1, "best": 0.2}))
    (competition,) = load_user_competitions([renamed])
    assert (competition.id_column, competition.target_columns) == ("id", ("EAP", "HPL", "MWS"))
    assert competition.split == "heldout" and competition.grader == ""
    (renamed / "competition.json").write_text(json.dumps({"metric": "logloss", "worst": 1.1, "best": 0.2,
                                                          "colour": "red"}))
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['colour'\]"):
        load_user_competitions([renamed])


def test_users_competition_json_overrides_a_preset(data_root):
    comp = data_root / "spooky-author-identification"
    (comp / "competition.json").write_text(json.dumps({"best": 0.0, "split": "heldout"}))
    (competition,) = load_user_competitions([comp])
    assert (competition.worst, competition.best, competition.split) == (1.5, 0.0, "heldout")


def test_answers_that_do_not_match_the_sample_are_refused(data_root):
    private = data_root / "nomad2018-predict-transparent-conductors/prepared/private/test.csv"
    answers = pd.read_csv(private)
    answers.iloc[1:].to_csv(private, index=False)
    with pytest.raises(ValueError, match="are not those of the answers"):
        load_user_competitions([private.parents[2]])


def test_competition_json_layout_errors(tmp_path):
    comp = tmp_path / "mine"
    (comp / "public").mkdir(parents=True)
    fields = {"metric": "rmse", "worst": 1.0, "best": 0.0, "task": "regression", "target_columns": ["y"]}
    (comp / "competition.json").write_text(json.dumps(fields))
    with pytest.raises(ValueError, match="field 'id_column' is missing"):
        load_user_competitions([comp])
    (comp / "competition.json").write_text(json.dumps({**fields, "id_column": "id"}))
    with pytest.raises(FileNotFoundError, match="description.md is missing"):
        load_user_competitions([comp])


def test_legacy_adapter_arguments_without_writing(tmp_path):
    prepared = tmp_path / "toy-auc" / "prepared"
    (prepared / "public").mkdir(parents=True)
    (prepared / "private").mkdir()
    pd.DataFrame({"request_id": range(30, 40), "label": 0.5}).to_csv(prepared / "public/sample_submission.csv",
                                                                     index=False)
    truth = pd.DataFrame({"request_id": range(30, 40), "label": [0, 1] * 5})
    truth.to_csv(prepared / "private/test.csv", index=False)
    (prepared / "public/description.md").write_text("# Toy AUC\nPredict label.")
    before = replicas.tree_digest(tmp_path / "toy-auc")
    competition = load_mlebench_competition(tmp_path / "toy-auc", metric="auc", worst=0.0, best=1.0)
    assert (competition.id_column, competition.target_columns, competition.split) == ("request_id", ("label",),
                                                                                      "heldout")
    assert "Toy AUC" in competition.description
    assert replicas.tree_digest(tmp_path / "toy-auc") == before
    with pytest.raises(ValueError, match="metric"):
        load_mlebench_competition(tmp_path / "toy-auc", metric="f1", worst=0.0, best=1.0)


def test_only_the_users_six_pass_the_startup_check_and_grade(data_root, sandbox):
    """builtin_competitions=False on the six replicas: the start-up check's known-good solution (which copies each
    competition's own sample submission) runs valid, and the splits are the presets'."""
    from exit_jax.domains.mle.domain import MLEConfig, MLEDomain

    domain = MLEDomain(MLEConfig(competition_dirs=(str(data_root),), builtin_competitions=False), sandbox=sandbox)
    assert domain.check_environment()["sandbox"]["mode"]
    assert sorted(domain.task_ids("heldout")) == ["aerial-cactus-identification",
                                                  "jigsaw-toxic-comment-classification-challenge",
                                                  "nomad2018-predict-transparent-conductors"]
    from exit_jax.domains.mle.domain import REFERENCE_SOLUTION

    for name in domain.task_ids("train") + domain.task_ids("heldout"):
        competition = domain.competition(name)
        result = domain.evaluator.evaluate(competition, REFERENCE_SOLUTION.format(sample=competition.sample_submission))
        assert result.valid, (name, result.error, result.feedback[-500:])
