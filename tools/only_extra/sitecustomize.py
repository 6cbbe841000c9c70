"""Loaded at interpreter start when tools/only_extra is on PYTHONPATH (tools/lessons.py puts
it there for the lessons' kernel): the top-level modules named in MLPLAB_BLOCKED_MODULES are
not found, as in an environment that never installed them. Every import finder is wrapped,
so `import x` raises ModuleNotFoundError and importlib.util.find_spec("x") answers None,
the two ways code asks whether an optional package is there."""

import json
import os
import sys


class _Hidden:
    def __init__(self, finder, blocked):
        self._finder, self._blocked = finder, blocked

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in self._blocked:
            return None
        find = getattr(self._finder, "find_spec", None)
        return find(name, path, target) if find is not None else None

    def __getattr__(self, attribute):
        return getattr(self._finder, attribute)


def hide(blocked) -> None:
    """From now on, the top-level modules in `blocked` cannot be found (those already
    imported are dropped from sys.modules, so they cannot be reached that way either)."""
    unhide()
    blocked = frozenset(blocked)
    for name in list(sys.modules):
        if name.partition(".")[0] in blocked:
            del sys.modules[name]
    sys.meta_path[:] = [_Hidden(finder, blocked) for finder in sys.meta_path]


def unhide() -> None:
    sys.meta_path[:] = [getattr(f, "_finder", f) for f in sys.meta_path]


_blocked = json.loads(os.environ.get("MLPLAB_BLOCKED_MODULES", "[]"))
if _blocked:
    hide(_blocked)
