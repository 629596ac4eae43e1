"""The FHIR R4 client symfhir's workflows use: reads, paged searches, conditional writes,
transactions and batches, streamed Binary upload and download, capability checks.

https://hl7.org/fhir/R4/http.html

Every method names its request in errors ("read Patient/12", "search Patient",
"transaction (5 entries)"): ids and resource types, never resource content or search values.
All errors are FhirServerError subclasses (symfhir.errors), raised by ``transport.send``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO
from urllib.parse import parse_qsl, urlencode

import requests
from requests.auth import AuthBase

from symfhir.errors import FhirServerError
from symfhir.fhir.auth import TokenCallback, make_auth
from symfhir.fhir.binary import check_media_type, conditional_body, copy_binary
from symfhir.fhir.body import parse_json
from symfhir.fhir.capabilities import Capabilities
from symfhir.fhir.config import ServerConfig, load_config
from symfhir.fhir.paths import check_id, check_type, resource_path, type_of
from symfhir.fhir.retry import bundle_is_idempotent
from symfhir.fhir.search import MAX_QUERY, Params, pages, query_pairs, resources
from symfhir.fhir.translate import not_fhir
from symfhir.fhir.transport import FHIR_JSON, FORM, make_session, send
from symfhir.fhir.writes import Status, Written, written


class FhirClient:
    """A FHIR R4 server: ``FhirClient(config)`` or ``FhirClient.from_config()``; a context
    manager (``close()`` releases the connections it opened)."""

    def __init__(
        self,
        config: ServerConfig,
        auth: AuthBase | None = None,
        session: requests.Session | None = None,
    ) -> None:
        self.config = config
        self.base_url = config.base_url
        self._auth = auth
        self._own_session = session is None
        self.session = session if session is not None else make_session(config, auth)
        if session is not None and auth is not None:
            session.auth = auth
        self._capabilities: Capabilities | None = None

    @classmethod
    def from_config(
        cls,
        server: str | None = None,
        config_path: Path | None = None,
        environ: Mapping[str, str] = os.environ,
        *,
        token_response: dict[str, Any] | None = None,
        on_refresh: TokenCallback | None = None,
    ) -> FhirClient:
        """A client for the configured server (see ``load_config``); raises ConfigError."""
        config = load_config(server, config_path, environ)
        auth = make_auth(config, token_response=token_response, on_refresh=on_refresh)
        return cls(config, auth)

    def close(self) -> None:
        """Close the session (if this client made it) and the token endpoint's connections."""
        if self._own_session:
            self.session.close()
        close = getattr(self._auth, "close", None)
        if callable(close):
            close()

    def __enter__(self) -> FhirClient:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- reading -------------------------------------------------------------------------

    def capabilities(self) -> Capabilities:
        """The server's CapabilityStatement (read once, then cached).

        Raises FhirCapabilityError for a statement that is not R4 or has no server part.
        """
        if self._capabilities is None:
            statement = self._json("GET", "metadata", "read capabilities")
            self._capabilities = Capabilities.from_statement(statement)
        return self._capabilities

    def read(self, resource_type: str, resource_id: str) -> dict:
        """The current version of a resource; FhirNotFoundError if absent or deleted."""
        path = resource_path(resource_type, resource_id)
        return self._expect(self._json("GET", path, f"read {path}"), resource_type, f"read {path}")

    def vread(self, resource_type: str, resource_id: str, version: str) -> dict:
        """One version of a resource; FhirNotFoundError if there is no such version."""
        path = resource_path(resource_type, resource_id)
        path += f"/_history/{check_id(version, 'version')}"
        return self._expect(
            self._json("GET", path, f"vread {path}"), resource_type, f"vread {path}"
        )

    def search_bundles(self, resource_type: str, params: Params = None) -> Iterator[dict]:
        """Every page (searchset Bundle) of a search, following ``next`` links.

        Entries keep their ``search.mode`` ("match", "include", "outcome"), so ``_include`` and
        ``_revinclude`` results can be told apart. A query longer than MAX_QUERY characters is
        sent as POST [type]/_search. Raises FhirResponseError for a next link to another host.
        """
        operation = f"search {check_type(resource_type)}"
        pairs = query_pairs(params)
        query = urlencode(pairs)
        if len(query) > MAX_QUERY:
            response = self._send(
                "POST",
                f"{resource_type}/_search",
                operation,
                data=query.encode(),
                headers={"Content-Type": FORM},
                idempotent=True,  # a search writes nothing
            )
            first = parse_json(response, operation)
        else:
            first = self._json("GET", resource_type, operation, params=pairs)
        yield from self._pages(first, operation)

    def search(self, resource_type: str, params: Params = None) -> Iterator[dict]:
        """The resources of every page of a search (matches and ``_include``d ones alike:
        use ``search_bundles`` to tell them apart)."""
        for bundle in self.search_bundles(resource_type, params):
            yield from resources(bundle)

    def search_all(self, resource_type: str, params: Params = None) -> list[dict]:
        """``search`` as a list."""
        return list(self.search(resource_type, params))

    def resource_count(self, resource_type: str, params: Params = None) -> int:
        """How many resources match (``_summary=count``)."""
        operation = f"count {check_type(resource_type)}"
        pairs = [*query_pairs(params), ("_summary", "count")]
        total = self._json("GET", resource_type, operation, params=pairs).get("total")
        if isinstance(total, bool) or not isinstance(total, int):
            raise not_fhir(operation, "the count answer has no total")
        return total

    def everything(self, patient_id: str, params: Params = None) -> Iterator[dict]:
        """The resources of Patient/<id>/$everything, every page."""
        path = resource_path("Patient", patient_id)
        operation = f"$everything {path}"
        first = self._json("GET", f"{path}/$everything", operation, params=query_pairs(params))
        for bundle in self._pages(first, operation):
            yield from resources(bundle)

    # -- writing -------------------------------------------------------------------------

    def create(self, resource: dict, if_none_exist: str | None = None) -> Written:
        """Create a resource; with ``if_none_exist`` (e.g. "identifier=sys|123") only when no
        resource matches: then the status is "unchanged" and nothing is written.

        A create without condition is sent once, never retried. Raises FhirConflictError
        when the condition matches several resources.
        """
        resource_type = type_of(resource)
        conditional = bool(if_none_exist)
        operation = f"{'conditional ' if conditional else ''}create {resource_type}"
        headers = {"If-None-Exist": if_none_exist} if if_none_exist else {}
        response = self._send(
            "POST",
            resource_type,
            operation,
            json_body=resource,
            headers=headers,
            idempotent=conditional,
        )
        status: Status = "unchanged" if conditional and response.status_code == 200 else "created"
        return written(response, resource_type, status, operation)

    def update(self, resource: dict, if_match: str | None = None) -> Written:
        """PUT [type]/[id]; with ``if_match`` ("3" or 'W/"3"') only if that version is current.

        Raises FhirConflictError "version conflict" when it is not (HAPI answers 409, the
        spec 412: both are handled).
        """
        resource_type = type_of(resource)
        path = resource_path(resource_type, str(resource.get("id", "")))
        operation = f"update {path}"
        headers = {}
        if if_match:
            headers["If-Match"] = (
                if_match if "/" in if_match or '"' in if_match else f'W/"{if_match}"'
            )
        try:
            response = self._send(
                "PUT", path, operation, json_body=resource, headers=headers, idempotent=True
            )
        except FhirServerError as exc:
            if if_match and exc.status in (409, 412):
                raise type(exc)(
                    operation,
                    f"version conflict: {path} is no longer at version {headers['If-Match']}",
                    status=exc.status,
                    issues=exc.issues,
                    body=exc.body,
                    log_text=exc.log_text,
                ) from None
            raise
        status: Status = "created" if response.status_code == 201 else "updated"
        return written(response, resource_type, status, operation)

    def conditional_update(self, resource: dict, criteria: str) -> Written:
        """PUT [type]?criteria: update the one match, or create when none matches.

        Raises FhirConflictError when several resources match.
        """
        resource_type = type_of(resource)
        operation = f"conditional update {resource_type}"
        response = self._send(
            "PUT",
            resource_type,
            operation,
            json_body=resource,
            params=parse_qsl(criteria, keep_blank_values=True),
            idempotent=True,
        )
        status: Status = "created" if response.status_code == 201 else "updated"
        return written(response, resource_type, status, operation)

    def delete(self, resource_type: str, resource_id: str, cascade: bool = False) -> None:
        """Delete a resource; with ``cascade`` also those that reference it (HAPI's
        ``_cascade=delete``). Raises FhirConflictError when others still reference it."""
        path = resource_path(resource_type, resource_id)
        params = {"_cascade": "delete"} if cascade else None
        operation = f"{'cascading ' if cascade else ''}delete {path}"
        self._send("DELETE", path, operation, params=params, idempotent=True)

    def instance_operation(
        self, resource_type: str, resource_id: str, name: str, parameters: dict
    ) -> dict:
        """POST [type]/[id]/$name with a Parameters resource (e.g. ``$meta-delete``,
        HAPI's ``$expunge``); the answer. Only for idempotent operations: it is retried."""
        if not name.isidentifier() and not name.replace("-", "_").isidentifier():
            raise ValueError(f"not an operation name: {name!r}")
        path = f"{resource_path(resource_type, resource_id)}/${name}"
        return self._json("POST", path, f"${name} {resource_type}", json_body=parameters)

    def transaction(self, bundle: dict) -> dict:
        """POST a transaction Bundle; the transaction-response Bundle (see ``outcomes``).

        Retried only when every POST entry is a conditional create (``ifNoneExist``).
        """
        return self._bundle(bundle, "transaction")

    def batch(self, bundle: dict) -> dict:
        """POST a batch Bundle; the batch-response Bundle. Failed entries do not raise: see
        ``outcomes``."""
        return self._bundle(bundle, "batch")

    # -- Binary --------------------------------------------------------------------------

    def upload_binary(
        self,
        source: BinaryIO | str | Path,
        content_type: str,
        if_none_exist: str | None = None,
    ) -> Written:
        """Store bytes as a Binary, streamed from a file object or path (never read whole).

        Without ``if_none_exist`` the raw bytes are POSTed once. With it ("_tag=sys|code",
        the only criteria a Binary can satisfy) the body is a Binary resource carrying those
        tags, its base64 ``data`` encoded while sending, and the upload is a retryable
        conditional create ("unchanged" if such a Binary exists). Raises ValueError for an
        unusable content type, criteria or source.
        """
        check_media_type(content_type)
        if isinstance(source, str | Path):
            with Path(source).open("rb") as stream:
                return self._upload(stream, content_type, if_none_exist)
        return self._upload(source, content_type, if_none_exist)

    def download_binary(
        self, binary_id: str, dest: BinaryIO, max_bytes: int | None = None
    ) -> tuple[str, int, str]:
        """Stream Binary/<id>'s bytes into ``dest``; (content type, size, SHA-1 hex).

        Raises FhirResponseError past ``max_bytes`` (config.max_response_bytes by default);
        what was written to ``dest`` by then is incomplete.
        """
        path = resource_path("Binary", binary_id)
        operation = f"download {path}"
        limit = max_bytes or self.config.max_response_bytes
        # Any Accept but FHIR's asks for the raw bytes (http.html#binary). The session's
        # default Content-Type is dropped (None removes it): HAPI reads a FHIR Content-Type
        # on a GET as the format wanted, and would send the Binary as base64 JSON, whole.
        headers: dict = {"Accept": "*/*", "Content-Type": None}
        response = self._send("GET", path, operation, headers=headers, stream=True, idempotent=True)
        with response:
            return copy_binary(response, dest, limit, operation, self.config.timeout)

    # -- plumbing ------------------------------------------------------------------------

    def _send(self, method: str, path: str, operation: str, **kwargs: Any) -> requests.Response:
        if path.startswith(("http://", "https://")):
            url = path
        else:
            url = f"{self.base_url}/{path}" if path else self.base_url
        return send(self.session, method, url, operation, **kwargs)

    def _json(self, method: str, path: str, operation: str, **kwargs: Any) -> dict:
        response = self._send(method, path, operation, idempotent=True, **kwargs)
        return parse_json(response, operation)

    @staticmethod
    def _expect(resource: dict, resource_type: str, operation: str) -> dict:
        if resource.get("resourceType") != resource_type:
            raise not_fhir(operation, f"expected a {resource_type}, got something else")
        return resource

    def _pages(self, bundle: dict, operation: str) -> Iterator[dict]:
        return pages(bundle, operation, self.base_url, lambda url, op: self._json("GET", url, op))

    def _bundle(self, bundle: dict, kind: str) -> dict:
        if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
            raise ValueError(f"{kind}: not a Bundle")
        if bundle.get("type") != kind:
            raise ValueError(f"{kind}: the Bundle's type is {bundle.get('type')!r}")
        entries = bundle.get("entry") or []
        operation = f"{kind} ({len(entries)} entries)"
        response = self._send(
            "POST", "", operation, json_body=bundle, idempotent=bundle_is_idempotent(bundle)
        )
        answer = parse_json(response, operation)
        if answer.get("resourceType") != "Bundle" or answer.get("type") != f"{kind}-response":
            raise not_fhir(operation, f"expected a {kind}-response Bundle")
        if len(answer.get("entry") or []) != len(entries):
            raise not_fhir(operation, "the response has a different number of entries")
        return answer

    def _upload(self, stream: BinaryIO, content_type: str, if_none_exist: str | None) -> Written:
        if not if_none_exist:
            response = self._send(
                "POST",
                "Binary",
                "upload Binary",
                data=stream,
                headers={"Content-Type": content_type, "Prefer": "return=minimal"},
                idempotent=False,
            )
            return written(response, "Binary", "created", "upload Binary")
        operation = "conditional upload Binary"
        body = conditional_body(stream, content_type, if_none_exist)
        response = self._send(
            "POST",
            "Binary",
            operation,
            data=body,
            headers={
                "Content-Type": FHIR_JSON,
                "If-None-Exist": if_none_exist,
                "Prefer": "return=minimal",
            },
            idempotent=True,
        )
        status: Status = "unchanged" if response.status_code == 200 else "created"
        return written(response, "Binary", status, operation)
