"""``POST /api/v1/vector-stores/{id}/search`` for token calls, on the API hot path (config/hot_path.py).

The search runs through the same service as the ninja endpoint (knowledge_app.search.search, on the request's
database thread) and is answered with the same schema. Anything it refuses (a store the token cannot see, bad
options) goes to Django, which answers the error: the search and its log are one transaction, so nothing was
written.
"""

from __future__ import annotations

import re

from config.db import db_call
from config.hot_path import HandOver, HotCall, Route
from knowledge_app import search
from knowledge_app.api import search_answer
from knowledge_app.schemas import VectorSearchOut, VectorSearchQuery


async def serve_search(call: HotCall) -> None:
    """Search the store and answer with the results (200); raises HandOver otherwise."""
    payload = call.payload(VectorSearchQuery)
    actor = await call.actor()
    try:
        hits = await db_call(search.search, actor=actor, store_id=int(call.match.group(1)), **payload.search_options())
    except Exception:
        raise HandOver from None  # rolled back: the full stack answers with the error
    await call.answer(200, VectorSearchOut.model_validate(search_answer(payload, hits)).model_dump())


SEARCH_ROUTE = Route(re.compile(r"/api/v1/vector-stores/([0-9]{1,18})/search"), serve_search)
