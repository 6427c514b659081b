"""Assertions the API tests share."""

from __future__ import annotations

import re

import pytest

REQUEST_ID = re.compile(r"^req_[A-Za-z0-9]{24}$")
ERROR_FIELDS = {"type", "code", "message", "param", "request_id"}


def assert_error(response, status: int, *, code: str | None = None, type: str | None = None) -> dict:
    """The one error shape, with the response's request id and nothing of a stack trace."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == ERROR_FIELDS, body
    assert body["error"]["request_id"] == response.headers["x-request-id"]
    assert REQUEST_ID.match(body["error"]["request_id"])
    assert "Traceback" not in response.text
    if code is not None:
        assert body["error"]["code"] == code, body
    if type is not None:
        assert body["error"]["type"] == type, body
    return body["error"]


def by_id(cases):
    return pytest.mark.parametrize("case", cases, ids=[case.id for case in cases])


def owner_headers(case, world) -> dict[str, str]:
    return world.admin_headers if case.auth == "platform" else world.owner.headers
