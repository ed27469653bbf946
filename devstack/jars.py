"""Resolve the JVM dependencies pinned in ``jvm/pom.xml`` into ``<home>/jars/<profile>/`` with Maven.

Resolution runs once: a stamp file records the pom's hash, and a folder whose stamp matches is left alone.
The REST catalog server has a pom of its own (``jvm/rest-catalog/pom.xml``): its jars carry their own Iceberg,
Jetty and Hadoop and must never reach Spark's classpath. It is resolved only when asked for (the embedded
default never needs it).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

PROFILES = ("spark", "kafka", "s3proxy")  # what `shoplake jars` resolves by default
OPTIONAL_PROFILES = ("rest-catalog",)  # resolved on demand (`shoplake jars --rest-catalog`, the cluster suite)
STAMP = ".pom-sha256"
# Profiles resolved from a pom of their own (without -P); the others are profiles of jvm/pom.xml.
OWN_POMS = {"rest-catalog": Path("jvm") / "rest-catalog" / "pom.xml"}


class JarsError(RuntimeError):
    """Maven is missing or could not resolve the pinned JVM dependencies."""


def project_root() -> Path:
    """The source checkout holding ``jvm/pom.xml`` (the package is installed in editable mode)."""
    root = Path(__file__).resolve().parent.parent
    if not (root / "jvm" / "pom.xml").is_file():
        raise JarsError(f"jvm/pom.xml not found under {root}; run from a source checkout of shoplake")
    return root


def _pom_digest(pom: Path) -> str:
    return hashlib.sha256(pom.read_bytes()).hexdigest()


def jars_dir(home: Path, profile: str) -> Path:
    return home / "jars" / profile


def pom_of(profile: str) -> Path:
    return project_root() / OWN_POMS.get(profile, Path("jvm") / "pom.xml")


def is_resolved(home: Path, profile: str) -> bool:
    stamp = jars_dir(home, profile) / STAMP
    return stamp.is_file() and stamp.read_text().strip() == _pom_digest(pom_of(profile))


def resolve(home: Path, profiles: tuple[str, ...] = PROFILES, log=print) -> dict[str, Path]:
    """Copy each profile's runtime jars into its folder; returns profile -> folder."""
    root = project_root()
    mvn = shutil.which("mvn")
    out: dict[str, Path] = {}
    for profile in profiles:
        if profile not in PROFILES + OPTIONAL_PROFILES:
            raise JarsError(f"unknown jar profile {profile!r}; known: {', '.join(PROFILES + OPTIONAL_PROFILES)}")
        pom = pom_of(profile)
        target = jars_dir(home, profile)
        out[profile] = target
        if is_resolved(home, profile):
            continue
        if mvn is None:
            raise JarsError("Maven (mvn) is not on PATH: it is needed once to resolve jvm/pom.xml")
        log(f"resolving {profile} jars from Maven Central into {target} ...")
        staging = target.with_name(target.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        cmd = [
            mvn,
            "-B",
            "-q",
            "-s",
            str(root / "jvm" / "settings.xml"),
            "-f",
            str(pom),
            *([] if profile in OWN_POMS else ["-P", profile]),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={staging}",
        ]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0 or not any(staging.glob("*.jar")):
            tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
            raise JarsError(f"Maven could not resolve the {profile} jars (exit {result.returncode}):\n{tail}")
        (staging / STAMP).write_text(_pom_digest(pom))
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    return out
