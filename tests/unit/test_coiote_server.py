"""The real Coiote client against the fake Coiote HTTP server running in a thread."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time

import pytest
import requests

from hilprov.cloud.coiote import API_PREFIX, CoioteClient, parse_server_info
from hilprov.errors import CloudError
from hilprov.sim.coiote_server import CoioteServer

TOKEN = "sim-token-7f3a"
PSK = bytes.fromhex("0a0b0c")


class Sleeps:
    """Records sleeps instead of waiting, so retry tests stay fast (the clock is real)."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
def server():
    with CoioteServer(TOKEN) as running:
        yield running


@pytest.fixture
def sleeps():
    return Sleeps()


@pytest.fixture
def client(server, sleeps):
    info = parse_server_info(server.server_info())
    with CoioteClient(info.base_url, TOKEN, timeout=2.0, max_attempts=5, max_total_time=10.0,
                      backoff_base=0.01, jitter=0.0, sleep=sleeps) as made:
        yield made


def api(server, path: str) -> str:
    return server.url + API_PREFIX + path


def raw(server, method: str, path: str, *, token: str | None = TOKEN, headers=None, **kwargs):
    headers = {**({"Authorization": f"Bearer {token}"} if token else {}), **(headers or {})}
    return requests.request(method, api(server, path), headers=headers, timeout=5, **kwargs)


def posts(server) -> list:
    return [r for r in server.requests if r.method == "POST"]


# -- the happy path ----------------------------------------------------------------------------

def test_server_info_points_at_the_server(server):
    info = parse_server_info(server.server_info("/factory/"))
    assert info.base_url == server.url and info.domain == "/factory/"
    assert server.url == f"http://127.0.0.1:{server.port}"


def test_create_psk_device(server, client):
    result = client.register_device("ep-1", "/embedded/", "psk", b"ep-1", PSK)
    assert result.status == "created"
    devices = server.devices
    assert list(devices) == [result.device_id]
    assert result.device_id != "ep-1"  # ids are not endpoint names here, as on real Coiote
    device = devices[result.device_id]
    assert device["properties"] == {"endpointName": "ep-1"}
    assert device["dtlsPsk"] == {"HexadecimalPsk": "0A0B0C"}
    assert (device["securityMode"], device["dtlsIdentity"], device["domain"]) == \
        ("psk", "ep-1", "/embedded/")
    sent = posts(server)[0]
    method, path, body = sent
    assert (method, path, body["securityMode"]) == ("POST", API_PREFIX + "/devices", "psk")
    assert sent.body == json.dumps({
        "properties": {"endpointName": "ep-1"}, "connectorType": "management",
        "domain": "/embedded/", "securityMode": "psk", "dtlsIdentity": "ep-1",
        "dtlsPsk": {"HexadecimalPsk": "0a0b0c"}}).encode()
    assert list(sent.json) == ["properties", "connectorType", "domain", "securityMode",
                               "dtlsIdentity", "dtlsPsk"]


def test_duplicate_is_already_registered(server, client):
    first = client.register_device("ep-1", "/embedded/", "psk", b"ep-1", PSK)
    again = client.register_device("ep-1", "/embedded/", "psk", b"ep-1", PSK)
    assert again.status == "already registered" and again.device_id == first.device_id
    assert len(server.devices) == 1


def test_duplicate_with_another_psk_is_an_error(server, client):
    client.register_device("ep-1", "/embedded/", "psk", b"ep-1", PSK)
    with pytest.raises(CloudError, match="dtlsPsk differs") as caught:
        client.register_device("ep-1", "/embedded/", "psk", b"ep-1", b"\x01\x02")
    assert "0102" not in str(caught.value) and "0a0b0c" not in str(caught.value).lower()


def test_lookup_and_delete(server, client):
    created = client.register_device("ep-1", "/embedded/", "nosec", None, None)
    client.register_device("ep-2", "/embedded/", "cert", None, None)
    found = client.find_device("ep-1")
    assert found["id"] == created.device_id and found["securityMode"] == "nosec"
    assert client.find_device("ep-3") is None
    assert client.delete_by_endpoint("ep-1") is True
    assert client.delete_by_endpoint("ep-1") is False
    assert client.delete_device(created.device_id) is False
    assert [d["properties"]["endpointName"] for d in server.devices.values()] == ["ep-2"]


def test_est_devices_are_created_in_cert_mode_and_stay_idempotent(server, client):
    assert client.register_device("ep-est", "/embedded/", "est", None, None).status == "created"
    assert [d["securityMode"] for d in server.devices.values()] == ["cert"]
    again = client.register_device("ep-est", "/embedded/", "est", None, None)
    assert again.status == "already registered"


def test_wrong_token_is_401_and_never_recorded(server):
    with CoioteClient(server.url, "wrong-token", timeout=2.0) as bad, \
            pytest.raises(CloudError) as caught:
        bad.register_device("ep-1", "/embedded/", "psk", b"ep-1", PSK)
    assert caught.value.status == 401 and "token" in str(caught.value)
    assert "wrong-token" not in str(caught.value)
    assert server.devices == {}
    recorded = server.requests
    assert len(recorded) == 1 and recorded[0].authorized is False
    assert "wrong-token" not in repr(recorded) and TOKEN not in repr(recorded)
    assert not any(k.lower() == "authorization" for k in recorded[0].headers)


# -- faults ------------------------------------------------------------------------------------

def test_503_storm_then_success(server, client, sleeps):
    server.inject(status=503, times=3)
    assert client.register_device("ep-1", "/embedded/", "nosec", None, None).status == "created"
    assert len(posts(server)) == 4
    assert sleeps.calls == [0.01, 0.02, 0.04]


def test_429_retry_after_is_honoured(server, client, sleeps):
    server.inject(status=429, retry_after=2)
    client.register_device("ep-1", "/embedded/", "nosec", None, None)
    assert sleeps.calls == [2.0]


def test_500_storm_is_not_retried(server, client, sleeps):
    server.inject(status=500, times=10)
    with pytest.raises(CloudError) as caught:
        client.register_device("ep-1", "/embedded/", "nosec", None, None)
    assert caught.value.status == 500 and caught.value.server_error == "Internal server error"
    assert len(server.requests) == 1 and sleeps.calls == []


def test_slow_response_is_retried(server, sleeps):
    server.inject(delay=3.0, method="POST")  # the first POST outlasts the client's timeout
    with CoioteClient(server.url, TOKEN, timeout=0.3, backoff_base=0.01, jitter=0.0,
                      sleep=sleeps) as impatient:
        result = impatient.register_device("ep-1", "/embedded/", "nosec", None, None)
    assert result.status == "created" and len(posts(server)) == 2 and len(sleeps.calls) == 1


def test_lost_answer_then_retry_is_already_registered(server, sleeps):
    server.inject(delay=3.0, method="POST", process_first=True)  # created, answer lost
    with CoioteClient(server.url, TOKEN, timeout=0.3, backoff_base=0.01, jitter=0.0,
                      sleep=sleeps) as impatient:
        result = impatient.register_device("ep-1", "/embedded/", "psk", b"ep-1", PSK)
    assert result.status == "already registered"
    assert len(server.devices) == 1 and result.device_id in server.devices


def test_slow_server_fails_within_the_time_budget(server, sleeps):
    server.inject(delay=5.0, times=20)
    started = time.monotonic()
    with CoioteClient(server.url, TOKEN, timeout=0.25, max_attempts=20, max_total_time=1.0,
                      backoff_base=0.01, jitter=0.0, sleep=sleeps) as impatient, \
            pytest.raises(CloudError) as caught:
        impatient.register_device("ep-1", "/embedded/", "nosec", None, None)
    elapsed = time.monotonic() - started
    assert elapsed < 2.0, f"the 1 s budget was overrun: {elapsed:.2f} s"
    assert "Timeout" in str(caught.value) and caught.value.status is None


def test_fault_can_target_one_route(server, client):
    client.register_device("ep-1", "/embedded/", "nosec", None, None)
    server.inject(status=403, method="DELETE", path="/devices")
    with pytest.raises(CloudError, match="Forbidden"):
        client.delete_by_endpoint("ep-1")
    assert client.find_device("ep-1") is not None  # GETs were not affected


def test_fault_with_non_json_body(server, client):
    server.inject(status=400, body="<html>proxy error</html>")
    with pytest.raises(CloudError, match="not JSON"):
        client.register_device("ep-1", "/embedded/", "nosec", None, None)


def test_inject_rejects_empty_faults(server):
    with pytest.raises(ValueError):
        server.inject()
    with pytest.raises(ValueError):
        server.inject(status=503, process_first=True)


# -- the API surface, with plain requests -------------------------------------------------------

def test_sdk_style_body_full_of_nulls_is_accepted(server):
    body = {"id": None, "properties": {"endpointName": "sdk-ep"}, "domain": "/embedded/",
            "connectorType": None, "securityMode": "nosec", "dtlsIdentity": None,
            "dtlsPsk": None, "directGroups": None, "blacklisted": None,
            "managementEnabled": None, "description": None, "friendlyName": None,
            "serialNumber": None, "ipAddress": None, "bootstrap": None, "creationTime": None}
    resp = raw(server, "POST", "/devices", json=body, headers={"API-Client": "coiote-python"})
    assert resp.status_code == 201 and resp.json()["result"]
    assert resp.json()["id"] != "sdk-ep"


def test_explicit_id_with_special_characters(server):
    resp = raw(server, "POST", "/devices", json={"id": "dev/1 x", "domain": "/embedded/",
                                                 "securityMode": "nosec"})
    assert resp.status_code == 201 and resp.json()["id"] == "dev/1 x"
    got = raw(server, "GET", "/devices/dev%2F1%20x")
    assert got.status_code == 200 and got.json()["properties"]["endpointName"] == "dev/1 x"


@pytest.mark.parametrize("changes, error", [
    ({"dtlsPsk": {"HexadecimalPsk": "abc"}}, "odd number"),
    ({"dtlsPsk": {"HexadecimalPsk": "zz"}}, "not hexadecimal"),
    ({"dtlsPsk": {"HexadecimalPsk": "aa", "PlainTextPsk": "x"}}, "exactly one"),
    ({"domain": "embedded"}, "Invalid domain"),
    ({"securityMode": "est"}, "Invalid security mode"),
    ({"securityMode": "PSK"}, "Invalid security mode"),
    ({"properties": {}}, "endpointName"),
    ({"properties": {"endpointName": "x" * 151}}, "150"),
    ({"properties": {"endpointName": "ep", "n": 1}}, "strings"),
])
def test_invalid_creations_are_400(server, changes, error):
    body = {"properties": {"endpointName": "ep"}, "connectorType": "management",
            "domain": "/embedded/", "securityMode": "psk", "dtlsIdentity": "ep",
            "dtlsPsk": {"HexadecimalPsk": "0a0b"}}
    body.update(changes)
    resp = raw(server, "POST", "/devices", json=body)
    assert resp.status_code == 400 and error in resp.json()["error"]
    assert server.devices == {}


def test_malformed_json_is_400(server):
    resp = raw(server, "POST", "/devices", data=b"{nope",
               headers={"Content-Type": "application/json"})
    assert resp.status_code == 400


def test_duplicates_409_and_taken_identity_400(server):
    def create(endpoint, identity):
        return raw(server, "POST", "/devices", json={
            "properties": {"endpointName": endpoint}, "domain": "/embedded/",
            "securityMode": "psk", "dtlsIdentity": identity,
            "dtlsPsk": {"HexadecimalPsk": "0a0b"}})

    assert create("ep-1", "id-1").status_code == 201
    duplicate = create("ep-1", "id-1")
    assert duplicate.status_code == 409 and "ep-1" in duplicate.json()["error"]
    taken = create("ep-2", "id-1")
    assert taken.status_code == 400 and taken.json()["error"] == "DTLS identity already taken"


def test_get_delete_and_404(server):
    device_id = server.add_device({"properties": {"endpointName": "ep-1"},
                                   "domain": "/embedded/", "securityMode": "nosec"})
    assert raw(server, "GET", f"/devices/{device_id}").json()["id"] == device_id
    deleted = raw(server, "DELETE", f"/devices/{device_id}")
    assert deleted.status_code == 204 and deleted.content == b""
    missing = raw(server, "DELETE", f"/devices/{device_id}")
    assert missing.status_code == 404 and missing.json() == {"error": "Device not found"}
    assert raw(server, "GET", f"/devices/{device_id}").status_code == 404


def test_search_by_domain_and_endpoint(server):
    ids = {}
    for endpoint, domain in [("a", "/x/"), ("b", "/x/"), ("c", "/y/")]:
        ids[endpoint] = server.add_device({"properties": {"endpointName": endpoint},
                                           "domain": domain, "securityMode": "nosec"})
    in_x = raw(server, "GET", "/devices", params={"searchCriteria": "domain eq '/x/'"})
    assert in_x.json() == [ids["a"], ids["b"]]
    just_c = raw(server, "GET", "/devices",
                 params={"searchCriteria": "properties.endpointName eq 'c'"})
    assert just_c.json() == [ids["c"]]
    both = raw(server, "GET", "/devices",
               params={"searchCriteria": "domain eq '/x/' and properties.endpointName eq 'b'"})
    assert both.json() == [ids["b"]]
    bad = raw(server, "GET", "/devices", params={"searchCriteria": "domain ~ 'x'"})
    assert bad.status_code == 400


def test_find_details_selection_and_paging(server):
    for endpoint in ("a", "b", "c"):
        server.add_device({"properties": {"endpointName": endpoint}, "domain": "/x/",
                           "securityMode": "nosec"})
    first = raw(server, "GET", "/devices/find/details",
                params={"searchCriteria": "domain eq '/x/'",
                        "fieldSelection": "id,properties.endpointName", "limit": "2"}).json()
    assert [d["properties"] for d in first["devices"]] == [{"endpointName": "a"},
                                                           {"endpointName": "b"}]
    assert set(first["devices"][0]) == {"id", "properties"}
    rest = raw(server, "GET", "/devices/find/details",
               params={"searchCriteria": "domain eq '/x/'", "fieldSelection": "id",
                       "limit": "2", "pageBookmark": first["nextPageBookmark"]}).json()
    assert len(rest["devices"]) == 1 and rest["nextPageBookmark"] is None
    too_many = raw(server, "GET", "/devices/find/details", params={"limit": "1001"})
    assert too_many.status_code == 400


def test_missing_bearer_is_401_with_empty_body(server):
    resp = raw(server, "GET", "/devices", token=None)
    assert resp.status_code == 401 and resp.content == b""
    assert resp.headers["WWW-Authenticate"] == "Bearer"


def test_domain_restriction_is_403():
    with CoioteServer(TOKEN, domains=["/allowed/"]) as restricted, \
            CoioteClient(restricted.url, TOKEN, timeout=2.0) as client:
        with pytest.raises(CloudError) as caught:
            client.register_device("ep-1", "/other/", "nosec", None, None)
        assert caught.value.status == 403
        assert client.register_device("ep-1", "/allowed/sub/", "nosec", None,
                                      None).status == "created"


def test_unknown_route_is_404(server):
    assert raw(server, "PUT", "/devices").status_code == 404
    assert raw(server, "GET", "/nothing/here").status_code == 404


def test_reset_and_restart_free_the_port(server):
    server.add_device({"properties": {"endpointName": "a"}, "domain": "/x/"})
    server.inject(status=503)
    server.reset()
    assert server.devices == {} and server.requests == []
    assert raw(server, "GET", "/devices").json() == []
    port = server.port
    server.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/", timeout=2)


def test_stop_does_not_wait_for_a_delayed_answer():
    server = CoioteServer(TOKEN).start()
    server.inject(delay=30.0)
    session = requests.Session()
    try:
        with pytest.raises(requests.Timeout):
            session.get(server.url + API_PREFIX + "/devices", timeout=0.2,
                        headers={"Authorization": f"Bearer {TOKEN}"})
    finally:
        started = time.monotonic()
        server.stop()
        session.close()
    assert time.monotonic() - started < 3.0


def test_stand_alone_server(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    proc = subprocess.Popen([sys.executable, "-m", "hilprov", "coiote-sim",
                             "--token-file", str(token_file)],
                            stdout=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 10)
        assert ready, "the stand-alone server printed no URL within 10 s"
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        with CoioteClient(url, TOKEN, timeout=2.0) as client:
            assert client.register_device("ep-1", "/embedded/", "nosec", None,
                                          None).status == "created"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            assert proc.wait(timeout=5) == 0
        finally:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
            proc.stdout.close()


def test_a_repeat_in_cert_mode_compares_only_what_was_sent(server, client):
    """A PSK passed in cert mode is not sent, so it must not make a 409 look different."""
    assert client.register_device("ep-c", "/embedded/", "cert", b"id", b"k").status == "created"
    again = client.register_device("ep-c", "/embedded/", "cert", b"id", b"k")
    assert again.status == "already registered"


@pytest.fixture
def trickling_server():
    """A real HTTP server whose answer's body arrives one byte every 0.4 s (100 bytes)."""
    import socket
    import threading

    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            listener.settimeout(0.2)
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with conn:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
                             b"Content-Length: 100\r\n\r\n")
                for _ in range(100):
                    if stop.wait(0.4):
                        return
                    try:
                        conn.sendall(b" ")
                    except OSError:
                        break

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join(5)
    listener.close()


def test_a_body_that_trickles_in_is_cut_at_the_total_deadline(trickling_server):
    """Every read gets a byte well within the per-read timeout, so only a deadline over the
    whole exchange, body included, ends it."""
    started = time.monotonic()
    with CoioteClient(trickling_server, TOKEN, timeout=5.0, max_attempts=3,
                      max_total_time=2.0) as client, pytest.raises(CloudError) as caught:
        client.register_device("ep-1", "/embedded/", "nosec", None, None)
    elapsed = time.monotonic() - started
    assert elapsed < 4.0, f"took {elapsed:.1f} s for a 2 s budget"
    assert "time budget" in str(caught.value)
