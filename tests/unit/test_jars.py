"""The project's own Java is compiled into the jars folder it runs beside, once per change of its sources."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from devstack.jars import JAVA_BUILDS, OPTIONAL_PROFILES, JavaBuild, build_java, is_resolved, jars_dir

COMPILED = {
    "shoplake-spark": "shoplake/spark/ContractValidator.class",
    "shoplake-producer": "shoplake/producer/PacedProducer.class",
    "shoplake-rest-catalog": "org/apache/iceberg/rest/AuthenticatingCatalogServer.class",
}


@pytest.mark.parametrize("build", JAVA_BUILDS, ids=lambda build: build.name)
def test_each_jar_is_compiled_into_its_jars_folder_and_not_rebuilt_while_its_sources_are_unchanged(
    build: JavaBuild, tmp_path: Path, jars_home: Path
) -> None:
    if build.profile in OPTIONAL_PROFILES and not is_resolved(jars_home, build.profile):
        pytest.skip(
            f"{build.name} compiles against the optional {build.profile} jars, not resolved here (`shoplake jars "
            f"--{build.profile}`); the cluster suite resolves them, builds it and runs the server it holds"
        )
    if build.profile != "spark":  # compiled against resolved jars: links to them in a folder of the test's own
        folder = jars_dir(tmp_path, build.profile)
        folder.mkdir(parents=True)
        for resolved in jars_dir(jars_home, build.profile).glob("*.jar"):
            if resolved.name != build.jar:
                (folder / resolved.name).symlink_to(resolved)
    jar = build_java(tmp_path, build, log=lambda _: None)
    assert jar == tmp_path / "jars" / build.profile / build.jar
    with zipfile.ZipFile(jar) as archive:
        assert COMPILED[build.name] in archive.namelist()
    built = jar.stat().st_mtime_ns
    messages: list[str] = []
    assert build_java(tmp_path, build, log=messages.append) == jar
    assert (messages, jar.stat().st_mtime_ns) == ([], built)
