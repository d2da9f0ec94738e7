"""A small Coiote DM v3 look-alike: a real HTTP server on 127.0.0.1 for tests and sim runs.

It implements the part of the API hilprov uses (create, read, delete, search devices) with the
status codes and bodies described in coiote-api-notes.md, including the undocumented choices made
there (409 for a duplicate endpoint name, 400 for a taken DTLS identity or `securityMode: est`,
401 with an empty body for a bad token). Device ids are a hash of the endpoint name, never the
name itself, so a client that assumes id == endpoint name fails here as it may on a real server.

Faults are scripted with :meth:`CoioteServer.inject` (status, `Retry-After`, delay) and consumed by
the next matching requests; every request is logged without its Authorization header.

Run stand-alone: ``hilprov coiote-sim --token-file F`` prints its URL and serves until
interrupted.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import hmac
import json
import logging
import re
import socket
import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

log = logging.getLogger("hilprov.sim.coiote")

API_PREFIX = "/api/coiotedm/v3"
DEFAULT_TOKEN = "hilprov-sim-token"
SECURITY_MODES = ("psk", "cert", "rpk", "nosec", "unknown", "notset")
CONNECTOR_TYPES = ("management", "bootstrap")
PSK_FORMS = ("HexadecimalPsk", "PlainTextPsk", "BinaryPsk", "ExternalPsk", "GlobalPsk")
METADATA_FIELDS = ("description", "friendlyName", "serialNumber", "modelName", "manufacturer",
                   "oui", "hardwareVersion", "softwareVersion", "productClass", "ipAddress")
ENCRYPTED_FIELDS = ("dtlsPsk",)
MAX_ENDPOINT_NAME = 150
MAX_LIMIT = 1000
DEFAULT_ERRORS = {
    400: "Bad request", 401: "", 403: "Forbidden", 404: "Not found", 409: "Conflict",
    429: "Too many requests", 500: "Internal server error", 502: "Bad gateway",
    503: "Service unavailable", 504: "Gateway timeout",
}


@dataclass(frozen=True)
class RecordedRequest:
    """One request as received; the Authorization header is deliberately not kept."""

    method: str
    path: str  # without the query string
    json: Any  # parsed body (key order kept), None if empty or not JSON
    query: str = ""
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    authorized: bool = False

    def __iter__(self):
        """Unpacks as (method, path, json)."""
        return iter((self.method, self.path, self.json))


@dataclass
class Fault:
    """A scripted answer for the next `times` matching requests (see CoioteServer.inject)."""

    status: int | None
    times: int
    retry_after: float | str | None = None
    delay: float = 0.0
    body: Any = None
    method: str | None = None
    path: str | None = None  # prefix under the API root, e.g. "/devices"
    process_first: bool = False  # with only a delay: do the work at once, answer late

    def matches(self, method: str, api_path: str) -> bool:
        return ((self.method is None or self.method.upper() == method)
                and (self.path is None or api_path.startswith(self.path)))


class ApiError(Exception):
    """An error answer: status plus the `{"error": ...}` text."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class CoioteServer:
    """The fake Coiote, served from a daemon thread. Use as a context manager."""

    def __init__(self, token: str = DEFAULT_TOKEN, *, host: str = "127.0.0.1", port: int = 0,
                 domains: list[str] | None = None) -> None:
        if not token:
            raise ValueError("the fake Coiote needs a non-empty token")
        self._token = token
        self._host = host
        self._requested_port = port
        self._domains = list(domains) if domains else None  # None: every domain is allowed
        self._lock = threading.Lock()
        self._devices: dict[str, dict] = {}
        self._faults: deque[Fault] = deque()
        self._requests: list[RecordedRequest] = []
        self._connections: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        state = f"url={self.url!r}" if self._httpd else "stopped"
        return f"CoioteServer({state}, devices={len(self._devices)})"

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> CoioteServer:
        if self._httpd is not None:
            return self
        self._stopping.clear()
        self._httpd = _HTTPServer((self._host, self._requested_port), _Handler)
        self._httpd.sim = self
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": 0.01},
                                        name=f"coiote-sim:{self.port}", daemon=True)
        self._thread.start()
        log.debug("fake Coiote listening on %s", self.url)
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._stopping.set()  # wakes delayed responses
        self._httpd.shutdown()
        self._httpd.server_close()
        with self._lock:
            open_connections = list(self._connections)
        for conn in open_connections:  # idle keep-alive connections would linger otherwise
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> CoioteServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the fake Coiote is not running; call start() first")
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    @property
    def token(self) -> str:
        return self._token

    def server_info(self, domain: str = "/embedded/") -> dict:
        """What a server.json for this server holds."""
        return {"url": f"http://{self._host}", "port": self.port, "domain": domain}

    # -- state for tests ---------------------------------------------------------------------

    @property
    def devices(self) -> dict[str, dict]:
        """A snapshot copy of the stored devices, by device id."""
        with self._lock:
            return copy.deepcopy(self._devices)

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def inject(self, status: int | None = None, *, times: int = 1,
               retry_after: float | str | None = None, delay: float = 0.0, body: Any = None,
               method: str | None = None, path: str | None = None,
               process_first: bool = False) -> Fault:
        """Script the next `times` requests matching `method`/`path` (a prefix under the API).

        With a `status`, the server answers it (default body `{"error": ...}`; `body` may be a
        dict, str or bytes) after `delay` seconds. With only a `delay`, the request is served
        normally but late, e.g. to outlast the client's timeout; `process_first=True` does the
        work at once and only delays the answer (the request reached the server, the reply got
        lost). Faults apply before auth.
        """
        if status is None and delay <= 0:
            raise ValueError("a fault needs a status, a delay, or both")
        if times < 1:
            raise ValueError("times must be at least 1")
        if process_first and (status is not None or delay <= 0):
            raise ValueError("process_first needs a delay and no status")
        fault = Fault(status, times, retry_after, delay, body, method, path, process_first)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def reset(self) -> None:
        """Forget devices, faults and the request log."""
        with self._lock:
            self._devices.clear()
            self._faults.clear()
            self._requests.clear()

    def add_device(self, body: dict) -> str:
        """Store a device as a POST /devices would (for test set-up); returns its id."""
        with self._lock:
            return self._create(body)

    # -- request handling (called from handler threads) ---------------------------------------

    def _take_fault(self, method: str, api_path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, api_path):
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _authorized(self, header: str | None) -> bool:
        if not header:
            return False
        scheme, _, value = header.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            value.strip().encode(), self._token.encode())

    def _dispatch(self, method: str, api_path: str, query: dict[str, list[str]],
                  body: Any) -> tuple[int, Any]:
        parts = [unquote(p) for p in api_path.strip("/").split("/")] if api_path.strip("/") else []
        with self._lock:
            if parts == ["devices"] and method == "POST":
                device_id = self._create(body)
                return 201, {"id": device_id, "result": "Device created"}
            if parts == ["devices"] and method == "GET":
                return 200, [d["id"] for d in self._search(query)]
            if parts == ["devices", "find", "details"] and method == "GET":
                return 200, self._find_details(query)
            if len(parts) == 2 and parts[0] == "devices" and method in ("GET", "DELETE"):
                device = self._devices.get(parts[1])
                if device is None:
                    raise ApiError(404, "Device not found")
                if method == "GET":
                    return 200, copy.deepcopy(device)
                del self._devices[parts[1]]
                return 204, None
        raise ApiError(404, f"No API operation {method} {API_PREFIX}{api_path}")

    # -- the device store (caller holds the lock) ----------------------------------------------

    def _create(self, body: Any) -> str:
        if not isinstance(body, dict):
            raise ApiError(400, "Request body must be a JSON object")
        properties, explicit_id, endpoint = _device_names(body)
        domain = self._device_domain(body)
        connector, mode, identity, psk = _device_security(body)
        groups, flags = _device_membership(body)
        self._check_unique(endpoint, explicit_id, identity)

        device_id = explicit_id or self._new_id(endpoint)
        device = {
            "id": device_id,
            "domain": domain,
            "connectorType": connector,
            "securityMode": mode,
            "dtlsIdentity": identity,
            "dtlsPsk": psk,
            "properties": {**properties, "endpointName": endpoint},
            "directGroups": list(groups),
            "blacklisted": flags["blacklisted"],
            "managementEnabled": flags["managementEnabled"],
            "bootstrap": connector == "bootstrap",
            "creationTime": _now_iso(),
        }
        for name in METADATA_FIELDS:
            if isinstance(body.get(name), str):
                device[name] = body[name]
        self._devices[device_id] = device
        return device_id

    def _device_domain(self, body: dict) -> str:
        domain = body.get("domain")
        if not isinstance(domain, str) or not domain.startswith("/") or not domain.endswith("/"):
            raise ApiError(400, "Invalid domain: it must start and end with '/'")
        if self._domains is not None and not any(domain.startswith(d) for d in self._domains):
            raise ApiError(403, "Forbidden")
        return domain

    def _check_unique(self, endpoint: str, explicit_id: str | None, identity: str | None
                      ) -> None:
        for device in self._devices.values():
            if device["properties"].get("endpointName") == endpoint:
                raise ApiError(409, f"Device with endpoint name {endpoint} already exists")
        if explicit_id is not None and explicit_id in self._devices:
            raise ApiError(409, f"Device with id {explicit_id} already exists")
        if identity and any(d["dtlsIdentity"] == identity for d in self._devices.values()):
            raise ApiError(400, "DTLS identity already taken")

    def _new_id(self, endpoint: str) -> str:
        digest = hashlib.sha256(endpoint.encode("utf-8")).hexdigest()
        for length in range(16, len(digest) + 1):
            candidate = "d" + digest[:length]
            if candidate not in self._devices:
                return candidate
        raise ApiError(500, "Cannot allocate a device id")

    def _search(self, query: dict[str, list[str]]) -> list[dict]:
        criteria = _parse_criteria(query.get("searchCriteria", [""])[0])
        return [d for d in self._devices.values()
                if all(_criterion_holds(d, *c) for c in criteria)]

    def _find_details(self, query: dict[str, list[str]]) -> dict:
        limit = _int_param(query, "limit", 100, 0, MAX_LIMIT)
        offset = _int_param(query, "pageBookmark", 0, 0, None)
        fields = [f for f in query.get("fieldSelection", [""])[0].split(",") if f.strip()]
        found = self._search(query)
        page = found[offset:offset + limit]
        more = offset + limit < len(found)
        return {"devices": [_select(d, fields) for d in page],
                "nextPageBookmark": str(offset + limit) if more else None}


# -- pure helpers ------------------------------------------------------------------------------

def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _device_names(body: dict) -> tuple[dict, str | None, str]:
    """The properties, the explicit id (or None) and the endpoint name of a new device."""
    properties = body.get("properties") or {}
    if not isinstance(properties, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in properties.items()):
        raise ApiError(400, "properties must map strings to strings")
    explicit_id = body.get("id")
    if explicit_id is not None and (not isinstance(explicit_id, str) or not explicit_id):
        raise ApiError(400, "id must be a non-empty string or null")
    endpoint = properties.get("endpointName") or explicit_id
    if not endpoint:
        raise ApiError(400, "Missing properties.endpointName")
    if len(endpoint) > MAX_ENDPOINT_NAME:
        raise ApiError(400, f"Endpoint name longer than {MAX_ENDPOINT_NAME} characters")
    return properties, explicit_id, endpoint


def _device_security(body: dict) -> tuple[str, str, str | None, dict | None]:
    """Connector type, security mode, DTLS identity and PSK of a new device."""
    connector = body.get("connectorType") or "management"
    if connector not in CONNECTOR_TYPES:
        raise ApiError(400, "Invalid connector type")
    mode = body.get("securityMode") or "notset"
    if mode not in SECURITY_MODES:
        raise ApiError(400, "Invalid security mode")
    identity = body.get("dtlsIdentity")
    if identity is not None and not isinstance(identity, str):
        raise ApiError(400, "dtlsIdentity must be a string or null")
    return connector, mode, identity, _normalize_psk(body.get("dtlsPsk"))


def _device_membership(body: dict) -> tuple[list[str], dict[str, bool]]:
    """Direct groups and the blacklisted/managementEnabled flags of a new device."""
    groups = body.get("directGroups") or []
    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        raise ApiError(400, "directGroups must be a list of strings")
    flags = {}
    for name, default in (("blacklisted", False), ("managementEnabled", True)):
        value = body.get(name)
        if value is not None and not isinstance(value, bool):
            raise ApiError(400, f"{name} must be a boolean")
        flags[name] = default if value is None else value
    return groups, flags


def _normalize_psk(value: Any) -> dict | None:
    if value is None:
        return None
    if not isinstance(value, dict) or len(value) != 1 or next(iter(value)) not in PSK_FORMS:
        raise ApiError(400, f"dtlsPsk must hold exactly one of {', '.join(PSK_FORMS)}")
    (form, content), = value.items()
    if form == "HexadecimalPsk":
        if not isinstance(content, str) or not content:
            raise ApiError(400, "HexadecimalPsk must be a non-empty string")
        if len(content) % 2:
            raise ApiError(400, "HexadecimalPsk has an odd number of hex digits")
        if not re.fullmatch(r"[0-9A-Fa-f]+", content):
            raise ApiError(400, "HexadecimalPsk is not hexadecimal")
        return {form: content.upper()}  # stored values come back in upper case
    if form == "PlainTextPsk" and not isinstance(content, str):
        raise ApiError(400, "PlainTextPsk must be a string")
    if form == "BinaryPsk" and not (isinstance(content, list) and all(
            isinstance(b, int) and not isinstance(b, bool) and 0 <= b <= 255 for b in content)):
        raise ApiError(400, "BinaryPsk must be a list of bytes")
    if form in ("ExternalPsk", "GlobalPsk") and not isinstance(content, dict):
        raise ApiError(400, f"{form} must be an object")
    return {form: content}


_CRITERION = re.compile(r"\s*([A-Za-z][\w.]*)\s+(eq|startswith)\s+('[^']*'|true|false|-?\d+)\s*")
_AND = re.compile(r"and\s+")


def _parse_criteria(text: str) -> list[tuple[str, str, Any]]:
    """`field op value [and field op value ...]`, op in eq/startswith; ApiError(400) otherwise."""
    criteria: list[tuple[str, str, Any]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        match = _CRITERION.match(text, pos)
        if not match:
            raise ApiError(400, f"Unsupported search criteria: {text}")
        name, op, raw = match.groups()
        if name.split(".")[0] in ENCRYPTED_FIELDS:
            raise ApiError(400, f"Search by the encrypted field {name} is not supported")
        if raw.startswith("'"):
            value: Any = raw[1:-1]
        elif raw in ("true", "false"):
            value = raw == "true"
        else:
            value = raw
        criteria.append((name, op, value))
        pos = match.end()
        if pos < len(text):
            joiner = _AND.match(text, pos)
            if not joiner:
                raise ApiError(400, f"Unsupported search criteria: {text}")
            pos = joiner.end()
    return criteria


def _lookup(device: dict, parts: list[str]) -> tuple[bool, Any]:
    """(found, value) of a dotted field path; a field holding null is found."""
    node: Any = device
    for part in parts:
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _criterion_holds(device: dict, name: str, op: str, value: Any) -> bool:
    found, actual = _lookup(device, name.split("."))
    if not found:
        return False
    if op == "startswith":
        return isinstance(actual, str) and isinstance(value, str) and actual.startswith(value)
    if isinstance(value, str) and not isinstance(actual, str) and actual is not None:
        return str(actual) == value
    return actual == value


def _select(device: dict, fields: list[str]) -> dict:
    if not fields:
        return copy.deepcopy(device)
    out: dict = {}
    for name in fields:
        parts = name.strip().split(".")
        found, source = _lookup(device, parts)
        if not found:
            continue
        target = out
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = copy.deepcopy(source)
    return out


def _int_param(query: dict[str, list[str]], name: str, default: int, low: int,
               high: int | None) -> int:
    raw = query.get(name, [""])[0]
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"{name} must be an integer") from None
    if value < low or (high is not None and value > high):
        raise ApiError(400, f"{name} must be between {low} and {high}")
    return value


# -- HTTP plumbing -----------------------------------------------------------------------------

class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    sim: CoioteServer

    def handle_error(self, request, client_address) -> None:
        log.debug("fake Coiote: connection from %s failed", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "CoioteSim/1.0"
    timeout = 30  # idle keep-alive connections are closed after this
    disable_nagle_algorithm = True  # headers and body go out in two writes: avoid 40 ms stalls
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        with self.server.sim._lock:
            self.server.sim._connections.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            with self.server.sim._lock:
                self.server.sim._connections.discard(self.connection)

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("fake Coiote: " + format, *args)

    def _handle(self) -> None:
        try:
            self._serve()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (e.g. its timeout passed)

    def _serve(self) -> None:
        sim = self.server.sim
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self.close_connection = True
            self._send(400, {"error": "Invalid Content-Length"})
            return
        raw = self.rfile.read(length) if length > 0 else b""
        try:
            body = json.loads(raw) if raw else None
        except (ValueError, UnicodeDecodeError):
            body = _MALFORMED
        split = urlsplit(self.path)
        authorized = sim._authorized(self.headers.get("Authorization"))
        sim._record(RecordedRequest(
            method=self.command, path=split.path,
            json=None if body is _MALFORMED else body, query=split.query, body=raw,
            headers={k: v for k, v in self.headers.items() if k.lower() != "authorization"},
            authorized=authorized))

        api_path = split.path[len(API_PREFIX):] if split.path.startswith(API_PREFIX) else None
        fault = sim._take_fault(self.command, api_path if api_path is not None else split.path)
        late = fault is not None and fault.process_first and fault.status is None
        if fault is not None and not late:
            if fault.delay > 0 and sim._stopping.wait(fault.delay):
                self.close_connection = True
                return
            if fault.status is not None:
                self._send_fault(fault)
                return
        status, payload, headers = self._answer(api_path, authorized, body, split.query)
        if late and sim._stopping.wait(fault.delay):  # done, but the answer comes too late
            self.close_connection = True
            return
        self._send(status, payload, headers)

    def _answer(self, api_path: str | None, authorized: bool, body: Any,
                query: str) -> tuple[int, Any, dict[str, str]]:
        if api_path is None:
            return 404, {"error": "Not found"}, {}
        if not authorized:
            return 401, None, {"WWW-Authenticate": "Bearer"}
        if body is _MALFORMED:
            return 400, {"error": "Malformed JSON body"}, {}
        try:
            status, payload = self.server.sim._dispatch(
                self.command, api_path, parse_qs(query, keep_blank_values=True), body)
        except ApiError as exc:
            return exc.status, {"error": exc.message}, {}
        return status, payload, {}

    def _send_fault(self, fault: Fault) -> None:
        headers = {}
        if fault.retry_after is not None:
            retry = fault.retry_after
            headers["Retry-After"] = (str(int(retry)) if isinstance(retry, float | int)
                                      and float(retry).is_integer() else str(retry))
        body = fault.body
        if body is None:
            text = DEFAULT_ERRORS.get(fault.status, _phrase(fault.status))
            body = {"error": text} if text else None
        self._send(fault.status, body, headers)

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        if payload is None:
            data, content_type = b"", None
        elif isinstance(payload, bytes):
            data, content_type = payload, "text/plain"
        elif isinstance(payload, str):
            data, content_type = payload.encode("utf-8"), "text/plain; charset=utf-8"
        else:
            data, content_type = json.dumps(payload).encode("utf-8"), "application/json"
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if content_type and status != 204:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data) if status != 204 else 0))
        self.end_headers()
        if data and status != 204:
            self.wfile.write(data)
        self.wfile.flush()


_MALFORMED = object()


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"
