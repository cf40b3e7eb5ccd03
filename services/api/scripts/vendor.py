"""`make vendor`: fetch the api's front-end files from npm into its package, and record them.

Each package in ``PACKAGES`` is fetched at its pinned version with ``npm pack`` (which
checks the tarball against the registry's integrity hash), only the listed files are copied
into ``<vendor directory>/<directory>/``, and that vendor directory's ``vendor.json``
records each file's package, version and sha256. There are two vendor directories: the
Swagger UI's (``herald_api/static/vendor/``, served at /static) and the admin UI's
(``herald_api/admin/static/vendor/``, served at /admin/static only when the admin UI is
on). The files are committed: only this script needs npm, never CI, an image build or
``make run``. To update a package, change its version here and run ``make vendor``; to add
one, add an entry.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "src" / "herald_api"
VENDOR_DIR = PACKAGE_DIR / "static" / "vendor"
ADMIN_VENDOR_DIR = PACKAGE_DIR / "admin" / "static" / "vendor"
MANIFEST_NAME = "vendor.json"


@dataclass(frozen=True)
class NpmPackage:
    name: str
    version: str
    directory: str  # under vendor_dir; the script owns it and rewrites it whole
    files: tuple[str, ...]  # paths inside the package
    vendor_dir: Path = VENDOR_DIR


PACKAGES = (
    NpmPackage(
        name="swagger-ui-dist",
        version="5.35.0",
        directory="swagger-ui",
        files=(
            "swagger-ui-bundle.js",
            "swagger-ui.css",
            "favicon-32x32.png",
            # Apache-2.0 asks that the licence and NOTICE travel with the copy.
            "LICENSE",
            "NOTICE",
            "swagger-ui-bundle.js.LICENSE.txt",
        ),
    ),
    # The admin UI's: htmx 2 (the 4.x line on npm's "latest" tag changes the attribute
    # semantics the templates rely on), Chart.js 4's UMD bundle (no build step, no date
    # adapter: the charts label their axes themselves), Pico CSS 2 with its classes.
    NpmPackage(
        name="htmx.org",
        version="2.0.11",
        directory="htmx",
        files=("dist/htmx.min.js", "LICENSE"),
        vendor_dir=ADMIN_VENDOR_DIR,
    ),
    NpmPackage(
        name="chart.js",
        version="4.6.1",
        directory="chartjs",
        files=("dist/chart.umd.min.js", "LICENSE.md"),
        vendor_dir=ADMIN_VENDOR_DIR,
    ),
    NpmPackage(
        name="@picocss/pico",
        version="2.1.1",
        directory="pico",
        files=("css/pico.min.css", "LICENSE.md"),
        vendor_dir=ADMIN_VENDOR_DIR,
    ),
)


def npm(*args: str) -> str:
    # The name is resolved from PATH on purpose: npm is whatever the developer has installed.
    result = subprocess.run(["npm", *args], check=True, capture_output=True, text=True)  # noqa: S603, S607
    return result.stdout


def fetch(package: NpmPackage, workdir: Path) -> dict[str, dict[str, str | int]]:
    """Copies the package's listed files into place; answers their manifest entries."""
    packed = json.loads(
        npm(
            "pack",
            f"{package.name}@{package.version}",
            "--json",
            "--pack-destination",
            str(workdir),
        )
    )
    tarball = workdir / packed[0]["filename"]
    target = package.vendor_dir / package.directory
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    entries: dict[str, dict[str, str | int]] = {}
    with tarfile.open(tarball) as archive:
        for name in package.files:
            # Read named members only, so that nothing in the tarball picks where we write.
            member = archive.extractfile(f"package/{name}")
            if member is None:
                raise SystemExit(f"{package.name}@{package.version} has no file {name}")
            content = member.read()
            destination = target / Path(name).name
            destination.write_bytes(content)
            entries[destination.relative_to(package.vendor_dir).as_posix()] = {
                "package": package.name,
                "version": package.version,
                "source": name,
                "sha256": hashlib.sha256(content).hexdigest(),
                "bytes": len(content),
            }
    return entries


def main() -> None:
    if shutil.which("npm") is None:
        raise SystemExit("make vendor needs npm (e.g. apt-get install npm); nothing else does")
    files: dict[Path, dict[str, dict[str, str | int]]] = {}
    with tempfile.TemporaryDirectory(prefix="herald-vendor-") as workdir:
        for package in PACKAGES:
            files.setdefault(package.vendor_dir, {}).update(fetch(package, Path(workdir)))
            latest = npm("view", package.name, "version").strip()
            note = "" if latest == package.version else f" (latest is {latest})"
            print(f"{package.name}@{package.version} -> {package.directory}/{note}")
    for vendor_dir, entries in files.items():
        manifest = {
            "generated_by": "make vendor (services/api/scripts/vendor.py)",
            "files": entries,
        }
        path = vendor_dir / MANIFEST_NAME
        path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
