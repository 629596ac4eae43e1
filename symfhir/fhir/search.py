"""FHIR search: query parameters, next-link paging kept on one server, and result entries.

https://hl7.org/fhir/R4/http.html#search and search.html (paging, ``search.mode``)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import urljoin, urlsplit

from symfhir.fhir.translate import not_fhir

Params = Mapping[str, Any] | Iterable[tuple[str, Any]] | None
# Fetches one page: (absolute URL, operation named in errors) -> the page's Bundle.
PageGetter = Callable[[str, str], dict]

# Past this length a search goes as POST [type]/_search with a form body (http.html#search):
# proxies and servers commonly refuse URLs much over 2,000 characters.
MAX_QUERY = 1800


def query_pairs(params: Params) -> list[tuple[str, str]]:
    """Search parameters as (name, value) pairs; a list or tuple value repeats the name."""
    if params is None:
        return []
    items = params.items() if isinstance(params, Mapping) else params
    out: list[tuple[str, str]] = []
    for name, value in items:
        values = value if isinstance(value, list | tuple) else [value]
        out.extend((str(name), str(v)) for v in values)
    return out


def pages(bundle: dict, operation: str, base_url: str, get_page: PageGetter) -> Iterator[dict]:
    """``bundle`` and every page after it, following ``next`` links.

    Raises FhirResponseError for a page that is not a Bundle, a next link to another host
    (the session would sign it with our credentials) or one that loops.
    """
    origin = _origin(base_url)
    seen: set[str] = set()
    while True:
        if bundle.get("resourceType") != "Bundle":
            raise not_fhir(operation, "expected a Bundle")
        yield bundle
        link = _next_link(bundle)
        if link is None:
            return
        url = urljoin(base_url + "/", link)
        if _origin(url) != origin:
            raise not_fhir(
                operation, f"refused a next-page link to another host ({_origin(url)[1]})"
            )
        if url in seen:
            raise not_fhir(operation, "the next-page link repeats a page already read")
        seen.add(url)
        bundle = get_page(url, f"{operation} (page {len(seen) + 1})")


def resources(bundle: dict) -> Iterator[dict]:
    """The resources of a searchset Bundle's entries, matches and includes, not outcomes."""
    for entry in bundle.get("entry") or []:
        if not isinstance(entry, dict) or not isinstance(entry.get("resource"), dict):
            continue
        search = entry.get("search") if isinstance(entry.get("search"), dict) else {}
        if search.get("mode") != "outcome":
            yield entry["resource"]


def _next_link(bundle: dict) -> str | None:
    for link in bundle.get("link") or []:
        if isinstance(link, dict) and link.get("relation") == "next":
            url = link.get("url")
            return url if isinstance(url, str) and url else None
    return None


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:  # a port that is no number: matches no origin
        return parts.scheme, "invalid"
    return parts.scheme, f"{(parts.hostname or '').lower()}:{port}"
