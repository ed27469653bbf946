"""The Dagster UI as an operator sees it, in headless Chromium: lineage, daily partitions, checks, a gold run.

``dagster-webserver`` serves the project's definitions from a temporary ``DAGSTER_HOME`` (telemetry off); the gold
run is launched through the project's runner (``pipeline.orchestration.runs``, the ``shoplake gold`` path) on the
same instance, so the UI shows it. Chromium is Debian's package driven by Playwright with an explicit executable
(never a browser download). Screenshots land in the test's tmp dir; set ``SHOPLAKE_TEST_SCREENSHOTS_DIR`` to also
copy the lineage one there (``docs/images/dagster-asset-graph.png`` in the README comes from this test).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from pyspark.sql import SparkSession

from pipeline.config import Settings
from pipeline.orchestration.definitions import FRESHNESS_JOB, build_definitions
from pipeline.orchestration.runs import dagster_instance, materialize_gold
from simulation.scenario import load_scenario
from tests.integration.helpers import catch_up, send_log, write_day

pytestmark = pytest.mark.extended  # tox -e suites -- extended (see README "Tests")

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("SHOPLAKE_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LOAD_MS = 60_000  # the first page waits for the code location (imports pyspark) to load


def _chromium() -> Path:
    if CHROMIUM.is_file():
        return CHROMIUM
    found = shutil.which("chromium")
    if found:
        return Path(found)
    reason = f"no Chromium at {CHROMIUM} nor on PATH: install Debian's package (apt-get install -y chromium)"
    if os.environ.get("CI"):
        pytest.fail(reason + "; .ci/run installs it, so CI must not get here")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def dagster_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh instance directory with telemetry off, used by the run (this process) and the webserver."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n", encoding="utf-8")
    # Marks the first-visit newsletter dialog as seen (it would cover the page and load an iframe from the web).
    (home / ".nux").mkdir()
    (home / ".nux" / "nux.yaml").write_text("seen: 1\n", encoding="utf-8")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


@pytest.fixture
def webserver(live: Settings, dagster_home: Path, tmp_path: Path) -> Iterator[str]:
    """``dagster-webserver`` on the project's definitions, bound to 127.0.0.1; yields its base URL."""
    port = _free_port()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(dagster_home),
        "PYTHONPATH": str(ROOT),
        "SHOPLAKE_HOME": str(live.home),
        "SHOPLAKE_CATALOG__NAME": live.catalog.name,
        "SHOPLAKE_SPARK__JARS_DIR": live.spark.jars_dir,
        "SHOPLAKE_KAFKA__TOPIC_PREFIX": live.kafka.topic_prefix,
    }
    command = [
        str(Path(sys.executable).with_name("dagster-webserver")),
        *("-m", "pipeline.orchestration.definitions", "-h", "127.0.0.1", "-p", str(port)),
    ]
    log_path = tmp_path / "webserver.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/server_info", timeout=2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"dagster-webserver did not answer on {url}:\n{log_path.read_text()[-3000:]}")
                time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def browser_page() -> Iterator[Page]:
    """A headless Chromium page (1600x1000)."""
    from playwright.sync_api import sync_playwright

    executable = _chromium()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(executable), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.set_default_timeout(30_000)
            yield page
        finally:
            browser.close()


def _open(page: Page, url: str, ready_text: str | re.Pattern[str]) -> None:
    """Go to ``url`` and wait until ``ready_text`` shows, with nothing covering the page."""
    from playwright.sync_api import expect

    page.goto(url)
    expect(page.get_by_text(ready_text).first).to_be_visible(timeout=LOAD_MS)
    expect(page.get_by_role("dialog")).to_have_count(0)


def _partition(page: Page, day: str) -> Locator:
    """The row of ``day`` in the asset's partition list, found through the list's own filter box.

    The list shows the newest days first and renders only the rows in view, so an older day is not on the page
    until the list is filtered to it.
    """
    page.get_by_role("textbox", name="Filter by name…").fill(day)
    return page.get_by_text(day, exact=True).first


def _shot(page: Page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / "screenshots" / f"{name}.png"
    path.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(path))
    return path


def _stream_small_day(spark: SparkSession, settings: Settings, tmp_path: Path) -> None:
    log = write_day(tmp_path / "day.jsonl", "normal_day", seed=3, events=1500)
    send_log(settings, log)
    catch_up(spark, settings, timeout_s=600)


def test_the_ui_shows_lineage_partitions_checks_and_a_gold_run(
    spark: SparkSession, live: Settings, webserver: str, browser_page: Page, dagster_home: Path, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    page = browser_page
    gold_asset = f"{webserver}/assets/gold/daily_sales_summary"

    # Lineage: Kafka topics -> bronze -> silver -> gold, left to right, every upstream asset by name.
    _open(page, f"{gold_asset}?view=lineage&lineageScope=upstream&lineageDepth=5", "data_quality")
    names = ["add_to_cart", "page_view", "purchase", "user_session", "product_update", "events"]
    names += ["page_views", "cart_events", "purchases", "user_sessions", "product_updates", "data_quality"]
    for name in names:
        expect(page.get_by_text(name, exact=True).first).to_be_visible()
    for group in ("kafka", "bronze", "silver", "gold"):
        expect(page.get_by_text(group, exact=True).last).to_be_visible()

    def left(name: str) -> float:
        box = page.get_by_text(name, exact=True).first.bounding_box()
        assert box is not None, name
        return box["x"]

    assert left("purchase") < left("events") < left("purchases") < left("data_quality"), "lineage not left to right"
    lineage = _shot(page, tmp_path, "lineage")
    if os.environ.get("SHOPLAKE_TEST_SCREENSHOTS_DIR"):
        target = Path(os.environ["SHOPLAKE_TEST_SCREENSHOTS_DIR"]) / "dagster-asset-graph.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(lineage, target)

    # Daily partitions from the configured first day; none built yet.
    scenario = load_scenario("normal_day")
    day = scenario.dates[0].isoformat()
    _open(page, f"{gold_asset}?view=partitions", re.compile(r"^\d+ Partitions"))
    expect(page.get_by_text(live.partitions_start, exact=True).first).to_be_visible()
    expect(page.get_by_text("Materialized (0)")).to_be_visible()
    expect(_partition(page, day)).to_be_visible()
    _shot(page, tmp_path, "partitions-before")

    # Asset checks with their descriptions: blocking ones on data_quality, warnings on the summary.
    _open(page, f"{webserver}/assets/gold/data_quality?view=checks", "silver_contract")
    expect(page.get_by_text("conservation", exact=True).first).to_be_visible()
    expect(page.get_by_text("This is a blocking asset check.")).to_be_visible()
    _shot(page, tmp_path, "checks-before")
    _open(page, f"{gold_asset}?view=checks", "totals_reconcile")
    expect(page.get_by_text("revenue_anomaly", exact=True).first).to_be_visible()

    # One gold partition through the project's runner, on the webserver's instance.
    _stream_small_day(spark, live, tmp_path)
    instance = dagster_instance(live)
    assert Path(os.environ["DAGSTER_HOME"]) == dagster_home
    (result,) = materialize_gold(live, [scenario.dates[0]], instance)
    assert result.success

    _open(page, f"{webserver}/runs/{result.run_id}", "Success")
    expect(page.get_by_text(f"partition: {day}")).to_be_visible()
    expect(page.get_by_text(re.compile(r"^(RUN_SUCCESS|Finished execution of run)")).first).to_be_visible()
    _shot(page, tmp_path, "run")

    _open(page, f"{gold_asset}?view=partitions", "Materialized (1)")
    _partition(page, day).click()
    expect(page.get_by_text(f"{live.catalog.name}.gold.daily_sales_summary").first).to_be_visible()
    expect(page.get_by_text("rows", exact=True).first).to_be_visible()
    expect(page.get_by_text("snapshot_id", exact=True).first).to_be_visible()
    for name in ("orders", "revenue", "preview"):
        expect(page.get_by_text(name, exact=True).first).to_be_visible()
    _shot(page, tmp_path, "partition-metadata")

    # Freshness: the check on each silver table, with its objective, evaluated once on the webserver's instance.
    freshness = build_definitions(live).resolve_job_def(FRESHNESS_JOB).execute_in_process(instance=instance)
    assert freshness.success
    _open(page, f"{webserver}/assets/silver/purchases?view=checks", "freshness")
    objective = live.freshness
    description = (
        f"Kafka -> silver p99 over the last {objective.window_minutes} min is at most "
        f"{objective.p99_objective_seconds:g} s."
    )
    expect(page.get_by_text(description).first).to_be_visible()
    _shot(page, tmp_path, "freshness-check")

    _open(page, f"{webserver}/assets/gold/data_quality?view=checks", "silver_contract")
    expect(page.get_by_text("Passed").first).to_be_visible()
    _shot(page, tmp_path, "checks-after")
