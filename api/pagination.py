"""Lists: one dependency for the cursor and created-time parameters, one response shape.

    async def list_things(principal: ..., page: PageParams) -> ThingList:
        result = await list_things_repo(pool, tenant_id=..., page=page)
        return ThingList.of(result, url="/v1/things", item=ThingRead.of)
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Callable, Generic, Literal, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel, Field

from api.errors import invalid_request
from domain.pagination import LIMIT_DEFAULT, LIMIT_MAX, Page, PageRequest, as_utc
from domain.tenants import OBJECT_ID_LENGTH_MAX, OBJECT_ID_PATTERN

ItemT = TypeVar("ItemT", bound=BaseModel)


def _utc(value: datetime | None, *, param: str) -> datetime | None:
    if value is None:
        return None
    try:
        return as_utc(value)
    except (OverflowError, ValueError):
        raise invalid_request(f"{param} is out of range", param=param) from None


def page_request(
    limit: Annotated[int, Query(ge=1, le=LIMIT_MAX, description=f"Objects per page, 1 to {LIMIT_MAX}.")] = LIMIT_DEFAULT,
    starting_after: Annotated[
        str | None,
        Query(
            pattern=OBJECT_ID_PATTERN,
            max_length=OBJECT_ID_LENGTH_MAX,
            description="A cursor: the id of the last object of the previous page; returns older objects.",
        ),
    ] = None,
    ending_before: Annotated[
        str | None,
        Query(
            pattern=OBJECT_ID_PATTERN,
            max_length=OBJECT_ID_LENGTH_MAX,
            description="A cursor: the id of the first object of the previous page; returns newer objects.",
        ),
    ] = None,
    created_gte: Annotated[
        datetime | None, Query(description="Only objects created at or after this time (ISO 8601; UTC if no offset).")
    ] = None,
    created_lte: Annotated[
        datetime | None, Query(description="Only objects created at or before this time (ISO 8601; UTC if no offset).")
    ] = None,
) -> PageRequest:
    if starting_after and ending_before:
        raise invalid_request("Give starting_after or ending_before, not both.", param="ending_before")
    return PageRequest(
        limit=limit,
        starting_after=starting_after,
        ending_before=ending_before,
        created_gte=_utc(created_gte, param="created_gte"),
        created_lte=_utc(created_lte, param="created_lte"),
    )


PageParams = Annotated[PageRequest, Depends(page_request)]


class ListResponse(BaseModel, Generic[ItemT]):
    object: Literal["list"] = "list"
    data: list[ItemT] = Field(description="The page, newest first.")
    has_more: bool = Field(description="Whether more objects lie beyond this page in the direction of travel.")
    url: str = Field(description="The path this list lives at.")

    @classmethod
    def of(cls, page: Page[Any], *, url: str, item: Callable[[Any], ItemT]) -> "ListResponse[ItemT]":
        return cls(data=[item(value) for value in page.items], has_more=page.has_more, url=url)
