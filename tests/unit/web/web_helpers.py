"""A minimal role app built from the shared web pieces, on a real SQLite file.

No ``from __future__ import annotations`` here: the routes are closures over ``auth``, and
FastAPI must see their ``Depends(auth...)`` annotations as objects, not strings.
"""

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Depends, FastAPI
from fastapi.testclient import TestClient

from hybridge.storage.db import Database, sqlite_url
from hybridge.web.accounts import create_admin
from hybridge.web.auth import WebAuth, WebSettings
from hybridge.web.pages import install_error_pages, login_router, make_templates, mount_static
from hybridge.web.schema import metadata, web_admin, web_login_failure, web_session
from hybridge.web.sessions import WebSession
from hybridge.web.throttle import ThrottlePolicy

PASSWORD = "correct horse battery staple"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class MovableClock:
    def __init__(self) -> None:
        self.now = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


@dataclass
class WebApp:
    client: TestClient
    database: Database
    clock: MovableClock

    def login(self, login: str = "admin@example.test", password: str = PASSWORD, **extra: str):
        page = self.client.get("/login")
        token = CSRF.search(page.text).group(1)
        return self.client.post(
            "/login",
            data={"login": login, "password": password, "csrf_token": token, **extra},
            follow_redirects=False,
        )


def build(tmp_path: Path, policy: ThrottlePolicy | None = None, *, admins: int = 1) -> WebApp:
    engine = sa.create_engine(sqlite_url(tmp_path / "web.db"))
    metadata.create_all(engine, tables=[web_admin, web_session, web_login_failure])
    database = Database(engine, "node")
    clock = MovableClock()
    with database.transaction() as db:
        for index in range(admins):
            name = "admin" if index == 0 else f"admin{index}"
            create_admin(db, f"{name}@example.test", PASSWORD, clock())
    auth = WebAuth(
        database,
        WebSettings(cookie_name="__Host-test", throttle=policy or ThrottlePolicy()),
        clock,
    )
    templates = make_templates()
    app = FastAPI()
    auth.install(app)
    install_error_pages(app, templates, auth)
    mount_static(app)
    app.include_router(login_router(auth, templates, home="/private"))
    router = APIRouter(dependencies=[Depends(auth.csrf_protect)])

    @router.get("/private")
    def private(web: Annotated[WebSession, Depends(auth.current_admin)]) -> dict[str, str]:
        return {"login": web.admin_login or ""}

    @router.post("/api/change")
    def change(web: Annotated[WebSession, Depends(auth.current_admin)]) -> dict[str, bool]:
        return {"changed": True}

    @router.get("/boom")
    def boom() -> None:
        raise RuntimeError("internal detail that must not reach the browser")

    app.include_router(router)
    client = TestClient(app, base_url="https://testserver", raise_server_exceptions=False)
    return WebApp(client, database, clock)
