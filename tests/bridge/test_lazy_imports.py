"""The format libraries (`ismrmrd`, `mrd`, `spec2nii`) load only when a bridge or a replay needs them."""

import subprocess
import sys

FORMAT_LIBS = ("ismrmrd", "mrd", "spec2nii", "pydicom", "h5py")


def loaded_after(imports: str) -> list[str]:
    code = (f"import sys, {imports}; print(sorted({{m.split('.')[0] for m in sys.modules}} & {set(FORMAT_LIBS)!r}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return eval(out.stdout)  # a printed list of names from this very test


def test_the_agent_never_loads_the_format_libraries():
    assert loaded_after("mrsmon.cli, mrsmon.commands.agent, agent.service, agent.pipeline, agent.ingest") == []


def test_replay_and_the_bridge_modules_load_them_only_when_used():
    assert loaded_after("analysis.replay, mrsmon.commands.replay, mrsmon.commands.bridge, protocols.mrd.bridge, "
                        "protocols.mrd.files, analysis.vendor") == []
