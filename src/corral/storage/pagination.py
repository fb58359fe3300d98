"""OpenAI-style list pages: `after` is the id of the last item already seen, in the requested order."""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa


async def keyset_page(
    connection: Any,
    base: sa.Select[Any],
    *,
    keys: Sequence[sa.ColumnElement[Any]],
    cursor: Sequence[Any] | None,
    limit: int,
    order: str,
) -> tuple[list[Any], bool]:
    """Rows of `base` ordered by `keys`, strictly after the `cursor` key values; (rows, has_more)."""
    statement = base
    if cursor is not None:
        left = sa.tuple_(*keys) if len(keys) > 1 else keys[0]
        right = sa.tuple_(*cursor) if len(keys) > 1 else cursor[0]
        statement = statement.where(left > right if order == "asc" else left < right)
    ordering = [key.asc() if order == "asc" else key.desc() for key in keys]
    rows = list((await connection.execute(statement.order_by(*ordering).limit(limit + 1))).all())
    return rows[:limit], len(rows) > limit


async def item_page(
    connection: Any,
    *,
    item: sa.ColumnElement[Any],
    item_id: sa.ColumnElement[Any],
    position: sa.ColumnElement[Any],
    where: sa.ColumnElement[bool],
    after: str | None,
    limit: int,
    order: str,
) -> tuple[list[Any], bool]:
    """A page of stored items ordered by position, `after` naming the last item id already seen."""
    cursor = None
    if after is not None:
        found = await connection.scalar(sa.select(position).where(where, item_id == after))
        cursor = None if found is None else (found,)
    rows, has_more = await keyset_page(
        connection, sa.select(item).where(where), keys=[position], cursor=cursor, limit=limit, order=order
    )
    return [row[0] for row in rows], has_more
