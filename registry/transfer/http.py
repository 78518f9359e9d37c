"""One authenticated conversation with a registry, as a pull or a push holds it.

``RegistrySession.request`` sends a request and answers ``401`` once: it reads the challenge,
obtains an ``Authorization`` (see ``auth``) and retries; a second ``401`` is an error carrying
the registry's text. Redirects (301/302/303/307/308) are followed by hand so that relative
``Location`` headers resolve and ``Authorization`` is dropped when the redirect leaves the
registry's host:port (a pre-signed CDN URL must not see the registry token). Unlike Ollama, a
blob GET answered ``200`` directly (Distribution's filesystem driver) is simply the data.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import structlog
from yarl import URL

from registry.transfer.auth import Challenge, Credentials, OllamaKey, parse_challenge, token_url
from registry.transfer.proxy import ProxyConfig
from registry.transfer.remote import USER_AGENT, RemoteRef
from services.errors import UpstreamError

REDIRECTS = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 10
MAX_ERROR_TEXT = 2000

Body = bytes | Callable[[], Any] | None

log = structlog.get_logger()


async def error_text(response: aiohttp.ClientResponse) -> str:
    """The registry's own words for a failed response (trimmed)."""
    try:
        text = (await response.read())[:MAX_ERROR_TEXT].decode("utf-8", "replace")
    except (aiohttp.ClientError, asyncio.TimeoutError):
        text = ""
    return text.strip() or (response.reason or "")


async def raise_for_status(response: aiohttp.ClientResponse, context: str) -> None:
    """``UpstreamError("<context>: <status>: <registry text>")`` for any status >= 400."""
    if response.status >= 400:
        text = await error_text(response)
        raise UpstreamError(f"{context}: {response.status}: {text}",
                            transient=response.status >= 500 or response.status == 429)


def _origin(url: URL) -> tuple[str, int | None]:
    return (url.host or "").lower(), url.port


class RegistrySession:
    """Auth state for one pull or push against one registry; safe for concurrent requests."""

    def __init__(self, http: aiohttp.ClientSession, ref: RemoteRef, *, credentials: Credentials,
                 key: OllamaKey | None, actions: str, stall_timeout_s: float,
                 proxies: ProxyConfig | None = None) -> None:
        self.ref = ref
        self._proxies = proxies or ProxyConfig()
        self._http = http
        self._credentials = credentials
        self._key = key
        self._actions = actions
        self._authorization = f"Bearer {credentials.token}" if credentials.token else None
        self._lock = asyncio.Lock()
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=stall_timeout_s,
                                              sock_read=stall_timeout_s)

    @asynccontextmanager
    async def request(self, method: str, url: str, *, headers: dict[str, str] | None = None,
                      body: Body = None, follow: bool = True
                      ) -> AsyncIterator[aiohttp.ClientResponse]:
        """Send, answering one auth challenge; yields the final (non-401) response.

        ``body`` is bytes or a zero-argument factory of a fresh body (a retry after ``401``
        or a 307/308 needs the body again). Network failures raise a transient
        ``UpstreamError``.
        """
        used = self._authorization
        response = await self._send(method, url, headers or {}, body, follow)
        if response.status == 401:
            challenge = response.headers.get("WWW-Authenticate", "")
            response.release()
            await self._authenticate(challenge, used)
            response = await self._send(method, url, headers or {}, body, follow)
            if response.status == 401:
                text = await error_text(response)
                response.release()
                raise UpstreamError(f"unauthorized: {text or 'access denied'}")
        try:
            yield response
        finally:
            response.release()

    async def _send(self, method: str, url: str, headers: dict[str, str], body: Body,
                    follow: bool) -> aiohttp.ClientResponse:
        origin, current = _origin(URL(url)), URL(url, encoded=True)
        for _ in range(MAX_REDIRECTS + 1):
            sent = {"User-Agent": USER_AGENT, **headers}
            if self._authorization and _origin(current) == origin:
                sent["Authorization"] = self._authorization
            data = body() if callable(body) else body
            try:
                response = await self._http.request(method, current, headers=sent, data=data,
                                                    allow_redirects=False, timeout=self._timeout,
                                                    proxy=self._proxies.for_url(current))
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                raise UpstreamError(f"{method} {current}: {exc or type(exc).__name__}",
                                    transient=True) from exc
            location = response.headers.get("Location")
            if not follow or response.status not in REDIRECTS or not location:
                return response
            response.release()
            current = current.join(URL(location, encoded=True))
            if response.status == 303:
                method, body = "GET", None
            log.debug("registry_redirect", status=response.status, to_host=current.host)
        raise UpstreamError(f"{method} {url}: stopped after {MAX_REDIRECTS} redirects")

    async def _authenticate(self, header: str, used: str | None) -> None:
        async with self._lock:
            if self._authorization != used:
                return  # a concurrent request already answered this challenge
            challenge = parse_challenge(header)
            if challenge.scheme == "basic":
                if self._credentials.basic is None:
                    raise UpstreamError(
                        f"unauthorized: {self.ref.host} requires a username and password "
                        "(configure them in the file named by CORRAL_REGISTRY_AUTH)")
                self._authorization = self._credentials.basic
            elif challenge.scheme == "bearer" and challenge.realm:
                challenge.params["scope"] = self._scopes(challenge.params.get("scope", ""))
                self._authorization = f"Bearer {await self._token(challenge)}"
            else:
                raise UpstreamError(f"unauthorized: unsupported challenge {header!r}")

    def _scopes(self, asked: str) -> str:
        """The challenge's scopes, with this session's actions on its own repository: a push
        answering a HEAD's ``pull`` challenge asks for ``push,pull`` at once (one token)."""
        own = self.ref.scope(self._actions)
        prefix = f"repository:{self.ref.repository}:"
        scopes = [s for s in asked.split() if not s.startswith(prefix)]
        return " ".join([*scopes, own])

    async def _token(self, challenge: Challenge) -> str:
        url = token_url(challenge)
        headers = {"User-Agent": USER_AGENT}
        if self._credentials.basic:
            headers["Authorization"] = self._credentials.basic
        elif self._key is not None and _origin(URL(url)) == _origin(URL(self.ref.base)):
            headers["Authorization"] = await asyncio.to_thread(self._key.authorization, url)
        try:
            target = URL(url, encoded=True)
            async with self._http.get(target, headers=headers, timeout=self._timeout,
                                      proxy=self._proxies.for_url(target)) as response:
                await raise_for_status(response, "unauthorized: token request")
                reply = await response.json(content_type=None)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError) as exc:
            raise UpstreamError(f"unauthorized: token request to {url}: {exc}") from exc
        token = reply.get("token") or reply.get("access_token") if isinstance(reply, dict) else None
        if not token:
            raise UpstreamError("unauthorized: token response holds no token")
        log.info("registry_token_obtained", host=self.ref.host, realm=challenge.realm)
        return str(token)
