"""The virtual board, driven over SMP like the real device, gives the spec's verdict (result.txt
"0" or "-1") for every blob of the spec §3-§4 corpus."""

import pytest

from hilprov.board.serial import SerialPort
from hilprov.board.smp import SmpFileClient
from hilprov.sim.board import Faults, VirtualBoard
from hilprov.sim.images import INITIAL_IMAGE
from hilprov.station.app import PROVISION_WRITE_LIMIT
from tests.unit.blob_corpus import CORPUS


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    board = VirtualBoard(tmp_path_factory.mktemp("corpus"), faults=Faults(boot_line_delay=0))
    port_path = board.start(power_on=False)  # each case's flash boots it, the console open
    port = SerialPort(port_path, 1_000_000)  # a pty has no wire: pace lines as if fast
    client = SmpFileClient(port, timeout=2.0)
    yield board, port, client
    port.close()
    board.stop()


@pytest.mark.parametrize("case", CORPUS, ids=[c.name for c in CORPUS])
def test_virtual_board_gives_the_spec_verdict(rig, case):
    board, port, client = rig
    port.clear()
    board.flash(INITIAL_IMAGE, erase=True)  # a fresh device: one attempt per boot
    port.expect_exact("Device ready for provisioning.", timeout=5)
    client.upload(case.blob, "/factory/provision.cbor", max_chunk=PROVISION_WRITE_LIMIT)
    result = client.download("/factory/result.txt", timeout=10).decode()
    assert result == ("0" if case.expected_ok else "-1"), case.expected_log
    assert board.provisioned == case.expected_ok
