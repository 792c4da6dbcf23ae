"""The ExIt training loop: select instances -> sample G rollouts -> grade -> advantages (x diversity) -> GRPO update
-> buffer update -> metrics, with evaluation, checkpoints and reports at their intervals.

One iteration, in order (every step's randomness comes from keys / generators that live in the checkpoint, so a
resumed run repeats an uninterrupted one exactly on CPU):

1. ``select_batch`` (process 0, broadcast to the others): P instances, base tasks or buffer replays, each played as
   base / improve / diverge / debug; one mode per group.
2. Render every instance, sample G responses per prompt with one shared prefill (``Policy.sample``); multi-turn
   domains run their own episode loop through a ``PolicyFn`` instead.
3. The domain grades the P * G responses (the MLE sandbox runs them in parallel worker processes).
4. Group-relative advantages, multiplied by the diversity coefficients of the pooled in-model embeddings (a
   ``shard_map`` kernel over the data axes) when the method has the bonus.
5. ``GRPOLearner.update``: mu jitted, micro-batched, sharded train steps.
6. ``update_buffer``: the replayed parents' scores are overwritten with their group's fresh learnability S, the
   children (expansions) enter with the parent's S.

A short supervised warm start (``config.warm_start``) can precede RL when the domain provides demonstrations: it is
the GRPO step itself with unit advantages, token-mean aggregation and a single epoch, whose gradient at ratio 1 is
exactly the mean negative log-likelihood gradient of the demonstrations.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from exit_jax.checkpoint import RunCheckpointer
from exit_jax.curriculum import TaskBuffer, iteration_diagnostics, select_batch, settings_from_config, update_buffer
from exit_jax.curriculum.diversity import diversity_coefficients, pool_hidden_states
from exit_jax.curriculum.multihost import broadcast_selection
from exit_jax.domains.registry import make_domain
from exit_jax.errors import setup_step
from exit_jax.evaluation import evaluate
from exit_jax.filelock import file_lock
from exit_jax.models.tokenizer import chat_tokens
from exit_jax.policy import Policy
from exit_jax.rl.batch import completion_batch
from exit_jax.rl.learner import GRPOLearner
from exit_jax.sharding import global_array, host_value, make_mesh
from exit_jax.types import Episode, Message


def base_seed(config: ml_collections.ConfigDict) -> int:
    """The base policy's seed, ``model.seed``: the embedded policy's initial weights and the warm start's draw.

    It is not ``config.seed`` (the RL run's), so the seeds of a sweep share one base policy, as the paper's seeds
    share one pretrained model. A config saved before the field existed falls back to ``config.seed``, the old rule.
    """
    return int(config.model.get("seed", config.seed))


def build_model(config: ml_collections.ConfigDict, mesh):
    """(model, tokenizer) from ``config.model``: the embedded default or a local HF directory."""
    source = config.model.source
    dtypes = dict(param_dtype=config.model.param_dtype, compute_dtype=config.model.compute_dtype,
                  backward_dots=config.model.get("backward_dots", "auto"),
                  matmul_precision=config.model.get("matmul_precision", "auto"))
    if source == "embedded":
        from exit_jax.models.embedded import embedded_policy

        model, tokenizer = embedded_policy(base_seed(config), **dtypes)
        if mesh is not None:
            from exit_jax.sharding import shard_state

            nnx.update(model, shard_state(nnx.state(model), mesh))
        return model, tokenizer
    if source == "hf":
        from exit_jax.models.hf_io import load_hf_model
        from exit_jax.models.tokenizer import load_tokenizer

        if not config.model.hf_dir:
            raise ValueError("model.hf_dir: a local HF checkpoint directory is required when model.source='hf' "
                             "(pass --config.model.hf_dir=DIR or set the preset's environment variable)")
        # The tokenizer first: its errors (no chat template) come before minutes of weight loading.
        tokenizer = load_tokenizer(config.model.hf_dir, config.model.get("chat_template", ""))
        return load_hf_model(config.model.hf_dir, mesh=mesh, **dtypes), tokenizer
    raise ValueError(f"model.source: unknown {source!r}; choose 'embedded' or 'hf'")


def make_policy(config: ml_collections.ConfigDict, model, tokenizer, mesh) -> Policy:
    """The sampler over ``model`` with ``config.sampling``'s settings."""
    sampling = config.sampling
    return Policy(model, tokenizer, mesh, max_prompt_length=sampling.max_prompt_length,
                  max_new_tokens=sampling.max_new_tokens, temperature=sampling.temperature, top_p=sampling.top_p,
                  top_k=sampling.top_k, share_prompt_cache=sampling.get("share_prompt_cache", True))


def evaluate_policy(config: ml_collections.ConfigDict, domain, policy: Policy, state, iteration: int,
                    environment: dict[str, Any], out: Path, num_samples: int | None = None, draw: int = 0,
                    split: str | None = None) -> dict[str, Any]:
    """The K-step evaluation (``config.eval``) of the policy with ``state``, written to ``out`` (process 0).

    Its draws depend on ``config.seed`` and ``iteration`` only (``draw`` 0), so evaluating the same weights at the
    same iteration repeats an evaluation exactly; ``draw`` d > 0 takes fresh, independent draws. ``num_samples`` and
    ``split`` override ``eval.num_samples`` (chains per task) and ``eval.split``.
    """
    ev = config.eval
    split = split or ev.split
    ids = list(domain.task_ids(split))[: ev.max_tasks or None]
    key = jax.random.fold_in(jax.random.fold_in(jax.random.key(config.seed), 2), iteration)
    if draw:
        key = jax.random.fold_in(key, draw)
    policy_fn = policy.policy_fn(state, key, greedy=ev.greedy)
    result = evaluate(domain, policy_fn, ids, ev.K, num_samples or ev.num_samples, step=iteration, split=split,
                      binary=bool(ev.binary))
    if environment:
        result["environment"] = environment
    if jax.process_index() != 0:
        return result
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1))
    tmp.replace(out)
    return result


def run_identity(config: ml_collections.ConfigDict) -> dict[str, Any]:
    return {"experiment": config.experiment, "preset": config.preset, "method": config.curriculum.method,
            "model": config.model.source + ":" + str(config.model.hf_dir or ""), "seed": config.seed,
            "model_seed": base_seed(config),
            "num_prompts": config.train.num_prompts, "num_generations": config.rl.num_generations}


def transcript_rows(tokenizer, episodes: list[Episode], length: int, pad_id: int) -> dict[str, np.ndarray]:
    """Multi-turn episodes -> token rows with only assistant-written tokens in the loss mask (left-truncated)."""
    tokens = np.full((len(episodes), length), pad_id, np.int32)
    loss_mask = np.zeros((len(episodes), length), bool)
    attention = np.zeros((len(episodes), length), bool)
    for row, episode in enumerate(episodes):
        ids: list[int] = []
        trainable: list[bool] = []
        messages = episode.messages
        for i, message in enumerate(messages):
            assistant = message.role == "assistant"
            if assistant:  # the role header belongs to the prompt, the content (and end token) to the policy
                header = chat_tokens(tokenizer, messages[:i], add_generation_prompt=True)[len(ids):]
                ids += header
                trainable += [False] * len(header)
            upto = chat_tokens(tokenizer, messages[: i + 1], add_generation_prompt=False)
            new = upto[len(ids):]
            ids += new
            trainable += [assistant and episode.has_valid_action] * len(new)
        ids, trainable = ids[-length:], trainable[-length:]
        trainable[0] = False  # the first position has no context to predict it from
        tokens[row, length - len(ids):] = ids
        loss_mask[row, length - len(ids):] = trainable
        attention[row, length - len(ids):] = True
    positions = np.maximum(np.cumsum(attention, axis=1) - 1, 0).astype(np.int32)
    return {"tokens": tokens, "positions": positions, "attention_mask": attention, "loss_mask": loss_mask}


def mesh_from_config(mesh_config: ml_collections.ConfigDict):
    """A (data, fsdp, tensor) mesh; at most one axis may be -1, meaning all remaining devices."""
    dims = [int(mesh_config.data), int(mesh_config.fsdp), int(mesh_config.tensor)]
    auto = [i for i, d in enumerate(dims) if d < 1]
    if len(auto) > 1:
        raise ValueError(f"mesh: at most one of data/fsdp/tensor may be -1, got {dims}")
    if auto:
        known = int(np.prod([d for d in dims if d >= 1]))
        if jax.device_count() % known:
            raise ValueError(f"mesh: {jax.device_count()} devices do not divide by the fixed axes {dims}")
        dims[auto[0]] = jax.device_count() // known
    return make_mesh(*dims)


def _check_replay_can_start(settings, num_train_tasks: int, domain: str) -> None:
    """A rung that replays but never expands keeps only base tasks in its buffer: with B_min above the number of
    training tasks its replay gate never opens and the rung silently trains as plain GRPO. Refuse that config."""
    if settings.replay and not settings.expansion and settings.min_buffer_size > num_train_tasks:
        raise ValueError(
            f"curriculum.min_buffer_size={settings.min_buffer_size} exceeds the {num_train_tasks} training tasks of "
            f"domain {domain!r}: the {settings.method!r} rung's buffer holds base tasks only, so replay would never "
            f"start and the run would be plain GRPO. Set curriculum.min_buffer_size to at most {num_train_tasks}.")


class Trainer:
    """Runs one experiment in ``workdir``; resumes from the latest checkpoint found there."""

    def __init__(self, config: ml_collections.ConfigDict, workdir: str | Path):
        self.config = config
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        validate(config)
        self.settings = settings_from_config(config.curriculum)
        self.mesh = mesh_from_config(config.mesh)
        with setup_step("config.domain"):
            self.domain = make_domain(config.domain.name, {k: v for k, v in config.domain.items() if k != "name"})
        # Before anything else runs: the domain's environment works (the MLE sandbox runs a known-good solution)
        # and what it is (the sandbox's isolation) is recorded with the run's metrics, evaluations and report.
        check = getattr(self.domain, "check_environment", None)
        self.environment: dict[str, Any] = check() if check is not None else {}
        self.train_ids = list(self.domain.task_ids("train"))
        _check_replay_can_start(self.settings, len(self.train_ids), config.domain.name)
        self.checkpointer = RunCheckpointer(self.workdir, run_identity(config), keep=config.train.keep_checkpoints)
        self.checkpointer.check_identity()  # before anything in the workdir is written
        with setup_step("config.model"):
            model, self.tokenizer = build_model(config, self.mesh)
        self.policy = make_policy(config, model, self.tokenizer, self.mesh)
        self.learner = GRPOLearner(model, config.rl, mesh=self.mesh)
        # Plain GRPO keeps an (unused for replay) buffer too, so its distinct-instance count is measured the same way.
        self.buffer = TaskBuffer.from_settings(self.settings)
        self.selection_rng = np.random.default_rng([config.seed, 1])
        self.key = jax.random.key(config.seed)
        self.iteration = 0
        self.warm_started = False
        self._stop = False

    # ------------------------------------------------------------------ state
    def _device_state(self) -> dict[str, Any]:
        state = {"params": self.learner.params, "opt_state": self.learner.opt_state}
        if self.learner.ref_params is not None:
            state["ref_params"] = self.learner.ref_params
        return state

    def save(self, force: bool = False) -> None:
        host_arrays = self.buffer.state_dict() if self.buffer is not None else {"empty": np.zeros(1)}
        host_json = {"iteration": self.iteration, "warm_started": self.warm_started,
                     "learner_iteration": self.learner.iteration,
                     "selection_rng": self.selection_rng.bit_generator.state,
                     "truncated_prompts": self.policy.truncated_prompts}
        self.checkpointer.save(self.iteration, self._device_state(), host_arrays, host_json, force=force)

    def restore(self, step: int | None = None) -> bool:
        """Restores the latest checkpoint (or ``step``); False when there is none."""
        step = self.checkpointer.latest_step() if step is None else step
        if step is None:
            return False
        device, host_arrays, host_json = self.checkpointer.restore(step, self._device_state())
        self.learner.params, self.learner.opt_state = device["params"], device["opt_state"]
        if "ref_params" in device:
            self.learner.ref_params = device["ref_params"]
        if self.buffer is not None:
            self.buffer = TaskBuffer.from_state_dict(host_arrays)
        self.iteration = int(host_json["iteration"])
        self.warm_started = bool(host_json["warm_started"])
        self.learner.iteration = int(host_json["learner_iteration"])
        self.selection_rng.bit_generator.state = host_json["selection_rng"]
        self.policy.truncated_prompts = int(host_json["truncated_prompts"])
        return True

    # ------------------------------------------------------------------ one iteration
    def _select(self):
        buffer = self.buffer if jax.process_index() == 0 else None
        rng = self.buffer.rng if self.buffer is not None else self.selection_rng
        selection = select_batch(buffer, self.train_ids,
                                 self.config.train.num_prompts, self.settings, rng, self.domain.base_instance)
        return broadcast_selection(selection) if jax.process_count() > 1 else selection

    def _rollouts(self, instances, key):
        """Episodes [P][G], the train batch (minus advantages) and [P*G, D] embeddings."""
        group = self.config.rl.num_generations
        state = self.learner.policy_state()
        if not self.domain.multi_turn:
            conversations = [self.domain.render(inst) for inst in instances]
            texts, out = self.policy.sample(state, conversations, group, key)
            played = [inst for inst in instances for _ in range(group)]
            grades = self.domain.grade(played, texts)
            episodes = [Episode(instance=inst, messages=[*conversations[i // group], Message("assistant", text)],
                                grade=grade, children=[self.domain.child(inst, text, grade)])
                        for i, (inst, text, grade) in enumerate(zip(played, texts, grades, strict=True))]
            rows = completion_batch(out.prompt_tokens, out.prompt_mask, out.tokens, out.lengths,
                                    np.zeros(len(texts), np.float32), truncated=out.truncated)
            embeddings = out.embeddings
        else:
            played = [inst for inst in instances for _ in range(group)]
            episodes = self.domain.rollout(played, self.policy.policy_fn(state, key))
            length = self.config.sampling.max_prompt_length + self.config.sampling.max_new_tokens
            rows = transcript_rows(self.tokenizer, episodes, length, self.policy.sampling.pad_id)
            rows["advantages"] = np.zeros(len(episodes), np.float32)
            embeddings = self._pooled_embeddings(state, rows)
        grouped = [episodes[p * group:(p + 1) * group] for p in range(len(instances))]
        return grouped, rows, embeddings

    def _pooled_embeddings(self, state, rows) -> np.ndarray:
        model = nnx.merge(self.learner.graphdef, state)
        _, hidden, _ = model(jnp.asarray(rows["tokens"]), jnp.asarray(rows["positions"]),
                             jnp.asarray(rows["attention_mask"]))
        return np.asarray(pool_hidden_states(hidden, jnp.asarray(rows["loss_mask"])))

    def train_iteration(self) -> dict[str, float]:
        config = self.config
        start = time.perf_counter()
        key = jax.random.fold_in(jax.random.fold_in(self.key, 1), self.iteration)
        selection = self._select()
        curriculum_time = time.perf_counter() - start
        rollout_start = time.perf_counter()
        episodes, rows, embeddings = self._rollouts(selection.instances, key)
        rollout_time = time.perf_counter() - rollout_start
        flat = [e for group in episodes for e in group]
        rewards = np.asarray([e.grade.reward for e in flat], np.float32)
        quality = np.asarray([e.grade.score for e in flat], np.float64).reshape(len(episodes), -1)
        multiplier = None
        if self.settings.diversity_bonus:
            bonus_start = time.perf_counter()
            multiplier = diversity_coefficients(
                jnp.asarray(embeddings, jnp.float32), config.rl.num_generations, mesh=self.mesh,
                normalization=self.settings.diversity_normalization, range_eps=self.settings.diversity_range_eps)
            multiplier = jax.block_until_ready(multiplier)
            curriculum_time += time.perf_counter() - bonus_start
        rows["advantages"] = np.asarray(self.learner.advantages(rewards, multiplier), np.float32)
        if not all(e.has_valid_action for e in flat):  # overlong filtering: no gradient for such rows
            valid = np.asarray([e.has_valid_action for e in flat])
            rows["loss_mask"] = rows["loss_mask"] & valid[:, None]
        update_start = time.perf_counter()
        metrics = self.learner.update(rows, rewards=rewards)
        update_time = time.perf_counter() - update_start
        buffer_start = time.perf_counter()
        buffer_report = {}
        if self.buffer is not None:
            buffer_report = update_buffer(self.buffer, selection, quality, episodes, self.settings, self.buffer.rng)
        curriculum_time += time.perf_counter() - buffer_start
        group = config.rl.num_generations
        centroids = embeddings.reshape(len(episodes), group, -1).mean(axis=1)
        metrics.update(iteration_diagnostics(self.buffer, selection, centroids))
        metrics.update({f"buffer_update/{k}": v for k, v in buffer_report.items()})
        metrics.update({
            "reward/mean": float(rewards.mean()), "reward/std": float(rewards.std()),
            "score/mean": float(quality.mean()),
            "valid_fraction": float(np.mean([e.grade.valid for e in flat])),
            "prompts/truncated_total": float(self.policy.truncated_prompts),
            "time/iteration_s": time.perf_counter() - start, "time/rollout_and_grading_s": rollout_time,
            "time/update_s": update_time, "time/curriculum_s": curriculum_time,
        })
        if multiplier is not None:
            metrics["diversity/coefficient_mean"] = float(jnp.mean(multiplier))
        self.iteration += 1
        return metrics

    # ------------------------------------------------------------------ warm start
    def warm_start(self, log) -> None:
        """Supervised warm start on the domain's demonstrations (see module docstring).

        With ``warm_start.cache_dir`` set, the warm-started parameters and the logged NLLs are stored there under a
        key of everything they depend on (``model.seed``, not the RL ``seed``), and a later run with the same key
        (every member of a ladder sweep: its shared base policy) loads them instead of training again; the result,
        the logged metrics included, is bitwise the same either way.
        """
        ws = self.config.warm_start
        if ws.steps <= 0 or self.warm_started or not hasattr(self.domain, "demonstrations"):
            self.warm_started = True
            return
        cache = self._warm_start_cache_path()
        # One process trains a key at a time: a sweep's parallel members wait for the first and load its entry
        # (single-host only: the processes of one multi-host run must train together).
        with file_lock(cache.with_suffix(".lock") if cache is not None and jax.process_count() == 1 else None):
            if cache is not None and cache.with_suffix(".json").exists():
                params, logged = self._load_warm_start(cache)
                for step, metrics in logged:
                    log(step, metrics)
                self.learner.reset_optimizer(params)
            else:
                self._train_warm_start(log, cache)
        self.warm_started = True

    def _train_warm_start(self, log, cache: Path | None) -> None:
        ws = self.config.warm_start
        logged: list[tuple[int, dict[str, float]]] = []

        def record(step: int, metrics: dict[str, float]) -> None:
            logged.append((step, metrics))
            log(step, metrics)

        sft_config = ml_collections.ConfigDict(self.config.rl.to_dict())
        sft_config.update(learning_rate=ws.learning_rate, loss_type="dapo", num_iterations=1, beta=0.0,
                          batch_size=ws.batch_size, num_generations=2, micro_batch_size=None, warmup_steps=0,
                          mask_truncated_completions=False)
        sft = GRPOLearner(self.learner.model(), sft_config, mesh=self.mesh)
        rng = np.random.default_rng([base_seed(self.config), 2])
        length = self.config.sampling.max_prompt_length + self.config.sampling.max_new_tokens
        pad = self.policy.sampling.pad_id
        for step in range(ws.steps):
            demos = self.domain.demonstrations(ws.batch_size, rng)
            episodes = [Episode(instance=inst, messages=[*self.domain.render(inst), Message("assistant", text)],
                                grade=None, children=[]) for inst, text in demos]
            rows = transcript_rows(self.tokenizer, episodes, length, pad)
            rows["advantages"] = np.ones(len(episodes), np.float32)
            if step % max(1, ws.steps // 10) == 0 or step == ws.steps - 1:
                # The GRPO loss at ratio 1 is a constant; log the demonstrations' NLL per token instead.
                log_probs = host_value(sft._log_probs(sft.params, sft.rest, sft._device_batch(dict(rows))))
                mask = rows["loss_mask"]
                record(-ws.steps + step, {"warm_start/nll": float(-(log_probs * mask).sum() / max(mask.sum(), 1))})
            sft.update(rows)
        if cache is not None and jax.process_index() == 0:
            self._store_warm_start(cache, sft.params, logged)
        self.learner.reset_optimizer(sft.params)

    def _warm_start_cache_path(self) -> Path | None:
        directory = self.config.warm_start.get("cache_dir", "")
        if not directory:
            return None
        config = self.config
        key = {"model": config.model.to_dict(), "base_seed": base_seed(config),
               "warm_start": config.warm_start.to_dict(),
               "domain": config.domain.to_dict(), "sampling": config.sampling.to_dict(),
               "rl_optimizer": {k: config.rl[k] for k in ("max_grad_norm", "adam_b1", "adam_b2", "adam_eps",
                                                          "weight_decay", "max_completion_length")},
               "devices": jax.device_count(), "mesh": config.mesh.to_dict()}
        key["warm_start"].pop("cache_dir", None)
        # What the demonstrations and prompts look like (a code change to either must not load a stale entry).
        probe = self.domain.demonstrations(16, np.random.default_rng(0))
        key["demonstrations"] = [[m.content for m in self.domain.render(inst)] + [text] for inst, text in probe]
        digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
        return Path(directory) / f"{config.experiment}-base{base_seed(config)}-{digest}"

    def _store_warm_start(self, path: Path, params, logged) -> None:
        """Parameters as an .npz (leaf order of the state tree) and the logged metrics, each written atomically;
        the .json (written last) marks the entry complete."""
        path.parent.mkdir(parents=True, exist_ok=True)
        leaves = [host_value(x) for x in jax.tree.leaves(params)]
        tmp = path.parent / f".{path.name}.{os.getpid()}.npz"
        np.savez(tmp, *leaves)
        tmp.replace(path.with_suffix(".npz"))
        meta = path.parent / f".{path.name}.{os.getpid()}.json"
        meta.write_text(json.dumps({"logged": logged, "leaves": [list(x.shape) for x in leaves]}))
        meta.replace(path.with_suffix(".json"))

    def _load_warm_start(self, path: Path):
        meta = json.loads(path.with_suffix(".json").read_text())
        with np.load(path.with_suffix(".npz")) as data:
            leaves = [data[f"arr_{i}"] for i in range(len(data.files))]
        current = jax.tree.leaves(self.learner.params)
        if [list(x.shape) for x in current] != meta["leaves"] or len(leaves) != len(current):
            raise ValueError(f"warm-start cache {path}: parameter shapes do not match this model; delete it")
        treedef = jax.tree.structure(self.learner.params)
        placed = [global_array(leaf.astype(old.dtype), old.sharding) if self.mesh is not None
                  else jnp.asarray(leaf, old.dtype) for leaf, old in zip(leaves, current, strict=True)]
        return jax.tree.unflatten(treedef, placed), [(int(s), m) for s, m in meta["logged"]]

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, num_samples: int | None = None, draw: int = 0, out: str | Path | None = None,
                 split: str | None = None) -> dict[str, Any]:
        """The K-step held-out evaluation of the current policy, written to ``eval/step_<N>.json`` (or ``out``).

        ``draw`` 0 is the run's own evaluation (its draws depend on the seed and the iteration only); ``draw`` d > 0
        takes a fresh, independent set of draws for the same policy, and ``num_samples`` overrides
        ``eval.num_samples`` (chains per task) and ``split`` ``eval.split``: ``exit_jax.reevaluate`` uses them to add
        chains to a finished run or to evaluate its checkpoints on the training tasks.
        """
        out = Path(out) if out is not None else self.workdir / "eval" / f"step_{self.iteration:06d}.json"
        return evaluate_policy(self.config, self.domain, self.policy, self.learner.policy_state(), self.iteration,
                               self.environment, out, num_samples=num_samples, draw=draw, split=split)

    def request_stop(self, *_) -> None:
        self._stop = True

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.request_stop)


def validate(config: ml_collections.ConfigDict) -> None:
    """Cross-section checks that no single section's validation can see; names the field and why."""
    from exit_jax.rl.config import validate_config

    train, rl = config.train, config.rl
    if train.num_prompts < 1:
        raise ValueError(f"train.num_prompts = {train.num_prompts}: must be >= 1")
    if rl.batch_size != train.num_prompts * rl.num_generations:
        raise ValueError(f"rl.batch_size = {rl.batch_size}: must equal train.num_prompts x rl.num_generations "
                         f"= {train.num_prompts * rl.num_generations}")
    if train.num_iterations < 0:
        raise ValueError(f"train.num_iterations = {train.num_iterations}: must be >= 0")
    if config.sampling.max_new_tokens > rl.max_completion_length and rl.loss_type == "dr_grpo":
        raise ValueError("rl.max_completion_length must be >= sampling.max_new_tokens for loss_type='dr_grpo'")
    validate_config(rl)
