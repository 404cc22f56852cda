"""HTTP to a forge API: authentication, retries, rate limits, pagination (requests).

One :class:`Transport` per repository. Per forge it is given three small functions:
the authentication headers for a token, :data:`Classifier` (is this failed response worth
another try, and did the forge say how long to wait?), and the extraction of the API's
error message. Everything else is common:

* **Retries** follow :class:`~.config.RetryPolicy`. Connection failures, 5xx and rate
  limits are retried; any other 4xx is the caller's mistake (or a missing permission) and
  is raised at once. A forge's own wait (``Retry-After``, reset timestamps) is honoured
  up to ``max_wait``, otherwise exponential backoff with jitter applies.
* **Non-idempotent requests** (creating a comment) are only retried when the server
  certainly did not act: a rate limit, or a connection that was never established. After
  a 5xx or a read timeout the error is raised with ``ambiguous=True`` and the caller looks
  before it tries again, so a flaky forge never gets two preview comments.
* **Pagination** follows ``Link: <…>; rel="next"`` (GitHub, Gitea, GitLab) or GitLab's
  ``X-Next-Page``. A next link must stay on the API's scheme, host and port: the token is
  never sent anywhere else. Redirects are followed by hand under the same rule, because
  ``requests`` strips ``Authorization`` on a cross-host redirect but not GitLab's
  ``PRIVATE-TOKEN``.
* **Secrets**: the token is read (from its file or variable) for each request, attached by
  a ``requests`` auth hook (which also stops ``~/.netrc`` from overriding it), and scrubbed
  from every error text.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
from requests.auth import AuthBase
from urllib3.exceptions import MaxRetryError, NewConnectionError

from .config import ForgeConfig, RetryPolicy
from .errors import ForgeConfigError, ForgeError, redact

log = logging.getLogger(__name__)

MAX_PAGES = 200
MAX_REDIRECTS = 5
SERVER_ERRORS = frozenset({500, 502, 503, 504})


@dataclass(frozen=True)
class Throttle:
    """A failed response that may be retried; ``wait`` is what the forge asked for."""

    wait: float | None
    rate_limited: bool


#: Decides whether a failed response is retryable: ``(response, now) -> Throttle | None``.
Classifier = Callable[[requests.Response, float], Throttle | None]


def retry_after(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP-date), if any."""
    value = headers.get("Retry-After")
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError):
        return None


def until_epoch(value: str | None, now: float) -> float | None:
    """Seconds until an epoch-seconds timestamp header (GitHub, GitLab reset headers)."""
    if value is None or not value.strip().isdigit():
        return None
    return max(0.0, float(value) - now)


def default_classifier(response: requests.Response, now: float) -> Throttle | None:
    """429 is a rate limit; 500/502/503/504 are transient; everything else is final."""
    if response.status_code == 429:
        return Throttle(retry_after(response.headers, now), rate_limited=True)
    if response.status_code in SERVER_ERRORS:
        return Throttle(retry_after(response.headers, now), rate_limited=False)
    return None


class _HeaderAuth(AuthBase):
    def __init__(self, headers: dict[str, str]) -> None:
        self._headers = headers

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers.update(self._headers)
        return r


class Transport:
    """Authenticated, retrying JSON requests to one forge API."""

    def __init__(
        self,
        config: ForgeConfig,
        *,
        auth_headers: Callable[[str], dict[str, str]],
        headers: Mapping[str, str] | None = None,
        classify: Classifier = default_classifier,
        error_message: Callable[[requests.Response], str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.forge = config.provider
        self.base_url = config.resolved_api_url
        self.timeout = config.timeout
        self.policy: RetryPolicy = config.retry
        self._token_source = config.token
        self._auth_headers = auth_headers
        self._classify = classify
        self._error_message = error_message or (lambda r: r.text[:200])
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()
        self._secrets: set[str] = set()
        origin = urlsplit(self.base_url)
        self._origin = (origin.scheme, origin.netloc.lower())
        self.session = requests.Session()
        self.session.headers.update({"User-Agent": config.user_agent, **(headers or {})})
        self.session.verify = config.ca_bundle or True
        #: Every wait the transport slept, in seconds (for the reconciler's report, and tests).
        self.waits: list[float] = []

    # --- public ------------------------------------------------------------------------

    def request(
        self,
        method: str,
        target: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json: Any = None,
        idempotent: bool = True,
    ) -> requests.Response:
        """Send one API request with the retry policy; return the successful response."""
        url = self._url(target)
        path = urlsplit(url).path
        attempts = 0
        while True:
            attempts += 1
            try:
                response = self._send(method, url, params, json)
            except ForgeError:
                raise
            except (requests.ConnectionError, requests.Timeout) as e:
                established = not _never_connected(e)
                reason = self._redact(_describe(e))
                if established and not idempotent:
                    raise ForgeError(
                        self.forge, method, path, None, reason, attempts=attempts, ambiguous=True
                    ) from None
                if attempts >= self.policy.attempts:
                    raise ForgeError(
                        self.forge, method, path, None, reason, attempts=attempts
                    ) from None
                self.wait(self.backoff(attempts))
                continue
            if response.status_code < 400:
                return response
            throttle = self._classify(response, self._clock())
            message = self._redact(self._safe_message(response))
            if throttle is None:
                raise ForgeError(
                    self.forge, method, path, response.status_code, message, attempts=attempts
                )
            if not throttle.rate_limited and not idempotent:
                raise ForgeError(
                    self.forge,
                    method,
                    path,
                    response.status_code,
                    message,
                    attempts=attempts,
                    ambiguous=True,
                )
            wait = throttle.wait if throttle.wait is not None else self.backoff(attempts)
            if wait > self.policy.max_wait:
                raise ForgeError(
                    self.forge,
                    method,
                    path,
                    response.status_code,
                    message,
                    attempts=attempts,
                    retry_after=wait,
                    rate_limited=throttle.rate_limited,
                )
            if attempts >= self.policy.attempts:
                raise ForgeError(
                    self.forge,
                    method,
                    path,
                    response.status_code,
                    message,
                    attempts=attempts,
                    rate_limited=throttle.rate_limited,
                    retry_after=wait if throttle.rate_limited else None,
                )
            log.info(
                "%s: %s %s: HTTP %s, retrying in %.2fs",
                self.forge,
                method,
                path,
                response.status_code,
                wait,
            )
            self.wait(wait)

    def json(self, method: str, target: str, **kwargs: Any) -> Any:
        """:meth:`request` and decode the JSON body."""
        response = self.request(method, target, **kwargs)
        return self.decode(response, method)

    def decode(self, response: requests.Response, method: str) -> Any:
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise ForgeError(
                self.forge,
                method,
                urlsplit(response.url).path,
                response.status_code,
                "the response is not JSON",
            ) from None

    def paginate(
        self,
        path: str,
        params: Mapping[str, str | int],
        *,
        x_next_page: bool = False,
    ) -> Iterator[Any]:
        """Yield the items of every page of a list endpoint, lazily."""
        target: str = path
        query: Mapping[str, str | int] | None = params
        for _ in range(MAX_PAGES):
            response = self.request("GET", target, params=query)
            items = self.decode(response, "GET")
            if not isinstance(items, list):
                raise ForgeError(
                    self.forge,
                    "GET",
                    urlsplit(response.url).path,
                    response.status_code,
                    "expected a JSON list",
                )
            yield from items
            next_page = response.headers.get("X-Next-Page", "").strip() if x_next_page else ""
            next_link = response.links.get("next", {}).get("url")
            if next_page:
                target, query = path, {**params, "page": next_page}
            elif next_link:
                target, query = next_link, None
            else:
                return
        raise ForgeError(
            self.forge, "GET", urlsplit(self._url(path)).path, None, f"more than {MAX_PAGES} pages"
        )

    def close(self) -> None:
        self.session.close()

    # --- internals ---------------------------------------------------------------------

    def _url(self, target: str) -> str:
        url = target if "://" in target else self.base_url + "/" + target.lstrip("/")
        parts = urlsplit(url)
        if (parts.scheme, parts.netloc.lower()) != self._origin:
            raise ForgeError(
                self.forge,
                "GET",
                parts.path,
                None,
                f"refusing to follow a link to another origin ({parts.netloc})",
            )
        return url

    def _send(
        self, method: str, url: str, params: Mapping[str, str | int] | None, json: Any
    ) -> requests.Response:
        try:
            token = self._token_source.read().reveal()
        except ForgeConfigError as e:
            raise ForgeError(self.forge, method, urlsplit(url).path, None, str(e)) from None
        self._secrets.add(token)
        auth = _HeaderAuth(self._auth_headers(token))
        for _ in range(MAX_REDIRECTS + 1):
            response = self.session.request(
                method,
                url,
                params=params,
                json=json,
                auth=auth,
                timeout=self.timeout,
                allow_redirects=False,
            )
            log.debug(
                "%s: %s %s -> %s",
                self.forge,
                method,
                urlsplit(response.url).path,
                response.status_code,
            )
            location = response.headers.get("Location")
            if response.status_code not in (301, 302, 303, 307, 308) or not location:
                return response
            url = self._url(urljoin(response.url, location))
            params = None
            if response.status_code == 303 or (
                response.status_code in (301, 302) and method not in ("GET", "HEAD")
            ):
                raise ForgeError(
                    self.forge,
                    method,
                    urlsplit(response.url).path,
                    response.status_code,
                    f"unexpected redirect to {url}",
                )
        raise ForgeError(self.forge, method, urlsplit(url).path, None, "too many redirects")

    def backoff(self, attempt: int) -> float:
        cap = float(min(self.policy.backoff_max, self.policy.backoff_base * 2.0 ** (attempt - 1)))
        if not self.policy.jitter:
            return cap
        return cap / 2 + self._rng.uniform(0, cap / 2)

    def wait(self, seconds: float) -> None:
        self.waits.append(seconds)
        if seconds > 0:
            self._sleep(seconds)

    def _safe_message(self, response: requests.Response) -> str:
        try:
            return self._error_message(response)
        except Exception:  # a malformed error body must not hide the status
            return response.text[:200]

    def _redact(self, text: str) -> str:
        return redact(text, self._secrets)


def _never_connected(e: Exception) -> bool:
    """True when the request certainly never reached the server."""
    if isinstance(e, requests.ConnectTimeout):
        return True
    inner = e.args[0] if e.args else None
    return isinstance(inner, MaxRetryError) and isinstance(inner.reason, NewConnectionError)


def _describe(e: Exception) -> str:
    if isinstance(e, requests.Timeout):
        return "timed out"
    inner = e.args[0] if e.args else None
    if isinstance(inner, MaxRetryError) and inner.reason is not None:
        return f"connection failed: {inner.reason}"
    return f"connection failed: {e}"
