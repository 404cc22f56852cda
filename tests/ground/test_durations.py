"""One duration grammar, three contracts (fleet: strict; ConfigMap: lenient; flags)."""

from __future__ import annotations

import pytest

from syncer import durations

# (text, fleet, ConfigMap with default 99, command line)
CASES = [
    ("500us", 0.0005, 0.0005, ValueError),
    ("10", None, 10.0, 10.0),
    ("-5s", None, 99.0, ValueError),
    (" 5m", None, 300.0, 300.0),
    ("1h30m", 5400.0, 5400.0, 5400.0),
    ("250ms", 0.25, 0.25, 0.25),
    ("1.5h", 5400.0, 5400.0, 5400.0),
    ("10m5", None, 99.0, ValueError),
    ("", None, 99.0, ValueError),
    ("5 m", None, 99.0, ValueError),
]


@pytest.mark.parametrize("text,fleet,configmap,flag", CASES)
def test_each_reader_keeps_its_contract(
    text: str, fleet: float | None, configmap: float, flag: float | type[Exception]
) -> None:
    assert durations.seconds(text) == (pytest.approx(fleet) if fleet is not None else None)
    assert durations.seconds_or(text, 99.0) == pytest.approx(configmap)
    if isinstance(flag, type):
        with pytest.raises(flag, match="examples: 30s"):
            durations.parse_flag(text)
    else:
        assert durations.parse_flag(text) == pytest.approx(flag)


def test_configmap_reader_takes_numbers_and_ignores_booleans() -> None:
    assert durations.seconds_or(12, 1.0) == 12.0
    assert durations.seconds_or(True, 1.0) == 1.0
    assert durations.seconds_or(None, 1.0) == 1.0


@pytest.mark.parametrize("seconds", [0.25, 1, 59, 60, 90, 3600, 5400, 86399])
def test_format_round_trips_through_the_flag_reader(seconds: float) -> None:
    assert durations.parse_flag(durations.format_duration(seconds)) == pytest.approx(seconds)
