"""Every chapter (grading): the two guards of a graded exercise.

**Its own folder.** ``demucs-course grade`` copies this file as ``sitecustomize.py`` onto the ``PYTHONPATH`` of each
grading run, so every Python process of the run (otter, and the kernel that executes the student's notebook)
imports it at start-up. There it installs an audit hook (PEP 578) that

- refuses to open a file for writing, or to create, delete, rename or re-permission a path, anywhere outside the
  folders named in ``UNMIX_GRADING_WRITABLE`` (the submission's scratch folder and the course's data cache);
- in the notebook's kernel, once it runs the notebook's first cell, refuses to start other programs
  (``os.system``, ``subprocess``, ``exec``), which could write anywhere;

and records every refusal in the file ``UNMIX_GRADING_VIOLATIONS``, so the grade command gives that submission 0
points with the reason. It is a guard against accidents and casual mischief, not a security boundary: grade code
you do not trust inside a container or a virtual machine.

**Its own code.** An exercise asks the student to write what the package already holds (``center_trim``,
``rescale_module``, ``train_step``...), so an answer that only calls the package's function would pass any test
that compares with it. The exercises' tests therefore run the student's code inside :func:`own_work`::

    with own_work():
        mine = center_trim(x, 5)          # the student's function
    assert torch.equal(mine, reference(x, 5))   # the package's, computed outside the guard

While the block runs, every function and method of ``demucs_course`` (and whatever else ``forbid`` names, such as
``torch.nn.functional.glu``) raises :class:`OwnWorkError` ("write your own: do not call demucs_course.model.
center_trim") when the student's code calls it, by any name or alias: the guard swaps the function's code object,
so ``from demucs_course.model import center_trim as ct``, a re-export in another module, a default argument or a
subclass all reach the guard. A package function that another package function calls (the helpers behind an
allowed ``stft``) runs as usual, and ``allow`` names what a question lets the student use (a module, a class or a
function, by dotted name). A call the student's code catches and hides still fails the block.
"""

import importlib
import os
import pkgutil
import re
import sys
import sysconfig
import types


# ---------------------------------------------------------------------------------------------------------------
# Its own folder
# ---------------------------------------------------------------------------------------------------------------

def _install() -> None:
    writable = [os.path.realpath(p) for p in os.environ.get("UNMIX_GRADING_WRITABLE", "").split(os.pathsep) if p]
    writable.append("/dev")
    log_path = os.environ.get("UNMIX_GRADING_VIOLATIONS")
    if not log_path or not writable:
        return
    log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)  # opened before the hook exists
    in_kernel = "-f" in sys.argv and any(a.endswith(".json") for a in sys.argv)
    armed = []  # becomes [True] when the kernel runs its first cell (ipykernel itself starts programs at start-up)
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC

    def inside(path) -> bool:
        if isinstance(path, int):  # an open file descriptor: the file was already allowed
            return True
        try:
            real = os.path.realpath(os.fsdecode(path))
        except (TypeError, ValueError):
            return False
        return any(real == root or real.startswith(root + os.sep) for root in writable)

    def refuse(what: str, target) -> None:
        os.write(log, f"{what} {target!r}\n".encode())
        raise PermissionError(f"grading: {what} {target!r} is outside the submission's folder")

    def hook(event: str, args) -> None:
        if in_kernel and not armed and event == "exec":
            filename = getattr(args[0], "co_filename", "")
            if re.search(r"ipykernel_\d+[/\\]", filename) or filename.startswith("<ipython-input"):  # a cell
                armed.append(True)
        if event == "open":
            path, mode, flags = args
            writing = (mode is not None and any(c in mode for c in "wax+")) or (
                mode is None and isinstance(flags, int) and flags & write_flags)
            if writing and path is not None and not inside(path):
                refuse("writing", path)
        elif event in ("os.remove", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.truncate", "os.utime",
                       "shutil.rmtree", "os.symlink", "os.link"):
            if args and not inside(args[0]):
                refuse(event, args[0])
        elif event in ("os.rename", "shutil.move", "shutil.copyfile", "shutil.copytree"):
            if len(args) > 1 and not inside(args[1]):
                refuse(event, args[1])
            if event in ("os.rename", "shutil.move") and not inside(args[0]):
                refuse(event, args[0])
        elif armed and event in ("os.system", "subprocess.Popen", "os.exec", "os.posix_spawn", "os.spawn",
                                     "pty.spawn"):
            refuse("starting a program", args[0] if args else event)

    sys.addaudithook(hook)


if __name__ == "sitecustomize":  # a grading run; imported as demucs_course.grading_guard it only defines
    _install()


# ---------------------------------------------------------------------------------------------------------------
# Its own code
# ---------------------------------------------------------------------------------------------------------------

PACKAGE = "demucs_course"
_GUARD_MODULES = (f"{PACKAGE}.grading", f"{PACKAGE}.grading_guard")  # never guarded: they run the guard


def _library_roots() -> tuple:
    """Where installed code lives: the standard library and every site-packages or dist-packages folder."""
    import site

    roots = [p for key, p in sysconfig.get_paths().items() if key in ("stdlib", "platstdlib", "purelib", "platlib")]
    roots += site.getsitepackages() if hasattr(site, "getsitepackages") else []
    roots += [p for p in sys.path if p.rstrip(os.sep).endswith(("site-packages", "dist-packages"))]
    return tuple(sorted({os.path.realpath(p).rstrip(os.sep) + os.sep for p in roots if p}))


_LIBRARY_ROOTS = _library_roots()


class OwnWorkError(AssertionError):
    """The student's code called the package function it was asked to write."""


class own_work:
    """A context manager: inside it, the student's code may not call ``demucs_course`` (see the module docstring).

    ``allow``: dotted names the student may call (``"demucs_course.oracles.stft"``, ``"demucs_course.model"`` for
    a whole module, ``"demucs_course.model.Demucs"`` for a class). ``forbid``: dotted names of functions outside the
    package that the student may not call either (``"torch.nn.functional.glu"``).
    """

    def __init__(self, allow=(), forbid=()):
        self.allow = tuple(allow)
        self.forbid = tuple(forbid)
        self._saved = {}
        self.calls = []

    def __enter__(self):
        if _active:
            raise RuntimeError("own_work() blocks do not nest")
        functions = [f for f in _package_functions() if not _allowed(f, self.allow)]
        functions += [_resolve(name) for name in self.forbid]
        try:
            for function in functions:
                if id(function) not in self._saved:
                    self._saved[id(function)] = (function, function.__code__, _copy(function))
                    function.__code__ = _trampoline(function.__code__.co_freevars, id(function))
        except BaseException:
            self._restore()
            raise
        _active.append(self)
        return self

    def __exit__(self, kind, error, traceback):
        _active.remove(self)
        self._restore()
        if self.calls and kind is None:  # the student's code caught the error and went on
            raise OwnWorkError(_message(self.calls[0]))
        return False

    def _restore(self):
        for function, code, _ in self._saved.values():
            function.__code__ = code
        self._saved.clear()


_active: list = []


def _message(name: str) -> str:
    return (f"write your own code, do not call {name}: this question grades your code, so while it runs the "
            f"functions of {PACKAGE} the question did not hand you are off limits")


def guarded_call(key: int, args: tuple, kwargs: dict):
    """What a guarded function runs instead of its own code: the original when another package function (or a
    library it went through) called it, an :class:`OwnWorkError` when the student's code did."""
    guard = _active[-1] if _active else None
    saved = next((g._saved[key] for g in _active if key in g._saved), None)
    if saved is None:  # the guard has just been lifted
        raise RuntimeError("a guarded function was called after its guard ended")
    function, _, original = saved
    frame = sys._getframe(2)  # 0: this function, 1: the guarded function's trampoline, 2: its caller
    while frame is not None:
        where = _whose(frame)
        if where == "package":
            return original(*args, **kwargs)
        if where == "student":
            name = f"{function.__module__}.{function.__qualname__}"
            guard.calls.append(name)
            raise OwnWorkError(_message(name))
        frame = frame.f_back  # a library (torch's Module.__call__, functools...): look at who called it
    return original(*args, **kwargs)


def _whose(frame) -> str:
    """``"package"``, ``"library"`` (the standard library, site-packages) or ``"student"`` (everything else: the
    notebook, its tests, a file of the student's)."""
    module = frame.f_globals.get("__name__") or ""
    if (module == PACKAGE or module.startswith(PACKAGE + ".")) and module not in _GUARD_MODULES:
        return "package"
    filename = frame.f_code.co_filename
    if filename.startswith("<frozen") or os.path.realpath(filename).startswith(_LIBRARY_ROOTS):
        return "library"
    return "student"


_TRAMPOLINES: dict = {}


def _trampoline(freevars: tuple, key: int) -> types.CodeType:
    """A code object that hands a call of function ``key`` to :func:`guarded_call`. It has the original's free
    variables, as a function's ``__code__`` must keep them."""
    if (freevars, key) not in _TRAMPOLINES:
        lines = ["def _outer():", *[f"    {name} = None" for name in freevars],
                 "    def _guarded(*args, **kwargs):"]
        if freevars:
            lines.append(f"        ({', '.join(freevars)},)")
        lines += [f"        return __import__({__name__!r}, fromlist=['_']).guarded_call({key}, args, kwargs)",
                  "    return _guarded"]
        namespace = {}
        exec(compile("\n".join(lines), "<own_work guard>", "exec"), namespace)
        _TRAMPOLINES[freevars, key] = namespace["_outer"]().__code__
    return _TRAMPOLINES[freevars, key]


def _copy(function: types.FunctionType) -> types.FunctionType:
    """A twin of ``function`` with its own code, which the guard calls when package code calls ``function``."""
    twin = types.FunctionType(function.__code__, function.__globals__, function.__name__, function.__defaults__,
                              function.__closure__)
    twin.__kwdefaults__ = function.__kwdefaults__
    twin.__qualname__ = function.__qualname__
    return twin


_MODULES_IMPORTED: list = []


def _package_functions() -> list[types.FunctionType]:
    """Every function of the package: module-level functions, and the methods, static and class methods and
    property accessors of its classes, after importing every module (so that none escapes by being imported late).
    """
    if not _MODULES_IMPORTED:
        package = importlib.import_module(PACKAGE)
        for info in pkgutil.walk_packages(package.__path__, PACKAGE + "."):
            try:
                importlib.import_module(info.name)
            except Exception:  # an optional dependency missing: nothing of that module can be called either
                pass
        _MODULES_IMPORTED.append(True)
    found = {}

    def add(obj):
        while isinstance(obj, types.FunctionType) and id(obj) not in found:
            module = getattr(obj, "__module__", None) or ""
            if not (module == PACKAGE or module.startswith(PACKAGE + ".")) or module in _GUARD_MODULES:
                return
            found[id(obj)] = obj
            obj = getattr(obj, "__wrapped__", None)  # a decorated function: the decorator's and the original

    for name, module in list(sys.modules.items()):
        if module is None or not (name == PACKAGE or name.startswith(PACKAGE + ".")) or name in _GUARD_MODULES:
            continue
        for value in list(vars(module).values()):
            if isinstance(value, type) and (value.__module__ or "").startswith(PACKAGE):
                for member in vars(value).values():
                    if isinstance(member, (staticmethod, classmethod)):
                        member = member.__func__
                    if isinstance(member, property):
                        for accessor in (member.fget, member.fset, member.fdel):
                            add(accessor)
                    else:
                        add(member)
            else:
                add(value)
    return list(found.values())


def _allowed(function: types.FunctionType, allow: tuple) -> bool:
    name = f"{function.__module__}.{function.__qualname__}"
    return any(name == a or name.startswith(a + ".") for a in allow)


def _resolve(dotted: str) -> types.FunctionType:
    """The function a dotted name such as ``torch.nn.functional.glu`` names."""
    module_name, _, attribute = dotted.rpartition(".")
    try:
        function = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"own_work(forbid=...): {dotted!r} names no function") from error
    if not isinstance(function, types.FunctionType):
        raise ValueError(f"own_work(forbid=...): {dotted!r} is a {type(function).__name__}, not a Python function")
    return function
