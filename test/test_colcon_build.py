"""The package also builds with colcon inside a ROS 2 workspace, as users with a system ROS install do.

The ROS wheels in .venv stand in for /opt/ros/<distro>: AMENT_PREFIX_PATH points colcon at them.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _tracked_files() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip("not a git checkout")
    return [f for f in out.stdout.splitlines() if (ROOT / f).is_file()]


def test_colcon_build_installs_messages_and_package(tmp_path):
    colcon = Path(sys.executable).parent / "colcon"
    if not colcon.exists():
        pytest.skip("colcon-common-extensions not installed")
    src = tmp_path / "ws" / "src" / "reconphys_ros"
    for rel in _tracked_files():
        if rel.startswith(("build/", "install/", "log/")):
            continue
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, src / rel)
    venv = Path(sys.executable).parent.parent
    env = dict(os.environ, AMENT_PREFIX_PATH=str(venv), PATH=f"{venv / 'bin'}:{os.environ['PATH']}")
    env.pop("PYTHONPATH", None)
    ws = tmp_path / "ws"
    result = subprocess.run(
        [str(colcon), "build", "--event-handlers", "console_direct-",
         "--cmake-args", "-DBUILD_TESTING=OFF", f"-DPython3_EXECUTABLE={sys.executable}"],
        cwd=ws, env=env, capture_output=True, text=True, timeout=900)
    log = (ws / "log" / "latest_build" / "reconphys_ros" / "stderr.log")
    assert result.returncode == 0, result.stdout[-3000:] + (log.read_text()[-3000:] if log.exists() else "")
    site = ws / "install" / "reconphys_ros" / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    assert (site / "reconphys_ros" / "msg" / "_gaussian_asset.py").exists()
    assert (site / "reconphys_ros" / "ros" / "conversions.py").exists()
    assert (ws / "install" / "reconphys_ros" / "share" / "reconphys_ros" / "msg" / "GaussianAsset.msg").exists()
    check = ("import reconphys_ros, reconphys_ros.ros.conversions; from reconphys_ros.msg import GaussianAsset; "
             "print(reconphys_ros.__path__)")
    # Only the workspace install on the path (not the repository): the installed package must stand on its own.
    env_run = dict(env, PYTHONPATH=str(site), AMENT_PREFIX_PATH=f"{ws / 'install' / 'reconphys_ros'}:{venv}",
                   LD_LIBRARY_PATH=f"{ws / 'install' / 'reconphys_ros' / 'lib'}:{os.environ.get('LD_LIBRARY_PATH', '')}")
    run = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(site)!r}); {check}"],
                         env=env_run, capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert str(site / "reconphys_ros") in run.stdout
