"""The compact spec format: parsing, canonical form, extraction, and compile errors turned into clear messages."""

from __future__ import annotations

import ast

import pytest

from exit_jax.domains.mle.spec import SpecError, compile_spec, extract_spec, format_spec, parse_spec


def test_parse_fills_defaults_and_round_trips():
    parsed = parse_spec("model=hgb+mlp scale=std feat=poly2 sel=k20 target=log lr=0.05 n=300 depth=6 h=64x32")
    assert parsed["model"] == "hgb+mlp" and parsed["lr"] == 0.05 and parsed["n"] == 300 and parsed["depth"] == 6
    assert parsed["impute"] == "median" and parsed["k"] == 15  # defaults
    text = format_spec(parsed)
    assert parse_spec(text) == parsed
    assert text.startswith("model=hgb+mlp") and "impute" not in text  # defaults omitted
    assert format_spec(parse_spec("scale=std model=lin")) == format_spec(parse_spec("model=lin scale=std"))


@pytest.mark.parametrize("text, message", [
    ("", "empty"),
    ("scale=std", "missing model"),
    ("model=xgb", "model=xgb"),
    ("model=rf+rf", "repeated family"),
    ("model=rf+et+hgb+mlp", "1-3"),
    ("model=rf n=0", "outside"),
    ("model=rf n=ten", "integer"),
    ("model=rf depth=-1", "outside"),
    ("model=hgb lr=2", "outside"),
    ("model=mlp h=64x64x64x64", "layer"),
    ("model=lin scale=huge", "expected one of"),
    ("model=lin color=red", "unknown key"),
    ("model=lin model=rf", "repeated"),
    ("model=lin scale", "key=value"),
    ("model=lin; import os", "key=value"),
])
def test_bad_specs_raise_spec_error(text, message):
    with pytest.raises(SpecError, match=message):
        parse_spec(text)


def test_extract_spec_from_fenced_or_plain_response():
    assert extract_spec("I'll use boosting.\n```\nmodel=hgb lr=0.05\n```\n") == "model=hgb lr=0.05"
    assert extract_spec("  model=rf n=50  \nthanks") == "model=rf n=50"
    with pytest.raises(SpecError):
        extract_spec("no spec here")


@pytest.mark.parametrize("metric, task, columns", [
    ("rmse", "regression", ("target",)), ("auc", "binary", ("target",)),
    ("accuracy", "binary", ("target",)), ("logloss", "multiclass", ("a", "b", "c")),
])
def test_compiled_solution_is_valid_python_carrying_the_spec(metric, task, columns):
    parsed = parse_spec("model=svm+rf xf=quant scale=robust feat=inter sel=p50 target=quant")
    source = compile_spec(parsed, metric, task, "id", columns)
    tree = ast.parse(source)
    assigned = {node.targets[0].id: ast.literal_eval(node.value) for node in tree.body
                if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id in ("SPEC", "COMPETITION")}
    assert assigned["SPEC"] == parsed
    assert assigned["COMPETITION"]["metric"] == metric and assigned["COMPETITION"]["target_columns"] == list(columns)
    assert "validation_score" in source and "submission.csv" in source
