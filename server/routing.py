"""A route table whose entries carry their access rule and typed schemas.

The same declaration validates requests, checks the caller, shapes responses and feeds
the OpenAPI document, so the three cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import hdrs, web
from pydantic import BaseModel, ValidationError

from server.access import PUBLIC, Access
from server.keys import ERASED, PRINCIPAL, REDIS, SETTINGS
from services.accounts import check_session
from services.core import Principal, errors, find_nul, verify_access_token

Handler = Callable[..., Awaitable[BaseModel | web.StreamResponse]]


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    access: Access
    summary: str
    tags: tuple[str, ...]
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    #: Errors this route may answer with besides the generic ones (for the docs).
    errors: tuple[type[errors.AppError], ...] = ()
    #: Non-JSON responses (HTML, images): their media type, for the docs.
    media_type: str | None = None
    #: Non-JSON request bodies (multipart uploads) that the handler parses itself: their
    #: media type, for the docs. Such routes declare no ``body``.
    request_media_type: str | None = None
    #: Runs before the query and body are parsed (e.g. a signature over the raw body), so
    #: an unauthenticated caller is refused before its input is looked at.
    guard: Callable[[web.Request], Awaitable[None]] | None = None
    #: Other success statuses with the same response (for the docs): an idempotent
    #: create answers 200 when it repeats.
    also: tuple[int, ...] = ()
    #: Path parameters that are text, not database ids, with the pattern they must match
    #: (a voucher's claim id): ``{name}`` and ``{name}_id`` are integers otherwise.
    text_params: tuple[tuple[str, str], ...] = ()
    #: Admin/staff routes a token whose password must be changed may still call (the
    #: password change itself); every other one answers 403 password_change_required.
    open_during_password_change: bool = False


@dataclass
class RouteTable:
    routes: list[Route] = field(default_factory=list)

    def add(
        self,
        method: str,
        path: str,
        *,
        access: Access,
        summary: str,
        tags: tuple[str, ...] = (),
        body: type[BaseModel] | None = None,
        query: type[BaseModel] | None = None,
        response: type[BaseModel] | None = None,
        status: int = 200,
        errors: tuple[type[errors.AppError], ...] = (),
        media_type: str | None = None,
        request_media_type: str | None = None,
        guard: Callable[[web.Request], Awaitable[None]] | None = None,
        also: tuple[int, ...] = (),
        text_params: tuple[tuple[str, str], ...] = (),
        open_during_password_change: bool = False,
    ) -> Callable[[Handler], Handler]:
        """Register a handler. It is called as ``handler(request, body=..., query=...)``
        with only the declared inputs, after the caller has been checked."""

        def register(handler: Handler) -> Handler:
            self.routes.append(
                Route(
                    method, path, handler, access, summary, tags, body, query, response, status, errors, media_type,
                    request_media_type, guard, also, text_params, open_during_password_change,
                )
            )  # fmt: skip
            return handler

        return register

    def extend(self, other: RouteTable) -> None:
        self.routes.extend(other.routes)

    def install(self, app: web.Application) -> None:
        for route in self.routes:
            app.router.add_route(route.method, route.path, _endpoint(route), name=_route_name(route))


def _route_name(route: Route) -> str:
    return f"{route.handler.__module__}.{route.handler.__name__}".replace(".", "_")


def _endpoint(route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The aiohttp handler of one route. What the route declares is read once here, not
    on every request: each request pays only for the steps its route has."""
    handler, status, guard, query, body = route.handler, route.status, route.guard, route.query, route.body
    access = route.access
    public = access is PUBLIC
    # Admin and staff routes check the token's epoch (one Redis GET); customer routes
    # never do, so the grab path pays nothing for it.
    operator = access.kind in ("admin", "staff")
    password_change_ok = route.open_during_password_change
    simple = guard is None and query is None and body is None

    async def endpoint(request: web.Request) -> web.StreamResponse:
        if not public:
            principal = authenticate(request)
            if principal.kind == "customer":
                await _refuse_erased(request, principal.id)
            # Recorded before the check: the access log names the caller of a 403 too.
            request[PRINCIPAL] = principal
            if not access.allows(principal):
                raise errors.Forbidden(f"this route needs {access.describe()}")
            if operator:
                await check_session(request.app[REDIS], principal)
                if principal.password_change and not password_change_ok:
                    raise errors.PasswordChangeRequired()
        if simple:
            result = await handler(request)
        else:
            if guard is not None:
                await guard(request)
            kwargs: dict[str, Any] = {}
            if query is not None:
                kwargs["query"] = parse_query(request, query)
            if body is not None:
                kwargs["body"] = await parse_body(request, body)
            result = await handler(request, **kwargs)
        if isinstance(result, web.StreamResponse):
            return result
        return json_response(result, status=status)

    endpoint.__name__ = route.handler.__name__
    return endpoint


def json_body(model: BaseModel) -> bytes:
    """A model as the JSON bytes ``model.model_dump_json()`` would give, without its
    detour through ``str`` (a decode and an encode of the whole body)."""
    return type(model).__pydantic_serializer__.to_json(model)


def json_response(model: BaseModel, status: int = 200) -> web.Response:
    return web.Response(body=json_body(model), status=status, content_type="application/json")


def authenticate(request: web.Request) -> Principal:
    """Read and verify the bearer token; raise 401 errors for missing/invalid/expired."""
    header = request.headers.get(hdrs.AUTHORIZATION, "")
    if not header:
        raise errors.Unauthenticated()
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if not token or scheme.lower() != "bearer":
        raise errors.InvalidToken("use 'Authorization: Bearer <access_token>'")
    return verify_access_token(request.app[SETTINGS].secret_key, token)


async def _refuse_erased(request: web.Request, customer_id: int) -> None:
    """A customer whose data was erased holds no valid token any more (services/privacy/gate.py:
    a set lookup, and a Redis read at most once a second per process)."""
    erased = request.app[ERASED]
    redis = request.app.get(REDIS)
    if redis is not None and erased.stale():
        await erased.refresh(redis)
    if erased.blocks(customer_id):
        raise errors.InvalidToken("this account was closed")


def principal_of(request: web.Request) -> Principal:
    """The caller of a route that declared non-public access."""
    return request[PRINCIPAL]


async def parse_body(request: web.Request, model: type[BaseModel]) -> BaseModel:
    """Read the body within the size limit, and validate it as strict JSON."""
    content_type = request.headers.get("Content-Type", "")
    if content_type and "json" not in content_type.split(";")[0].lower():
        raise errors.UnsupportedMediaType()
    limit = request.app[SETTINGS].max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise errors.PayloadTooLarge(details={"max_bytes": limit})
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise errors.PayloadTooLarge(details={"max_bytes": limit}) from None
    if not raw.strip():
        raise errors.InvalidJson("a JSON body is required")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise errors.InvalidJson("the body is not valid UTF-8") from None
    try:
        parsed = model.model_validate_json(text)
    except ValidationError as exc:
        if any(err["type"] == "json_invalid" for err in exc.errors()):
            raise errors.InvalidJson("the body is not valid JSON") from None
        raise errors.from_validation(exc, "body") from None
    _refuse_nul(parsed, "body")
    return parsed


def _refuse_nul(parsed: BaseModel, where: str) -> None:
    field = find_nul(parsed)
    if field is not None:
        raise errors.ValidationFailed(
            f"{where} {field}: NUL characters are not allowed",
            details={"errors": [{"field": field, "message": "NUL characters are not allowed", "type": "nul"}]},
        )


def parse_query(request: web.Request, model: type[BaseModel]) -> BaseModel:
    params: dict[str, str] = {}
    for key, value in request.query.items():
        if key in params:
            raise errors.ValidationFailed(
                f"query {key}: given more than once",
                details={"errors": [{"field": key, "message": "given more than once", "type": "duplicate"}]},
            )
        params[key] = value
    try:
        parsed = model.model_validate(params)
    except ValidationError as exc:
        raise errors.from_validation(exc, "query") from None
    _refuse_nul(parsed, "query")
    return parsed


def path_int(request: web.Request, name: str) -> int:
    """A positive integer path parameter; anything else is a 404 (no such resource)."""
    raw = request.match_info.get(name, "")
    # ASCII only: str.isdigit() also takes "¹" (which int() refuses) and Arabic-Indic
    # or fullwidth digits (which int() reads as numbers).
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise errors.NotFound()
    return int(raw)
