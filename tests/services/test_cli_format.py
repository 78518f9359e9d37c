from datetime import datetime, timedelta, timezone

from services.cli_format import human_bytes, human_time_ago, human_until, table

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)


def test_human_bytes_uses_decimal_units():
    assert human_bytes(98_362_432) == "98 MB"
    assert human_bytes(1_900_000_000) == "1.9 GB"
    assert human_bytes(512) == "512 B"


def test_relative_times():
    assert human_time_ago((NOW - timedelta(minutes=2)).isoformat(), NOW) == "2 minutes ago"
    assert human_time_ago((NOW - timedelta(days=1)).isoformat(), NOW) == "1 day ago"
    assert human_until((NOW + timedelta(minutes=4, seconds=30)).isoformat(), NOW) == "4 minutes from now"
    assert human_until("2318-01-01T00:00:00Z", NOW) == "Forever"


def test_table_aligns_columns():
    lines = table(["NAME", "ID"], [["smollm2:135m", "abc"]]).splitlines()
    assert lines[0].index("ID") == lines[1].index("abc") == len("smollm2:135m") + 3
