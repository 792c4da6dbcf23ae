"""Tool-use episodes: the environment loop, error observations, budgets, children and self-iteration
prompts."""

import json

import pytest

from exit_jax.domains.tooluse.api_session import ApiSession, plain_state, state_diff
from exit_jax.domains.tooluse.bfcl_data import load_task
from exit_jax.domains.tooluse.calls import format_tool_action, parse_action, parse_python_call
from exit_jax.domains.tooluse.domain import ToolUseConfig, ToolUseDomain, request_text
from exit_jax.domains.tooluse.prompts import self_iteration_message
from exit_jax.types import Domain, Instance
from tests.domains.tooluse.bfcl_reference import bfcl_checker_verdict

TRAIN = ToolUseDomain(ToolUseConfig.training())
EVAL = ToolUseDomain(ToolUseConfig.evaluation())
FILE_TASK = "multi_turn_base_0"  # GorillaFileSystem + TwitterAPI


def ground_truth_actions(task_id):
    """Per request, the ground-truth calls as JSON tool actions (positional arguments named via the
    signature)."""
    task = load_task(task_id)
    session = ApiSession(task)
    actions = []
    for calls in task.ground_truth:
        request = []
        for text in calls:
            call = parse_python_call(text)
            request.append(format_tool_action(call.name, session.keyword_arguments(call.name, call.args, call.kwargs)))
        actions.append(request)
    return actions


def oracle_policy(lookup):
    """Plays the ground truth: finds the task from the first user message, then the request and step
    it is at."""

    def policy(conversations):
        responses = []
        for conversation in conversations:
            users = [index for index, message in enumerate(conversation) if message.role == "user"]
            task_id = lookup[conversation[users[0]].content]
            step = sum(message.role == "assistant" for message in conversation[users[-1] :])
            actions = ground_truth_actions(task_id)[len(users) - 1]
            responses.append(actions[step] if step < len(actions) else "Done. <TASK_FINISHED>")
        return responses

    return policy


def _lookup(task_ids):
    return {request_text(load_task(task_id), 0): task_id for task_id in task_ids}


def test_oracle_training_episodes_score_one_with_children_per_turn():
    task_ids = TRAIN.task_ids("train")[:12]
    episodes = TRAIN.rollout([TRAIN.base_instance(i) for i in task_ids], oracle_policy(_lookup(task_ids)))
    assert isinstance(TRAIN, Domain) and TRAIN.multi_turn
    for episode in episodes:
        assert episode.grade.reward == 1.0 and episode.has_valid_action
        roles = [message.role for message in episode.messages]
        assert roles[0] == "system" and roles[1] == "user" and roles.count("user") == 1  # first request only
        assert all(roles[i + 1] == "tool" for i, role in enumerate(roles[:-1]) if role == "assistant")
        assistant = [m.content for m in episode.messages if m.role == "assistant"]
        assert len(episode.children) == len(assistant)
        for turn, child in enumerate(episode.children):
            assert (child.turn, child.previous_response, child.mode) == (
                turn,
                assistant[turn],
                "improve",
            )
            assert list(child.history) == episode.messages[1 : 1 + len(child.history)]
            assert child.history[-1].role in ("user", "tool")
            json.dumps(child.to_json())


def test_evaluation_episodes_all_requests_agree_with_bfcl_checker():
    task_ids = EVAL.task_ids("test")[:10]
    episodes = EVAL.rollout([EVAL.base_instance(i) for i in task_ids], oracle_policy(_lookup(task_ids)))
    for task_id, episode in zip(task_ids, episodes, strict=True):
        task = load_task(task_id)
        assert episode.grade.reward == len(task.requests)  # total return
        assert episode.grade.info["first_turn_correct"] and episode.grade.info["all_requests_correct"]
        # Re-split the executed calls by request from the transcript and ask bfcl-eval.
        per_request, calls = [], None
        for message in episode.messages[1:]:
            if message.role == "user":
                calls = []
                per_request.append(calls)
            action = parse_action(message.content) if message.role == "assistant" else None
            if action is not None and action.kind == "tool":
                payload = json.loads(action.payload)
                arguments = ", ".join(f"{k}={v!r}" for k, v in payload["arguments"].items())
                calls.append(f"{payload['name']}({arguments})")
        assert bfcl_checker_verdict(task, per_request)


def _scripted(responses):
    queue = list(responses)
    return lambda conversations: [queue.pop(0) for _ in conversations]


def test_bad_calls_become_error_observations_and_reward_zero(monkeypatch):
    from bfcl_eval.eval_checker.multi_turn_eval.func_source_code.gorilla_file_system import (
        GorillaFileSystem,
    )

    def exploding_pwd(self):
        raise RuntimeError("simulated failure inside the API")

    monkeypatch.setattr(GorillaFileSystem, "pwd", exploding_pwd)
    responses = [
        "<tool>{not json</tool>",
        '<tool>{"name": "no_such_function", "arguments": {}}</tool>',
        '<tool>{"name": "cd", "arguments": {"folder": 5}}</tool>',
        '<tool>{"name": "cd", "arguments": {"directory": "document"}}</tool>',
        '<tool>["cd"]</tool>',
        "<tool>" + "[" * 50000 + "</tool>",
        '<tool>{"name": "pwd", "arguments": {}}</tool>',
        "<TASK_FINISHED>",
    ]
    (episode,) = TRAIN.rollout([TRAIN.base_instance(FILE_TASK)], _scripted(responses))
    observations = [m.content for m in episode.messages if m.role == "tool"]
    assert len(observations) == 7
    assert "not valid JSON" in observations[0]
    assert "does not exist" in observations[1]
    assert "expected string, got int" in observations[2]
    assert "invalid arguments for cd" in observations[3]
    assert "JSON object" in observations[4]
    assert observations[5].startswith("Error")
    assert observations[6] == "Error during execution: simulated failure inside the API"
    assert episode.grade.reward == 0.0 and episode.has_valid_action


def test_response_without_action_ends_episode_without_gradient():
    for bad in ["Let me think about which directory", '<tool>{"name": "ls"', None]:
        (episode,) = TRAIN.rollout([TRAIN.base_instance(FILE_TASK)], _scripted([bad]))
        assert episode.has_valid_action is False and episode.grade.valid is False
        assert episode.grade.reward == 0.0 and len(episode.children) == 1


def test_action_budgets():
    looping = lambda conversations: ['<tool>{"name": "ls", "arguments": {}}</tool>'] * len(conversations)  # noqa: E731
    (episode,) = TRAIN.rollout([TRAIN.base_instance(FILE_TASK)], looping)
    assert sum(m.role == "assistant" for m in episode.messages) == 10
    short = TRAIN.with_config(requests="all", max_actions_per_request=None, max_actions_total=4)
    finishing = lambda conversations: ["<TASK_FINISHED>"] * len(conversations)  # noqa: E731
    (episode,) = short.rollout([short.base_instance(FILE_TASK)], finishing)
    assert sum(m.role == "assistant" for m in episode.messages) == 4  # 4 of the 4 requests, each closed at once
    assert episode.grade.info["requests_evaluated"] == 4 and episode.grade.reward == 0.0


def test_child_restores_state_and_places_improve_prompt_after_history():
    task_id = FILE_TASK  # request 0: cd, mkdir, mv
    (episode,) = TRAIN.rollout([TRAIN.base_instance(task_id)], oracle_policy(_lookup([task_id])))
    child = episode.children[1]  # the turn that made the second call, with the first call done
    assert dict(child.extra)["calls"] == (("cd(folder='document')",),)
    rendered = TRAIN.render(child)
    assert rendered[0].role == "system" and rendered[1:-1] == list(child.history)
    request = request_text(load_task(task_id), 0)
    assert rendered[-1].content == self_iteration_message(request, child.previous_response, "improve")
    assert rendered[-1].content.startswith("Improve your current response to this request:\n\n## Request:\n")
    diverged = TRAIN.render(child.with_mode("diverge"))[-1].content
    assert "SIGNIFICANTLY DIFFERS" in diverged and child.previous_response in diverged
    # Resume: the improved response redoes the second call and the episode finishes the request
    # correctly.
    rest = ground_truth_actions(task_id)[0][1:] + ["<TASK_FINISHED>"]
    (resumed,) = TRAIN.rollout([child], _scripted(rest))
    assert resumed.grade.reward == 1.0
    assert resumed.children[0].iterate == child.iterate + 1 and resumed.children[-1].iterate == 1
    # Without the replayed first call the same continuation is wrong (we are not in 'document').
    stripped = Instance.from_json({**child.to_json(), "extra": [["request_index", 0], ["calls", []]]})
    (wrong,) = TRAIN.rollout([stripped], _scripted(rest))
    assert wrong.grade.reward == 0.0


def test_single_response_grade_and_child():
    instance = TRAIN.base_instance("multi_turn_base_1")  # request 0 ground truth: ls(a=True)
    right, wrong = TRAIN.grade([instance, instance], [format_tool_action("ls", {"a": True}), "<TASK_ERROR>"])
    assert (right.reward, wrong.reward) == (1.0, 0.0)
    child = TRAIN.child(instance, "<TASK_ERROR>", wrong)
    assert (child.iterate, child.previous_response, child.depth) == (1, "<TASK_ERROR>", 1)
    assert "## Current response:\n<TASK_ERROR>" in TRAIN.render(child)[-1].content


def test_state_snapshot_and_diff():
    session = ApiSession(load_task(FILE_TASK))
    before = session.snapshot()
    session.execute("mkdir", (), {"dir_name": "fresh"})
    differences = state_diff(session.snapshot(), before)
    assert [d["path"] for d in differences] == ["GorillaFileSystem.root.contents.fresh"]
    assert differences[0]["expected"] == "<missing>"
    assert state_diff(before, before) == []
    assert plain_state({1: {2, 1}, "t": (1, [2])}) == {1: [1, 2], "t": [1, [2]]}


def test_config_validation():
    with pytest.raises(ValueError, match="requests"):
        ToolUseDomain({"requests": "some"})
    with pytest.raises(ValueError, match="max_actions_total"):
        ToolUseDomain({"max_actions_total": 0})
    with pytest.raises(ValueError, match="unknown field"):
        ToolUseDomain({"budget": 3})


def test_inference_time_improve_steps_execute_the_last_iterate():
    from exit_jax.domains.tooluse.metrics import correctness_array, episode_metrics

    instance = TRAIN.base_instance("multi_turn_base_1")  # request 0 ground truth: ls(a=True)
    right, wrong = (
        format_tool_action("ls", {"a": True}),
        format_tool_action("mkdir", {"dir_name": "z"}),
    )
    seen = []

    def improves_when_asked(conversations):
        seen.extend(conversations)
        last = [conversation[-1] for conversation in conversations]
        asked = [m.role == "user" and m.content.startswith("Improve your current") for m in last]
        return [
            (right if ask else wrong) if m.role != "tool" else "<TASK_FINISHED>"
            for ask, m in zip(asked, last, strict=True)
        ]

    episodes_per_k = []
    for k in range(3):
        domain = TRAIN.with_config(improve_steps=k)
        episodes_per_k.append(domain.rollout([instance, instance], improves_when_asked))
    assert [[e.grade.reward for e in episodes] for episodes in episodes_per_k] == [
        [0.0, 0.0],
        [1.0, 1.0],
        [1.0, 1.0],
    ]
    improve_prompt = next(c for c in seen if c[-1].content.startswith("Improve"))
    assert improve_prompt[-1].content == self_iteration_message(
        request_text(load_task("multi_turn_base_1"), 0), wrong, "improve"
    )
    assert [m.role for m in improve_prompt] == ["system", "user", "user"]
    correct = correctness_array(episodes_per_k, samples=2)
    assert correct.shape == (1, 2, 3) and correct[0, :, 0].sum() == 0 and correct[0, :, 1:].all()
    assert episode_metrics(episodes_per_k[1])["first_turn_accuracy"] == 1.0
    assert episode_metrics(episodes_per_k[0])["first_turn_accuracy"] == 0.0
