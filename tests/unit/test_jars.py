"""The project's own Spark function is compiled into the Spark jars folder, once per change of its sources."""

from __future__ import annotations

import zipfile
from pathlib import Path

from devstack.jars import EXTENSIONS_JAR, build_extensions


def test_the_validator_is_compiled_into_the_spark_jars_and_not_rebuilt_while_its_sources_are_unchanged(
    tmp_path: Path,
) -> None:
    jar = build_extensions(tmp_path, log=lambda _: None)
    assert jar == tmp_path / "jars" / "spark" / EXTENSIONS_JAR
    with zipfile.ZipFile(jar) as archive:
        assert "shoplake/spark/ContractValidator.class" in archive.namelist()
    built = jar.stat().st_mtime_ns
    messages: list[str] = []
    assert build_extensions(tmp_path, log=messages.append) == jar
    assert (messages, jar.stat().st_mtime_ns) == ([], built)
