"""Exchange's patterns as model rules (the table EWS and Graph share): the shapes, the
week start kept only when it changes the weeks, and each refusal naming its field."""

from __future__ import annotations

import pytest

from hybridge.calendar.model import Recurrence
from hybridge.calendar.recurrence import RecurrenceError
from hybridge.calendar.recurrence_exchange import exchange_recurrence, weeks_agree


def test_the_shapes() -> None:
    assert exchange_recurrence("absoluteMonthly", day_of_month=30) == Recurrence(
        "MONTHLY", by_month_day=(28, 29, 30), by_set_pos=(-1,)
    )
    assert exchange_recurrence("absoluteMonthly", day_of_month=28) == Recurrence(
        "MONTHLY", by_month_day=(28,)
    )
    # Only February is shorter than a yearly date can be.
    assert exchange_recurrence("absoluteYearly", day_of_month=31, month=1) == Recurrence(
        "YEARLY", by_month=(1,), by_month_day=(31,)
    )
    assert exchange_recurrence(
        "relativeYearly", days=("TH",), month=11, set_position=4, count=3
    ) == Recurrence("YEARLY", by_day=("TH",), by_month=(11,), by_set_pos=(4,), count=3)


def test_the_week_start_is_kept_only_when_it_changes_the_weeks() -> None:
    assert weeks_agree(2, ("WE", "FR"), "SU")
    assert not weeks_agree(2, ("MO", "SU"), "SU")
    assert weeks_agree(1, ("MO", "SU"), "SU")  # every week: any grouping gives the same days
    assert exchange_recurrence("weekly", interval=2, days=("WE", "FR")).week_start == "MO"
    kept = exchange_recurrence("weekly", interval=2, days=("MO", "SU"), first_day_of_week="SU")
    assert kept.week_start == "SU"


@pytest.mark.parametrize(
    ("pattern", "kwargs", "field", "message"),
    [
        ("weekly", {}, "by_day", "a weekly pattern needs at least one day"),
        ("relativeMonthly", {}, "by_day", "a relativeMonthly pattern needs at least one day"),
        ("absoluteMonthly", {"day_of_month": 0}, "by_month_day", "day of month 0 must be 1..31"),
        ("absoluteYearly", {"day_of_month": 1}, "by_month", "absoluteYearly month None must be"),
        ("hourly", {}, "frequency", "pattern 'hourly' must be one of"),
    ],
)
def test_refusals_name_the_field(
    pattern: str, kwargs: dict[str, object], field: str, message: str
) -> None:
    with pytest.raises(RecurrenceError, match=message) as caught:
        exchange_recurrence(pattern, **kwargs)  # type: ignore[arg-type]
    assert caught.value.field == field
