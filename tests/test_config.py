"""Config parsing and validation: no Spark needed."""

from __future__ import annotations

import pytest

from dedup_spark.config import build_config, resolve_config
from dedup_spark.config_checks import parse_size
from dedup_spark.errors import ConfigError

BASE = {"input.path": "in.jsonl", "output.path": "out"}


def test_defaults_and_overrides_apply_in_order(tmp_path):
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text("input:\n  text_column: body\n  id_column: url\ningest:\n  shard_size: 64MB\n")
    config = resolve_config(
        str(yaml_file),
        {"input.path": "in", "output.path": "out", "output.format": None},
        ["input.text_column=content", "output.keep_work=yes"],
    )
    assert config.input.text_column == "content"  # --set beats YAML
    assert config.input.id_column == "url"  # YAML beats defaults
    assert config.ingest.shard_size == 64_000_000
    assert config.output.keep_work is True
    assert config.output.format == "parquet"  # None from the CLI keeps the default


def test_set_null_clears_optional_values():
    config = build_config({**BASE, "input.id_column": "null"})
    assert config.input.id_column is None


@pytest.mark.parametrize(
    ("value", "expected"), [("128MB", 128_000_000), ("1GiB", 2**30), ("4096", 4096), (2048, 2048), ("1.5kb", 1500)]
)
def test_sizes(value, expected):
    assert parse_size("k", value) == expected


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"input.text_colum": "x"}, "Did you mean 'input.text_column'"),
        ({"input.format": "csv"}, "input.format='csv' is not one of"),
        ({"output.overwrite": "maybe"}, "expected true or false"),
        ({"ingest.shard_size": "lots"}, "expected a size"),
        ({"ingest.shard_size": "10"}, "too small"),
        ({"input.duplicate_ids": "ignore"}, "input.duplicate_ids"),
        ({"input.id_column": "text"}, "must be different"),
        ({"input.text_column": "_dd_text"}, "reserved"),
        ({"stages": "neardup,nope"}, "unknown stage"),
        ({"input.json_schema_sampling_ratio": "0"}, "sampling_ratio"),
        ({"nosection": "1"}, "unknown setting"),
        ({"exactsubstr.min_length": "20", "exactsubstr.minimizer_width": "21"}, "at most exactsubstr.min_length"),
        ({"exactsubstr.chunk_size": "1GiB"}, None),
        ({"exactsubstr.chunk_size": "1.1GiB"}, "above 1073741824 bytes"),
        ({"output.mode": "mark"}, "output.mode='mark' is not one of remove, annotate"),
        ({"output.mode": "annotate", "exactsubstr.passes": "2"}, "needs exactsubstr.passes=1"),
        ({"output.mode": "annotate", "exactsubstr.passes": "2", "stages": "neardup"}, None),  # no ExactSubstr: fine
    ],
)
def test_invalid_settings_name_the_key(settings, message):
    if message is None:  # legal: the largest chunk size, a setting that goes with no other
        build_config({**BASE, **settings})
        return
    with pytest.raises(ConfigError, match=message):
        build_config({**BASE, **settings})


@pytest.mark.parametrize(
    ("settings", "width"),
    [
        ({}, 32),
        ({"exactsubstr.min_length": "300"}, 32),
        ({"exactsubstr.min_length": "20"}, 6),
        ({"exactsubstr.min_length": "2"}, 1),
        ({"exactsubstr.minimizer_width": "7"}, 7),
    ],
)
def test_minimizer_width_follows_min_length_unless_set(settings, width):
    assert build_config({**BASE, **settings}).exactsubstr.width == width


def test_missing_input_and_output_are_config_errors():
    with pytest.raises(ConfigError, match="--input"):
        build_config({"output.path": "out"})
    with pytest.raises(ConfigError, match="--output"):
        build_config({"input.path": "in"})


def test_bad_set_syntax_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="section.key=value"):
        resolve_config(None, BASE, ["no-equals-sign"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("input: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        resolve_config(str(bad), BASE, [])
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_config(str(tmp_path / "missing.yaml"), BASE, [])


def test_output_may_not_be_the_input(tmp_path):
    with pytest.raises(ConfigError, match="overlap"):
        build_config({"input.path": str(tmp_path), "output.path": str(tmp_path)})
