"""Requests to a pool of endpoints: least outstanding first, bounded in flight, retried.

Each request leases a slot on the endpoint with the fewest requests in flight (ties: the one
that has had fewest, so a fresh pool fills evenly); at most ``max_in_flight`` per endpoint,
the rest wait. An endpoint that just failed to connect or answer in time is avoided for a
while (1 s, doubling with each further failure, at most 30 s) while another can take the
request: a dead host has no requests in flight, and would otherwise attract every one. 429 and 5xx answers, timeouts and dropped connections are retried, each time
on the least loaded endpoint again, after the server's Retry-After or an exponential
backoff; anything else (4xx, a reply that is not JSON) fails at once. Every wait is bounded:
per-phase timeouts on each attempt, a fixed number of attempts, a cap on every pause.
"""

from __future__ import annotations

import email.utils
import hashlib
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable

# Longest pause taken for one Retry-After: a server asking for more is treated as down.
MAX_RETRY_AFTER_S = 60.0
BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 8.0
BODY_SNIPPET = 200
AVOID_BASE_S = 1.0
AVOID_CAP_S = 30.0


class ServedError(RuntimeError):
    """A request that got no usable answer: one line naming the endpoint and what it said."""


@dataclass
class Endpoint:
    url: str                                    # base URL, without /v1
    index: int
    outstanding: int = 0
    avoid_until: float = 0.0                    # time.monotonic() before which others go first
    failures_in_a_row: int = 0
    stats: dict[str, int] = field(default_factory=lambda: {
        "requests": 0, "ok": 0, "retried": 0, "failed": 0})


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 4
    timeout_s: float = 60.0

    def backoff(self, attempt: int, key: str) -> float:
        """Exponential with a jitter from hashlib (not random): clients that failed together
        do not come back together, and a rerun waits the same."""
        jitter = 0.5 + int(hashlib.sha256(f"{key}:{attempt}".encode()).hexdigest()[:8], 16) / 2 ** 33
        return min(BACKOFF_BASE_S * 2 ** attempt, BACKOFF_CAP_S) * jitter


def retry_after_seconds(value: str | None) -> float | None:
    """A Retry-After header (seconds, or an HTTP date) as seconds from now, capped."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


def is_retryable(status: int) -> bool:
    return status == 429 or status >= 500


class EndpointPool:
    """HTTP clients for every endpoint and the leases that keep each one's load bounded."""

    def __init__(self, urls: list[str], *, headers: dict[str, str], policy: RetryPolicy,
                 max_in_flight: int, redact: Callable[[str], str], first: int = 0):
        import httpx2

        self.endpoints = [Endpoint(url, i) for i, url in enumerate(urls)]
        self.policy = policy
        self.max_in_flight = max_in_flight
        self.redact = redact
        self._first = first            # xdist worker k breaks ties towards endpoint k
        self._ready = threading.Condition()
        timeout = httpx2.Timeout(policy.timeout_s, connect=min(policy.timeout_s, 10.0))
        self._clients = {e.url: httpx2.Client(base_url=e.url, headers=headers, timeout=timeout,
                                              limits=httpx2.Limits(max_connections=max_in_flight))
                         for e in self.endpoints}

    @contextmanager
    def lease(self):
        """The least loaded endpoint with a free slot (waiting for one) and its client."""
        n = len(self.endpoints)
        with self._ready:
            while True:
                free = [e for e in self.endpoints if e.outstanding < self.max_in_flight]
                if free:
                    break
                self._ready.wait()
            now = time.monotonic()
            endpoint = min(free, key=lambda e: (e.avoid_until > now, e.outstanding, e.stats["requests"],
                                                (e.index - self._first) % n))
            endpoint.outstanding += 1
            endpoint.stats["requests"] += 1
        try:
            yield endpoint, self._clients[endpoint.url]
        finally:
            with self._ready:
                endpoint.outstanding -= 1
                self._ready.notify()

    def get(self, endpoint: Endpoint, path: str, timeout: float):
        """One unretried GET (the start-up probe)."""
        return self._clients[endpoint.url].get(path, timeout=timeout)

    def post_json(self, path: str, body: dict[str, Any], key: str) -> tuple[dict, Endpoint]:
        """The JSON reply to a POST, retried as the module says; ServedError when none came."""
        import httpx2

        attempts = self.policy.max_retries + 1
        problem = ""
        for attempt in range(attempts):
            wait = self.policy.backoff(attempt, key)
            with self.lease() as (endpoint, client):
                try:
                    response = client.post(path, json=body)
                except httpx2.TimeoutException:
                    problem = f"{endpoint.url}: no answer within {self.policy.timeout_s:g} s"
                    self._avoid(endpoint)
                except httpx2.TransportError as exc:
                    problem = f"{endpoint.url}: {type(exc).__name__}: {exc}"
                    self._avoid(endpoint)
                else:
                    with self._ready:
                        endpoint.failures_in_a_row, endpoint.avoid_until = 0, 0.0
                    if response.status_code == 200:
                        return self._json(endpoint, response), endpoint
                    problem = f"{endpoint.url}{path} answered HTTP {response.status_code}: {_snippet(response.text)}"
                    if not is_retryable(response.status_code):
                        endpoint.stats["failed"] += 1
                        raise ServedError(self.redact(problem))
                    told = retry_after_seconds(response.headers.get("retry-after"))
                    wait = wait if told is None else told
                if attempt + 1 < attempts:
                    endpoint.stats["retried"] += 1
                else:
                    endpoint.stats["failed"] += 1
            if attempt + 1 < attempts:
                time.sleep(wait)
        raise ServedError(self.redact(f"no answer after {attempts} attempts; last: {problem}"))

    def _avoid(self, endpoint: Endpoint) -> None:
        with self._ready:
            pause = min(AVOID_BASE_S * 2 ** endpoint.failures_in_a_row, AVOID_CAP_S)
            endpoint.failures_in_a_row += 1
            endpoint.avoid_until = time.monotonic() + pause

    def _json(self, endpoint: Endpoint, response) -> dict:
        try:
            reply = response.json()
        except ValueError:
            reply = None
        if not isinstance(reply, dict):
            endpoint.stats["failed"] += 1
            raise ServedError(self.redact(f"{endpoint.url} answered 200 with a body that is not a JSON "
                                          f"object: {_snippet(response.text)}"))
        endpoint.stats["ok"] += 1
        return reply

    def close(self) -> None:
        for client in self._clients.values():
            client.close()


def _snippet(text: str) -> str:
    text = " ".join((text or "").split())
    return repr(text[:BODY_SNIPPET] + ("..." if len(text) > BODY_SNIPPET else ""))
