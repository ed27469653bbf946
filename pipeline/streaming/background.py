"""The stream's work off the micro-batch's path: one thread, one piece of work at a time, failures surfaced.

Folding the roll-ups, the tables' hygiene and each batch's ``ops.stream_batches`` row run here, in the order they
were submitted, while the next micro-batch runs. The thread is a daemon (a process may exit before its work ends;
everything it writes is idempotent and redone by the next run), and it runs its Spark jobs in the background
scheduler pool, so a fold takes a fair share of the cores beside a batch instead of holding them.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import Counter
from collections.abc import Callable

from pyspark.sql import SparkSession

from pipeline.errors import ShoplakeError
from pipeline.spark_session import in_background_pool

log = logging.getLogger(__name__)


class BackgroundWorkError(ShoplakeError):
    """Work the stream ran in the background failed (its cause is chained)."""


class BackgroundWorker:
    """Runs submitted work in one daemon thread, in order; the first failure is raised by the next call of
    :meth:`raise_failure`, :meth:`submit` or :meth:`drain`."""

    def __init__(self, spark: SparkSession, name: str = "stream-background") -> None:
        self._spark = spark
        self._name = name
        self._queue: queue.Queue[tuple[str, Callable[[], object]]] = queue.Queue()
        self._pending: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._failure: tuple[str, BaseException] | None = None
        self._thread: threading.Thread | None = None

    def submit(self, name: str, work: Callable[[], object]) -> None:
        """Queue ``work`` (``name`` says what it is, in errors and to :meth:`is_pending`)."""
        self.raise_failure()
        with self._lock:
            self._pending[name] += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
        self._queue.put((name, work))

    def is_pending(self, name: str) -> bool:
        """Whether work of that name is queued or running."""
        with self._lock:
            return self._pending[name] > 0

    def drain(self) -> None:
        """Wait until everything submitted has run; raise the first failure."""
        self._queue.join()
        self.raise_failure()

    def raise_failure(self) -> None:
        with self._lock:
            failure, self._failure = self._failure, None
        if failure is not None:
            name, error = failure
            raise BackgroundWorkError(f"{name} failed in the background: {error}") from error

    def _run(self) -> None:
        in_background_pool(self._spark)
        while True:
            name, work = self._queue.get()
            try:
                work()
            except BaseException as error:  # handed to the stream by raise_failure
                log.exception("%s failed in the background", name)
                with self._lock:
                    if self._failure is None:
                        self._failure = (name, error)
            finally:
                with self._lock:
                    self._pending[name] -= 1
                self._queue.task_done()
