"""Build the single file with PyInstaller, write its SHA-256 beside it, measure its budgets.

Run by ``packaging/build-binary`` with the build virtualenv's Python, which has aioqueue
(installed from this checkout, not in editable mode) and PyInstaller.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import platform
import subprocess
import sys
import tomllib
from pathlib import Path

import PyInstaller.__main__

ROOT = Path(__file__).resolve().parents[1]

#: standard-library modules a server has no use for: GUI, tests, installers, other systems
LEFT_OUT = frozenset({
    "antigravity", "this", "tkinter", "_tkinter", "turtle", "turtledemo", "idlelib", "test",
    "unittest", "doctest", "pydoc", "pydoc_data", "ensurepip", "venv", "lib2to3", "distutils",
    "curses", "_curses", "_curses_panel", "readline", "dbm", "_dbm", "_gdbm", "msilib",
    "_msi", "msvcrt", "winreg", "winsound", "_winapi", "nt", "_overlapped", "_scproxy",
    "_osx_support", "_aix_support", "_bootsubprocess", "nis", "spwd", "crypt", "_crypt",
    "ossaudiodev", "audioop", "xxsubtype", "xxlimited", "xxlimited_35", "_xxsubinterpreters",
    "_xxtestfuzz", "_ctypes_test",
})
#: pulled in by the analysis but never run by the server: their runtime hooks cost memory,
#: and Tk, curses and readline bring in shared libraries (X11, Tcl) that cost start time
EXCLUDED = ("pkg_resources", "setuptools", "_distutils_hack", "pip", "PyInstaller", "tkinter",
            "_tkinter", "turtle", "idlelib", "curses", "_curses", "readline", "test", "lib2to3")


def stdlib_options() -> list[str]:
    """The whole standard library, so process modules next to the config can import it."""
    options = []
    for name in sorted(sys.stdlib_module_names - LEFT_OUT):
        if name.startswith("_test") or importlib.util.find_spec(name) is None:
            continue
        options.append(f"--hidden-import={name}")
        if importlib.util.find_spec(name).submodule_search_locations is not None:
            options.append(f"--collect-submodules={name}")
    return options


def binary_name() -> str:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    return f"aioqueue-{version}-linux-{platform.machine()}"


def build(name: str, modules: list[str]) -> Path:
    """Run PyInstaller; ``modules`` (and their submodules) are bundled beside aioqueue."""
    PyInstaller.__main__.run([
        "--onefile", "--strip", "--noconfirm", "--clean", "--log-level=WARN",
        f"--name={name}", f"--distpath={ROOT / 'dist'}",
        f"--workpath={ROOT / 'build' / 'pyinstaller'}", f"--specpath={ROOT / 'build'}",
        "--collect-submodules=aioqueue", "--collect-data=aioqueue",
        *(f"--collect-submodules={module}" for module in modules),
        *(f"--hidden-import={module}" for module in modules),
        *stdlib_options(), *(f"--exclude-module={name}" for name in EXCLUDED),
        str(ROOT / "packaging" / "entry.py"),
    ])
    return ROOT / "dist" / name


def write_checksum(binary: Path) -> Path:
    """``NAME.sha256`` in ``sha256sum`` format: ``sha256sum -c NAME.sha256`` checks it."""
    digest = hashlib.sha256(binary.read_bytes()).hexdigest()
    checksum = binary.with_name(binary.name + ".sha256")
    checksum.write_text(f"{digest}  {binary.name}\n")
    return checksum


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-budgets", action="store_true", help="build only")
    parser.add_argument("--with", dest="requirements", action="append", default=[],
                        metavar="REQUIREMENT",
                        help="pip-install this into the build first (a path, a name; repeat)")
    parser.add_argument("--module", dest="modules", action="append", default=[],
                        metavar="NAME", help="bundle this process module (repeat it)")
    args = parser.parse_args()
    if args.requirements:
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", *args.requirements],
                       check=True)
    binary = build(binary_name(), args.modules)
    checksum = write_checksum(binary)
    print(f"built {binary.relative_to(ROOT)} and {checksum.relative_to(ROOT)}")
    if args.no_budgets:
        return 0
    sys.path.insert(0, str(ROOT / "packaging"))
    from budgets import measure

    return measure(binary, [str(Path(sys.executable).parent / "aioqueue")])


if __name__ == "__main__":
    sys.exit(main())
