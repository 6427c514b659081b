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


def page_request_for(*, id_pattern: str, id_length_max: int, noun: str = "object") -> Callable[..., PageRequest]:
    """The list dependency (limit, cursors, created range) for lists whose cursors are ids shaped
    by `id_pattern`; most lists use `page_request`, lists of other id shapes make their own."""

    def page_request(limit=LIMIT_DEFAULT, starting_after=None, ending_before=None, created_gte=None, created_lte=None) -> PageRequest:
        if starting_after and ending_before:
            raise invalid_request("Give starting_after or ending_before, not both.", param="ending_before")
        return PageRequest(
            limit=limit,
            starting_after=starting_after,
            ending_before=ending_before,
            created_gte=_utc(created_gte, param="created_gte"),
            created_lte=_utc(created_lte, param="created_lte"),
        )

    def cursor(which: str, direction: str) -> Any:
        description = f"A cursor: the id of the {which} {noun} of the previous page; returns {direction} ones."
        return Annotated[str | None, Query(pattern=id_pattern, max_length=id_length_max, description=description)]

    # Set as objects, not strings (this module postpones annotations), so FastAPI reads them as they are.
    page_request.__annotations__ = {
        "limit": Annotated[int, Query(ge=1, le=LIMIT_MAX, description=f"Objects per page, 1 to {LIMIT_MAX}.")],
        "starting_after": cursor("last", "older"),
        "ending_before": cursor("first", "newer"),
        "created_gte": Annotated[
            datetime | None, Query(description=f"Only {noun}s created at or after this time (ISO 8601; UTC if no offset).")
        ],
        "created_lte": Annotated[
            datetime | None, Query(description=f"Only {noun}s created at or before this time (ISO 8601; UTC if no offset).")
        ],
        "return": PageRequest,
    }
    return page_request


page_request = page_request_for(id_pattern=OBJECT_ID_PATTERN, id_length_max=OBJECT_ID_LENGTH_MAX)

PageParams = Annotated[PageRequest, Depends(page_request)]


class ListResponse(BaseModel, Generic[ItemT]):
    object: Literal["list"] = "list"
    data: list[ItemT] = Field(description="The page, newest first.")
    has_more: bool = Field(description="Whether more objects lie beyond this page in the direction of travel.")
    url: str = Field(description="The path this list lives at.")

    @classmethod
    def of(cls, page: Page[Any], *, url: str, item: Callable[[Any], ItemT]) -> "ListResponse[ItemT]":
        return cls(data=[item(value) for value in page.items], has_more=page.has_more, url=url)
