"""The Stage contract's column check: the pipeline names what a stage lacks before it does any work."""

from types import SimpleNamespace

import pytest

from dedup_spark.config import build_config
from dedup_spark.errors import InputError
from dedup_spark.exactsubstr.stage import ExactSubstr
from dedup_spark.neardup.stage import NearDup
from dedup_spark.stage import check_columns

CONFIG = build_config({"input.path": "in", "output.path": "out", "input.text_column": "body"})


@pytest.mark.parametrize("stage", [NearDup(), ExactSubstr()], ids=lambda s: s.name)
def test_missing_columns_are_named_before_any_work(stage):
    check_columns(stage, SimpleNamespace(columns=["body", "_dd_id", "_dd_bytes", "extra"]), CONFIG)
    with pytest.raises(InputError, match=rf"{stage.name}: the documents have no column\(s\) \['body', '_dd_bytes'\]"):
        check_columns(stage, SimpleNamespace(columns=["text", "_dd_id"]), CONFIG)


def test_plans_state_the_stage_settings():
    assert "20 bands x 8 rows" in NearDup().plan(CONFIG)[0]
    assert ExactSubstr().plan(CONFIG) == [
        "min_length 100 bytes, policy keep_first, chunk_size 64.0 MiB, passes 1, min_remaining_chars 20"
    ]
