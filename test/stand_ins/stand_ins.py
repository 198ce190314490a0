"""Use the stand-in interface packages (test/stand_ins/<pkg>/) from tests.

``ensure_built()`` runs build.sh (quick when nothing changed) and returns the install prefix;
``subprocess_env()`` is the environment a node process needs to import them;
``activate_in_process()`` makes them importable in the running test process (LD_LIBRARY_PATH is
read only at process start, so the typesupport libraries are preloaded by path instead).
"""
from __future__ import annotations

import ctypes
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PREFIX = ROOT / ".colcon" / "stand_ins" / "install"


def ensure_built(timeout: float = 900.0) -> Path:
    result = subprocess.run(["bash", str(HERE / "build.sh")], capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"test/stand_ins/build.sh failed:\n{result.stdout}\n{result.stderr}")
    return PREFIX


def _site_packages() -> Path:
    found = sorted(PREFIX.glob("lib/python3*/site-packages"))
    if not found:
        raise RuntimeError(f"no site-packages under {PREFIX}: stand-ins not built")
    return found[0]


def subprocess_env(base=None) -> dict:
    env = dict(os.environ if base is None else base)
    for key, value in (("PYTHONPATH", _site_packages()), ("LD_LIBRARY_PATH", PREFIX / "lib"),
                       ("AMENT_PREFIX_PATH", PREFIX)):
        env[key] = f"{value}{os.pathsep}{env[key]}" if env.get(key) else str(value)
    return env


def activate_in_process() -> None:
    site = str(_site_packages())
    if site not in sys.path:
        sys.path.insert(0, site)
    # Generator libs first: the typesupport libraries link against them.
    libs = sorted((PREFIX / "lib").glob("lib*.so"), key=lambda p: ("generator_c" not in p.name, p.name))
    pending = list(libs)
    for _ in range(3):   # a library whose dependency is not loaded yet is retried
        failed = []
        for lib in pending:
            try:
                ctypes.CDLL(str(lib), mode=ctypes.RTLD_GLOBAL)
            except OSError:
                failed.append(lib)
        pending = failed
        if not pending:
            return
    raise RuntimeError(f"could not load stand-in libraries: {[p.name for p in pending]}")
