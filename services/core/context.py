"""The request a piece of work runs for, carried through a context variable: set by the
server's request middleware, read by the log formatter (server/logs.py), copied into the
records that outlive the request (a grab's claim in the Redis stream) so the worker that
finishes the work logs under the same id, and forwarded on outgoing WeChat calls."""

from __future__ import annotations

from contextvars import ContextVar

#: The id of the request being served ("" outside any request). A task inherits a copy
#: of its creator's context, so background work started by a request keeps the id.
request_id_var: ContextVar[str] = ContextVar("request_id", default="")
