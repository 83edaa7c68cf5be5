"""The portal and the join page show a series' rule in words, on the real app: a monthly
"last weekday" meeting PUT by a connector in wire format 2, and a weekly one in format 1."""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlsplit

from cloud_helpers import Cloud, login
from test_calendar_api import as_connector, enable, enroll, meeting, put

from hybridge.calendar.model import Recurrence, zone

BERLIN = zone("Europe/Berlin")
LAST_WEEKDAY = Recurrence("MONTHLY", by_day=("MO", "TU", "WE", "TH", "FR"), by_set_pos=(-1,))


def test_the_meetings_list_and_join_page_say_the_rule_in_words(cloud: Cloud) -> None:
    _, cert = enroll(cloud)
    as_connector(cloud, cert)
    enable(cloud, "Acme", "alice@acme.test")
    start = dt.datetime(2026, 12, 31, 10, tzinfo=BERLIN)
    monthly = meeting(start=start, end=start + dt.timedelta(hours=1), recurrence=LAST_WEEKDAY)
    answer = put(cloud, monthly)
    assert answer.status_code == 200, answer.text
    join_url = answer.json()["join_details"]["join_url"]
    weekly = meeting(
        meeting_id="weekly-1",
        uid="uid-weekly",
        subject="Jour fixe",
        recurrence=Recurrence("WEEKLY", by_day=("MO",), count=4),
    )
    assert put(cloud, weekly).status_code == 200
    login(cloud.client, "alice@acme.test")
    listed = cloud.client.get("/portal/api/calendar/users/alice@acme.test/meetings").json()
    rows = {row["meeting_id"]: row for row in listed["meetings"]}
    assert rows[monthly.meeting_id]["repeats"] == "Monthly on the last weekday"
    assert rows[monthly.meeting_id]["recurrence"] == "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1"
    assert rows["weekly-1"]["repeats"] == "Weekly on Monday, 4 times"
    page = cloud.client.get("/calendar/users/alice@acme.test/meetings").text
    assert "Monthly on the last weekday" in page and "Weekly on Monday, 4 times" in page
    join_page = cloud.client.get(urlsplit(join_url).path)
    assert join_page.status_code == 200
    assert "Monthly on the last weekday; the times are its first occurrence." in join_page.text
