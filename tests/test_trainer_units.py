"""Trainer-level pieces checked against hand-computed cases."""

import numpy as np
import pytest

from exit_jax.evaluation import evaluate, net_corrections
from exit_jax.models.embedded import embedded_tokenizer
from exit_jax.models.tokenizer import chat_tokens
from exit_jax.trainer import transcript_rows
from exit_jax.types import Episode, Grade, Instance, Message


def test_net_corrections_hand_computed():
    correct = np.array([[0, 1, 1],   # fixed at k=1
                        [1, 0, 1],   # broken at k=1, back at k=2
                        [0, 0, 0],
                        [1, 1, 0]],  # broken at k=2
                       bool)
    assert net_corrections(correct) == [0, 1 - 1, 1 - 1]


def test_transcript_rows_mask_only_assistant_content():
    tokenizer = embedded_tokenizer()
    messages = [Message("system", "tools: ls"), Message("user", "list files"),
                Message("assistant", '<tool>{"name": "ls"}</tool>'), Message("tool", "a.txt b.txt"),
                Message("assistant", "<TASK_FINISHED>")]
    episode = Episode(Instance("t"), messages, Grade(1.0, 1.0), [])
    rows = transcript_rows(tokenizer, [episode], 96, pad_id=0)
    full = chat_tokens(tokenizer, messages, add_generation_prompt=False)
    n = len(full)
    assert rows["tokens"][0, -n:].tolist() == full and rows["attention_mask"][0].sum() == n
    # Reference: the trainable tokens are exactly each assistant message's content plus its end-of-turn token.
    expected = np.zeros(n, bool)
    for i, m in enumerate(messages):
        if m.role == "assistant":
            start = len(chat_tokens(tokenizer, messages[:i], add_generation_prompt=True))
            end = len(chat_tokens(tokenizer, messages[: i + 1], add_generation_prompt=False))
            expected[start:end] = True
    np.testing.assert_array_equal(rows["loss_mask"][0, -n:], expected)
    assert tokenizer.decode(rows["tokens"][0, -n:][expected]).count("<|im_end|>") == 2
    assert rows["positions"][0, -n:].tolist() == list(range(n))
    # An episode without a valid action gets no trainable token (overlong filtering).
    episode.has_valid_action = False
    assert not transcript_rows(tokenizer, [episode], 96, pad_id=0)["loss_mask"].any()


def test_transcript_rows_left_truncates_long_histories():
    tokenizer = embedded_tokenizer()
    messages = [Message("user", "x " * 200), Message("assistant", "done")]
    rows = transcript_rows(tokenizer, [Episode(Instance("t"), messages, Grade(0, 0), [])], 32, pad_id=0)
    full = chat_tokens(tokenizer, messages, add_generation_prompt=False)
    assert rows["tokens"][0].tolist() == full[-32:]
    assert rows["attention_mask"].all() and not rows["loss_mask"][0, 0]


class _ScriptedDomain:
    """A binary single-turn domain whose correctness per (task, iterate) is scripted."""

    name, multi_turn = "scripted", False

    def __init__(self, script):
        self.script = script

    def base_instance(self, task_id):
        return Instance(task_id)

    def render(self, inst):
        return [Message("user", f"{inst.task_id}:{inst.iterate}")]

    def grade(self, instances, responses):
        return [Grade(float(self.script[i.task_id][i.iterate]), float(self.script[i.task_id][i.iterate]))
                for i in instances]

    def child(self, inst, response, grade):
        return Instance(inst.task_id, iterate=inst.iterate + 1, previous_response=response, mode="improve")


def test_evaluate_summarises_chains():
    script = {"a": [0, 1, 1], "b": [1, 1, 0]}
    calls = []

    def policy_fn(conversations):
        calls.append(len(conversations))
        return ["r"] * len(conversations)

    result = evaluate(_ScriptedDomain(script), policy_fn, ["a", "b"], K=2, num_samples=1, binary=True)
    assert calls == [2, 2, 2]  # one batched call per step
    assert result["mean"] == pytest.approx([0.5, 1.0, 0.5])
    assert result["per_task"] == {"a": [0.0, 1.0, 1.0], "b": [1.0, 1.0, 0.0]}
    assert result["delta_K"] == pytest.approx(0.0)
    assert result["net_corrections"] == [0, 1, 0]
