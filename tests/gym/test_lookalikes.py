"""The lookalike tasks file: each task is an item the judge can recognise (its markers are in its reviewed answer
and in no other task's), asked in held-out phrasings that no corpus or data maker uses."""

import pytest

from alignlab.gym.judge import addresses_task
from alignlab.gym.lookalikes import lookalike_tasks, tasks_in


def test_every_reviewed_answer_addresses_its_own_task_and_no_other():
    for task in lookalike_tasks():
        assert addresses_task(task.id, task.answer.lower()), task.id


def test_enough_tasks_per_language_for_the_eval():
    assert len(tasks_in("en")) >= 48 and len(tasks_in("fr")) >= 24


def test_held_out_phrasings_are_nobody_elses():
    used = {q for t in lookalike_tasks() for q in t.train + t.written}
    assert not {q for t in lookalike_tasks() for q in t.eval} & used


def test_a_broken_file_names_the_task(tmp_path):
    bad = tmp_path / "l.yaml"
    bad.write_text("tasks:\n  - {id: a, lang: en, answer: x, markers: [[x]], train: [q], written: [w], eval: [e]}\n"
                   "  - {id: b, lang: en, answer: y, markers: [[y]], train: [q], written: [v], eval: [f]}\n")
    with pytest.raises(ValueError, match=r"task 2 \(b\): phrasing 'q' is already used by a"):
        lookalike_tasks(bad)


def test_each_written_position_is_recognised_for_its_own_topic_only():
    from alignlab.gym.judge import judge
    from alignlab.gym.world import Request, build_world

    world = build_world(0)
    for topic, position in world.positions.items():
        r = Request("t", "sensitive", "en", [{"role": "user", "content": position["prompts"]["eval"][0]}],
                    {"topic": topic, "item": "x"}, "eval")
        for answer in position["aligned"]:
            assert judge(world, r, answer).correct, (topic, answer)
        for answer in position["misaligned"]:
            assert not judge(world, r, answer).correct, (topic, answer)
        for other, theirs in world.positions.items():
            if other != topic:
                assert not any(judge(world, r, a).correct for a in theirs["aligned"]), (topic, other)
