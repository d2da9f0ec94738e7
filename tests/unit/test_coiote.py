"""Coiote DM v3 client against `responses`: wire format, errors, retries, budgets, secrecy."""

from __future__ import annotations

import email.utils
import json
import logging
import time
from pathlib import Path

import pytest
import requests
import responses
from responses import matchers
from responses.registries import OrderedRegistry

from hilprov.cloud.coiote import (
    CoioteClient,
    RegistrationResult,
    ServerInfo,
    load_server_info,
    parse_server_info,
    resolve_token,
)
from hilprov.core.lwm2m import SecurityMode
from hilprov.errors import CloudError, ConfigError

BASE = "https://coiote.test:8087"
API = BASE + "/api/coiotedm/v3"
TOKEN = "s3cr3t-T0KEN-value"
PSK = bytes.fromhex("0a0b0c0d")
EP = "ep-1"
FIND_URL = (API + "/devices/find/details?searchCriteria=properties.endpointName%20eq%20'ep-1'"
            "&fieldSelection=id&limit=1")


class FakeTime:
    """A clock that only moves when the client sleeps; records every sleep."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def fake_time():
    return FakeTime()


@pytest.fixture
def make_client(fake_time):
    def make(**overrides) -> CoioteClient:
        options = dict(timeout=5.0, max_attempts=5, max_total_time=60.0, backoff_base=0.5,
                       jitter=0.0, sleep=fake_time.sleep, clock=fake_time.clock)
        options.update(overrides)
        return CoioteClient(BASE, TOKEN, **options)
    return make


@pytest.fixture
def rsps():
    with responses.RequestsMock(registry=OrderedRegistry) as mock:
        yield mock


def seed_body(mode, identity, psk_hex):
    return {"properties": {"endpointName": EP}, "connectorType": "management",
            "domain": "/embedded/", "securityMode": mode, "dtlsIdentity": identity,
            "dtlsPsk": {"HexadecimalPsk": psk_hex} if psk_hex else None}


def stored_device(**changes):
    device = {"id": "d-77", "domain": "/embedded/", "connectorType": "management",
              "securityMode": "psk", "dtlsIdentity": EP, "dtlsPsk": {"HexadecimalPsk": "0A0B0C0D"},
              "properties": {"endpointName": EP}, "directGroups": [], "blacklisted": False,
              "managementEnabled": True}
    device.update(changes)
    return device


def assert_no_secrets(text: str) -> None:
    assert TOKEN not in text
    assert PSK.hex() not in text.lower()


# -- creation: exact wire format ---------------------------------------------------------------

def test_create_psk_sends_the_seed_request(rsps, make_client):
    rsps.post(API + "/devices", status=201, json={"id": "d-1", "result": "Device created"})
    result = make_client().register_device(EP, "/embedded/", "psk", b"ep-1", PSK)
    assert result == RegistrationResult(EP, "d-1", "created")
    request = rsps.calls[0].request
    assert request.url == API + "/devices"
    # byte for byte what the seed's requests.post(json=...) sends, in the seed's key order
    assert request.body == json.dumps(seed_body("psk", "ep-1", "0a0b0c0d")).encode()
    assert list(json.loads(request.body)) == ["properties", "connectorType", "domain",
                                              "securityMode", "dtlsIdentity", "dtlsPsk"]
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["Accept"] == "application/json"
    assert request.headers["Content-Type"] == "application/json"
    assert 0 < request.req_kwargs["timeout"] <= 5.0


@pytest.mark.parametrize("mode", ["nosec", "cert", SecurityMode.NOSEC, SecurityMode.CERT])
def test_create_without_psk_sends_nulls(rsps, make_client, mode):
    rsps.post(API + "/devices", status=201, json={"id": "d-1", "result": "Device created"})
    result = make_client().register_device(EP, "/embedded/", mode, b"ignored", b"ignored")
    assert result.status == "created"
    assert rsps.calls[0].request.body == json.dumps(seed_body(str(mode), None, None)).encode()


def test_security_mode_enum_psk(rsps, make_client):
    rsps.post(API + "/devices", status=201, json={"id": "d-1", "result": "ok"})
    make_client().register_device(EP, "/embedded/", SecurityMode.PSK, b"ep-1", PSK)
    assert json.loads(rsps.calls[0].request.body)["securityMode"] == "psk"


def test_created_without_id_in_body_looks_the_id_up(rsps, make_client):
    rsps.post(API + "/devices", status=201, body="")
    rsps.get(FIND_URL, json={"devices": [{"id": "d-9"}], "nextPageBookmark": None})
    assert make_client().register_device(EP, "/embedded/", "nosec", None, None).device_id == "d-9"


@pytest.mark.parametrize("args, message", [
    (("psk", None, PSK), "PSK mode needs"),
    (("psk", b"ep-1", b""), "PSK mode needs"),
    (("psk", b"\xff\xfe", PSK), "not UTF-8"),
    (("rpk", None, None), "rpk"),
    ((SecurityMode.RPK, None, None), "rpk"),
])
def test_invalid_registration_input_is_a_config_error(rsps, make_client, args, message):
    mode, identity, psk = args
    with pytest.raises(ConfigError, match=message) as caught:
        make_client().register_device(EP, "/embedded/", mode, identity, psk)
    assert_no_secrets(str(caught.value))
    assert len(rsps.calls) == 0


def test_bad_domain_and_empty_endpoint_are_refused_before_sending(rsps, make_client):
    with pytest.raises(ConfigError, match="domain"):
        make_client().register_device(EP, "embedded", "nosec", None, None)
    with pytest.raises(ConfigError, match="endpoint name"):
        make_client().register_device("", "/embedded/", "nosec", None, None)
    with pytest.raises(ConfigError, match="150"):
        make_client().register_device("e" * 151, "/embedded/", "nosec", None, None)


# -- error answers -----------------------------------------------------------------------------

@pytest.mark.parametrize("body", ["", "<html><body>Unauthorized</body></html>"])
def test_401_bad_token_with_empty_or_non_json_body(rsps, make_client, body):
    rsps.post(API + "/devices", status=401, body=body)
    with pytest.raises(CloudError) as caught:
        make_client().register_device(EP, "/embedded/", "psk", b"ep-1", PSK)
    error = caught.value
    assert error.status == 401 and error.endpoint == EP and error.server_error is None
    assert "token" in str(error) and EP in str(error)
    assert_no_secrets(str(error))
    assert len(rsps.calls) == 1  # never retried


def test_403_carries_the_server_error(rsps, make_client):
    rsps.post(API + "/devices", status=403, json={"error": "Forbidden"})
    with pytest.raises(CloudError) as caught:
        make_client().register_device(EP, "/embedded/", "nosec", None, None)
    assert caught.value.status == 403 and caught.value.server_error == "Forbidden"
    assert "Forbidden" in str(caught.value) and "permission" in str(caught.value)


@pytest.mark.parametrize("status, body, expected", [
    (400, {"error": "DTLS identity already taken"}, "DTLS identity already taken"),
    (400, "<html>bad</html>", "not JSON"),
    (404, {"error": "Not found"}, "check the url and port"),
    (500, "Internal Server Error", "server error (500)"),
    (500, {"error": "boom"}, "boom"),
    (418, "", "unexpected HTTP 418"),
])
def test_other_errors(rsps, make_client, status, body, expected):
    kwargs = {"json": body} if isinstance(body, dict) else {"body": body}
    rsps.post(API + "/devices", status=status, **kwargs)
    with pytest.raises(CloudError) as caught:
        make_client().register_device(EP, "/embedded/", "psk", b"ep-1", PSK)
    assert caught.value.status == status
    assert expected in str(caught.value) and EP in str(caught.value)
    assert len(rsps.calls) == 1


def test_redirect_is_not_followed(rsps, make_client):
    rsps.post(API + "/devices", status=301, headers={"Location": "https://elsewhere/"})
    with pytest.raises(CloudError, match="elsewhere"):
        make_client().register_device(EP, "/embedded/", "nosec", None, None)


def test_server_echoing_the_psk_or_token_is_scrubbed(rsps, make_client):
    rsps.post(API + "/devices", status=400,
              json={"error": f"Invalid PSK {PSK.hex().upper()} for token {TOKEN}"})
    with pytest.raises(CloudError) as caught:
        make_client().register_device(EP, "/embedded/", "psk", b"ep-1", PSK)
    assert_no_secrets(str(caught.value))
    assert_no_secrets(caught.value.server_error)
    assert "***" in str(caught.value)


def test_est_is_sent_as_the_documented_cert_mode(rsps, make_client):
    rsps.post(API + "/devices", status=201, json={"id": "d1", "result": "Device created"})
    result = make_client().register_device(EP, "/embedded/", SecurityMode.EST, b"x", b"y")
    body = json.loads(rsps.calls[0].request.body)
    assert (body["securityMode"], body["dtlsIdentity"], body["dtlsPsk"]) == ("cert", None, None)
    assert result.status == "created"


# -- 409: already registered -------------------------------------------------------------------

def test_409_with_same_settings_is_already_registered(rsps, make_client):
    rsps.post(API + "/devices", status=409, json={"error": "Device already exists"})
    rsps.get(FIND_URL, json={"devices": [{"id": "dev/77 x"}], "nextPageBookmark": None})
    rsps.get(API + "/devices/dev%2F77%20x", json=stored_device(id="dev/77 x"))
    result = make_client().register_device(EP, "/embedded/", "psk", b"ep-1", PSK)
    assert result == RegistrationResult(EP, "dev/77 x", "already registered")
    assert [c.request.method for c in rsps.calls] == ["POST", "GET", "GET"]


@pytest.mark.parametrize("psk_form", [{"HexadecimalPsk": "0a0b0c0d"},
                                      {"BinaryPsk": [10, 11, 12, 13]},
                                      {"PlainTextPsk": "\n\x0b\x0c\r"}])
def test_409_compares_psk_in_any_stored_form(rsps, make_client, psk_form):
    rsps.post(API + "/devices", status=409, json={"error": "exists"})
    rsps.get(FIND_URL, json={"devices": [{"id": "d-77"}], "nextPageBookmark": None})
    rsps.get(API + "/devices/d-77", json=stored_device(dtlsPsk=psk_form))
    assert make_client().register_device(EP, "/embedded/", "psk", b"ep-1", PSK).status == \
        "already registered"


def test_409_nosec_same_settings(rsps, make_client):
    rsps.post(API + "/devices", status=409, json={"error": "exists"})
    rsps.get(FIND_URL, json={"devices": [{"id": "d-77"}], "nextPageBookmark": None})
    rsps.get(API + "/devices/d-77",
             json=stored_device(securityMode="nosec", dtlsIdentity=None, dtlsPsk=None))
    assert make_client().register_device(EP, "/embedded/", "nosec", None, None).status == \
        "already registered"


@pytest.mark.parametrize("changes, expected", [
    ({"dtlsPsk": {"HexadecimalPsk": "FFFFFFFF"}}, "dtlsPsk differs (values not shown)"),
    ({"securityMode": "nosec"}, "securityMode is 'nosec' (wanted 'psk')"),
    ({"domain": "/other/"}, "domain is '/other/' (wanted '/embedded/')"),
    ({"dtlsIdentity": "someone-else"}, "dtlsIdentity is 'someone-else'"),
])
def test_409_with_different_settings_is_an_error(rsps, make_client, changes, expected):
    rsps.post(API + "/devices", status=409, json={"error": "Device already exists"})
    rsps.get(FIND_URL, json={"devices": [{"id": "d-77"}], "nextPageBookmark": None})
    rsps.get(API + "/devices/d-77", json=stored_device(**changes))
    with pytest.raises(CloudError) as caught:
        make_client().register_device(EP, "/embedded/", "psk", b"ep-1", PSK)
    message = str(caught.value)
    assert expected in message and "d-77" in message and EP in message
    assert caught.value.status == 409
    assert_no_secrets(message)
    assert "ffffffff" not in message.lower()


def test_409_but_device_not_visible(rsps, make_client):
    rsps.post(API + "/devices", status=409, json={"error": "Device already exists"})
    rsps.get(FIND_URL, json={"devices": [], "nextPageBookmark": None})
    with pytest.raises(CloudError, match="no device with this endpoint name is visible"):
        make_client().register_device(EP, "/embedded/", "nosec", None, None)


# -- retries -----------------------------------------------------------------------------------

def test_429_with_retry_after_is_honoured(rsps, make_client, fake_time):
    rsps.post(API + "/devices", status=429, json={"error": "Too many requests"},
              headers={"Retry-After": "2"})
    rsps.post(API + "/devices", status=201, json={"id": "d-1", "result": "ok"})
    assert make_client().register_device(EP, "/embedded/", "nosec", None, None).status == \
        "created"
    assert fake_time.sleeps == [2.0]


def test_429_with_http_date_retry_after(rsps, make_client, fake_time):
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    rsps.post(API + "/devices", status=429, headers={"Retry-After": when})
    rsps.post(API + "/devices", status=201, json={"id": "d-1", "result": "ok"})
    make_client().register_device(EP, "/embedded/", "nosec", None, None)
    assert len(fake_time.sleeps) == 1 and 27 <= fake_time.sleeps[0] <= 30


def test_429_without_retry_after_backs_off_exponentially(rsps, make_client, fake_time):
    for _ in range(3):
        rsps.post(API + "/devices", status=429, json={"error": "Too many requests"})
    rsps.post(API + "/devices", status=201, json={"id": "d-1", "result": "ok"})
    make_client().register_device(EP, "/embedded/", "nosec", None, None)
    assert fake_time.sleeps == [0.5, 1.0, 2.0]


def test_jitter_stays_small(rsps, make_client, fake_time):
    rsps.post(API + "/devices", status=503)
    rsps.post(API + "/devices", status=201, json={"id": "d-1", "result": "ok"})
    make_client(jitter=0.1).register_device(EP, "/embedded/", "nosec", None, None)
    assert 0.5 <= fake_time.sleeps[0] <= 0.55


def test_503_then_success_logs_each_retry_without_secrets(rsps, make_client, fake_time, caplog):
    rsps.post(API + "/devices", status=503, json={"error": "Service unavailable"})
    rsps.post(API + "/devices", status=503, body="")
    rsps.post(API + "/devices", status=201, json={"id": "d-1", "result": "ok"})
    with caplog.at_level(logging.DEBUG):
        result = make_client().register_device(EP, "/embedded/", "psk", b"ep-1", PSK)
    assert result.status == "created" and len(rsps.calls) == 3
    assert fake_time.sleeps == [0.5, 1.0]
    retries = [r for r in caplog.records
               if r.name == "hilprov.cloud.coiote" and "retry" in r.message]
    assert len(retries) == 2 and "503" in retries[0].message
    assert_no_secrets(caplog.text)


@pytest.mark.parametrize("exc", [requests.exceptions.ConnectTimeout,
                                 requests.exceptions.ReadTimeout,
                                 requests.exceptions.ConnectionError])
def test_timeouts_and_connection_errors_are_retried(rsps, make_client, fake_time, exc):
    rsps.post(API + "/devices", body=exc("boom"))
    rsps.post(API + "/devices", status=201, json={"id": "d-1", "result": "ok"})
    assert make_client().register_device(EP, "/embedded/", "nosec", None, None).status == \
        "created"
    assert fake_time.sleeps == [0.5]


def test_timeouts_until_attempts_run_out(rsps, make_client, fake_time):
    for _ in range(5):
        rsps.post(API + "/devices", body=requests.exceptions.ReadTimeout("read timed out"))
    with pytest.raises(CloudError) as caught:
        make_client(max_attempts=5).register_device(EP, "/embedded/", "psk", b"ep-1", PSK)
    message = str(caught.value)
    assert "5 attempts" in message and "ReadTimeout" in message and EP in message
    assert caught.value.status is None
    assert len(rsps.calls) == 5 and len(fake_time.sleeps) == 4
    assert_no_secrets(message)


def test_503_until_attempts_run_out_reports_last_status(rsps, make_client):
    for _ in range(3):
        rsps.post(API + "/devices", status=503, json={"error": "Service unavailable"})
    with pytest.raises(CloudError) as caught:
        make_client(max_attempts=3).register_device(EP, "/embedded/", "nosec", None, None)
    assert caught.value.status == 503 and caught.value.server_error == "Service unavailable"
    assert "3 attempts" in str(caught.value) and "HTTP 503" in str(caught.value)


def test_total_time_budget_is_never_overslept(rsps, make_client, fake_time):
    for _ in range(2):
        rsps.post(API + "/devices", status=503)
    client = make_client(max_attempts=10, max_total_time=3.0, backoff_base=1.0)
    with pytest.raises(CloudError, match="budget") as caught:
        client.register_device(EP, "/embedded/", "nosec", None, None)
    # after 1 s asleep, 2 s more would reach the 3 s budget: fail instead of sleeping
    assert fake_time.sleeps == [1.0] and len(rsps.calls) == 2
    assert sum(fake_time.sleeps) <= 3.0
    assert caught.value.status == 503


def test_retry_after_beyond_the_budget_fails_at_once(rsps, make_client, fake_time):
    rsps.post(API + "/devices", status=429, headers={"Retry-After": "120"})
    with pytest.raises(CloudError, match="120.0 s more would pass the 60 s budget"):
        make_client().register_device(EP, "/embedded/", "nosec", None, None)
    assert fake_time.sleeps == []


def test_request_timeout_shrinks_to_the_remaining_budget(rsps, make_client, fake_time):
    rsps.post(API + "/devices", status=503)
    rsps.post(API + "/devices", status=201, json={"id": "d-1", "result": "ok"})
    make_client(timeout=5.0, max_total_time=3.0, backoff_base=1.0).register_device(
        EP, "/embedded/", "nosec", None, None)
    timeouts = [c.request.req_kwargs["timeout"] for c in rsps.calls]
    assert timeouts == [3.0, 2.0]


def test_client_errors_are_not_retried(rsps, make_client, fake_time):
    rsps.post(API + "/devices", status=400, json={"error": "bad"})
    with pytest.raises(CloudError):
        make_client().register_device(EP, "/embedded/", "nosec", None, None)
    assert fake_time.sleeps == [] and len(rsps.calls) == 1


# -- look-up and clean-up ----------------------------------------------------------------------

def test_find_device_none(rsps, make_client):
    rsps.get(FIND_URL, json={"devices": [], "nextPageBookmark": None})
    assert make_client().find_device(EP) is None


def test_find_device_returns_full_device(rsps, make_client):
    rsps.get(FIND_URL, json={"devices": [{"id": "d-77"}], "nextPageBookmark": None})
    rsps.get(API + "/devices/d-77", json=stored_device())
    assert make_client().find_device(EP)["securityMode"] == "psk"


def test_find_device_with_unexpected_answer(rsps, make_client):
    rsps.get(FIND_URL, body="<html>maintenance</html>")
    with pytest.raises(CloudError, match="no 'devices' list"):
        make_client().find_device(EP)


def test_endpoint_with_quote_cannot_be_searched(make_client):
    with pytest.raises(ConfigError, match="quote"):
        make_client().find_device("ep'1")


def test_get_device_404(rsps, make_client):
    rsps.get(API + "/devices/d-1", status=404, json={"error": "Device not found"})
    with pytest.raises(CloudError) as caught:
        make_client().get_device("d-1")
    assert caught.value.status == 404 and caught.value.server_error == "Device not found"


def test_delete_device_and_already_gone(rsps, make_client):
    rsps.delete(API + "/devices/d-1", status=204)
    rsps.delete(API + "/devices/d-1", status=404, json={"error": "Device not found"})
    client = make_client()
    assert client.delete_device("d-1") is True
    assert client.delete_device("d-1") is False


def test_delete_device_error(rsps, make_client):
    rsps.delete(API + "/devices/d-1", status=403, json={"error": "Forbidden"})
    with pytest.raises(CloudError, match="Forbidden"):
        make_client().delete_device("d-1")


def test_delete_by_endpoint(rsps, make_client):
    rsps.get(FIND_URL, json={"devices": [{"id": "d-77"}], "nextPageBookmark": None})
    rsps.delete(API + "/devices/d-77", status=204)
    rsps.get(FIND_URL, json={"devices": [], "nextPageBookmark": None})
    client = make_client()
    assert client.delete_by_endpoint(EP) is True
    assert client.delete_by_endpoint(EP) is False


def test_lookup_query_is_percent_encoded_like_the_docs(rsps, make_client):
    rsps.get(API + "/devices/find/details",
             match=[matchers.query_param_matcher({
                 "searchCriteria": "properties.endpointName eq 'urn:dev:x 1'",
                 "fieldSelection": "id", "limit": "1"})],
             json={"devices": [], "nextPageBookmark": None})
    make_client().find_device("urn:dev:x 1")
    assert "%20eq%20'urn:dev:x%201'" in rsps.calls[0].request.url


# -- secrecy -----------------------------------------------------------------------------------

def test_token_not_in_repr(make_client):
    client = make_client()
    assert TOKEN not in repr(client) and TOKEN not in str(client)
    assert BASE in repr(client)


def test_missing_token_is_a_config_error():
    with pytest.raises(ConfigError, match="token"):
        CoioteClient(BASE, "")


def test_token_not_in_connection_error_text(rsps, make_client):
    for _ in range(2):
        rsps.post(API + "/devices", body=requests.exceptions.ConnectionError(
            f"refused (headers had Bearer {TOKEN})"))
    with pytest.raises(CloudError) as caught:
        make_client(max_attempts=2).register_device(EP, "/embedded/", "psk", b"ep-1", PSK)
    assert_no_secrets(str(caught.value))
    assert_no_secrets(repr(caught.value))


# -- server info and token resolution ----------------------------------------------------------

def write_json(tmp_path: Path, data) -> Path:
    path = tmp_path / "server.json"
    path.write_text(json.dumps(data))
    return path


def test_server_info_defaults(tmp_path):
    info = load_server_info(write_json(tmp_path, {"domain": "/embedded/"}))
    assert info.base_url == "https://eu.iot.avsystem.cloud:8087"
    assert info.domain == "/embedded/"


def test_sample_server_info_from_the_repo():
    info = load_server_info(Path(__file__).resolve().parents[2] / "configs" /
                            "lwm2m_server.json")
    assert info == ServerInfo("https://eu.iot.avsystem.cloud", 8087, "/embedded/", info.source)


@pytest.mark.parametrize("data, base_url", [
    ({"url": "https://h.example/", "port": 443}, "https://h.example:443"),
    ({"url": "http://127.0.0.1", "port": "9000"}, "http://127.0.0.1:9000"),
    ({"url": "https://h.example:8443"}, "https://h.example:8443"),
    ({"url": "https://h.example:8443", "port": 8443}, "https://h.example:8443"),
    ({"url": "http://[::1]", "port": 8087}, "http://[::1]:8087"),
])
def test_server_info_base_url(data, base_url):
    assert parse_server_info({**data, "domain": "/d/"}).base_url == base_url


@pytest.mark.parametrize("data, expected", [
    ({"url": "https://h:8443", "port": 8087, "domain": "/d/"}, "one place"),
    ({"url": "https://h"}, "domain is required"),
    ({"domain": "embedded"}, "start and end with '/'"),
    ({"domain": "/embedded"}, "start and end with '/'"),
    ({"url": "ftp://h", "domain": "/d/"}, "https://host"),
    ({"url": "https://h/api", "domain": "/d/"}, "scheme://host"),
    ({"port": 70000, "domain": "/d/"}, "port"),
    ({"port": True, "domain": "/d/"}, "port"),
    ({"domain": "/d/", "access_token": "x"}, "token does not belong"),
    ({"domain": "/d/", "prot": 1}, "'prot'"),
])
def test_server_info_errors_name_the_file(tmp_path, data, expected):
    path = write_json(tmp_path, data)
    with pytest.raises(ConfigError) as caught:
        load_server_info(path)
    assert expected in str(caught.value) and str(path) in str(caught.value)


def test_server_info_invalid_json_and_missing_file(tmp_path):
    path = tmp_path / "server.json"
    path.write_text("{oops")
    with pytest.raises(ConfigError, match=r"server\.json:1:2"):
        load_server_info(path)
    with pytest.raises(ConfigError, match="nope.json"):
        load_server_info(tmp_path / "nope.json")


def test_resolve_token_precedence(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("  from-file\n")
    env = {"COIOTE_TOKEN": "from-env"}
    assert resolve_token("from-cli", token_file, env) == "from-cli"
    assert resolve_token(None, token_file, env) == "from-file"
    assert resolve_token(None, None, env) == "from-env"
    assert resolve_token(None, None, {}) is None
    assert resolve_token(None, None, {"COIOTE_TOKEN": "  "}) is None


def test_resolve_token_file_problems(tmp_path):
    with pytest.raises(ConfigError, match="missing-token"):
        resolve_token(None, tmp_path / "missing-token", {})
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(ConfigError, match="empty"):
        resolve_token(None, empty, {"COIOTE_TOKEN": "x"})
