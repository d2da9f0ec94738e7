"""Coiote DM v3 REST client: register a device, look it up, delete it.

The seed tool posts once without a timeout and dies with a JSON error on a non-JSON reply. This
client keeps the seed's request (URL, headers, body bytes and key order) and adds what a factory
line needs: a timeout on every call, bounded retries with backoff on 429/502/503/504, connection
errors and timeouts (honouring `Retry-After`), typed :class:`CloudError`s that name the endpoint
and the server's `error` text, and idempotent registration: a 409 is answered by looking the
device up and comparing its security settings, so a retried POST whose first attempt did reach
the server ends as "already registered" rather than as a failure.

EST: the seed sends ``"securityMode": "est"``, which the public v3 API does not list (it knows
psk, cert, rpk, nosec, unknown and notset). We send only documented values: an EST device
authenticates with a certificate (enrolled over EST), so it is created as ``"cert"``, with no
identity and no PSK, like a Certificate-mode device.

Secrets: the token is sent only in the Authorization header; it and the PSK are scrubbed from
every message we build, never logged, and left out of the client's repr.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote, urlencode, urlsplit

from hilprov.core.files import read_json, read_text
from hilprov.core.lwm2m import SecurityMode
from hilprov.errors import CloudError, ConfigError

if TYPE_CHECKING:  # requests is imported where a request is made (it costs ~100 ms)
    import requests

log = logging.getLogger("hilprov.cloud.coiote")

DEFAULT_URL = "https://eu.iot.avsystem.cloud"
DEFAULT_PORT = 8087  # the seed's "REST API port"
API_PREFIX = "/api/coiotedm/v3"
ACCESS_CHECK_ENDPOINT = "hilprov-access-check"  # looked up, never created

TOKEN_ENV = "COIOTE_TOKEN"
RETRY_STATUSES = frozenset({429, 502, 503, 504})
MAX_BACKOFF = 30.0
REGISTRABLE_MODES = ("psk", "cert", "nosec", "est")
API_MODES = {"est": "cert"}  # the API documents no "est": EST devices use certificates
MAX_ENDPOINT_NAME = 150  # Coiote release notes v2023.22.0


# -- server info and token ---------------------------------------------------------------------

@dataclass(frozen=True)
class ServerInfo:
    """Where the Coiote REST API is and which domain devices go to."""

    url: str  # scheme://host[:port], no trailing slash
    port: int | None  # None when `url` carries its own port
    domain: str
    source: str = "server info"

    @property
    def base_url(self) -> str:
        return self.url if self.port is None else f"{self.url}:{self.port}"


def load_server_info(path: str | Path) -> ServerInfo:
    """Read a server.json (`url`, `port`, `domain`); errors name the file."""
    return parse_server_info(read_json(path, "server info"), str(path))


def parse_server_info(data: Any, source: str = "server info") -> ServerInfo:
    """Check a server-info mapping; the base URL is url + ':' + port like the seed's."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: server info must be a JSON object, "
                          f"got {type(data).__name__}")
    known = ("url", "port", "domain")
    unknown = [k for k in data if k not in known]
    if unknown:
        hint = ("; the token does not belong in this file: use --token-file or COIOTE_TOKEN"
                if any("token" in str(k).lower() for k in unknown) else "")
        raise ConfigError(f"{source}: unknown key(s) {', '.join(map(repr, unknown))}; known keys: "
                          f"{', '.join(known)}{hint}")

    url, url_port = _parse_url(data.get("url", DEFAULT_URL), source)
    port: int | None
    if "port" in data:
        port = _parse_port(data["port"], source)
        if url_port is not None:
            if url_port != port:
                raise ConfigError(f"{source}: url {url!r} has port {url_port} but port is {port}; "
                                  "give the port in one place only")
            port = None  # already in the url
    else:
        port = None if url_port is not None else DEFAULT_PORT
    return ServerInfo(url=url, port=port, domain=_parse_domain(data.get("domain"), source),
                      source=source)


def _parse_url(url: Any, source: str) -> tuple[str, int | None]:
    """The base URL without a trailing slash, and the port it carries (None if none)."""
    if not isinstance(url, str) or not url:
        raise ConfigError(f"{source}: url must be a non-empty string like {DEFAULT_URL!r}")
    url = url.rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{source}: url {url!r} must look like https://host[:port]")
    if parts.path or parts.query or parts.fragment:
        raise ConfigError(f"{source}: url {url!r} must be scheme://host[:port] only; the API path "
                          f"{API_PREFIX} is added by hilprov")
    if parts.username or parts.password:
        raise ConfigError(f"{source}: url must not carry credentials; use a token instead")
    try:
        return url, parts.port
    except ValueError:
        raise ConfigError(f"{source}: url {url!r} has an invalid port") from None


def _parse_domain(domain: Any, source: str) -> str:
    if domain is None:
        raise ConfigError(f"{source}: domain is required (e.g. \"/embedded/\")")
    if not isinstance(domain, str) or not domain.startswith("/") or not domain.endswith("/"):
        raise ConfigError(f"{source}: domain must start and end with '/' (e.g. \"/embedded/\"), "
                          f"got {domain!r}")
    return domain


def _parse_port(value: Any, source: str) -> int:
    if isinstance(value, str) and value.isdigit():
        value = int(value)  # the seed did str(port), so "8087" worked there too
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        raise ConfigError(f"{source}: port must be an integer 1-65535, got {value!r}")
    return value


def resolve_token(cli_token: str | None = None, token_file: str | Path | None = None,
                  environ: Mapping[str, str] = os.environ) -> str | None:
    """Pick the token: `-t` (seed compatible) > `--token-file` > $COIOTE_TOKEN; None if none."""
    if cli_token is not None and cli_token.strip():
        return cli_token.strip()
    if token_file is not None:
        path = Path(token_file)
        token = read_text(path, "token file").strip()
        if not token:
            raise ConfigError(f"{path}: token file is empty")
        return token
    token = environ.get(TOKEN_ENV, "").strip()
    return token or None


# -- client ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RegistrationResult:
    endpoint_name: str
    device_id: str | None
    status: Literal["created", "already registered"]


class CoioteClient:
    """A Coiote DM v3 client on one `requests.Session`; see the module docstring."""

    def __init__(self, base_url: str, token: str, *, timeout: float = 10.0,
                 max_attempts: int = 5, max_total_time: float = 60.0, backoff_base: float = 0.5,
                 jitter: float = 0.1, session: requests.Session | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not token:
            raise ConfigError(f"no Coiote API token: give -t, --token-file or set ${TOKEN_ENV}")
        if max_attempts < 1 or timeout <= 0 or max_total_time <= 0:
            raise ValueError("timeout, max_attempts and max_total_time must be positive")
        self.base_url = base_url.rstrip("/")
        self._api = self.base_url + API_PREFIX
        self._token = token
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.max_total_time = max_total_time
        self.backoff_base = backoff_base
        self.jitter = jitter
        if session is None:
            import requests

            session = requests.Session()
            self._owns_session = True
        else:
            self._owns_session = False
        self._session = session
        self._sleep = sleep
        self._clock = clock

    def __repr__(self) -> str:
        return (f"CoioteClient({self.base_url!r}, timeout={self.timeout}, "
                f"max_attempts={self.max_attempts}, max_total_time={self.max_total_time})")

    def close(self) -> None:
        if self._owns_session:
            self._session.close()

    def __enter__(self) -> CoioteClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- public operations -------------------------------------------------------------------

    def register_device(self, endpoint_name: str, domain: str,
                        security_mode: SecurityMode | str, psk_identity: bytes | None,
                        psk: bytes | None) -> RegistrationResult:
        """Create the device like the seed does; a 409 with identical settings is success."""
        mode = _mode_string(security_mode)
        mode = API_MODES.get(mode, mode)
        _check_endpoint_name(endpoint_name)
        if not isinstance(domain, str) or not domain.startswith("/") or not domain.endswith("/"):
            raise ConfigError(f"Coiote domain must start and end with '/', got {domain!r}")
        identity: str | None = None
        psk_hex: str | None = None
        if mode == "psk":  # other modes send nulls, as the seed does
            if not psk_identity or not psk:
                raise ConfigError(f"endpoint {endpoint_name!r}: PSK mode needs a non-empty PSK "
                                  "identity and key to register with Coiote")
            try:
                identity = bytes(psk_identity).decode("utf-8")
            except UnicodeDecodeError:
                raise ConfigError(f"endpoint {endpoint_name!r}: the PSK identity is not UTF-8 "
                                  "text; Coiote's dtlsIdentity is a string") from None
            psk_hex = bytes(psk).hex()
        body = {
            "properties": {"endpointName": endpoint_name},
            "connectorType": "management",
            "domain": domain,
            "securityMode": mode,
            "dtlsIdentity": identity,
            "dtlsPsk": {"HexadecimalPsk": psk_hex} if psk_hex is not None else None,
        }
        action = f"registering endpoint {endpoint_name!r}"
        secrets = (psk_hex,) if psk_hex else ()
        resp = self._request("POST", "/devices", action=action, endpoint=endpoint_name,
                             body=body, secrets=secrets)
        if 200 <= resp.status_code < 300:
            data = _json(resp)
            device_id = data.get("id") if isinstance(data, dict) else None
            if not isinstance(device_id, str) and "'" not in endpoint_name:
                device_id = self._find_device_id(endpoint_name)
            log.info("registered endpoint %r in Coiote domain %s (device id %s)",
                     endpoint_name, domain, device_id)
            return RegistrationResult(endpoint_name, device_id, "created")
        if resp.status_code == 409:
            sent_psk = psk if psk_hex is not None else None  # only PSK mode sends one
            return self._verify_existing(resp, endpoint_name, domain, mode, identity, sent_psk,
                                         action)
        raise self._error(resp, action, endpoint_name, secrets)

    def find_device(self, endpoint_name: str) -> dict | None:
        """The full device with this endpoint name, or None; uses the id Coiote reports."""
        device_id = self._find_device_id(endpoint_name)
        if device_id is None:
            return None
        return self.get_device(device_id, endpoint=endpoint_name)

    def get_device(self, device_id: str, *, endpoint: str | None = None) -> dict:
        action = f"reading device {device_id!r}" + _of_endpoint(endpoint)
        resp = self._request("GET", f"/devices/{quote(device_id, safe='')}", action=action,
                             endpoint=endpoint)
        if resp.status_code != 200:
            raise self._error(resp, action, endpoint)
        data = _json(resp)
        if not isinstance(data, dict):
            raise CloudError(f"{action}: Coiote answered 200 without a JSON device object"
                             f"{_body_hint(resp, (self._token,))}", status=200, endpoint=endpoint)
        return data

    def delete_device(self, device_id: str, *, endpoint: str | None = None) -> bool:
        """Delete by device id; True if deleted, False if it was already gone (404)."""
        action = f"deleting device {device_id!r}" + _of_endpoint(endpoint)
        resp = self._request("DELETE", f"/devices/{quote(device_id, safe='')}", action=action,
                             endpoint=endpoint)
        if 200 <= resp.status_code < 300:
            return True
        if resp.status_code == 404:
            return False
        raise self._error(resp, action, endpoint)

    def delete_by_endpoint(self, endpoint_name: str) -> bool:
        """Find the device by endpoint name and delete it; False if there was none."""
        device_id = self._find_device_id(endpoint_name)
        if device_id is None:
            return False
        return self.delete_device(device_id, endpoint=endpoint_name)

    # -- helpers -----------------------------------------------------------------------------

    def check_access(self) -> None:
        """One read that needs the token (a lookup of an endpoint no device has), so a wrong or
        expired token, or a server that is not there, stops a run before any unit is touched."""
        self._find_device_id(ACCESS_CHECK_ENDPOINT,
                             action="checking the API token before any unit is touched")

    def _find_device_id(self, endpoint_name: str, action: str | None = None) -> str | None:
        _check_endpoint_name(endpoint_name)
        if "'" in endpoint_name:
            raise ConfigError(f"endpoint {endpoint_name!r}: a quote cannot be expressed in a "
                              "Coiote search; rename the endpoint")
        action = action or f"looking up endpoint {endpoint_name!r}"
        query = {"searchCriteria": f"properties.endpointName eq '{endpoint_name}'",
                 "fieldSelection": "id", "limit": "1"}
        resp = self._request("GET", "/devices/find/details", action=action,
                             endpoint=endpoint_name, query=query)
        if resp.status_code != 200:
            raise self._error(resp, action, endpoint_name)
        data = _json(resp)
        devices = data.get("devices") if isinstance(data, dict) else None
        if not isinstance(devices, list):
            raise CloudError(f"{action}: Coiote's answer has no 'devices' list"
                             f"{_body_hint(resp, (self._token,))}", status=200,
                             endpoint=endpoint_name)
        for device in devices:
            if isinstance(device, dict) and isinstance(device.get("id"), str):
                return device["id"]
        return None

    def _verify_existing(self, resp: requests.Response, endpoint: str, domain: str, mode: str,
                         identity: str | None, psk: bytes | None,
                         action: str) -> RegistrationResult:
        secrets = (bytes(psk).hex(),) if psk else ()
        server_error = self._server_error(resp, secrets)
        device = self.find_device(endpoint)
        if device is None:
            raise CloudError(
                f"{action}: Coiote says the device already exists (409: "
                f"{server_error or 'no error message'}) but no device with this endpoint name is "
                "visible to this token; it may sit in a domain this user cannot read",
                status=409, endpoint=endpoint, server_error=server_error)
        device_id = device.get("id")
        differences = []
        if device.get("securityMode") != mode:
            differences.append(f"securityMode is {device.get('securityMode')!r} (wanted {mode!r})")
        if device.get("domain") != domain:
            differences.append(f"domain is {device.get('domain')!r} (wanted {domain!r})")
        if (device.get("dtlsIdentity") or None) != identity:
            differences.append(f"dtlsIdentity is {device.get('dtlsIdentity')!r} "
                               f"(wanted {identity!r})")
        if "dtlsPsk" not in device:
            log.warning("Coiote did not return the PSK of endpoint %r; cannot compare it", endpoint)
        elif _psk_bytes(device["dtlsPsk"]) != (bytes(psk) if psk else None):
            differences.append("dtlsPsk differs (values not shown)")
        if differences:
            raise CloudError(
                f"{action}: the endpoint is already registered in Coiote (device id "
                f"{device_id!r}) with different settings: {'; '.join(differences)}. Delete that "
                "device in Coiote or fix the configuration.",
                status=409, endpoint=endpoint, server_error=server_error)
        log.info("endpoint %r is already registered in Coiote with the same settings", endpoint)
        return RegistrationResult(endpoint, device_id, "already registered")

    def _request(self, method: str, path: str, *, action: str, endpoint: str | None,
                 body: Any = None, query: Mapping[str, str] | None = None,
                 secrets: Iterable[str] = ()) -> requests.Response:
        """Send one call with retries; returns the first non-retryable response."""
        import requests

        secrets = tuple(secrets)
        url = self._api + path
        if query:
            url += "?" + urlencode(query, quote_via=quote, safe="'/,:")
        headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}
        start = self._clock()
        deadline = start + self.max_total_time
        last, last_status, last_server_error = "no answer", None, None
        attempt = 0
        while True:
            remaining = deadline - self._clock()
            if remaining <= 0:
                raise self._gave_up(action, endpoint, attempt, start, last, last_status,
                                    last_server_error, "the time budget is used up")
            attempt += 1
            retry_after: float | None = None
            try:
                resp = self._send(method, url, headers, body, deadline)
            except requests.exceptions.SSLError as exc:
                reason = self._scrub(_short(exc), secrets)
                raise CloudError(f"{action}: TLS failure talking to {self.base_url}: {reason}",
                                 endpoint=endpoint) from None
            except (requests.ConnectionError, requests.Timeout,
                    requests.exceptions.ChunkedEncodingError) as exc:
                last = f"{type(exc).__name__}: {self._scrub(_short(exc), secrets)}"
                last_status, last_server_error = None, None
            except requests.RequestException as exc:
                raise CloudError(f"{action}: cannot send the request to {self.base_url}: "
                                 f"{type(exc).__name__}: {self._scrub(_short(exc), secrets)}",
                                 endpoint=endpoint) from None
            else:
                if resp.status_code not in RETRY_STATUSES:
                    return resp
                last_status = resp.status_code
                last_server_error = self._server_error(resp, secrets)
                last = f"HTTP {last_status}" + (f" ({last_server_error})" if last_server_error
                                                else "")
                retry_after = _parse_retry_after(resp.headers.get("Retry-After"))
                resp.close()
            if attempt >= self.max_attempts:
                raise self._gave_up(action, endpoint, attempt, start, last, last_status,
                                    last_server_error, "no attempts left")
            delay = retry_after if retry_after is not None else self._backoff(attempt)
            remaining = deadline - self._clock()
            if delay >= remaining:
                raise self._gave_up(action, endpoint, attempt, start, last, last_status,
                                    last_server_error,
                                    f"waiting {delay:.1f} s more would pass the "
                                    f"{self.max_total_time:g} s budget")
            log.warning("Coiote %s %s (%s): %s; retry %d/%d in %.2f s", method, path, action,
                        last, attempt + 1, self.max_attempts, delay)
            self._sleep(delay)

    def _send(self, method: str, url: str, headers: dict, body: Any,
              deadline: float) -> requests.Response:
        """One HTTP exchange, the body included, within `deadline`: the per-read timeout alone
        would let a body that trickles in byte by byte last forever, so a watchdog cuts the
        connection when the time is up (requests.Timeout)."""
        import requests

        remaining = max(0.0, deadline - self._clock())
        resp = self._session.request(method, url, headers=headers, json=body,
                                     timeout=min(self.timeout, remaining), allow_redirects=False,
                                     stream=True)
        expired = threading.Event()

        def cut() -> None:
            expired.set()
            with contextlib.suppress(Exception):  # the body may be complete already
                resp.raw.shutdown()

        watchdog = threading.Timer(max(0.0, deadline - self._clock()), cut)
        watchdog.daemon = True
        watchdog.start()
        try:
            resp.content  # noqa: B018 - reads the whole body now, under the watchdog
        except (requests.exceptions.ChunkedEncodingError, requests.ConnectionError) as exc:
            if expired.is_set():
                raise requests.Timeout("the answer's body did not arrive within the time "
                                       "budget") from None
            raise exc from None
        finally:
            watchdog.cancel()
        if expired.is_set():
            resp.close()
            raise requests.Timeout("the answer's body did not arrive within the time budget")
        return resp

    def _backoff(self, attempt: int) -> float:
        delay = min(MAX_BACKOFF, self.backoff_base * 2 ** (attempt - 1))
        return delay + random.uniform(0, delay * self.jitter) if self.jitter > 0 else delay

    def _gave_up(self, action: str, endpoint: str | None, attempts: int, start: float,
                 last: str, status: int | None, server_error: str | None,
                 why: str) -> CloudError:
        elapsed = self._clock() - start
        return CloudError(f"{action}: Coiote at {self.base_url} gave no usable answer after "
                          f"{attempts} attempt{'s' if attempts != 1 else ''} in {elapsed:.1f} s "
                          f"({why}); last: {last}",
                          status=status, endpoint=endpoint, server_error=server_error)

    def _error(self, resp: requests.Response, action: str, endpoint: str | None,
               secrets: Iterable[str] = ()) -> CloudError:
        secrets = tuple(secrets)
        status = resp.status_code
        server_error = self._server_error(resp, secrets)
        detail = f": {server_error}" if server_error else _body_hint(resp, (self._token, *secrets))
        if status == 401:
            text = (f"Coiote rejected the API token (401 Unauthorized){detail}; it is wrong or "
                    f"expired: get a new one and pass it with --token-file or ${TOKEN_ENV}")
        elif status == 403:
            text = (f"the token's user may not do this (403 Forbidden){detail}; check the "
                    "user's permissions and the domain")
        elif status == 404:
            text = (f"not found (404){detail}; check the url and port in the server info "
                    f"({self.base_url})")
        elif status == 400:
            text = f"Coiote refused the request as invalid (400){detail}"
        elif status == 409:
            text = f"conflict with the server's state (409){detail}"
        elif 300 <= status < 400:
            text = (f"redirected ({status}) to {resp.headers.get('Location', '?')}; put the "
                    "final address in the server info")
        elif status >= 500:
            text = f"Coiote server error ({status}){detail}; try again later"
        else:
            text = f"unexpected HTTP {status}{detail}"
        return CloudError(f"{action}: {text}", status=status, endpoint=endpoint,
                          server_error=server_error)

    def _server_error(self, resp: requests.Response, secrets: Iterable[str]) -> str | None:
        data = _json(resp)
        if isinstance(data, dict) and isinstance(data.get("error"), str) and data["error"]:
            return self._scrub(data["error"], tuple(secrets))
        return None

    def _scrub(self, text: str, secrets: tuple[str, ...]) -> str:
        return _redact(text, (self._token, *secrets))


# -- small pure helpers ------------------------------------------------------------------------

def _mode_string(security_mode: SecurityMode | str | int) -> str:
    if isinstance(security_mode, int) and not isinstance(security_mode, SecurityMode):
        try:
            security_mode = SecurityMode(security_mode)
        except ValueError:
            raise ConfigError(f"unknown security mode {security_mode}") from None
    mode = str(security_mode).lower()
    if mode not in REGISTRABLE_MODES:
        raise ConfigError(f"security mode {mode!r} cannot be registered with Coiote; "
                          f"use one of {', '.join(REGISTRABLE_MODES)}")
    return mode


def _of_endpoint(endpoint: str | None) -> str:
    return f" of endpoint {endpoint!r}" if endpoint else ""


def _check_endpoint_name(name: str) -> None:
    if not isinstance(name, str) or not name:
        raise ConfigError("the endpoint name is empty; Coiote needs one to register a device")
    if len(name) > MAX_ENDPOINT_NAME:
        raise ConfigError(f"endpoint name is {len(name)} characters; Coiote allows at most "
                          f"{MAX_ENDPOINT_NAME}")


def _json(resp: requests.Response) -> Any:
    if not resp.content:
        return None
    try:
        return resp.json()
    except ValueError:
        return None


def _body_hint(resp: requests.Response, secrets: tuple[str | None, ...]) -> str:
    """A short, scrubbed excerpt of a non-JSON error body, or that the body was empty."""
    if not resp.content:
        return " (empty response body)"
    if _json(resp) is not None:
        return " (no error message)"
    text = _redact(" ".join(resp.content[:200].decode("utf-8", "replace").split()), secrets)
    return f" (response is not JSON: {text[:80]!r})"


def _redact(text: str, secrets: tuple[str | None, ...]) -> str:
    for secret in secrets:
        if secret:
            text = re.sub(re.escape(secret), "***", text, flags=re.IGNORECASE)
    return text


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 200 else text[:197] + "..."


def _parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date); None if absent."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            import email.utils  # only for a Retry-After date, rarely sent

            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


def _psk_bytes(value: Any) -> bytes | None | object:
    """Coiote's stored PSK in any of its forms as bytes; a sentinel if it cannot be compared."""
    if value is None:
        return None
    if isinstance(value, dict):
        if isinstance(value.get("HexadecimalPsk"), str):
            try:
                return bytes.fromhex(value["HexadecimalPsk"])
            except ValueError:
                return _UNCOMPARABLE
        if isinstance(value.get("PlainTextPsk"), str):
            return value["PlainTextPsk"].encode("utf-8")
        if isinstance(value.get("BinaryPsk"), list):
            try:
                return bytes(value["BinaryPsk"])
            except (TypeError, ValueError):
                return _UNCOMPARABLE
    return _UNCOMPARABLE


_UNCOMPARABLE = object()

__all__ = [
    "ServerInfo", "load_server_info", "parse_server_info", "resolve_token", "CoioteClient",
    "RegistrationResult", "DEFAULT_URL", "DEFAULT_PORT", "API_PREFIX", "TOKEN_ENV",
]
