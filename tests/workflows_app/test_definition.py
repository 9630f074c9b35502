"""A workflow's steps as saved (workflows_app/definition.py): what is refused and why, naming the step; and the rules
that pick the next step, fill templates and test conditions while a run goes."""

from __future__ import annotations

import pytest

from workflows_app.definition import (
    END,
    DefinitionError,
    StepResult,
    condition_holds,
    next_step,
    parse_steps,
    render_template,
)


def refused(raw, **kwargs) -> dict[str, str]:
    with pytest.raises(DefinitionError) as caught:
        parse_steps(raw, **kwargs)
    return caught.value.fields


def test_a_chain_of_the_spec_shape_is_accepted_and_runs_in_order():
    graph = parse_steps(
        [
            {"id": "retrieve", "agent_id": 1, "input_source": "user"},
            {"id": "analyse", "agent_id": 2, "input_source": "previous_step", "input_source_id": "retrieve"},
        ],
        allowed_agent_ids={1, 2},
    )
    assert graph.first.id == "retrieve"
    assert graph.default_next(graph.by_id["retrieve"]) == "analyse"
    assert graph.default_next(graph.by_id["analyse"]) == END
    assert graph.agent_ids() == {1, 2}


@pytest.mark.parametrize(
    ("raw", "field", "words"),
    [
        ([], "steps", "at least one step"),
        ([{"id": "a", "agent_id": 1}, {"id": "a", "agent_id": 1}], "steps[1].id", "appears twice"),
        ([{"id": "end", "agent_id": 1}], "steps[0].id", "reserved"),
        ([{"id": "9lives", "agent_id": 1}], "steps[0].id", "Step '9lives'"),
        ([{"id": "a"}], "steps[0].agent_id", "give agent_id"),
        ([{"id": "a", "agent_id": 7}], "steps[0].agent_id", "agent 7 is not an agent of this workspace"),
        ([{"id": "a", "agent_id": 1, "input_source_id": "ghost"}], "steps[0].input_source_id", "'ghost' is not a step"),
        (
            [{"id": "a", "agent_id": 1, "input_source": "user", "input_source_id": "a"}],
            "steps[0].input_source_id",
            "leave",
        ),
        (
            [{"id": "a", "agent_id": 1, "conditions": [{"type": "contains", "value": "x", "target_step_id": "zz"}]}],
            "steps[0].conditions[0].target_step_id",
            "'zz' is not a step",
        ),
        ([{"id": "a", "agent_id": 1, "next_step_id": "nowhere"}], "steps[0].next_step_id", "'nowhere' is not a step"),
        (
            [{"id": "a", "agent_id": 1, "conditions": [{"type": "matches", "value": "(a)\\1", "target_step_id": "a"}]}],
            "steps[0].conditions[0]",
            "RE2",
        ),
        (
            [{"id": "a", "agent_id": 1, "conditions": [{"type": "teleport", "target_step_id": "a"}]}],
            "steps[0].conditions[0]",
            "Step 'a'",
        ),
        (
            [{"id": "a", "agent_id": 1, "input_template": "{{ secrets.key }}"}],
            "steps[0].input_template",
            "not a template",
        ),
        (
            [{"id": "a", "agent_id": 1, "input_template": "{{steps.ghost.output}}"}],
            "steps[0].input_template",
            "'ghost', which is not a step",
        ),
        ([{"id": "a", "agent_id": 1, "colour": "red"}], "steps[0].colour", "Step 'a'"),
    ],
)
def test_bad_steps_are_refused_naming_the_step(raw, field, words):
    fields = refused(raw, allowed_agent_ids={1})
    assert field in fields, fields
    assert words in fields[field], fields


def test_an_unreachable_step_is_refused():
    fields = refused(
        [
            {"id": "a", "agent_id": 1, "next_step_id": "c"},
            {"id": "b", "agent_id": 1},
            {"id": "c", "agent_id": 1},
        ]
    )
    assert fields == {"steps[1].id": fields["steps[1].id"]}
    assert "Step 'b' can never run" in fields["steps[1].id"]


def test_a_loop_needs_a_maximum_and_a_way_out():
    back = {"type": "contains", "value": "again", "target_step_id": "draft"}
    unbounded = refused([{"id": "draft", "agent_id": 1}, {"id": "review", "agent_id": 1, "conditions": [back]}])
    assert "max_iterations" in unbounded["steps[1].conditions[0].max_iterations"]
    assert "'draft', 'review'" in unbounded["steps[1].conditions[0].max_iterations"]
    endless = refused([{"id": "draft", "agent_id": 1}, {"id": "review", "agent_id": 1, "next_step_id": "draft"}])
    assert "no way out" in endless["steps[0].next_step_id"]
    done = {"type": "contains", "value": "done", "target_step_id": "end"}
    unbounded_round = refused(
        [{"id": "draft", "agent_id": 1}, {"id": "review", "agent_id": 1, "conditions": [done], "next_step_id": "draft"}]
    )
    assert "always goes round" in unbounded_round["steps[0].next_step_id"]
    trapped = refused(
        [
            {"id": "draft", "agent_id": 1},
            {"id": "review", "agent_id": 1, "conditions": [{**back, "max_iterations": 3}], "next_step_id": "draft"},
        ]
    )
    assert "no way out" in trapped["steps[0].next_step_id"]
    graph = parse_steps(
        [{"id": "draft", "agent_id": 1}, {"id": "review", "agent_id": 1, "conditions": [{**back, "max_iterations": 3}]}]
    )
    assert graph.default_next(graph.by_id["review"]) == END


def test_parallel_groups_own_their_branches():
    graph = parse_steps(
        [
            {"id": "fan", "kind": "parallel", "branches": ["legal", "tech"], "input_source": "user"},
            {"id": "legal", "agent_id": 1},
            {"id": "tech", "agent_id": 2},
            {"id": "merge", "agent_id": 3, "input_template": "{{steps.legal.output}} / {{steps.tech.output}}"},
        ]
    )
    assert graph.default_next(graph.by_id["fan"]) == "merge"  # branches run only in their group
    assert graph.branch_of == {"legal": "fan", "tech": "fan"}
    assert (
        "two branches"
        in refused([{"id": "fan", "kind": "parallel", "branches": ["a"]}, {"id": "a", "agent_id": 1}])[
            "steps[0].branches"
        ]
    )
    jumped = refused(
        [
            {"id": "fan", "kind": "parallel", "branches": ["a", "b"]},
            {"id": "a", "agent_id": 1},
            {"id": "b", "agent_id": 1},
            {"id": "c", "agent_id": 1, "conditions": [{"type": "contains", "value": "x", "target_step_id": "a"}]},
        ]
    )
    assert "branch of 'fan'" in jumped["steps[3].conditions[0].target_step_id"]
    owned = refused(
        [
            {"id": "fan", "kind": "parallel", "branches": ["a", "b"]},
            {"id": "a", "agent_id": 1, "next_step_id": "end"},
            {"id": "b", "agent_id": 1},
        ]
    )
    assert "cannot have conditions or a next step" in owned["steps[1].conditions"]


def test_conditions_test_the_output_as_documented():
    def holds(condition, output, **extra):
        spec = parse_steps([{"id": "a", "agent_id": 1, "conditions": [{**condition, "target_step_id": "end"}]}])
        return condition_holds(spec.first.conditions[0], StepResult(output, **extra))

    assert holds({"type": "contains", "value": "APPROVED"}, "it is approved")
    assert not holds({"type": "contains", "value": "APPROVED", "ignore_case": False}, "it is approved")
    assert holds({"type": "contains", "value": "approved", "negate": True}, "rejected")
    assert holds({"type": "matches", "value": r"score: \d+"}, "final score: 42")
    assert holds({"type": "json_field", "field": "score", "operator": "gte", "value": 7}, {"score": 8})
    assert not holds({"type": "json_field", "field": "score", "operator": "gte", "value": 7}, {"score": "8"})
    assert holds({"type": "json_field", "field": "tags.0", "value": "urgent"}, {"tags": ["urgent"]})
    assert holds({"type": "json_field", "field": "tags", "operator": "contains", "value": "x"}, {"tags": ["x"]})
    assert not holds({"type": "json_field", "field": "missing", "operator": "exists"}, {"score": 1})
    assert not holds({"type": "json_field", "field": "score", "value": 1}, "plain text")
    assert holds({"type": "guardrail_tripped"}, "", guardrail_tripped=True)
    assert holds({"type": "last_agent", "value": "Billing"}, "", last_agent="Billing")


def test_a_bounded_jump_stops_holding_after_its_maximum():
    graph = parse_steps(
        [
            {"id": "draft", "agent_id": 1},
            {
                "id": "review",
                "agent_id": 1,
                "conditions": [{"type": "contains", "value": "again", "target_step_id": "draft", "max_iterations": 2}],
            },
        ]
    )
    review = graph.by_id["review"]
    jumps: dict[tuple[str, int], int] = {}
    taken = [next_step(graph, review, StepResult("again"), jumps) for _ in range(3)]
    assert taken == ["draft", "draft", END]
    assert next_step(graph, review, StepResult("fine"), {}) == END


def test_templates_combine_input_outputs_and_context():
    results = {"a": StepResult({"summary": "short", "n": 2}), "b": StepResult("text")}
    filled = render_template(
        "Q: {{input}} | {{ steps.a.output.summary }} | {{steps.a.output}} | {{steps.b.output}} | {{context.user.name}}"
        " | {{steps.zz.output}}",
        message="why?",
        results=results,
        context={"user": {"name": "Ana"}},
    )
    assert filled == 'Q: why? | short | {"n": 2, "summary": "short"} | text | Ana | '
