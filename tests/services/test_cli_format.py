from datetime import datetime, timedelta, timezone

from services.cli_format import (go_duration, human_bytes, human_number, human_time,
                                 human_until, table)

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)


def test_human_bytes_truncates_like_go():
    assert human_bytes(98_362_432) == "98 MB"
    assert human_bytes(1_900_000_000) == "1.9 GB"
    assert human_bytes(19_990_000_000) == "19 GB"  # int(value), not rounded
    assert human_bytes(1_000) == "1 KB"  # whole values have no decimals
    assert human_bytes(512) == "512 B"


def test_human_number():
    assert human_number(7_000_000_000) == "7B"
    assert human_number(1_500_000_000) == "1.5B"
    assert human_number(134_515_008) == "134.52M"
    assert human_number(12_345) == "12K"
    assert human_number(999) == "999"


def ago(**delta) -> str:
    return human_time((NOW - timedelta(**delta)).isoformat(), "Never", NOW)


def test_relative_times_use_ollamas_words():
    assert ago(seconds=0.5) == "Less than a second ago"
    assert ago(seconds=1) == "1 second ago"
    assert ago(minutes=1, seconds=30) == "About a minute ago"
    assert ago(minutes=2) == "2 minutes ago"
    assert ago(minutes=61) == "About an hour ago"
    assert ago(days=1) == "24 hours ago"
    assert ago(days=3) == "3 days ago"
    assert ago(days=20) == "2 weeks ago"
    assert ago(days=90) == "3 months ago"
    assert ago(days=800) == "2 years ago"


def test_until_column():
    assert human_until((NOW + timedelta(minutes=4, seconds=30)).isoformat(), NOW) == "4 minutes from now"
    assert human_until("2318-01-01T00:00:00Z", NOW) == "Forever"
    assert human_until((NOW - timedelta(seconds=1)).isoformat(), NOW) == "Stopping..."


def test_go_duration_strings():
    assert go_duration(0) == "0s"
    assert go_duration(500) == "500ns"
    assert go_duration(1_500) == "1.5µs"
    assert go_duration(52_300_000) == "52.3ms"
    assert go_duration(1_234_567_891) == "1.234567891s"
    assert go_duration(62_500_000_000) == "1m2.5s"
    assert go_duration(3_600_000_000_000) == "1h0m0s"


def test_table_pads_like_tablewriter():
    text = table(["NAME", "ID"], [["smollm2:135m", "abc"]])
    assert text == "NAME            ID     \nsmollm2:135m    abc    \n"


def test_table_wraps_long_cells_at_spaces():
    text = table(None, [["", "a " * 20 + "end"]], col_width=10)
    lines = text.splitlines()
    assert len(lines) > 1 and all(len(line.rstrip()) <= 4 + 10 for line in lines)
    assert " ".join(line.strip() for line in lines) == ("a " * 20 + "end").strip()
