"""The end-of-line suite: written once, run unchanged on a real board (`--board <J-Link serial>`)
and on the virtual board (`--board sim`). Without `--board` every test here is skipped. The
tests erase the device, so on a real board they run only with `--hil-allow-destructive`.

What it proves for each unit: the device accepted the configuration (result.txt is 0), the
production image restored it and registered, under the endpoint name that was onboarded in
Coiote with the right security mode; a second provisioning is refused; every security mode works.
"""

from pathlib import Path

import pytest

from hilprov.samples import sample

pytestmark = [pytest.mark.hil, pytest.mark.destructive]

# A line gives every unit its own credentials: PSK units get their endpoint name as identity and
# a random key (endpoint_cfg_line), Certificate units a certificate and key of their own.
MODES = {"psk": "endpoint_cfg_line", "nosec": "endpoint_cfg_nosec", "cert": "endpoint_cfg_cert"}


def serial_log(hil_dut) -> str:
    return Path(hil_dut.log_path).read_text(errors="replace")


def test_device_accepts_the_configuration(provisioned_endpoint):
    result = provisioned_endpoint.result
    assert result.step("upload").status == "ok"
    read = result.step("read-result")
    assert (read.status, read.detail) == ("ok", "device accepted the configuration")


def test_final_image_restores_the_configuration_and_registers(provisioned_endpoint, hil_dut):
    log = serial_log(hil_dut)
    restored = log.find("persistence: Anjay restored from anjay_factory")
    registered = log.find("registration successful")
    assert restored != -1, "the final image did not restore the factory configuration"
    assert registered > restored, "the device did not register after restoring"
    assert provisioned_endpoint.result.outcome == "registered"


@pytest.mark.cloud
def test_endpoint_on_the_device_is_the_one_onboarded(provisioned_endpoint, coiote):
    name = provisioned_endpoint.name
    assert name and name.startswith("anjay-zephyr-demo")
    device = coiote.find_device(name)
    assert device is not None, f"{name} is not in Coiote"
    assert device["properties"]["endpointName"] == name
    assert device["securityMode"] == provisioned_endpoint.security_mode


def test_second_provisioning_is_refused_as_already_present(provisioned_endpoint, hil_provision):
    again = hil_provision(erase=False, check=False)
    assert again.result.outcome == "failed"
    assert again.result.error_kind == "already provisioned"
    assert again.result.exit_code == 10
    assert again.result.step("upload").status == "pending"  # nothing was sent


@pytest.mark.hil_sim
def test_configuration_the_device_rejects_gives_the_device_rejected_outcome(hil_provision,
                                                                           tmp_path):
    # The generic lwm2m profile lets an object through that the initial image does not have.
    cfg = tmp_path / "with_device_object"
    cfg.write_text(sample("endpoint_cfg_line").read_text().rstrip().rstrip("}")
                   + "    OID.Device: {0: {RID.Device.Manufacturer: 'ACME'}},\n}\n")
    endpoint = hil_provision(endpoint_cfg=cfg, profile="lwm2m", check=False)
    result = endpoint.result
    assert result.error_kind == "device rejected"
    assert "/factory/result.txt = '-1'" in result.error
    assert "object /3 (Device) does not exist on the device" in result.error  # host's guess
    assert result.step("onboard").status == "pending"  # never onboarded


@pytest.mark.cloud
@pytest.mark.parametrize("mode", list(MODES))
def test_each_security_mode_provisions_registers_and_is_onboarded(mode, hil_provision, coiote,
                                                                  hil_settings, hil_server_cert):
    kwargs = {"endpoint_cfg": sample(MODES[mode]), "replace_cloud_device": True}
    if mode == "cert":
        if hil_server_cert is None:
            pytest.skip("Certificate mode on a real board needs --hil-server-cert")
        kwargs["cert_info"] = hil_settings.cert_info or sample("cert_info.json")
    endpoint = hil_provision(**kwargs)
    assert endpoint.result.outcome == "registered", endpoint.result.error
    assert endpoint.security_mode == mode
    device = coiote.find_device(endpoint.name)
    assert device is not None and device["securityMode"] == mode
    if mode == "cert":
        assert endpoint.cert_fingerprint and len(endpoint.cert_fingerprint) == 64
        assert len(endpoint.blob) > 512  # certificate and key: several provisioning writes
