"""Schedule fields and fire times on a fake clock: DST, catch-up after downtime, checks."""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from aioqueue.engine.schedspec import (
    ScheduleFieldError, check_name, due, last_fire_ms, next_fire_ms, parse_spec,
)

BERLIN = ZoneInfo("Europe/Berlin")


def ms(*args, tz=timezone.utc) -> int:
    return round(datetime(*args, tzinfo=tz).timestamp() * 1000)


def local(stamp_ms: int, tz=BERLIN) -> str:
    return datetime.fromtimestamp(stamp_ms / 1000, tz).isoformat()


def walk(spec, start_ms: int, count: int) -> list[str]:
    out, at = [], start_ms
    for _ in range(count):
        at = next_fire_ms(spec, at)
        out.append(local(at))
    return out


def test_a_fixed_time_skipped_by_spring_forward_runs_right_after_the_jump():
    spec = parse_spec({"process": "echo", "cron": "30 2 * * *", "timezone": "Europe/Berlin"})
    assert walk(spec, ms(2026, 3, 28, 12, tz=BERLIN), 3) == [
        "2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00", "2026-03-31T02:30:00+02:00"]


def test_a_fixed_time_repeated_by_fall_back_runs_once():
    spec = parse_spec({"process": "echo", "cron": "30 2 * * *", "timezone": "Europe/Berlin"})
    assert walk(spec, ms(2026, 10, 24, 12, tz=BERLIN), 2) == [
        "2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"]


def test_a_wildcard_hour_runs_in_both_hours_of_a_fall_back():
    spec = parse_spec({"process": "echo", "cron": "*/30 * * * *", "timezone": "Europe/Berlin"})
    fires = walk(spec, ms(2026, 10, 25, 1, 50, tz=BERLIN), 6)
    assert fires == ["2026-10-25T02:00:00+02:00", "2026-10-25T02:30:00+02:00",
                     "2026-10-25T02:00:00+01:00", "2026-10-25T02:30:00+01:00",
                     "2026-10-25T03:00:00+01:00", "2026-10-25T03:30:00+01:00"]


def test_the_latest_fire_time_is_found_directly_across_a_dst_change():
    spec = parse_spec({"process": "echo", "cron": "30 2 * * *", "timezone": "Europe/Berlin"})
    assert local(last_fire_ms(spec, ms(2026, 3, 29, 12, tz=BERLIN))) == \
        "2026-03-29T03:00:00+02:00"
    # a minutely cron a year later is one step, not half a million
    minutely = parse_spec({"process": "echo", "cron": "* * * * *"})
    assert last_fire_ms(minutely, ms(2027, 1, 1, 0, 0, 30)) == ms(2027, 1, 1, 0, 0)


def test_every_s_fires_on_multiples_of_the_interval_since_the_epoch():
    spec = parse_spec({"process": "echo", "every_s": 60})
    assert next_fire_ms(spec, ms(2026, 1, 1, 0, 0, 30)) == ms(2026, 1, 1, 0, 1)
    assert next_fire_ms(spec, ms(2026, 1, 1, 0, 1)) == ms(2026, 1, 1, 0, 2)


def test_catch_up_last_fires_the_latest_missed_firing_once_after_downtime():
    spec = parse_spec({"process": "echo", "cron": "0 * * * *"})
    missed_since = ms(2026, 1, 1, 3)  # down from before 03:00 to 07:20: five missed
    fire_at, following = due(spec, missed_since, ms(2026, 1, 1, 7, 20), recovering=True)
    assert fire_at == ms(2026, 1, 1, 7)
    assert following == ms(2026, 1, 1, 8)


def test_catch_up_none_skips_every_missed_firing_after_downtime():
    spec = parse_spec({"process": "echo", "cron": "0 * * * *", "catch_up": "none"})
    fire_at, following = due(spec, ms(2026, 1, 1, 3), ms(2026, 1, 1, 7, 20), recovering=True)
    assert fire_at is None
    assert following == ms(2026, 1, 1, 8)


def test_a_running_server_fires_at_the_fire_time_whatever_catch_up_says():
    spec = parse_spec({"process": "echo", "cron": "0 * * * *", "catch_up": "none"})
    at = ms(2026, 1, 1, 3)
    assert due(spec, at, at, recovering=False) == (at, ms(2026, 1, 1, 4))
    assert due(spec, at, at - 1, recovering=False) == (None, at)  # not yet


def test_a_schedule_changed_between_firings_fires_on_its_new_times():
    hourly = parse_spec({"process": "echo", "cron": "0 * * * *"})
    nightly = parse_spec({"process": "echo", "cron": "0 3 * * *"})
    now = ms(2026, 1, 1, 1, 30)
    assert next_fire_ms(hourly, now) == ms(2026, 1, 1, 2)
    assert next_fire_ms(nightly, now) == ms(2026, 1, 1, 3)  # the replaced spec's next time


@pytest.mark.parametrize(("body", "field"), [
    ({"cron": "* * * * *"}, "process"),
    ({"process": "echo"}, "every_s"),
    ({"process": "echo", "cron": "* * * * *", "every_s": 5}, "cron"),
    ({"process": "echo", "cron": "61 * * * *"}, "cron"),
    ({"process": "echo", "cron": "* * * * * *"}, "cron"),
    ({"process": "echo", "cron": 5}, "cron"),
    ({"process": "echo", "every_s": 0}, "every_s"),
    ({"process": "echo", "every_s": True}, "every_s"),
    ({"process": "echo", "every_s": 10, "timezone": "Mars/Olympus"}, "timezone"),
    ({"process": "echo", "every_s": 10, "timezone": "../../etc/passwd"}, "timezone"),
    ({"process": "echo", "every_s": 10, "catch_up": "all"}, "catch_up"),
    ({"process": "echo", "every_s": 10, "max_attempts": 0}, "max_attempts"),
    ({"process": "echo", "every_s": 10, "priority": 2**40}, "priority"),
    ({"process": "echo", "every_s": 10, "colour": "red"}, "colour"),
])
def test_an_invalid_field_is_named(body, field):
    with pytest.raises(ScheduleFieldError) as raised:
        parse_spec(body)
    assert raised.value.details == {"field": field}
    assert raised.value.message.startswith(f"{field}:")


@pytest.mark.parametrize("name", ["", "-x", "a" * 101, "a/b", "é"])
def test_a_bad_name_is_refused(name):
    with pytest.raises(ScheduleFieldError):
        check_name(name)
