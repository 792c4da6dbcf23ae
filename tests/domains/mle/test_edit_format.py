"""The compact format's edits: improve / debug steps on a valid spec answer with ``key=value`` tokens that replace
those keys; the merged spec is what runs, what the next step sees, and what the warm start teaches."""

from __future__ import annotations

import numpy as np
import pytest

from exit_jax.domains.mle import spec
from exit_jax.domains.mle.domain import MLEConfig, MLEDomain, compact_spec, solution_code
from exit_jax.types import Grade, Instance


@pytest.fixture(scope="module")
def domain():
    return MLEDomain(MLEConfig(solution_format="compact"))


def _instance(mode: str, previous: str | None) -> Instance:
    return Instance(task_id="hastie-auc", iterate=1, previous_response=previous, feedback="val=0.6", mode=mode,
                    depth=1, previous_score=0.5)


def test_edit_replaces_only_its_keys():
    merged = compact_spec("scale=std feat=poly2", "improve", "model=svm c=2")
    want = spec.parse_spec("model=svm c=2 scale=std feat=poly2")  # written out by hand
    assert merged == want
    assert compact_spec("model=hgb", "debug", "model=svm scale=std") == spec.parse_spec("model=hgb scale=std")
    # Base and diverge steps, and steps after an answer that was not a spec, take a full spec.
    assert compact_spec("model=lin", "base", None) == spec.parse_spec("model=lin")
    assert compact_spec("model=lin", "diverge", "model=svm c=2") == spec.parse_spec("model=lin")
    assert compact_spec("model=rf", "debug", "model=sv= c") == spec.parse_spec("model=rf")
    for bad, mode, previous in [("scale=std", "base", None), ("", "improve", "model=svm"),
                                ("scale=huge", "improve", "model=svm"), ("scale=std", "debug", "garbage")]:
        with pytest.raises(spec.SpecError):
            compact_spec(bad, mode, previous)


def test_an_edit_runs_the_same_program_as_the_full_spec(domain):
    competition = domain.competition("hastie-auc")
    edited = solution_code("feat=poly2 scale=std", competition, "compact", "improve", "model=lin c=0.5")
    full = solution_code("model=lin scale=std feat=poly2 c=0.5", competition, "compact")
    assert edited == full


def test_prompts_ask_for_an_edit_only_on_a_valid_previous_spec(domain):
    last_line = lambda inst: domain.render(inst)[0].content.splitlines()[-1]  # noqa: E731
    assert last_line(domain.base_instance("hastie-auc")) == "spec:"
    assert last_line(_instance("improve", "model=svm")) == "edit:"
    assert last_line(_instance("debug", "model=svm")) == "edit:"
    assert last_line(_instance("debug", "model=s")) == "spec:"
    assert last_line(_instance("diverge", "model=svm")) == "spec:"


def test_child_carries_the_merged_spec_or_keeps_the_previous_one(domain):
    parent = _instance("improve", "model=svm c=2")
    ok = Grade(reward=0.1, score=0.6, valid=True, feedback="val=0.7")
    child = domain.child(parent, "scale=std", ok)
    assert spec.parse_spec(child.previous_response) == spec.parse_spec("model=svm c=2 scale=std")
    assert child.mode == "improve" and child.depth == 2
    bad = Grade(reward=0.0, score=0.0, valid=False, feedback="[unparseable] x", error="unparseable")
    failed = domain.child(parent, "scale=", bad)
    assert failed.previous_response == "model=svm c=2" and failed.mode == "debug"
    assert domain.render(failed)[0].content.splitlines()[-1] == "edit:"
    base_child = domain.child(domain.base_instance("hastie-auc"), "model=", bad)
    assert base_child.previous_response == "model=" and domain.render(base_child)[0].content.endswith("spec:")


def test_demonstrations_teach_edits_and_full_specs():
    from exit_jax.domains.mle.demonstrations import demonstrations

    demos = demonstrations(["hastie-auc", "moons-acc"], 400, np.random.default_rng(0))
    seen = set()
    for instance, response in demos:
        previous_ok = True
        if instance.previous_response is not None:
            try:
                spec.parse_spec(instance.previous_response)
            except spec.SpecError:
                previous_ok = False
        if instance.mode in ("improve", "debug") and previous_ok:
            patch = spec.parse_patch(response)
            assert 1 <= len(patch) <= 2  # one or two edited keys
            merged = spec.apply_patch(spec.parse_spec(instance.previous_response), patch)
            assert merged != spec.parse_spec(instance.previous_response)
            seen.add("edit")
        else:
            spec.parse_spec(response)
            seen.add("full" if previous_ok else "after-garbage")
    assert seen == {"edit", "full", "after-garbage"}


def test_demonstrated_specs_set_only_hyperparameters_their_families_read():
    from exit_jax.domains.mle.demonstrations import demonstrations

    # What each family reads, from the compiled program's estimator constructors (spec.py's _BODY), by hand.
    reads = {"lin": {"c"}, "knn": {"k"}, "svm": {"c"}, "rf": {"n", "leaf"}, "et": {"n", "leaf"},
             "hgb": {"lr", "n", "leaf", "l2"}, "mlp": {"a", "lr", "n"}}
    for instance, response in demonstrations(["hastie-auc"], 300, np.random.default_rng(1)):
        if "model=" not in response or instance.mode in ("improve", "debug"):
            continue
        tokens = dict(token.split("=", 1) for token in response.split())
        families = tokens["model"].split("+")
        numeric = {k for k in tokens if k in spec.NUMBERS}
        assert numeric <= set().union(*(reads[f] for f in families)), response
