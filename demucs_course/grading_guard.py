"""Every chapter (grading): the guard that keeps a graded submission inside its own folder.

``demucs-course grade`` copies this file as ``sitecustomize.py`` onto the ``PYTHONPATH`` of each grading run, so every
Python process of the run (otter, and the kernel that executes the student's notebook) imports it at start-up. It
installs an audit hook (PEP 578) that

- refuses to open a file for writing, or to create, delete, rename or re-permission a path, anywhere outside the
  folders named in ``UNMIX_GRADING_WRITABLE`` (the submission's scratch folder and the course's data cache);
- in the notebook's kernel, once it runs the notebook's first cell, refuses to start other programs
  (``os.system``, ``subprocess``, ``exec``), which could write anywhere;

and records every refusal in the file ``UNMIX_GRADING_VIOLATIONS``, so the grade command gives that submission 0
points with the reason. It is a guard against accidents and casual mischief, not a security boundary: grade code
you do not trust inside a container or a virtual machine.
"""

import os
import re
import sys


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


_install()
