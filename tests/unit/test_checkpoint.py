"""What a stream's checkpoint says: the query's id, read from its metadata file as Spark wrote it."""

from __future__ import annotations

import pytest

from pipeline.streaming.checkpoint import has_query_metadata, query_id


def test_the_query_id_is_read_from_the_checkpoint_metadata(spark, tmp_path) -> None:
    (tmp_path / "metadata").write_text('{"id":"5d1c7e0a-2f7b-4c55-9a43-1d6f0e9b2c11"}\n')
    assert has_query_metadata(spark, str(tmp_path))
    assert query_id(spark, str(tmp_path)) == "5d1c7e0a-2f7b-4c55-9a43-1d6f0e9b2c11"
    assert query_id(spark, f"file://{tmp_path}/") == "5d1c7e0a-2f7b-4c55-9a43-1d6f0e9b2c11"


@pytest.mark.parametrize(
    ("content", "error"),
    [(None, "has no query metadata"), ("", "unreadable query metadata"), ('{"name": "x"}', "unreadable")],
)
def test_a_checkpoint_without_readable_query_metadata_is_a_clear_error(spark, tmp_path, content, error) -> None:
    if content is not None:
        (tmp_path / "metadata").write_text(content)
    with pytest.raises(RuntimeError, match=error):
        query_id(spark, str(tmp_path))
