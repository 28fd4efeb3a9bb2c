"""The HTTP client connectors send through: httpx's types on the outside, aiohttp's connection handling inside.

Connectors build ``httpx.Request`` objects, read ``httpx.Response`` objects and catch httpx's exceptions, so their
code and their tests (which may hand them any ``httpx.AsyncClient``, a mock transport included) stay the same. In a
running Opsrail the requests travel over aiohttp instead of httpcore: under load httpcore's pool and httpx's
middleware cost about 1.1 ms of CPU a request on the event loop the engine runs on, aiohttp with its C parser about
0.25 ms (ADR 0013). Each response is read whole before it is returned, as connectors' calls are small JSON
exchanges; streaming and redirects, which no connector uses, are refused rather than silently ignored.
"""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import sys
import urllib.parse
import urllib.request
import weakref
from collections.abc import AsyncIterator, Generator, Mapping
from typing import TYPE_CHECKING, Any

import httpx
import orjson

if TYPE_CHECKING:
    # At run time aiohttp is imported where it is first used: importing it (and its TLS contexts) adds about 0.2 s
    # to the start of every process, the CLI's included, most of which never call a vendor.
    import aiohttp


class LoopLocalClient(httpx.AsyncClient):
    """An ``httpx.AsyncClient`` whose connections belong to the event loop that uses them, at most ``per_origin``
    of them per scheme, host and port.

    An asynchronous client's connections are bound to the loop that opened them; the server and the worker run one
    loop for their lifetime, but a CLI command or a test runs several one after the other. This client keeps one
    aiohttp session per loop and closes it when that loop shuts down (``asyncio.run`` closes a loop's asynchronous
    generators before it closes the loop; one of them owns the session). Requests beyond ``per_origin`` wait for a
    free connection. Eight per vendor and process, at a vendor's usual 100 to 300 ms an answer, is still more than
    vendors' rate limits let through.

    Proxies from the environment (``HTTPS_PROXY``, ``NO_PROXY``) are honoured as httpx would; TLS is verified
    against the system's certificate store.
    """

    def __init__(self, *, per_origin: int = 8, **kwargs: Any) -> None:
        # Requests never reach httpx's own transport; without one given, httpx would build it and its TLS context
        # (about 45 ms in every process that builds the services).
        kwargs.setdefault("transport", _Unused())
        super().__init__(**kwargs)
        self._per_origin = per_origin
        self._sessions: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[aiohttp.ClientSession, AsyncIterator[None]]
        ] = weakref.WeakKeyDictionary()
        self._timeouts: dict[tuple[float | None, ...], aiohttp.ClientTimeout] = {}
        _without_sniffio()

    async def send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        auth = kwargs.pop("auth", None)
        if auth is httpx.USE_CLIENT_DEFAULT:
            auth = self.auth
        if isinstance(auth, tuple):
            auth = httpx.BasicAuth(*auth)
        unsupported = {k for k, v in kwargs.items() if v and v is not httpx.USE_CLIENT_DEFAULT}
        if unsupported:
            raise TypeError(f"LoopLocalClient.send does not support {', '.join(sorted(unsupported))}")
        if auth is None:
            return await self._send_one(request)
        if not isinstance(auth, httpx.Auth):
            raise TypeError("auth must be an httpx.Auth or a (user, password) pair")
        # An httpx auth flow yields the request to send (with its credentials or signature) and, for schemes that
        # answer a challenge, is handed each response until it has no further request.
        flow = auth.async_auth_flow(request)
        request = await flow.__anext__()
        while True:
            response = await self._send_one(request)
            try:
                request = await flow.asend(response)
            except StopAsyncIteration:
                return response

    async def _send_one(self, request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        answer, content = await self._fetch(
            request.method, url, request.headers, request.content or None, self._timeout_of(request), request
        )
        response = _Answer(answer, content, request.method, url, {}, None)
        response.request = request
        return response

    async def _fetch(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None,
        timeout: aiohttp.ClientTimeout,
        request: httpx.Request | None = None,
    ) -> tuple[aiohttp.ClientResponse, bytes]:
        """Send and read the whole answer; aiohttp's failures are raised as httpx's."""
        import aiohttp

        session = await self._session()
        try:
            async with session.request(
                method, url, headers=headers, data=body, allow_redirects=False, timeout=timeout
            ) as answer:
                return answer, await answer.read()
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise httpx.ReadTimeout(str(exc) or "timed out", request=request) from exc
        except aiohttp.ClientConnectorError as exc:
            raise httpx.ConnectError(str(exc), request=request) from exc
        except aiohttp.ClientError as exc:
            raise httpx.NetworkError(f"{type(exc).__name__}: {exc}", request=request) from exc

    async def exchange(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        json: Any = None,
        form: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        auth: HeaderAuth | None = None,
        timeout: float,
    ) -> httpx.Response:
        """The common call without building an ``httpx.Request``: a JSON or form body (or none), query parameters,
        at most a header for credentials. Parsing the URL into httpx's model and merging its parts cost more than the
        rest of the call; the ``Response``'s ``request`` is made only if someone reads it. Values are written as
        httpx writes them (``true``, ``false``, an empty string for ``None``)."""
        sent = dict(headers)
        body: bytes | None = None
        if json is not None:
            body = orjson.dumps(json)
            sent.setdefault("Content-Type", "application/json")
        elif form is not None:
            body = urllib.parse.urlencode(_plain(form), doseq=True).encode("ascii")
            sent.setdefault("Content-Type", "application/x-www-form-urlencoded")
        if params is not None:
            # As in httpx, parameters replace a query the URL already has (an empty mapping removes it).
            query = urllib.parse.urlencode(_plain(params), doseq=True)
            url = url.split("?", 1)[0] + (f"?{query}" if query else "")
        if auth is not None:
            sent[auth.name] = auth.value
        answer, content = await self._fetch(method, url, sent, body, self._timeout_for(timeout))
        return _Answer(answer, content, method, url, sent, body)

    def _timeout_for(self, seconds: float) -> aiohttp.ClientTimeout:
        import aiohttp

        key = (seconds, seconds, seconds, seconds)
        timeout = self._timeouts.get(key)
        if timeout is None:
            timeout = self._timeouts[key] = aiohttp.ClientTimeout(
                connect=seconds, sock_connect=seconds, sock_read=seconds
            )
        return timeout

    async def _session(self) -> aiohttp.ClientSession:
        import aiohttp

        loop = asyncio.get_running_loop()
        found = self._sessions.get(loop)
        if found is not None:
            return found[0]
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, limit_per_host=self._per_origin),
            # Looking proxies up in the environment costs about 70 µs a request; without any, it is skipped.
            trust_env=bool(urllib.request.getproxies_environment()),
            auto_decompress=True,
        )
        owner = _closing_at_loop_end(session)
        await owner.__anext__()
        self._sessions[loop] = (session, owner)
        return session

    def _timeout_of(self, request: httpx.Request) -> aiohttp.ClientTimeout:
        import aiohttp

        given = request.extensions.get("timeout", {})
        key = (given.get("connect"), given.get("read"), given.get("write"), given.get("pool"))
        timeout = self._timeouts.get(key)
        if timeout is None:
            connect, read, write, pool = key
            # aiohttp has no separate write timeout: a request's body is small, so the read timeout covers it.
            longest = max((t for t in (read, write) if t is not None), default=None)
            timeout = self._timeouts[key] = aiohttp.ClientTimeout(connect=pool, sock_connect=connect, sock_read=longest)
        return timeout

    async def aclose(self) -> None:
        found = self._sessions.pop(asyncio.get_running_loop(), None)
        if found is not None:
            await found[0].close()
        await super().aclose()


class _Unused(httpx.AsyncBaseTransport):
    """The transport httpx holds for a ``LoopLocalClient``, which sends over aiohttp instead."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raise RuntimeError("LoopLocalClient sends its requests over aiohttp, not through an httpx transport")


def _plain(values: Mapping[str, Any]) -> dict[str, Any]:
    """Query or form values as httpx writes them: booleans in lower case, ``None`` as an empty string."""
    return {
        key: [_text(v) for v in value] if isinstance(value, list | tuple) else _text(value)
        for key, value in values.items()
    }


def _text(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    return "" if value is None else str(value)


class HeaderAuth(httpx.Auth):
    """Credentials that are one request header (HTTP Basic, a bearer token): :meth:`LoopLocalClient.exchange` adds
    the header directly; any other httpx client runs it as an ordinary auth flow. The value never appears in
    ``repr``."""

    def __init__(self, name: str, value: str) -> None:
        self.name = name
        self.value = value

    @classmethod
    def basic(cls, user: str, password: str) -> HeaderAuth:
        return cls("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii"))

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers[self.name] = self.value
        yield request

    def __repr__(self) -> str:
        return f"HeaderAuth({self.name!r}, '…')"


class _Answer(httpx.Response):
    """A response whose ``request`` is built from what was sent the first time it is read."""

    def __init__(
        self,
        answer: aiohttp.ClientResponse,
        content: bytes,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes | None,
    ) -> None:
        extensions = {"reason_phrase": answer.reason.encode("latin-1")} if answer.reason else {}
        kept = [(k, v) for k, v in answer.raw_headers if k.lower() != b"content-encoding"]
        super().__init__(answer.status, headers=kept, content=content, extensions=extensions)
        self._sent = (method, url, headers, body)

    @property
    def request(self) -> httpx.Request:
        if self._request is None:
            method, url, headers, body = self._sent
            self._request = httpx.Request(method, url, headers=headers, content=body)
        return self._request

    @request.setter
    def request(self, value: httpx.Request) -> None:
        self._request = value


async def _closing_at_loop_end(session: aiohttp.ClientSession) -> AsyncIterator[None]:
    try:
        yield
    finally:
        await session.close()


def _without_sniffio() -> None:
    """Let httpcore see at once that ``sniffio`` is not installed.

    httpcore (behind Opsrail's other httpx clients) asks ``sniffio`` which async library runs, with an
    ``import sniffio`` inside a function it calls several times per request; when the package is absent (httpx no
    longer needs it) each of those imports searches every entry of ``sys.path`` before failing. A ``None`` entry in
    ``sys.modules`` is Python's way to say a module cannot be imported: the import then fails at once and httpcore
    takes its documented fallback, asyncio. An installed ``sniffio`` is left alone.
    """
    if "sniffio" not in sys.modules and importlib.util.find_spec("sniffio") is None:
        sys.modules["sniffio"] = None  # type: ignore[assignment]
