"""The project's test suites by name, run one after the other in one environment, each with its wall time.

``tox -e suites`` (what ``make test`` runs) calls this with the default suites; ``tox -e suites -- extended``
runs others in the same environment. The run stops at the first suite that fails, and always ends with a table
of the suites' wall times (each pytest suite also prints its slowest tests).
"""

from __future__ import annotations

import subprocess
import sys
import time

_DURATIONS = "--durations=10"
SUITES: dict[str, list[list[str]]] = {
    "lint": [["ruff", "check", "."], ["ruff", "format", "--check", "."], ["mypy"]],
    "unit": [["pytest", "tests/unit", _DURATIONS]],
    "integration": [["pytest", "tests/integration", "-m", "integration and not faults and not extended", _DURATIONS]],
    "extended": [["pytest", "tests/integration", "-m", "integration and extended", _DURATIONS]],
    "bench-quick": [["pytest", "benchmarks", "tests/perf", "-m", "perf and not cluster", _DURATIONS]],
}
DEFAULT = ["lint", "unit", "integration", "bench-quick"]


def run(names: list[str]) -> int:
    """Run the suites ``names`` in order; returns the exit code of the first that fails (0 when all pass)."""
    unknown = [name for name in names if name not in SUITES]
    if unknown:
        print(f"unknown suite(s) {', '.join(unknown)}; known: {', '.join(SUITES)}", file=sys.stderr)
        return 2
    timings: list[tuple[str, float, int]] = []
    code = 0
    for name in names:
        started = time.monotonic()
        for command in SUITES[name]:
            print(f"\n== {name}: {' '.join(command)}", flush=True)
            code = subprocess.run(command, check=False).returncode
            if code:
                break
        timings.append((name, time.monotonic() - started, code))
        if code:
            break
    print("\n== suite wall times")
    for name, seconds, suite_code in timings:
        print(f"{name:>12}  {int(seconds // 60):2d}:{seconds % 60:04.1f}  {'ok' if suite_code == 0 else 'FAILED'}")
    print(f"{'total':>12}  {int(sum(t for _, t, _ in timings) // 60):2d}:{sum(t for _, t, _ in timings) % 60:04.1f}")
    return code


def main() -> None:
    sys.exit(run(sys.argv[1:] or DEFAULT))


if __name__ == "__main__":
    main()
