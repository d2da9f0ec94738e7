"""The station itself, on a bench PC with a real board: the J-Link software (through the flasher
the run chose, --hil-flasher) loads and sees the probe under test. (Unit tests never load the
real library or run the real nrfutil; this is where they are checked.)"""

import logging

import pytest

pytestmark = pytest.mark.hil_real


def test_the_jlink_software_loads_and_lists_the_probe_under_test(hil_board):
    if hil_board.kind != "nordic":
        pytest.skip("the board is not behind a J-Link probe (--hil-port only)")
    logger = logging.getLogger("pynrfjprog.HighLevel")
    handlers = len(logger.handlers)
    probes = {probe.serial_number: probe for probe in hil_board.flasher.list_probes()}
    assert hil_board.name in probes, (f"J-Link probe {hil_board.name} not found; "
                                      f"connected: {list(probes)}")
    assert probes[hil_board.name].vcom_ports, "the probe reports no virtual COM port"
    assert len(logger.handlers) == handlers  # pynrfjprog's per-object handlers were removed
