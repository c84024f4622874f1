"""``sel4vmm run SYSTEM`` with several VMs: labelled consoles, per-VM logs, ``--json``."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

from typer.testing import CliRunner

from sel4vmm.errors import Sel4VmmError
from tests.cli.test_run import _env, _sel4vmm, make_app
from tests.helpers import REALWORLD

DATA = Path(__file__).resolve().parents[1] / "backends" / "unicorn" / "data"
TWO = str(DATA / "two_vms.system")


def test_every_vm_runs_with_labelled_lines_and_its_own_log(tmp_path: Path) -> None:
    out = tmp_path / "consoles"
    result = CliRunner().invoke(
        make_app(), ["run", TWO, "--kernel", "memtest", "--pools", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "[vm_a] memtest: OK 16228352 bytes" in result.output
    assert "[vm_b] memtest: OK 16228352 bytes" in result.output
    for name in ("vm_a", "vm_b"):
        log = (out / f"{name}.log").read_text()
        assert log.startswith("memtest: seed ") and "memtest: OK" in log
        assert "[vm_" not in log  # a VM's own log is its console, unlabelled


def test_json_reports_each_vm_and_the_totals(tmp_path: Path) -> None:
    whole = tmp_path / "all.log"
    result = CliRunner().invoke(
        make_app(),
        ["run", TWO, "--kernel", "memtest", "--pools", "--json", "--log", str(whole)],
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["schema"] == "sel4vmm-run-system"
    assert [vm["name"] for vm in document["vms"]] == ["vm_a", "vm_b"]
    for vm in document["vms"]:
        assert vm["exit_reason"] == "system_off"
        assert vm["instructions_counted"] > 0 and vm["slices"] > 0
        assert vm["guest_seconds"] > 0
        assert vm["schedule"] == {
            "priority": 100,
            "budget_us": 1000,
            "period_us": 1000,
            "budget_exhausted": 0,
        }
        assert "memtest: OK" in Path(vm["console_log"]).read_text()
    totals = document["totals"]
    assert totals["vms"] == 2
    assert totals["slices"] == sum(vm["slices"] for vm in document["vms"])
    assert totals["switches"] > 10
    text = whole.read_text()
    assert "[vm_a] memtest: OK" in text and "[vm_b] memtest: OK" in text


def test_one_vm_chosen_runs_as_before_unlabelled() -> None:
    result = CliRunner().invoke(make_app(), ["run", TWO, "--kernel", "hello", "--vm", "vm_b"])
    assert result.exit_code == 0, result.output
    assert "hello from the sel4vmm aarch64 guest" in result.output
    assert "[vm_b]" not in result.output


def test_two_vms_over_the_same_ram_without_pools_is_one_located_error() -> None:
    result = CliRunner().invoke(make_app(), ["run", TWO, "--kernel", "memtest"])
    assert result.exit_code == 1
    assert "physical address 0x40000000 is already in use" in str(result.exception)
    assert "two_vms.system:21:9" in str(result.exception)


def test_options_for_one_vms_devices_are_refused_for_several() -> None:
    result = CliRunner().invoke(make_app(), ["run", TWO, "--kernel", "memtest", "--smmu"])
    assert result.exit_code == 1
    assert "--smmu: for a run of one VM, and this run has several" in str(result.exception)


def test_out_is_for_several_vms(tmp_path: Path) -> None:
    result = CliRunner().invoke(make_app(), ["run", "--kernel", "hello", "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert "this run has one VM" in str(result.exception)


def test_a_second_vm_is_an_error_for_commands_of_one_vm() -> None:
    from sel4vmm.cli import plan as plan_command

    app = make_app()
    plan_command.register(app)
    result = CliRunner().invoke(app, ["plan", TWO, "--vm", "vm_a", "--vm", "vm_b"])
    assert result.exit_code == 1
    assert "plan works on one VM, and --vm was given 2 times (vm_a, vm_b)" in str(result.exception)


def test_json_alone_keeps_stdout_for_the_document() -> None:
    result = CliRunner().invoke(
        make_app(), ["run", TWO, "--kernel", "memtest", "--pools", "--json"]
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    whole = Path(document["console_log"]).read_text()
    assert "[vm_a] memtest: OK" in whole and "[vm_b] memtest: OK" in whole
    for vm in document["vms"]:
        assert Path(vm["console_log"]).name == f"{vm['name']}.log"


def test_sigterm_stops_every_vm_with_status_143() -> None:
    command = [*_sel4vmm("run", TWO, "--kernel", "memtest", "--pools", "--ram-size", "256M")]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        env=_env(),
    ) as process:  # fmt: skip
        assert process.stdout is not None
        try:
            seen = set()
            for line in process.stdout:
                if b"memtest: testing" in line:
                    seen.add(line.split(b"]")[0])
                if len(seen) == 2:
                    break
            process.send_signal(signal.SIGTERM)
            out, err = process.communicate(timeout=120)
        finally:
            process.kill()
    assert process.returncode == 143, err
    assert b"memtest: OK" not in out
    assert err.count(b"stopped: the run was interrupted") == 2


SHARED = Path(__file__).resolve().parents[1] / "config/microkit/data/shared_two_vms.system"


def test_two_vms_find_their_shared_region_and_doorbell_from_the_command_line(
    tmp_path: Path,
) -> None:
    """``sel4vmm run SYSTEM --kernel share``: each guest learns its window, doorbell,
    channel and peer from the DTB the VMM generates, exchanges the pattern with the other
    and powers off (issue 14 item 4)."""
    done = subprocess.run(
        _sel4vmm(
            "run", str(SHARED), "--kernel", "share", "--pools", "--json", "--timeout", "60",
            "--out", str(tmp_path),
        ),
        capture_output=True, text=True, timeout=180, env=_env(), stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    by_name = {vm["name"]: vm for vm in document["vms"]}
    assert sorted(by_name) == ["alpha", "beta"]
    for vm in by_name.values():
        assert vm["exit_reason"] == "system_off", vm
    assert (tmp_path / "alpha.log").read_text().replace("\r\n", "\n") == (
        "share: pattern written, ringing channel 1\n"
        "share: interrupt, pending 0x2\n"
        "share: answer ok\n"
    )
    assert (tmp_path / "beta.log").read_text().replace("\r\n", "\n") == (
        "share: interrupt, pending 0x4\n"
        "share: pattern ok\n"
        "share: answer written, ringing channel 2\n"
    )


def test_bootargs_reach_every_raw_binary_vm_of_the_system(tmp_path: Path) -> None:
    """``--bootargs`` for a raw binary is its ``/chosen/bootargs``, as for Linux: here the
    share guest's ``rounds=5`` in both VMs."""
    result = CliRunner().invoke(
        make_app(),
        [
            "run", str(SHARED), "--kernel", "share", "--pools", "--bootargs", "rounds=5",
            "--out", str(tmp_path), "--timeout", "60",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    log = (tmp_path / "alpha.log").read_text().replace("\r\n", "\n")
    assert log.endswith("share: answer ok\nshare: 5 rounds ok\n")


def test_bootargs_reach_a_raw_binary_run_alone() -> None:
    result = CliRunner().invoke(
        make_app(),
        ["run", "--kernel", "hello", "--bootargs", "sel4vmm test line", "--timeout", "60"],
    )
    assert result.exit_code == 0, result.output
    assert "/chosen bootargs: sel4vmm test line" in result.output


def test_linux_boot_files_for_a_raw_binary_are_refused(tmp_path: Path) -> None:
    initrd = tmp_path / "initrd"
    initrd.write_bytes(b"\0" * 16)
    result = CliRunner().invoke(
        make_app(), ["run", str(SHARED), "--kernel", "share", "--pools", "--initrd", str(initrd)]
    )
    assert isinstance(result.exception, Sel4VmmError)
    assert result.exception.message.endswith(
        "share.bin is a raw binary: --initrd, --dtb, --dts and --overlay are for a Linux Image"
    )


CROSS = REALWORLD / "camkes-vm-examples/vm_cross_connector/vm_cross_connector.camkes"


def test_vm_cross_connector_runs_from_the_command_line(tmp_path: Path) -> None:
    """``sel4vmm run vm_cross_connector.camkes -D PLAT=qemu-arm-virt --kernel share``: the
    guest finds connection 0's event page and dataport in its DTB, reads CrossvmInit's
    string, answers and takes the ``done`` event; it powers off, exit status 0."""
    done = subprocess.run(
        _sel4vmm(
            "run", str(CROSS), "-D", "PLAT=qemu-arm-virt", "--kernel", "share", "--json",
            "--timeout", "60", "--out", str(tmp_path),
        ),
        capture_output=True, text=True, timeout=180, env=_env(), stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (vm,) = json.loads(done.stdout)["vms"]
    assert (vm["name"], vm["exit_reason"]) == ("vm0", "system_off")
    assert (tmp_path / "vm0.log").read_text().replace("\r\n", "\n") == (
        "share: connection cross_vm_conn_0\n"
        "share: dataport string ok\n"
        "share: event consumed, count 1\n"
    )
