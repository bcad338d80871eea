"""PyBullet's C-level "pybullet build time" banner never reaches the output of lyra_sim's commands."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)


def test_plain_import_prints_the_banner():
    # The reference: what a bare import does (so the test below cannot pass for lack of a banner).
    result = _run("import pybullet")
    assert "pybullet build time" in result.stdout + result.stderr


def test_lyra_sim_modules_using_pybullet_print_no_banner():
    result = _run(
        "import sys\n"
        "print('before', flush=False); print('err before', file=sys.stderr)\n"
        "import lyra_sim.physics, lyra_sim.envs, lyra_sim.train.data_engine\n"
        "from lyra_sim.physics.bullet import p\n"
        "client = p.connect(p.DIRECT); p.disconnect(client)\n"
        "print('after')\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "before\nafter\n"
    assert "pybullet build time" not in result.stderr
    assert result.stderr.startswith("err before\n")
