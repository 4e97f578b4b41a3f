"""The one option type: conversion, choices and checks, and the message that refuses."""

from __future__ import annotations

import pytest

from qsm_eval.options import Option, OptionError, at_least_one, parse_bool


def test_convert_gives_typed_values_and_the_default_for_none():
    level = Option("demo_level", int, 2, choices=(1, 2, 3))
    assert level.flag == "--qsm-demo-level"
    assert level.convert(None) == 2 and level.convert("3") == 3 and level.convert(1) == 1
    gates = Option("demo_gate", str, None, multiple=True)
    assert gates.convert("a") == ["a"] and gates.convert(["a", "b"]) == ["a", "b"]
    assert Option("demo_switch", parse_bool, False, switch=True).convert("yes") is True


@pytest.mark.parametrize("option, raw, allowed", [
    (Option("demo_level", int, 2, choices=(1, 2, 3)), 7, "1, 2, 3"),
    (Option("demo_level", int, 2, choices=(1, 2, 3)), "loud", "1, 2, 3"),
    # int(2.5) would truncate to 2: a number that changes on conversion is refused.
    (Option("demo_count", int, 1, check=at_least_one, allowed="an integer >= 1"), 2.5, "an integer >= 1"),
    (Option("demo_count", int, 1, check=at_least_one, allowed="an integer >= 1"), 0, "an integer >= 1"),
    (Option("demo_ratio", float, 0.5), "half", "a number"),
    (Option("demo_switch", parse_bool, False), "perhaps", "true or false"),
])
def test_a_refused_value_names_the_flag_the_key_and_what_is_allowed(option, raw, allowed):
    with pytest.raises(OptionError) as caught:
        option.convert(raw)
    flag = option.flag
    assert str(caught.value) == (f"{flag} / [tool.qsm_eval] {option.name} = {raw!r} is not allowed; "
                                 f"allowed: {allowed}")


def test_each_value_of_a_repeatable_option_is_checked():
    option = Option("demo_size", int, None, multiple=True, check=at_least_one, allowed="positive")
    assert option.convert(["1", "2"]) == [1, 2]
    with pytest.raises(OptionError, match="demo_size = '0'"):
        option.convert(["1", "0"])


def test_parse_bool_reads_the_usual_spellings():
    assert [parse_bool(v) for v in ("1", "true", "Yes", "on", True)] == [True] * 5
    assert [parse_bool(v) for v in ("0", "false", "NO", "off", "", False)] == [False] * 6
    with pytest.raises(ValueError, match="'maybe' is not a boolean"):
        parse_bool("maybe")
