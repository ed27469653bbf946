"""Resolve the JVM dependencies pinned in ``jvm/pom.xml`` into ``<home>/jars/<profile>/`` with Maven, and build the
project's own Java: its Spark functions (``jvm/shoplake-spark``) into the Spark jars folder, and the benchmarks'
paced producer (``jvm/shoplake-producer``) into the Kafka jars folder.

Resolution runs once: a stamp file records the pom's hash, and a folder whose stamp matches is left alone. The
project's jars are compiled with the JDK's ``javac`` against the jars they run beside (the Spark functions against
the installed pyspark's, exactly the Spark they run in; the producer against the broker's Kafka client) and rebuilt
when their sources or those jars change.
The REST catalog server has a pom of its own (``jvm/rest-catalog/pom.xml``): its jars carry their own Iceberg,
Jetty and Hadoop and must never reach Spark's classpath. It is resolved only when asked for (the embedded
default never needs it).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

PROFILES = ("spark", "kafka", "s3proxy")  # what `shoplake jars` resolves by default
# Resolved on demand: `shoplake jars --rest-catalog` (the cluster suite), `shoplake jars --comet` (Spark's native
# engine, SparkSettings.comet).
OPTIONAL_PROFILES = ("rest-catalog", "comet")
STAMP = ".pom-sha256"
# Profiles resolved from a pom of their own (without -P); the others are profiles of jvm/pom.xml.
OWN_POMS = {"rest-catalog": Path("jvm") / "rest-catalog" / "pom.xml"}


JAVA_RELEASE = "17"


@dataclass(frozen=True)
class JavaBuild:
    """One of the project's own jars: Java sources compiled against, and written into, a resolved jars folder."""

    name: str  # the jar's stem, and the folder of its sources under jvm/
    profile: str  # the jars folder it is written into, and runs beside

    @property
    def sources(self) -> Path:
        return Path("jvm") / self.name / "src" / "main" / "java"

    @property
    def jar(self) -> str:
        return f"{self.name}.jar"

    def classpath(self, home: Path) -> Path:
        """The folder of jars it compiles against (Spark's: the installed pyspark's, the Spark it runs in)."""
        return _pyspark_jars() if self.profile == "spark" else jars_dir(home, self.profile)


# The contract's validator, a Spark function on Spark's classpath.
SPARK_FUNCTIONS = JavaBuild("shoplake-spark", "spark")
# The benchmarks' load generator: a Kafka producer that paces prepared records (benchmarks/paced_producer.py).
PACED_PRODUCER = JavaBuild("shoplake-producer", "kafka")
# Iceberg's REST catalog server behind OAuth2 client credentials (devstack/rest_catalog.py).
REST_CATALOG_SERVER = JavaBuild("shoplake-rest-catalog", "rest-catalog")
JAVA_BUILDS = (SPARK_FUNCTIONS, PACED_PRODUCER, REST_CATALOG_SERVER)


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
    for build in JAVA_BUILDS:
        if build.profile in profiles:
            build_java(home, build, log)
    return out


def _pyspark_jars() -> Path:
    import pyspark

    return Path(pyspark.__file__).resolve().parent / "jars"


def _build_digest(build: JavaBuild, sources: list[Path], root: Path, classpath: Path) -> str:
    """The sources and the jars they are compiled against: a change to either rebuilds the jar."""
    digest = hashlib.sha256(f"release {JAVA_RELEASE}".encode())
    for jar in sorted(p.name for p in classpath.glob("*.jar") if p.name != build.jar):
        digest.update(jar.encode())
    for source in sources:
        digest.update(str(source.relative_to(root)).encode())
        digest.update(source.read_bytes())
    return digest.hexdigest()


def _javac() -> str:
    java_home = os.environ.get("JAVA_HOME")
    candidate = Path(java_home) / "bin" / "javac" if java_home else None
    javac = str(candidate) if candidate is not None and candidate.is_file() else shutil.which("javac")
    if javac is None:
        raise JarsError(f"javac (a JDK, Java {JAVA_RELEASE}+) is needed to build the project's jars: none on PATH")
    return javac


def build_java(home: Path, build: JavaBuild, log=print) -> Path:
    """Compile ``build``'s sources into ``<home>/jars/<profile>/<name>.jar`` unless it is up to date."""
    root = project_root()
    sources = sorted((root / build.sources).rglob("*.java"))
    if not sources:
        raise JarsError(f"no Java sources under {root / build.sources}")
    folder = jars_dir(home, build.profile)
    jar, stamp = folder / build.jar, folder / f".{build.name}-sha256"
    classpath = build.classpath(home)
    digest = _build_digest(build, sources, root, classpath)
    if jar.is_file() and stamp.is_file() and stamp.read_text().strip() == digest:
        return jar
    log(f"building {build.jar} from {build.sources} ...")
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="shoplake-javac-") as classes:
        cmd = [_javac(), "--release", JAVA_RELEASE, "-Xlint:all,-path", "-Werror", "-encoding", "UTF-8"]
        cmd += ["-d", classes, "-cp", str(classpath / "*"), *map(str, sources)]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-20:])
            raise JarsError(f"javac could not compile {build.sources} (exit {result.returncode}):\n{tail}")
        partial = jar.with_name(jar.name + ".partial")
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\nCreated-By: shoplake jars\n\n")
            for compiled in sorted(Path(classes).rglob("*.class")):
                archive.write(compiled, compiled.relative_to(classes).as_posix())
        partial.replace(jar)
    stamp.write_text(digest)
    return jar
