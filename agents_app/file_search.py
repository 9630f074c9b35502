"""The ``file_search`` tool: an agent searches one of its workspace's knowledge bases and cites what it found.

A store of ours (``vector_store_id`` an integer) is searched through ``knowledge_app.search`` (hybrid by default,
as the API's search); the model gets numbered snippets to cite as [n], the run keeps them as its citations (the
chat page shows them under the answer) and its trace gets a ``file_search`` span with the query, the chunks and
their scores. An OpenAI vector store id (``vs_...``) is searched by OpenAI's hosted FileSearchTool instead, which
only agents on an OpenAI provider (the Responses API) can use.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from agents import FileSearchTool as HostedFileSearchTool
from agents import FunctionTool, RunContextWrapper, Tool
from agents.tracing import SpanError, custom_span, get_current_span
from openai.types.responses.file_search_tool_param import RankingOptions

from agents_app.exceptions import ApplicationError
from config.db import db_call
from config.errors import InvalidInputError
from knowledge_app.models import VectorStore
from knowledge_app.search import Hit, search_store
from providers_app.models import Provider

logger = logging.getLogger(__name__)
SNIPPET_CHARS = 500  # what a citation shows of its chunk
ARGUMENTS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"query": {"type": "string", "description": "What to look for, in a few words or a question"}},
    "required": ["query"],
    "additionalProperties": False,
}


def is_hosted(params: dict[str, Any]) -> bool:
    """Return whether a file_search tool's params name an OpenAI vector store (searched by OpenAI)."""
    return isinstance(params.get("vector_store_id"), str)


def store_ids(tools: list[dict[str, Any]]) -> dict[str, int]:
    """Return the ids of our stores that stored file_search tools name, by field path
    (``tools.0.params.vector_store_id``)."""
    return {
        f"tools.{i}.params.vector_store_id": tool["params"]["vector_store_id"]
        for i, tool in enumerate(tools)
        if tool.get("type") == "file_search" and not is_hosted(tool["params"])
    }


def where(hit: Hit) -> dict[str, Any]:
    """Return where a chunk came from, as a citation says it: its file, and page, sheet and headings if known."""
    cited: dict[str, Any] = {"file_id": hit.file_id, "file": hit.file_name, "position": hit.position}
    for key in ("page", "sheet", "heading"):
        if hit.metadata.get(key) not in (None, "", []):
            cited[key] = hit.metadata[key]
    return cited


def _cite(run: Any, store: VectorStore, hits: list[Hit]) -> list[dict[str, Any]]:
    """Add the hits to the run's citations (a chunk cited before keeps its number) and return them numbered."""
    found = getattr(run, "citations", None)
    # The run's own list (appended to: an empty one too); not one of our runs: numbered from 1.
    citations: list[dict[str, Any]] = found if isinstance(found, list) else []
    numbered = []
    for hit in hits:
        known = next((c for c in citations if c["chunk_id"] == hit.chunk_id), None)
        if known is None:
            known = {
                "ref": len(citations) + 1,
                "store_id": store.pk,
                "store": store.name,
                "chunk_id": hit.chunk_id,
                **where(hit),
                "snippet": hit.text[:SNIPPET_CHARS],
                "score": round(hit.score, 6),
            }
            citations.append(known)
        numbered.append({**known, "text": hit.text, "scores": hit.scores})
    return numbered


def _failed(message: str) -> str:
    span = get_current_span()
    if span is not None:
        span.set_error(SpanError(message=message, data={"kind": "file_search"}))
    return json.dumps({"error": message})


def local_file_search_tool(spec: dict[str, Any]) -> FunctionTool:
    """Return the SDK tool that searches one of our stores (``spec``: a stored file_search tool)."""
    params = spec["params"]
    store_id = int(params["vector_store_id"])
    max_results = int(params.get("max_num_results") or 3)
    threshold = params.get("similarity_threshold")

    async def invoke(ctx: RunContextWrapper[Any], arguments: str) -> str:
        try:
            query = str(json.loads(arguments or "{}").get("query") or "").strip()
        except (ValueError, AttributeError):
            query = ""
        if not query:
            return _failed('Give the "query" to search for.')
        run = ctx.context
        workspace_id, run_id = getattr(run, "workspace_id", 0), getattr(run, "run_id", None)
        store = await db_call(
            VectorStore.objects.select_related("embedding_provider")
            .filter(pk=store_id, workspace_id=workspace_id)
            .first
        )
        if store is None:
            return _failed(f"The knowledge base {store_id} no longer exists.")
        with custom_span("file_search", data={"store_id": store.pk, "store": store.name, "query": query}) as span:
            try:
                hits = await db_call(
                    search_store,
                    store,
                    user=None,
                    text=query,
                    max_results=max_results,
                    similarity_threshold=threshold,
                    run_id=run_id,
                )
            except ApplicationError as exc:
                return _failed(exc.message)
            except Exception as exc:  # an embedding provider that failed: the model is told, the run goes on
                logger.warning("File search in store %s failed: %s", store.pk, type(exc).__name__)
                return _failed(f"The knowledge base could not be searched ({type(exc).__name__}); try again later.")
            results = _cite(run, store, hits)
            span.span_data.data["results"] = [
                {k: r[k] for k in ("ref", "chunk_id", "file", "position", "score", "scores") if k in r} for r in results
            ]
        if not results:
            return json.dumps({"results": [], "note": "Nothing in the knowledge base matches; say so."})
        shown = [
            {k: v for k, v in r.items() if k not in ("snippet", "scores", "store_id", "chunk_id")} for r in results
        ]
        return json.dumps(
            {"results": shown, "note": "Cite what you use by its ref, as [1]."}, ensure_ascii=False, default=str
        )

    return FunctionTool(
        name=spec["name"],
        description=spec.get("description") or f"Search the knowledge base {store_id} for passages that answer.",
        params_json_schema=ARGUMENTS_SCHEMA,
        on_invoke_tool=invoke,
        strict_json_schema=True,
    )


def hosted_file_search_tool(spec: dict[str, Any], provider: Provider) -> HostedFileSearchTool:
    """Return OpenAI's hosted FileSearchTool for a tool that names an OpenAI vector store; raises
    InvalidInputError when the agent's provider cannot run it (only OpenAI's Responses API can)."""
    params = spec["params"]
    if not provider.uses_responses_api:
        raise InvalidInputError(
            f"The tool {spec['name']!r} searches the OpenAI vector store {params['vector_store_id']!r}, which only "
            f"an OpenAI provider can do; this agent runs on {provider.name!r} ({provider.type}). Give the id of "
            "one of the workspace's knowledge bases instead, or run the agent on an OpenAI provider."
        )
    threshold = params.get("similarity_threshold")
    return HostedFileSearchTool(
        vector_store_ids=[params["vector_store_id"]],
        max_num_results=int(params.get("max_num_results") or 3),
        include_search_results=True,
        ranking_options=RankingOptions(score_threshold=threshold) if threshold is not None else None,
    )


def file_search_tool(spec: dict[str, Any], provider: Provider) -> Tool:
    """Return the SDK tool of a stored file_search tool, for an agent that runs on ``provider``."""
    if is_hosted(spec["params"]):
        return hosted_file_search_tool(spec, provider)
    return local_file_search_tool(spec)
