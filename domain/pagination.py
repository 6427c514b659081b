"""Cursor pagination, the same for every list: newest first, ordered by (created_at, id).

`starting_after=<id>` gives the page after that object (older ones); `ending_before=<id>` the
page before it (newer ones). `has_more` says whether more objects lie in the direction of
travel. Ordering is total (the id breaks ties of created_at), so pages never repeat or skip an
object that existed when the first page was read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from enum import StrEnum
from typing import Generic, Sequence, TypeVar

LIMIT_DEFAULT = 10
LIMIT_MAX = 100

T = TypeVar("T")


class Direction(StrEnum):
    # Towards older objects: the default, and `starting_after`.
    OLDER = "older"
    # Towards newer objects: `ending_before`.
    NEWER = "newer"


@dataclass(frozen=True)
class PageRequest:
    limit: int = LIMIT_DEFAULT
    starting_after: str | None = None
    ending_before: str | None = None
    created_gte: datetime | None = None
    created_lte: datetime | None = None

    def __post_init__(self) -> None:
        assert 1 <= self.limit <= LIMIT_MAX, self.limit
        assert not (self.starting_after and self.ending_before), "one cursor at most"
        for value in (self.created_gte, self.created_lte):
            assert value is None or value.tzinfo is not None, "created filters must be timezone-aware"

    @property
    def cursor_id(self) -> str | None:
        return self.starting_after or self.ending_before

    @property
    def direction(self) -> Direction:
        return Direction.NEWER if self.ending_before else Direction.OLDER


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    has_more: bool


def cut_page(rows: Sequence[T], *, request: PageRequest) -> Page[T]:
    """`rows` were fetched in the direction of travel, `limit + 1` at most: the extra one only
    tells whether there is more. The page is always returned newest first."""
    assert len(rows) <= request.limit + 1
    has_more = len(rows) > request.limit
    items = list(rows[: request.limit])
    if request.direction is Direction.NEWER:
        items.reverse()
    return Page(items=items, has_more=has_more)


def as_utc(value: datetime) -> datetime:
    """A filter time in UTC; a naive time is taken to be UTC already. Raises OverflowError for
    times so close to year 1 or 9999 that UTC falls outside what datetime can hold."""
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)
