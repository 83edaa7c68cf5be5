"""The portal's call-service page: set the organisation's edge, press "Test call".

The cloud app runs in-process with its call-service listener on a free loopback port
(real TLS, real SIP). With no edge process here, the organisation's "edge" for the test
call is that very listener, admitted under the name on its certificate: the button's whole
path — form, CSRF, anchors from the CA list, mutual TLS both ways, INVITE/100/180/200/ACK/
BYE/200 — runs for real.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from cloud_helpers import Cloud, MovableClock, csrf_of, login, make_cloud

from hybridge.cloud.callservice_settings import CallServiceSettings
from hybridge.demo.pki import CALLSERVICE_DNS, DemoPki
from hybridge.web.throttle import ThrottlePolicy


@pytest.fixture
def sip_cloud(
    tmp_path: Path, demo_pki: DemoPki, clock: MovableClock, seeded_database: Path
) -> Iterator[Cloud]:
    (tmp_path / "cloud").mkdir()
    shutil.copy(seeded_database, tmp_path / "cloud" / "cloud.db")
    settings = CallServiceSettings(demo_pki.callservice_cert, demo_pki.callservice_key, port=0)
    made = make_cloud(tmp_path, demo_pki, clock, throttle=ThrottlePolicy(), callservice=settings)
    with made.client:
        yield made
    made.services.database.dispose()


def _post(cloud: Cloud, path: str, data: dict[str, str]):  # type: ignore[no-untyped-def]
    token = csrf_of(cloud.client.get("/callservice").text)
    return cloud.client.post(path, data={**data, "csrf_token": token})


def test_page_without_the_call_service_says_how_to_start_it(cloud: Cloud) -> None:
    login(cloud.client, "alice@acme.test")
    page = cloud.client.get("/callservice")
    assert page.status_code == 200
    assert "It does not run in this cloud process" in page.text
    refused = _post(cloud, "/callservice/test-call", {"to": "sip:a@b.test"})
    assert refused.status_code == 409
    assert "the call service does not run in this cloud (start it with --sip-port)" in refused.text


def test_setting_the_edge_checks_the_name_and_needs_csrf(cloud: Cloud) -> None:
    login(cloud.client, "alice@acme.test")
    bad = _post(cloud, "/callservice/edge", {"subject_name": "*.acme.example"})
    assert (
        bad.status_code == 400
        and "edge subject name &#39;*.acme.example&#39; is not usable" in bad.text
    )
    no_csrf = cloud.client.post("/callservice/edge", data={"subject_name": "edge.acme.example"})
    assert no_csrf.status_code == 403
    ok = _post(cloud, "/callservice/edge", {"subject_name": "Edge.Acme.Example",
                                            "address": "127.0.0.1:5062"})  # fmt: skip
    assert ok.status_code == 200 and "Edge set: edge.acme.example" in ok.text
    # Tenancy: another organisation's admin does not see Acme's edge.
    cloud.client.post("/logout", data={"csrf_token": csrf_of(ok.text)})
    login(cloud.client, "bob@bravo.test")
    assert "edge.acme.example" not in cloud.client.get("/callservice").text


def test_test_call_button_places_a_real_call_and_lists_each_response(sip_cloud: Cloud) -> None:
    login(sip_cloud.client, "alice@acme.test")
    server = sip_cloud.client.app.state.callservice  # type: ignore[attr-defined]
    _post(sip_cloud, "/callservice/edge",
          {"subject_name": CALLSERVICE_DNS, "address": f"127.0.0.1:{server.port}"})  # fmt: skip
    page = _post(sip_cloud, "/callservice/test-call", {"to": "sip:echo@callservice.test"})
    assert page.status_code == 200, page.text
    assert "Test call completed" in page.text
    rows = re.findall(r'<td class="mono">([\d.]+)</td><td>(\w+)</td><td class="mono">([^<]+)</td>',
                      page.text)  # fmt: skip
    assert [(d, m) for _, d, m in rows] == [
        ("sent", "INVITE sip:echo@callservice.test"),
        ("received", "100 Trying (INVITE)"),
        ("received", "180 Ringing (INVITE)"),
        ("received", "200 OK (INVITE)"),
        ("sent", "ACK sip:callservice@127.0.0.1;transport=tls"),
        ("sent", "BYE sip:callservice@127.0.0.1;transport=tls"),
        ("received", "200 OK (BYE)"),
    ]
    assert server.stats.admitted["Acme"] == 1


def test_test_call_to_an_edge_of_another_name_fails_with_the_reason(sip_cloud: Cloud) -> None:
    login(sip_cloud.client, "alice@acme.test")
    server = sip_cloud.client.app.state.callservice  # type: ignore[attr-defined]
    _post(sip_cloud, "/callservice/edge",
          {"subject_name": "edge.acme.example", "address": f"127.0.0.1:{server.port}"})  # fmt: skip
    page = _post(sip_cloud, "/callservice/test-call", {"to": "sip:echo@callservice.test"})
    expected = (
        "Test call failed: edge certificate refused (name_mismatch): peer certificate identity "
        "unacceptable: presented SAN DNS:callservice.hybridge.test and CN "
        "callservice.hybridge.test; the call service expects edge.acme.example (Acme)"
    )
    assert expected in page.text.replace("&#39;", "'")
