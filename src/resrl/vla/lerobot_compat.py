"""Import lerobot 0.4.4 beside transformers 5 (this stack), and run its scripts that way.

``lerobot.policies/__init__`` imports ``lerobot.policies.groot``, whose package ``__init__`` eagerly
imports the GR00T model; its ``GR00TN15Config`` is a dataclass over transformers' ``PretrainedConfig``
that only defines under transformers < 5 ("non-default argument 'backbone_cfg' follows default
argument"). So with transformers 5.23 (which resrl's Depth-Anything-V2 needs) *no* LeRobot policy
imports. ``prepare()`` registers the ``lerobot.policies.groot`` package without running its
``__init__``: its submodules (the config every policy factory reads) import normally, and only
GR00T itself stays unusable -- lerobot's factory imports its model lazily, when a GR00T checkpoint
is asked for.

    python -m resrl.vla.lerobot_compat lerobot.scripts.lerobot_train --policy.type=act ...

runs a lerobot module as ``python -m`` would, after ``prepare()`` (what resrl.base_policy.train does).
"""
from __future__ import annotations

import importlib.util
import runpy
import sys
import types


def prepare() -> None:
    """Idempotent; a no-op where lerobot's groot package imports as it is."""
    name = "lerobot.policies.groot"
    if name in sys.modules or "lerobot.policies" in sys.modules:
        return
    try:
        import transformers
        if int(transformers.__version__.split(".")[0]) < 5:
            return
    except ImportError:
        return
    spec = importlib.util.find_spec("lerobot")
    if spec is None or not spec.submodule_search_locations:
        return
    import os
    path = os.path.join(list(spec.submodule_search_locations)[0], "policies", "groot")
    if not os.path.isdir(path):
        return
    package = types.ModuleType(name)
    package.__path__ = [path]
    package.__package__ = name
    package.__file__ = os.path.join(path, "__init__.py")
    sys.modules[name] = package


def main() -> None:
    if len(sys.argv) < 2:
        raise SystemExit("usage: python -m resrl.vla.lerobot_compat <lerobot module> [args...]")
    module = sys.argv[1]
    sys.argv = [module] + sys.argv[2:]
    prepare()
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
