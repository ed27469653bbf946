"""The README's topology section as a user types it: every command on the catalog `services up` started.

`shoplake services up --catalog postgres|rest`, then `replay`, `stream --available-now`, `show`, `history`,
`live --once`, `quarantine summary` and `gold`, each a process of its own with nothing but ``SHOPLAKE_HOME`` in
its environment: the commands must find the services' broker and catalog by themselves, all the same lake.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from devstack.postgres import missing_postgres_reason
from devstack.services import Services
from pipeline.config import Settings
from simulation.scenario import load_scenario
from tests.integration.helpers import assert_gold_matches, truth_of, write_day

pytestmark = pytest.mark.cluster


@pytest.mark.parametrize(
    ("catalog", "kafka"),
    [("postgres", "--plaintext-kafka"), ("rest", "--plaintext-kafka"), ("rest", "--secure-kafka")],
)
def test_the_topology_commands_work_in_sequence_on_one_lake(
    cluster_jars: Path, tmp_path: Path, catalog: str, kafka: str
) -> None:
    """With ``--secure-kafka`` each command logs in as what it is: ``replay`` as the producer, ``stream`` as the
    stream (``services up`` made the topics and their ACLs); no command prints a password."""
    if missing_postgres_reason() is not None:
        pytest.skip(missing_postgres_reason() or "")
    home = tmp_path / "home"
    home.mkdir()
    (home / "jars").symlink_to(cluster_jars / "jars")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOPLAKE_") or k.startswith("SHOPLAKE_TEST_")}
    env |= {"SHOPLAKE_HOME": str(home), "SHOPLAKE_SPARK__DRIVER_MEMORY": "2g", "COLUMNS": "400"}

    def shoplake(*args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "shoplake.cli", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            cwd=tmp_path,
        )
        assert result.returncode == 0, f"shoplake {' '.join(args)}:\n{result.stderr[-3000:]}"
        assert "Traceback" not in result.stderr
        return result.stdout + result.stderr

    log = write_day(tmp_path / "day.jsonl", "normal_day", seed=9, events=400)
    day = load_scenario("normal_day").dates[0]
    truth = truth_of([log])
    printed = [shoplake("services", "up", "--catalog", catalog, kafka)]
    try:
        state = json.loads((home / "services" / "state.json").read_text())
        served = state["rest_catalog"]["uri"] if catalog == "rest" else "postgresql+psycopg2://"
        printed.append(shoplake("services", "status"))
        assert f"catalog: {served}" in printed[-1]
        assert ("SASL_SSL up" in printed[-1]) == (kafka == "--secure-kafka")
        printed.append(shoplake("replay", str(log)))
        printed.append(shoplake("stream", "--available-now"))
        assert "append" in shoplake("history", "silver.purchases")
        assert truth.of_type("purchase")[0]["event_id"] in shoplake("show", "silver.purchases", "--limit", "10000")
        assert "freshness" in shoplake("live", "--once")
        shoplake("quarantine", "summary")
        shoplake("gold", "--date", day.isoformat())
        assert day.isoformat() in shoplake("show", "gold.daily_sales_summary", "--date", day.isoformat())
        # The lake the commands wrote, read through the services' catalog: gold equals the oracle.
        assert_gold_matches(Services.from_state(state).apply(Settings(home=home)), truth, [day])
        if state["kafka_security"]:
            secrets = [*state["kafka_security"]["passwords"].values(), state["kafka_security"]["store_password"]]
            assert not [secret for secret in secrets if any(secret in output for output in printed)]
    finally:
        subprocess.run(
            [sys.executable, "-m", "shoplake.cli", "services", "down"], env=env, capture_output=True, timeout=180
        )
