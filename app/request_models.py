"""The two bases every request schema derives from: bodies (strict) and query strings (lax).

Apart from `app.api` so that services' own query schemas (pagination) can use them without
importing the HTTP layer, which imports the services back (CORS → organizations → API keys).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class RequestModel(BaseModel):
    """Base of request bodies: unknown fields are an error, and JSON types are not coerced."""

    model_config = ConfigDict(extra="forbid", strict=True, str_strip_whitespace=False)


class QueryModel(BaseModel):
    """Base of query strings: values arrive as strings, so lax coercion applies."""

    model_config = ConfigDict(extra="forbid")
