"""The container image's recipe, checked without a Docker engine: the numba cache built by
the warm-up script is complete and, once the entrypoint copied it into a writable
directory, loads every kernel without compiling; the Dockerfile keeps its promises."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.deploy.render import REPO

DOCKER = REPO / "deploy" / "docker"
WARM = DOCKER / "warm_kernels.py"


def _env(cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_")}
    return env | {"NUMBA_CACHE_DIR": str(cache), "NUMBA_CPU_NAME": "generic"}


def test_warm_cache_is_complete_and_loads_after_the_entrypoint_copy(tmp_path: Path) -> None:
    seed = tmp_path / "seed"
    build = subprocess.run(
        [sys.executable, str(WARM)],
        env=_env(seed),
        capture_output=True,
        check=False,
        text=True,
        timeout=120,
    )
    assert build.returncode == 0, build.stderr
    assert list(seed.rglob("*.nbi")), "no numba index written"

    # The entrypoint copies the seed to the writable NUMBA_CACHE_DIR, then execs driftmon.
    runtime = tmp_path / "tmp" / "numba-cache"
    bin_dir = Path(sys.executable).parent
    env = _env(runtime) | {
        "DRIFTMON_NUMBA_CACHE_SEED": str(seed),
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    start = subprocess.run(
        ["sh", str(DOCKER / "entrypoint.sh"), "--version"],
        env=env,
        capture_output=True,
        check=False,
        text=True,
        timeout=60,
    )
    assert start.returncode == 0, start.stderr
    assert start.stdout.startswith("driftmon ")

    load = subprocess.run(
        [sys.executable, str(WARM), "--expect-cached"],
        env=_env(runtime),
        capture_output=True,
        check=False,
        text=True,
        timeout=120,
    )
    assert load.returncode == 0, load.stdout + load.stderr


def test_every_module_with_kernels_is_warmed() -> None:
    """A kernel outside `monitor.kernels` is warmed only if its module is listed."""
    listed = re.search(r"OTHER_MODULES = \(([^)]*)\)", WARM.read_text(encoding="utf-8"))
    assert listed is not None
    others = set(re.findall(r'"([\w.]+)"', listed.group(1)))
    with_kernels = {
        ".".join(path.relative_to(REPO).with_suffix("").parts)
        for path in (REPO / "monitor").rglob("*.py")
        if "@kernel" in path.read_text(encoding="utf-8")
    }
    assert with_kernels
    assert {m for m in with_kernels if not m.startswith("monitor.kernels.")} == others


def test_dockerfile_is_multi_stage_non_root_and_tool_free() -> None:
    text = (REPO / "Dockerfile").read_text(encoding="utf-8")
    stages = re.split(r"^FROM ", text, flags=re.M)[1:]
    assert len(stages) == 2, "build and runtime stages"
    runtime = stages[-1]
    user = re.search(r"^USER (\S+)", runtime, flags=re.M)
    assert user is not None
    uid = user.group(1).split(":")[0].replace("${UID}", "10001")
    assert uid.isdigit() and int(uid) > 0, "numeric non-root user (runAsNonRoot checks it)"
    assert re.search(r"^ARG UID=10001$", runtime, flags=re.M)
    assert not re.search(r"apt-get|gcc|build-essential|pip install", runtime)
    assert "COPY --from=build /opt/driftmon/numba-cache" in runtime
    assert "NUMBA_CACHE_DIR=/tmp/numba-cache" in runtime
    assert "warm_kernels.py" in stages[0]
    ignore = (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
    assert ignore[ignore.index("*") :][:1] == ["*"], ".dockerignore starts from nothing"
