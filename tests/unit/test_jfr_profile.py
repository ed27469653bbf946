"""The JFR summary counts each sample once, in the first kind of work its stack shows."""

from __future__ import annotations

from benchmarks.jfr_profile import kind_of, shares

CODEGEN = "org/apache/spark/sql/catalyst/expressions/codegen/GenerateUnsafeProjection$.generate"
MATERIALIZE = "org/apache/spark/storage/memory/MemoryStore.putIterator"
PARSE = "org/apache/spark/sql/catalyst/json/JacksonParser.parse"


def test_a_stack_counts_as_its_first_listed_kind_of_work_wherever_the_frame_is() -> None:
    # Code generated while a batch is materialized is code generation, not materialization.
    assert kind_of([CODEGEN, MATERIALIZE]) == "code generation"
    assert kind_of([MATERIALIZE, CODEGEN]) == "code generation"
    assert kind_of([PARSE, MATERIALIZE]) == "json parsing"
    assert kind_of([MATERIALIZE]) == "validation and materialize, other"
    assert kind_of(["java/lang/Thread.run"]) == "other"


def test_task_threads_are_told_from_the_drivers_own() -> None:
    counts = shares(
        [
            ("Executor task launch worker for task 1.0 in stage 3.0 (TID 7)", [MATERIALIZE]),
            ("Executor task launch worker for task 0.0 in stage 3.0 (TID 6)", [MATERIALIZE]),
            ("stream execution thread for kafka_to_lake", [CODEGEN]),
        ]
    )
    assert counts == {("task", "validation and materialize, other"): 2, ("driver", "code generation"): 1}
