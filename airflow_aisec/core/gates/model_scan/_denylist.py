"""Which pickle imports are dangerous: our denylist merged with picklescan's and modelscan's."""

from __future__ import annotations

from typing import Any

# Denylist of imports that execute code, touch files/network/processes, or load further
# pickles. Merged with picklescan's and modelscan's own lists at scan time.
_DENY: dict[str, Any] = {
    "builtins": {"eval", "exec", "compile", "getattr", "setattr", "delattr", "__import__", "open", "breakpoint",
                 "input", "globals", "locals", "vars", "apply", "execfile", "reload"},
    "__builtin__": {"eval", "exec", "compile", "getattr", "setattr", "delattr", "__import__", "open",
                    "breakpoint", "input", "globals", "locals", "vars", "apply", "execfile", "reload"},
    "os": "*", "posix": "*", "nt": "*", "subprocess": "*", "sys": "*", "socket": "*", "shutil": "*",
    "runpy": "*", "pty": "*", "importlib": "*", "imp": "*", "marshal": "*", "ctypes": "*", "code": "*",
    "codeop": "*", "pickle": "*", "_pickle": "*", "dill": "*", "cloudpickle": "*", "webbrowser": "*",
    "requests": "*", "urllib": "*", "urllib3": "*", "http": "*", "httplib": "*", "ftplib": "*", "smtplib": "*",
    "telnetlib": "*", "asyncio": "*", "aiohttp": "*", "multiprocessing": "*", "threading": "*", "signal": "*",
    "tempfile": "*", "glob": "*", "pathlib": "*", "_io": "*", "zipimport": "*", "pkgutil": "*", "pdb": "*",
    "bdb": "*", "timeit": "*", "cProfile": "*", "profile": "*", "pydoc": "*", "trace": "*", "doctest": "*",
    "venv": "*", "ensurepip": "*", "pip": "*", "setuptools": "*", "distutils": "*", "site": "*", "ssl": "*",
    "uuid": "*", "platform": {"popen", "system"}, "io": {"open", "FileIO", "open_code"}, "codecs": {"open"},
    "types": {"CodeType", "FunctionType", "LambdaType", "MethodType", "ModuleType"},
    "operator": {"attrgetter", "itemgetter", "methodcaller"},
    "_operator": {"attrgetter", "itemgetter", "methodcaller"},
    "functools": {"partial", "reduce"}, "_functools": {"partial", "reduce"},
    "numpy": {"load", "loadtxt", "fromfile"}, "numpy.f2py": "*", "numpy.testing": "*",
    "numpy.lib.npyio": "*", "torch": {"load"}, "torch.serialization": "*", "joblib": {"load"},
    "pandas": {"read_pickle", "eval"}, "yaml": {"load", "unsafe_load", "full_load"},
}



def merged_denylist() -> dict[str, Any]:
    """Ours, plus picklescan's and modelscan's lists when those libraries are installed."""
    merged: dict[str, Any] = {k: (set(v) if isinstance(v, set) else v) for k, v in _DENY.items()}

    def add(module: str, names: Any) -> None:
        if names == "*" or merged.get(module) == "*":
            merged[module] = "*"
            return
        merged.setdefault(module, set())
        merged[module] |= {names} if isinstance(names, str) else set(names)

    try:
        from picklescan import scanner as ps

        for module, names in getattr(ps, "_unsafe_globals", {}).items():
            add(module, names)
    except ImportError:  # pragma: no cover - declared dependency of the scan extra
        pass
    try:
        from modelscan.settings import DEFAULT_SETTINGS

        for by_module in DEFAULT_SETTINGS.get("unsafe_globals", {}).values():
            for module, names in by_module.items():
                add(module, names)
    except ImportError:  # pragma: no cover
        pass
    return merged


def is_dangerous_import(module: str, name: str, denylist: dict[str, Any] | None = None) -> bool:
    """Whether ``module.name`` is on the denylist (a module listed with ``*`` covers its submodules)."""
    denylist = denylist if denylist is not None else merged_denylist()
    if "unknown" in module or "unknown" in name or not module or not name:
        return True  # unresolvable imports could be anything
    parts = module.split(".")
    for i in range(len(parts), 0, -1):
        entry = denylist.get(".".join(parts[:i]))
        if entry == "*":
            return True
        if i == len(parts) and entry and (name in entry or name.split(".")[0] in entry):
            return True
    return False
