"""Sweep expansion, member commands, local runs and the cross-member comparison."""

import json
import sys

import ml_collections
import numpy as np
import pytest

from exit_jax import sweep


def test_product_is_the_cartesian_product_first_axis_outermost():
    grid = sweep.product(method=["grpo", "exit"], seed=[0, 1, 2])
    assert grid == [{"method": m, "seed": s} for m in ("grpo", "exit") for s in (0, 1, 2)]
    dotted = sweep.product({"curriculum.replay_prob": [0.25, 0.5]}, **{"curriculum.divergence_prob": [0.0, 0.5]})
    assert dotted == [{"curriculum.replay_prob": p, "curriculum.divergence_prob": d}
                      for p in (0.25, 0.5) for d in (0.0, 0.5)]
    with pytest.raises(ValueError, match="'seed'"):
        sweep.product(method=["grpo"], seed=[])


def test_members_from_a_config_dict():
    config = ml_collections.ConfigDict()
    config.seed = 0
    config.sweep = sweep.product(method=["grpo", "exit"], seed=[0, 1]) + [{"curriculum.kappa": 0.5, "tag": "a/b c"}]
    assert sweep.members(config) == [
        ("method=grpo,seed=0", {"method": "grpo", "seed": 0}), ("method=grpo,seed=1", {"method": "grpo", "seed": 1}),
        ("method=exit,seed=0", {"method": "exit", "seed": 0}), ("method=exit,seed=1", {"method": "exit", "seed": 1}),
        ("curriculum.kappa=0.5,tag=a_b_c", {"curriculum.kappa": 0.5, "tag": "a/b c"})]
    assert sweep.parse_member_name("method=exit,seed=1") == {"method": "exit", "seed": "1"}


@pytest.mark.parametrize("bad, message", [
    (None, "defines no sweep"), ([], "non-empty list"), ({"seed": 0}, "non-empty list"),
    ([{"seed": 0}, {"seed": 0}], r"config.sweep\[0\] and config.sweep\[1\]"),
    ([{"bad key": 1}], "invalid key 'bad key'"), ([{"seed": {"x": 1}}], r"config.sweep\[0\]\['seed'\]"),
    (["seed=0"], r"config.sweep\[0\] must be")])
def test_malformed_sweeps_name_the_problem(bad, message):
    config = {"seed": 0} if bad is None else {"sweep": bad}
    with pytest.raises(ValueError, match=message):
        sweep.members(config)


def test_member_command_argv():
    argv = sweep.member_command("experiments/math.py:smoke", {"method": "exit", "curriculum.kappa": 0.5,
                                                              "flag": True, "shape": (2, 4)},
                                "runs/sw/method=exit", ["--eval_only=false"])
    assert argv == ["python", "launch/tpu_run.py", "--config=experiments/math.py:smoke", "--config.method=exit",
                    "--config.curriculum.kappa=0.5", "--config.flag=True", "--config.shape=(2, 4)",
                    "--workdir=runs/sw/method=exit", "--eval_only=false"]


def test_plan_puts_each_member_in_its_own_workdir(tmp_path):
    config = {"sweep": sweep.product(method=["grpo", "exit"], seed=[0])}
    planned = sweep.plan(config, "experiments/mle.py:smoke", tmp_path, ["--flag"], python="python3")
    assert [member.name for member in planned] == ["method=grpo,seed=0", "method=exit,seed=0"]
    assert planned[1].workdir == tmp_path / "method=exit,seed=0"
    assert planned[1].command == ["python3", "launch/tpu_run.py", "--config=experiments/mle.py:smoke",
                                  "--config.method=exit", "--config.seed=0",
                                  f"--workdir={tmp_path / 'method=exit,seed=0'}", "--flag"]


def test_run_local_runs_in_parallel_logs_and_returns_exit_codes(tmp_path):
    code = "import sys; print('out', sys.argv[-1]); print('err', file=sys.stderr); sys.exit(int(sys.argv[-1]))"
    commands = [[sys.executable, "-c", code, f"--workdir={tmp_path / f'm{index}'}", str(index)] for index in range(3)]
    commands.append(["/nonexistent/binary", f"--workdir={tmp_path / 'missing'}"])
    codes = sweep.run_local(commands, parallel=2, echo=False)
    assert codes == [0, 1, 2, 127]
    for index in range(3):
        assert (tmp_path / f"m{index}" / "stdout.log").read_text() == f"out {index}\n"
        assert (tmp_path / f"m{index}" / "stderr.log").read_text().endswith("err\n")
    assert "could not start" in (tmp_path / "missing" / "stderr.log").read_text()


def write_member(workdir, K, mean, delta, rewards):
    (workdir / "eval").mkdir(parents=True)
    for step, offset in ((5, -0.5), (10, 0.0)):  # only the latest (step 10) may count
        result = {"step": step, "domain": "math", "K": K, "k": list(range(K + 1)),
                  "mean": (np.asarray(mean) + offset).tolist(), "per_task": {}, "delta_K": delta + offset,
                  "net_corrections": None, "avg_at_n": 2}
        (workdir / "eval" / f"step_{step}.json").write_text(json.dumps(result))
    (workdir / "metrics.jsonl").write_text("".join(json.dumps({"step": i, "reward": r}) + "\n"
                                                   for i, r in enumerate(rewards)))


def test_compare_gives_numpy_mean_and_sample_std_over_seeds(tmp_path):
    rng = np.random.default_rng(0)
    K = 4
    data = {}
    for method in ("grpo", "exit"):
        for seed in range(3):
            mean = rng.uniform(0, 1, K + 1)
            delta = float(mean[-1] - mean[0])
            rewards = rng.uniform(0, 1, 20)
            workdir = tmp_path / "sweep" / sweep.member_name({"method": method, "seed": seed})
            write_member(workdir, K, mean, delta, rewards)
            data[(method, seed)] = (mean, delta, rewards[-2:].mean())  # last 10% of 20 records
    (tmp_path / "sweep" / "method=diverge,seed=0").mkdir()  # a member that crashed before evaluating
    workdirs = sorted((tmp_path / "sweep").iterdir())
    table, png = sweep.compare(workdirs)
    assert png == tmp_path / "sweep" / "comparison.png" and png.read_bytes()[:4] == b"\x89PNG"
    assert "comparison.md" in {path.name for path in (tmp_path / "sweep").iterdir()}
    rows = {line.split("|")[1].strip(): [cell.strip() for cell in line.strip("|").split("|")[1:]]
            for line in table.splitlines()[2:]}
    assert set(rows) == {"method=grpo", "method=exit", "method=diverge"}
    for method in ("grpo", "exit"):
        row = rows[f"method={method}"]
        assert row[0] == "3/3"
        for column, k in enumerate((0, 1, 2, 4), start=1):
            values = [data[(method, seed)][0][k] for seed in range(3)]
            mean, std = (float(part) for part in row[column].split("±"))
            assert mean == pytest.approx(np.mean(values), abs=5e-5)
            assert std == pytest.approx(np.std(values, ddof=1), abs=5e-5)
        deltas = [data[(method, seed)][1] for seed in range(3)]
        assert [float(part) for part in row[5].split("±")] == pytest.approx([np.mean(deltas), np.std(deltas, ddof=1)],
                                                                           abs=5e-5)
        rewards = [data[(method, seed)][2] for seed in range(3)]
        assert [float(part) for part in row[6].split("±")] == pytest.approx(
            [np.mean(rewards), np.std(rewards, ddof=1)], abs=5e-5)
    assert rows["method=diverge"][0] == "0/1" and rows["method=diverge"][1] == "–"
    assert "`method=diverge,seed=0`" in (tmp_path / "sweep" / "comparison.md").read_text()


def test_compare_with_explicit_overrides_and_no_evaluations(tmp_path):
    workdirs = {"a": tmp_path / "a", "b": tmp_path / "b"}
    for path in workdirs.values():
        path.mkdir()
    table, png = sweep.compare(workdirs, tmp_path / "out", overrides=[{"seed": 0}, {"seed": 1}])
    assert png is None
    assert "| all | 0/2 |" in table
    assert (tmp_path / "out" / "comparison.md").exists()


def test_labels_name_and_group_members_but_are_not_overrides(tmp_path):
    entries = [{"_label": "base", "train.num_iterations": 0, "seed": s} for s in (0, 1)]
    entries.append({"method": "exit", "seed": 0})
    planned = sweep.plan({"sweep": entries}, "experiments/mle.py", tmp_path)
    assert [(m.name, m.label) for m in planned] == [("base,seed=0", "base"), ("base,seed=1", "base"),
                                                     ("method=exit,seed=0", None)]
    assert planned[0].overrides == {"train.num_iterations": 0, "seed": 0}
    assert not any(argument.startswith("--config._label") for argument in planned[0].command)
    assert sweep.parse_member_name("base,seed=1") == {sweep.LABEL_KEY: "base", "seed": "1"}
    assert sweep.parse_member_name("shape=_2,_4_") == {"shape": "_2"}  # a sanitized value is no label
    assert sweep.group_label(sweep.parse_member_name("base,seed=1")) == "base"
    assert sweep.group_label({"method": "exit", "seed": 3, "curriculum.seed": 3}) == "method=exit"
    manifest = sweep.write_manifest(tmp_path, planned)
    assert json.loads(manifest.read_text())["members"][0]["workdir"] == "base,seed=0"
    assert [(e["name"], e["label"], e["workdir"]) for e in sweep.read_manifest(tmp_path)] == [
        (m.name, m.label, tmp_path / m.name) for m in planned]
    manifest.write_text("{not json")
    with pytest.raises(ValueError, match="not a sweep manifest"):
        sweep.read_manifest(tmp_path)


@pytest.mark.parametrize("entries, message", [
    ([{"_label": "a,b", "seed": 0}], "a label must be"), ([{"_label": 3, "seed": 0}], "a label must be"),
    ([{"_label": "base"}], "no overrides"),
    ([{"_label": "base", "seed": 0, "x": 1}, {"_label": "base", "seed": 0, "x": 2}], "must differ in a seed key")])
def test_malformed_labels_name_the_problem(entries, message):
    with pytest.raises(ValueError, match=message):
        sweep.members({"sweep": entries})


def test_compare_groups_by_explicit_labels_and_reads_the_trainers_reward_key(tmp_path):
    rewards = {}
    for seed in range(2):
        workdir = tmp_path / f"w{seed}"
        write_member(workdir, 2, [0.1, 0.2, 0.3], 0.2, [])
        rewards[seed] = np.arange(10.0) + seed
        (workdir / "metrics.jsonl").write_text("".join(json.dumps({"step": i, "reward/mean": r}) + "\n"
                                                       for i, r in enumerate(rewards[seed])))
    table, _ = sweep.compare({"w0": tmp_path / "w0", "w1": tmp_path / "w1"}, tmp_path,
                             overrides=[{"seed": 0, "x": 1}, {"seed": 1, "x": 2}], labels=["grpo", "grpo"])
    row = table.splitlines()[2].split("|")
    assert row[1].strip() == "grpo" and row[2].strip() == "2/2"
    finals = [rewards[seed][-1] for seed in range(2)]  # last 10% of 10 records
    assert [float(part) for part in row[-2].split("±")] == pytest.approx([np.mean(finals), np.std(finals, ddof=1)],
                                                                         abs=5e-5)
    with pytest.raises(ValueError, match="2 members but 1 labels"):
        sweep.compare({"w0": tmp_path / "w0", "w1": tmp_path / "w1"}, tmp_path, labels=["grpo"])


def test_config_arg_picks_a_subset_of_the_ladder_and_the_seed_count():
    from experiments.mle import get_config

    config = get_config("rungs=base+exit,seeds=2")
    assert [(entry["_label"], entry["seed"]) for entry in config.sweep] == [
        ("base", 0), ("base", 1), ("exit", 0), ("exit", 1)]
    assert all(entry["train.num_iterations"] == 0 for entry in config.sweep if entry["_label"] == "base")
    assert len(get_config(None).sweep) == 6 * 3  # the whole ladder x 3 seeds by default
    for bad in ("rungs=base+ppo", "seeds=0", "seeds=two"):
        with pytest.raises(ValueError, match="rung|seeds"):
            get_config(bad)
