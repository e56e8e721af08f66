"""Download and cache dataset files through pooch, verifying their checksums.

Resolution order for each file of a manifest (see ``docs/data.md``):

1. ``<cache>/<cache_path>`` exists -> verify size/checksum, return it (no network).
   A wrong checksum deletes the file and raises :class:`ChecksumMismatchError`.
2. Offline (``ATTUNE_OFFLINE=1`` or ``offline=True``), no public URL, or a failed download ->
   :class:`DataNotAvailableError` naming the file, its URL and the exact path to place it at.
3. Otherwise pooch downloads it (to a temporary file, verified, then moved into place).

The cache folder is ``$ATTUNE_DATA_DIR`` or ``pooch.os_cache("attune-companion")``; pointing
``ATTUNE_DATA_DIR`` at ``../shared/data`` makes it a pre-filled cache.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from .._utils import AttuneInputError
from ._manifest import DataFile, Manifest, get_manifest, load_manifest, manifest_paths

__all__ = [
    "ChecksumMismatchError",
    "DataNotAvailableError",
    "cache_dir",
    "fetch",
    "fetch_file",
    "is_offline",
    "cache_table",
    "package_resource",
]

_TRUE = {"1", "true", "yes", "on"}
# (path, size, mtime_ns, checksum) of files verified in this process: avoids re-hashing big files
_VERIFIED: set[tuple[str, int, int, str]] = set()


class DataNotAvailableError(AttuneInputError):
    """A data file is not in the cache and cannot be downloaded (offline, no URL, network error).

    Parameters
    ----------
    message
        What is missing and how to get it.
    file
        The data file's name in its manifest.
    url
        Where the file is downloaded from.
    path
        Where the file is expected in the cache.

    Attributes
    ----------
    file
        The manifest's file name.
    url
        Its public URL (``None`` for derived files).
    path
        The exact path where the file is expected; placing it there makes it available.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        url: str | None = None,
        path=None,
    ):
        super().__init__(message)
        self.file = file
        self.url = url
        self.path = Path(path) if path is not None else None


class ChecksumMismatchError(AttuneInputError):
    """A cached or downloaded file does not match the manifest's checksum (the file was removed)."""


def cache_dir() -> Path:
    """The data cache folder: ``$ATTUNE_DATA_DIR`` or ``pooch.os_cache("attune-companion")``.

    The folder is not created here; :func:`fetch` creates sub-folders when it downloads.
    """
    env = os.environ.get("ATTUNE_DATA_DIR")
    if env:
        return Path(env).expanduser()
    import pooch

    return Path(pooch.os_cache("attune-companion"))


def is_offline(offline: bool | None = None) -> bool:
    """``offline`` when given, else whether ``$ATTUNE_OFFLINE`` is set to 1/true/yes/on.

    Parameters
    ----------
    offline
        Explicit choice; None reads ``$ATTUNE_OFFLINE``.
    """
    if offline is not None:
        return bool(offline)
    return os.environ.get("ATTUNE_OFFLINE", "").strip().lower() in _TRUE


def _file_checksum(path: Path, algorithm: str) -> str:
    import pooch

    return pooch.file_hash(str(path), alg=algorithm)


def _not_available(entry: DataFile, target: Path, reason: str) -> DataNotAvailableError:
    url = entry.url
    lines = [
        f"file {entry.name!r} of dataset {entry.dataset!r} is not available: {reason}",
        f"  URL: {url if url else 'none (derived file)'}",
    ]
    if entry.derived_from:
        lines.append(f"  derived from: {entry.derived_from}")
    lines.append(f"  place it at: {target}")
    if entry.extract:
        lines.append(
            f"  (or place the extracted {entry.extract[-1]!r} at {target.parent / entry.extract[-1]})"
        )
    if entry.checksum:
        lines.append(f"  expected checksum: {entry.checksum}")
    lines.append(
        "  The cache folder is $ATTUNE_DATA_DIR (else pooch.os_cache('attune-companion')); "
        "see docs/data.md."
    )
    return DataNotAvailableError(
        "\n".join(lines), file=entry.name, url=url, path=target
    )


def _verify_existing(entry: DataFile, target: Path) -> None:
    """Check size and checksum of a cached file; delete it and raise when they do not match."""
    st = target.stat()
    problem = None
    if entry.size is not None and st.st_size != entry.size:
        problem = f"size {st.st_size} bytes, expected {entry.size}"
    elif entry.checksum:
        key = (str(target.resolve()), st.st_size, st.st_mtime_ns, entry.checksum)
        if key in _VERIFIED:
            return
        got = _file_checksum(target, entry.hash_algorithm)
        if got.lower() != entry.hash_value:
            problem = (
                f"checksum {entry.hash_algorithm}:{got}, expected {entry.checksum}"
            )
        else:
            _VERIFIED.add(key)
    if problem is None:
        return
    try:
        target.unlink()
        removed = "The bad file was deleted; call fetch again to download it, or place a correct copy there."
    except OSError as exc:
        removed = f"It could NOT be deleted ({exc}); remove or replace it by hand."
    raise ChecksumMismatchError(
        f"{target}: refusing file {entry.name!r} of dataset {entry.dataset!r}: {problem}. {removed}"
        f" URL: {entry.url or 'none (derived file)'}"
    )


def _download(entry: DataFile, target: Path, *, progressbar: bool) -> None:
    import pooch

    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        pooch.retrieve(
            entry.url,
            known_hash=entry.checksum,
            fname=target.name,
            path=str(target.parent),
            progressbar=progressbar and not os.environ.get("ATTUNE_NO_PROGRESS"),
        )
    except ValueError as exc:
        msg = str(exc)
        if "hash" in msg.lower() and "match" in msg.lower():
            # pooch downloads to a temporary file and deletes it on mismatch; make sure of it
            if target.exists():
                target.unlink()
            raise ChecksumMismatchError(
                f"{target}: the file {entry.name!r} downloaded from {entry.url} does not match the "
                f"manifest checksum {entry.checksum}; nothing was kept. ({msg})"
            ) from None
        raise _not_available(entry, target, f"download failed: {msg}") from None
    except Exception as exc:  # noqa: BLE001 - any download failure (requests, DNS, DOI) is reported
        raise _not_available(
            entry, target, f"download failed ({type(exc).__name__}: {exc})"
        ) from None


def _extract_chain(archive: Path, chain: tuple[str, ...], dest: Path) -> None:
    """Extract the last member of ``chain`` (member names, outer to inner) to ``dest`` atomically."""
    from ._readers import atomic_write_path

    tmpdir = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest.parent))
    try:
        current = archive
        for i, member in enumerate(chain):
            try:
                zf = zipfile.ZipFile(current)
            except zipfile.BadZipFile:
                raise AttuneInputError(
                    f"{current}: not a zip archive (extracting {member!r})"
                ) from None
            with zf:
                matches = [
                    n
                    for n in zf.namelist()
                    if PurePosixPath(n).name == member and not n.startswith("__MACOSX")
                ]
                if not matches:
                    raise AttuneInputError(
                        f"{archive}: archive member {member!r} not found "
                        f"(extract chain {list(chain)})"
                    )
                out = dest if i == len(chain) - 1 else tmpdir / f"{i}_{member}"
                if i == len(chain) - 1:
                    with (
                        atomic_write_path(dest) as tmp,
                        zf.open(matches[0]) as src,
                        open(tmp, "wb") as fh,
                    ):
                        shutil.copyfileobj(src, fh)
                else:
                    with zf.open(matches[0]) as src, open(out, "wb") as fh:
                        shutil.copyfileobj(src, fh)
                current = out
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def fetch_file(
    entry: DataFile,
    *,
    root: Path | None = None,
    offline: bool | None = None,
    progressbar: bool = True,
) -> dict[str, Path]:
    """Make one manifest file available in the cache and return ``{name: path}``.

    For archives with ``extract`` the result also maps the extracted member's name to its path.
    See :func:`fetch` for the behaviour and errors.
    """
    root = cache_dir() if root is None else Path(root)
    target = root / entry.relpath
    out: dict[str, Path] = {}
    if entry.extract:
        extracted = root / entry.extracted_relpath
        if extracted.is_file():
            if target.is_file():
                _verify_existing(entry, target)
                out[entry.name] = target
            out[entry.extract[-1]] = extracted
            return out
    if target.is_file():
        _verify_existing(entry, target)
    elif entry.url is None:
        raise _not_available(
            entry, target, "it has no public download URL and is not in the cache"
        )
    elif is_offline(offline):
        raise _not_available(
            entry, target, "offline mode (ATTUNE_OFFLINE=1 or offline=True)"
        )
    else:
        _download(entry, target, progressbar=progressbar)
    out[entry.name] = target
    if entry.extract:
        extracted = root / entry.extracted_relpath
        _extract_chain(target, entry.extract, extracted)
        out[entry.extract[-1]] = extracted
    return out


def package_resource(manifest: Manifest) -> Path:
    """Path of a ``kind: package`` dataset's resource inside its installed package.

    Raises :class:`DataNotAvailableError` when the package or the resource is missing.
    """
    import importlib.util

    pkg = manifest.package or {}
    name, version = pkg.get("name"), pkg.get("version")
    spec = importlib.util.find_spec(name) if name else None
    hint = f"install it with `pip install {name}=={version}`"
    if spec is None or spec.origin is None:
        raise DataNotAvailableError(
            f"dataset {manifest.name!r} ships inside the package {name!r}, which is not installed; {hint}",
            file=pkg.get("resource"),
        )
    base = Path(spec.origin).parent
    if not pkg.get("resource"):
        return base
    path = base / pkg["resource"]
    if not path.is_file():
        raise DataNotAvailableError(
            f"dataset {manifest.name!r}: {pkg['resource']!r} not found in package {name!r} at {path}; {hint}",
            file=pkg["resource"],
            path=path,
        )
    return path


def fetch(
    name: str,
    files: str | Iterable[str] | None = None,
    *,
    offline: bool | None = None,
    progressbar: bool = True,
) -> dict[str, Path]:
    """Return local paths of a dataset's files, downloading them with pooch when needed.

    Files already in the cache (``cache_dir() / cache_path``) with the right size and checksum are
    returned without touching the network.

    Parameters
    ----------
    name
        Dataset name (see :func:`~attune_lib.datasets.list_datasets`).
    files
        File name(s) to fetch; ``None`` fetches all non-optional files.
    offline
        Never download; ``None`` reads ``$ATTUNE_OFFLINE``.
    progressbar
        Show pooch's download progress bar (silenced by ``$ATTUNE_NO_PROGRESS``).

    Returns
    -------
    dict
        ``{file name: Path}``; for archives with ``extract`` also ``{member name: Path}``; for
        ``kind: package`` datasets ``{resource file name: Path}``.

    Raises
    ------
    DataNotAvailableError
        A file is missing and offline mode is on, it has no public URL, or the download failed; the
        message names the file, its URL and the exact path to place it at.
    ChecksumMismatchError
        A cached or downloaded file has the wrong checksum; the bad file has been deleted.
    AttuneInputError
        Unknown dataset or file name, or a simulated dataset (call its simulator instead).
    """
    manifest = get_manifest(name)
    if manifest.kind == "simulator":
        raise AttuneInputError(
            f"name: dataset {name!r} is simulated, nothing to fetch; call {manifest.simulator}(...)"
        )
    if manifest.kind == "package":
        path = package_resource(manifest)
        return {path.name: path}
    if files is None:
        entries = list(manifest.required_files)
    else:
        if isinstance(files, str):
            files = [files]
        entries = []
        for f in files:
            e = manifest.file(f)
            if e not in entries:
                entries.append(e)
    root = cache_dir()
    out: dict[str, Path] = {}
    for entry in entries:
        out.update(
            fetch_file(entry, root=root, offline=offline, progressbar=progressbar)
        )
    return out


def _is_cached(m: Manifest, root: Path) -> bool:
    if m.kind == "simulator":
        return True
    if m.kind == "package":
        try:
            package_resource(m)
        except AttuneInputError:
            return False
        return True
    for f in m.required_files:
        target = root / f.relpath
        extracted = root / f.extracted_relpath if f.extract else None
        if extracted is not None and extracted.is_file():
            continue
        if not target.is_file():
            return False
        if f.size is not None and target.stat().st_size != f.size:
            return False
    return True


def cache_table():
    """Table of all manifests with whether their required files are already in the cache.

    ``cached`` checks presence and size only (no hashing; :func:`~attune_lib.datasets.fetch`
    verifies checksums). Simulated data is always available; packaged data is available when the
    package is installed.

    Returns
    -------
    pandas.DataFrame
        One row per dataset with columns ``name``, ``title``, ``kind``, ``organism``, ``genome``,
        ``n_files`` and ``cached`` (bool).
    """
    import pandas as pd

    root = cache_dir()
    rows = []
    for path in manifest_paths():
        m = load_manifest(path)
        rows.append(
            {
                "name": m.name,
                "title": m.title,
                "kind": m.kind,
                "organism": m.organism,
                "genome": m.genome,
                "n_files": len(m.files),
                "cached": bool(_is_cached(m, root)),
            }
        )
    return pd.DataFrame(
        rows,
        columns=["name", "title", "kind", "organism", "genome", "n_files", "cached"],
    )
