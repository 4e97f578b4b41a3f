"""Endpoint URLs and the start-up check: every server up, OpenAI-compatible, serving the model.

A dead, wrong or locked endpoint is found here, once, before any case runs: the run stops
with one message that lists each endpoint's problem, instead of every case failing slowly.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from qsm_eval.backends.base import BackendError

PROBE_TIMEOUT_S = 10.0


def parse_endpoints(raw) -> list[str]:
    """Base URLs (no trailing /v1) from repeated and/or comma-separated --qsm-endpoint values."""
    values = raw if isinstance(raw, (list, tuple)) else [raw]
    urls: list[str] = []
    for value in values:
        for part in str(value or "").split(","):
            if part.strip():
                url = normalise_url(part.strip())
                if url not in urls:
                    urls.append(url)
    if not urls:
        raise BackendError("--qsm-model openai needs at least one --qsm-endpoint URL "
                           "(e.g. --qsm-endpoint http://127.0.0.1:8000)")
    return urls


def normalise_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BackendError(f"--qsm-endpoint {url!r} is not an http(s) URL such as http://127.0.0.1:8000")
    if parts.username or parts.password:
        # URLs reach run.json and logs; a key belongs in the environment.
        raise BackendError("--qsm-endpoint must not carry credentials; put the API key in an environment "
                           "variable (OPENAI_API_KEY, or the one --qsm-api-key-env names)")
    path = parts.path.rstrip("/").removesuffix("/v1")
    return f"{parts.scheme}://{parts.netloc}{path}"


def probe(pool, api_key) -> dict[str, list[str]]:
    """GET /v1/models on every endpoint: url -> served model ids; BackendError if any fails."""
    import httpx2

    served: dict[str, list[str]] = {}
    problems: list[str] = []
    for endpoint in pool.endpoints:
        try:
            response = pool.get(endpoint, "/v1/models", timeout=PROBE_TIMEOUT_S)
        except httpx2.TimeoutException:
            problems.append(f"{endpoint.url}: no answer to GET /v1/models within {PROBE_TIMEOUT_S:g} s")
            continue
        except httpx2.TransportError as exc:
            problems.append(f"{endpoint.url}: cannot connect ({type(exc).__name__}: {exc}); is the server running?")
            continue
        if response.status_code in (401, 403):
            source = f"the key in ${api_key.variable}" if api_key.present else f"no key (${api_key.variable} is unset)"
            problems.append(f"{endpoint.url}: refused with HTTP {response.status_code}, sent {source}")
            continue
        ids = _model_ids(response)
        if ids is None:
            problems.append(f"{endpoint.url}: GET /v1/models answered HTTP {response.status_code} without a "
                            f"model list; is this an OpenAI-compatible server (vLLM, transformers serve)?")
            continue
        served[endpoint.url] = ids
    if problems:
        raise BackendError(api_key.redact("served model endpoint(s) unusable: " + "; ".join(problems)))
    return served


def choose_model(requested: str | None, served: dict[str, list[str]]) -> str:
    """The model to ask for: the requested one, which every endpoint must serve, or the only one."""
    if requested:
        missing = {url: ids for url, ids in served.items() if requested not in ids}
        if missing:
            listing = "; ".join(f"{url} serves {', '.join(ids) or 'nothing'}" for url, ids in missing.items())
            raise BackendError(f"--qsm-served-model {requested!r} is not served everywhere: {listing}")
        return requested
    common = set.intersection(*(set(ids) for ids in served.values()))
    if len(common) == 1:
        return common.pop()
    listing = "; ".join(f"{url}: {', '.join(ids) or 'nothing'}" for url, ids in served.items())
    raise BackendError(f"choose the model with --qsm-served-model; the endpoints serve {listing}")


def _model_ids(response) -> list[str] | None:
    if response.status_code != 200:
        return None
    try:
        data = response.json().get("data")
        return [str(m["id"]) for m in data]
    except (ValueError, AttributeError, KeyError, TypeError):
        return None
