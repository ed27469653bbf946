"""The benchmark report: the micro-batch profile (medians of what the sink recorded per batch), the topology table."""

from __future__ import annotations

from benchmarks.report import _freshness, _profile, _topology


def test_profile_takes_medians_per_phase_and_leaves_out_empty_batches() -> None:
    phases = {
        "materialize": 1.0,
        "collect": 0.25,
        "lookup": 0.75,
        "deduplicate": 2.0,
        "plan": 0.5,
        "commit": 0.25,
        "between": 3.0,
    }
    batches = [
        {"records": 100, **phases},
        {"records": 300, **{k: v * 3 for k, v in phases.items()}},
        {"records": 200, **{k: v * 2 for k, v in phases.items()}},
        {"records": 0, **{k: 99.0 for k in phases}},  # an empty batch says nothing about the phases
    ]
    freshness = {"runs": [{"rate_eps": 5000, "trigger_s": 1.0, "phases": batches}]}
    throughput = {"runs": [{"events": 1_000_000, "batches": batches[:1]}]}

    rows = _profile(freshness, throughput).splitlines()[2:]

    assert rows == [
        "| live 5,000/s, trigger 1 s | 200 | 2.00 | 0.50 | 1.50 | 4.00 | 1.00 | 0.50 | 6.00 | 15.50 |",
        "| catch-up 1,000,000 | 100 | 1.00 | 0.25 | 0.75 | 2.00 | 0.50 | 0.25 | 3.00 | 7.75 |",
    ]


def test_a_phase_the_run_did_not_record_is_left_blank_and_out_of_the_sum() -> None:
    batch = {"records": 10, "materialize": 1.0, "collect": 0.5, "deduplicate": 2.0, "plan": 0.0, "commit": 1.5}
    throughput = {"runs": [{"events": 10, "batches": [batch]}]}
    row = _profile(None, throughput).splitlines()[2]
    assert row == "| catch-up 10 | 10 | 1.00 | 0.50 |  | 2.00 | 0.00 | 1.50 |  | 5.00 |"


def test_profile_of_a_run_without_records_is_an_empty_row() -> None:
    freshness = {"runs": [{"rate_eps": 10, "trigger_s": 1.0, "phases": [{"records": 0, "commit": 1.0}]}]}
    assert _profile(freshness, None).splitlines()[2] == "| live 10/s, trigger 1 s | 0 |  |  |  |  |  |  |  |  |"


def test_freshness_rows_show_the_rate_asked_beside_the_rate_the_producers_reached() -> None:
    measured = {"rate_eps": 5000, "achieved_eps": 2221, "trigger_s": 1.0, "events": 300000, "p50_s": 1.9,
                "p95_s": 3.1, "p99_s": 3.7, "max_s": 4.5, "mean_batch_s": 1.1}  # fmt: skip
    older = {k: v for k, v in measured.items() if k != "achieved_eps"}

    assert _freshness({"runs": [measured, older]}).splitlines()[2:] == [
        "| 5,000 | 2,221 | 1.0 | 300,000 | 1.9 | 3.1 | 3.7 | 4.5 | 1.1 |",
        "| 5,000 |  | 1.0 | 300,000 | 1.9 | 3.1 | 3.7 | 4.5 | 1.1 |",
    ]


def test_topology_rows_name_each_shape_beside_its_figures() -> None:
    def run(topology: str, nodes: int, catalog: str, warehouse: str, eps: float, p99: float) -> dict:
        catch_up = {"events": 200_000, "events_per_s": eps}
        freshness = {"rate_eps": 1000, "p50_s": p99 / 2, "p99_s": p99, "mean_batch_s": 1.5}
        return {"topology": topology, "kafka_nodes": nodes, "catalog": catalog, "warehouse": warehouse,
                "catch_up": catch_up, "freshness": freshness}  # fmt: skip

    data = {"runs": [run("local", 1, "sql", "file", 9000.4, 4.0), run("cluster", 3, "rest", "s3", 3000.0, 12.0)]}

    assert _topology(data).splitlines()[2:] == [
        "| local (1 Kafka node, sql catalog, file warehouse) | 200,000 | 9,000 | 1,000 | 2.0 | 4.0 | 1.5 |",
        "| cluster (3 Kafka nodes, rest catalog, s3 warehouse) | 200,000 | 3,000 | 1,000 | 6.0 | 12.0 | 1.5 |",
    ]
