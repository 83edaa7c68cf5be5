"""Grouping mailboxes into streaming connections (at most 200 each) and the renewal bound."""

from __future__ import annotations

import pytest

from hybridge.calendar.errors import CalendarSettingsError
from hybridge.calendar.ews.streaming import MAX_GROUP, group_mailboxes


def test_groups_hold_at_most_200_mailboxes_each() -> None:
    boxes = [f"user{i:04d}@contoso.test" for i in range(450)]
    groups = group_mailboxes(boxes)
    assert [len(g) for g in groups] == [200, 200, 50]
    assert sorted(m for g in groups for m in g) == sorted(boxes)


def test_groups_dedupe_case_insensitively() -> None:
    assert group_mailboxes(["B@x.test", "a@x.test", "b@x.test"], 2) == [("a@x.test", "b@x.test")]
    assert group_mailboxes([]) == []


@pytest.mark.parametrize("size", [0, MAX_GROUP + 1])
def test_group_size_outside_exchange_limit_is_refused(size: int) -> None:
    with pytest.raises(CalendarSettingsError, match=f"group size {size} must be 1..200"):
        group_mailboxes(["a@x.test"], size)
