"""Dataset manifests: one YAML file per dataset in ``data_manifests/``, validated on load.

The schema is documented in ``docs/data.md``; :func:`validate_manifest` is the single source of truth.
Every problem raises :class:`~attune_lib._utils.AttuneInputError` whose message starts with the
manifest file and the field, e.g. ``data_manifests/x.yaml: files[1].checksum: expected ...``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlparse

from .._utils import AttuneInputError

__all__ = [
    "Citation",
    "DataFile",
    "Manifest",
    "get_manifest",
    "load_manifest",
    "manifest_dir",
    "manifest_paths",
    "validate_manifest",
]

KINDS = ("files", "package", "simulator")
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_]*$")
_CHECKSUM_RE = re.compile(r"^(sha256:[0-9a-f]{64}|md5:[0-9a-f]{32})$")
_DOI_RE = re.compile(r"^10\.\d{4,9}/\S+$")
_DOTTED_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")
_URL_SCHEMES = ("http", "https", "ftp")
CHECKSUM_HELP = "expected 'sha256:<64 hex>' or 'md5:<32 hex>'"

_TOP_REQUIRED = (
    "name",
    "title",
    "description",
    "citation",
    "licence",
    "organism",
    "genome",
    "source",
    "notebooks",
)
_TOP_OPTIONAL = ("kind", "files", "package", "simulator")
_FILE_REQUIRED = ("name", "url", "checksum", "format")
_FILE_OPTIONAL = (
    "size",
    "cache_path",
    "checksum_note",
    "derived_from",
    "extract",
    "optional",
    "description",
)


@dataclass(frozen=True)
class Citation:
    """How to cite a dataset: free text plus a DOI (``None`` where there is none)."""

    text: str
    doi: str | None = None


@dataclass(frozen=True)
class DataFile:
    """One file of a dataset.

    Attributes
    ----------
    name
        Identifier of the file inside the dataset (a relative path such as ``X.mtx`` or
        ``pbmc10k/embeddings_epoch20.npz``); keys of :func:`~attune_lib.datasets.fetch`'s result.
    url
        ``http(s)``/``ftp`` URL or a pooch DOI URL ``doi:<DOI>/<file name>``; ``None`` for files
        derived offline that have no public URL of the same bytes (then ``derived_from`` says how).
    checksum
        ``"sha256:<hex>"`` or ``"md5:<hex>"``; ``None`` only with ``checksum_note``.
    size
        Size in bytes where known.
    format
        File format (``h5ad``, ``h5mu``, ``mtx``, ``csv``, ``tsv``, ``txt``, ``npz``, ``gmt``, ``zip``...).
    cache_path
        Location relative to the cache folder; defaults to ``<dataset>/<name>``.
    extract
        For archives: the chain of member names to extract, outer to inner
        (``["DATA_S1.zip", "PCHiC_peak_matrix_cutoff5.tsv"]``).
    optional
        Optional files are fetched only when asked for by name.
    """

    name: str
    url: str | None
    checksum: str | None
    format: str
    size: int | None = None
    cache_path: str | None = None
    checksum_note: str | None = None
    derived_from: str | None = None
    extract: tuple[str, ...] = ()
    optional: bool = False
    description: str | None = None
    dataset: str = ""

    @property
    def relpath(self) -> str:
        """Path relative to the cache folder."""
        return self.cache_path or f"{self.dataset}/{self.name}"

    @property
    def extracted_relpath(self) -> str | None:
        """Where the last ``extract`` member lands, relative to the cache folder (or ``None``)."""
        if not self.extract:
            return None
        parent = PurePosixPath(self.relpath).parent
        return str(parent / self.extract[-1])

    @property
    def hash_algorithm(self) -> str | None:
        return self.checksum.split(":", 1)[0] if self.checksum else None

    @property
    def hash_value(self) -> str | None:
        return self.checksum.split(":", 1)[1] if self.checksum else None


@dataclass(frozen=True)
class Manifest:
    """A validated dataset manifest (see ``docs/data.md`` for the fields)."""

    name: str
    title: str
    description: str
    citation: Citation
    licence: str
    organism: str
    genome: str | None
    source: str
    notebooks: tuple[str, ...]
    kind: str = "files"
    files: tuple[DataFile, ...] = ()
    package: dict[str, str] | None = None
    simulator: str | None = None
    path: Path | None = field(default=None, compare=False)

    def file(self, name: str) -> DataFile:
        """Return the file entry called ``name`` (its name or its extracted member's name)."""
        for f in self.files:
            if f.name == name or (f.extract and f.extract[-1] == name):
                return f
        raise AttuneInputError(
            f"dataset {self.name!r} has no file {name!r}; files: {[f.name for f in self.files]}"
        )

    @property
    def required_files(self) -> tuple[DataFile, ...]:
        return tuple(f for f in self.files if not f.optional)


# --------------------------------------------------------------------------------------------
# locating manifests


def manifest_dir() -> Path:
    """The folder holding the dataset manifests.

    ``$ATTUNE_MANIFEST_DIR`` when set, else ``data_manifests/`` at the repository root (next to the
    ``attune_lib`` package).
    """
    env = os.environ.get("ATTUNE_MANIFEST_DIR")
    if env:
        path = Path(env).expanduser()
        if not path.is_dir():
            raise AttuneInputError(f"ATTUNE_MANIFEST_DIR={env!r} is not a folder")
        return path
    here = Path(__file__).resolve()
    for candidate in (
        here.parents[2] / "data_manifests",
        here.parents[1] / "data_manifests",
    ):
        if candidate.is_dir():
            return candidate
    raise AttuneInputError(
        "data_manifests/ folder not found next to the attune_lib package; "
        "set ATTUNE_MANIFEST_DIR to the folder holding the dataset YAML files"
    )


def _display(path: Path) -> str:
    """``data_manifests/x.yaml`` style name for messages (falls back to the full path)."""
    path = Path(path)
    try:
        repo = Path(__file__).resolve().parents[2]
        return str(path.resolve().relative_to(repo))
    except ValueError:
        return str(path)


# --------------------------------------------------------------------------------------------
# validation


def _fail(where: str, fieldname: str, msg: str):
    raise AttuneInputError(f"{where}: {fieldname}: {msg}")


def _req_str(where, data, key, prefix="", *, nullable=False):
    fieldname = f"{prefix}{key}"
    if key not in data:
        _fail(where, fieldname, "required field is missing")
    value = data[key]
    if value is None and nullable:
        return None
    if not isinstance(value, str) or not value.strip():
        _fail(where, fieldname, f"expected a non-empty string, got {value!r}")
    return value.strip()


def _opt_str(where, data, key, prefix=""):
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        _fail(where, f"{prefix}{key}", f"expected a non-empty string, got {value!r}")
    return value.strip()


def _check_url(where, fieldname, url):
    if url.startswith("doi:"):
        rest = url[4:]
        # pooch DOI URL: doi:<DOI>/<file name>
        if not _DOI_RE.match(rest) or "/" not in rest.split("/", 1)[1]:
            _fail(
                where,
                fieldname,
                f"invalid DOI URL {url!r}; expected 'doi:10.<registrant>/<suffix>/<file name>'",
            )
        return
    parsed = urlparse(url)
    if parsed.scheme not in _URL_SCHEMES or not parsed.netloc or " " in url:
        _fail(
            where,
            fieldname,
            f"invalid URL {url!r}; expected an http(s)/ftp URL or 'doi:<DOI>/<file name>'",
        )


def _check_relpath(where, fieldname, value):
    p = PurePosixPath(value)
    if p.is_absolute() or ".." in p.parts or "\\" in value or value.endswith("/"):
        _fail(
            where,
            fieldname,
            f"expected a relative path inside the cache folder, got {value!r}",
        )


def _validate_file(where: str, i: int, entry: Any, dataset: str) -> DataFile:
    prefix = f"files[{i}]."
    if not isinstance(entry, dict):
        _fail(where, f"files[{i}]", f"expected a mapping, got {type(entry).__name__}")
    unknown = sorted(set(entry) - set(_FILE_REQUIRED) - set(_FILE_OPTIONAL))
    if unknown:
        _fail(
            where,
            f"{prefix}{unknown[0]}",
            f"unknown field; allowed: {sorted(_FILE_REQUIRED + _FILE_OPTIONAL)}",
        )
    name = _req_str(where, entry, "name", prefix)
    _check_relpath(where, f"{prefix}name", name)

    if "url" not in entry:
        _fail(
            where,
            f"{prefix}url",
            "required field is missing (use null for derived files)",
        )
    url = entry["url"]
    derived_from = _opt_str(where, entry, "derived_from", prefix)
    if url is None:
        if not derived_from:
            _fail(
                where,
                f"{prefix}url",
                "null is only allowed together with 'derived_from' explaining how the file is made",
            )
    elif not isinstance(url, str):
        _fail(where, f"{prefix}url", f"expected a string, got {url!r}")
    else:
        url = url.strip()
        _check_url(where, f"{prefix}url", url)

    if "checksum" not in entry:
        _fail(
            where,
            f"{prefix}checksum",
            f"required field is missing ({CHECKSUM_HELP}, or null)",
        )
    checksum = entry["checksum"]
    checksum_note = _opt_str(where, entry, "checksum_note", prefix)
    if checksum is None:
        if not checksum_note:
            _fail(
                where,
                f"{prefix}checksum",
                "null is only allowed together with 'checksum_note' saying why it is unknown",
            )
    elif not isinstance(checksum, str) or not _CHECKSUM_RE.match(checksum.strip()):
        _fail(where, f"{prefix}checksum", f"{CHECKSUM_HELP}, got {checksum!r}")
    else:
        checksum = checksum.strip()

    fmt = _req_str(where, entry, "format", prefix)
    size = entry.get("size")
    if size is not None and (
        isinstance(size, bool) or not isinstance(size, int) or size <= 0
    ):
        _fail(
            where, f"{prefix}size", f"expected a positive integer (bytes), got {size!r}"
        )
    cache_path = _opt_str(where, entry, "cache_path", prefix)
    if cache_path is not None:
        _check_relpath(where, f"{prefix}cache_path", cache_path)
    extract = entry.get("extract") or ()
    if extract and (
        not isinstance(extract, list)
        or not all(
            isinstance(x, str) and x and "/" not in x and x not in (".", "..")
            for x in extract
        )
    ):
        _fail(
            where,
            f"{prefix}extract",
            f"expected a list of archive member names (outer to inner), got {extract!r}",
        )
    optional = entry.get("optional", False)
    if not isinstance(optional, bool):
        _fail(where, f"{prefix}optional", f"expected true or false, got {optional!r}")
    return DataFile(
        name=name,
        url=url,
        checksum=checksum,
        format=fmt,
        size=size,
        cache_path=cache_path,
        checksum_note=checksum_note,
        derived_from=derived_from,
        extract=tuple(extract),
        optional=optional,
        description=_opt_str(where, entry, "description", prefix),
        dataset=dataset,
    )


def validate_manifest(
    data: Any, *, where: str = "<manifest>", path: Path | None = None
) -> Manifest:
    """Validate a parsed manifest mapping and return a :class:`Manifest`.

    Parameters
    ----------
    data
        The mapping parsed from YAML.
    where
        Name of the manifest file used in error messages.
    path
        The manifest file; when given, ``name`` must equal the file's stem.

    Raises
    ------
    AttuneInputError
        Naming ``where`` and the offending field.
    """
    if not isinstance(data, dict):
        raise AttuneInputError(
            f"{where}: expected a YAML mapping at top level, got {type(data).__name__}"
        )
    unknown = sorted(set(data) - set(_TOP_REQUIRED) - set(_TOP_OPTIONAL))
    if unknown:
        _fail(
            where,
            unknown[0],
            f"unknown field; allowed: {sorted(_TOP_REQUIRED + _TOP_OPTIONAL)}",
        )

    name = _req_str(where, data, "name")
    if not _NAME_RE.match(name):
        _fail(
            where, "name", f"expected lower-case letters, digits and '_', got {name!r}"
        )
    if path is not None and Path(path).stem != name:
        _fail(
            where, "name", f"{name!r} must equal the file name stem {Path(path).stem!r}"
        )
    title = _req_str(where, data, "title")
    description = _req_str(where, data, "description")

    if "citation" not in data:
        _fail(where, "citation", "required field is missing")
    cit = data["citation"]
    if not isinstance(cit, dict):
        _fail(where, "citation", "expected a mapping with 'text' and 'doi'")
    ctext = _req_str(where, cit, "text", "citation.")
    if "doi" not in cit:
        _fail(
            where,
            "citation.doi",
            "required field is missing (use null when there is no DOI)",
        )
    cdoi = cit["doi"]
    if cdoi is not None:
        if not isinstance(cdoi, str) or not _DOI_RE.match(cdoi.strip()):
            _fail(
                where,
                "citation.doi",
                f"expected a DOI like '10.1234/abc' or null, got {cdoi!r}",
            )
        cdoi = cdoi.strip()
    extra = sorted(set(cit) - {"text", "doi"})
    if extra:
        _fail(where, f"citation.{extra[0]}", "unknown field; allowed: ['doi', 'text']")

    licence = _req_str(where, data, "licence")
    organism = _req_str(where, data, "organism")
    genome = _req_str(where, data, "genome", nullable=True)
    source = _req_str(where, data, "source")

    if "notebooks" not in data:
        _fail(where, "notebooks", "required field is missing (use [] when none)")
    notebooks = data["notebooks"] or []
    if not isinstance(notebooks, list) or not all(
        isinstance(n, str) and n for n in notebooks
    ):
        _fail(
            where,
            "notebooks",
            f"expected a list of notebook file names, got {notebooks!r}",
        )

    kind = data.get("kind", "files")
    if kind not in KINDS:
        _fail(where, "kind", f"expected one of {list(KINDS)}, got {kind!r}")

    if kind == "simulator":
        if not source.startswith("attune_lib."):
            _fail(
                where,
                "source",
                f"a simulator's source is its function path, got {source!r}",
            )
    elif not (
        source.startswith("doi:") or urlparse(source).scheme in ("http", "https", "ftp")
    ):
        _fail(
            where, "source", f"expected an http(s) URL or 'doi:<DOI>', got {source!r}"
        )

    raw_files = data.get("files")
    files: list[DataFile] = []
    package = None
    simulator = None
    if kind == "files":
        if not isinstance(raw_files, list) or not raw_files:
            _fail(
                where,
                "files",
                "a dataset of kind 'files' needs a non-empty list of files",
            )
        files = [_validate_file(where, i, e, name) for i, e in enumerate(raw_files)]
        seen_names: dict[str, int] = {}
        seen_paths: dict[str, int] = {}
        for i, f in enumerate(files):
            if f.name in seen_names:
                _fail(
                    where,
                    f"files[{i}].name",
                    f"duplicate of files[{seen_names[f.name]}].name {f.name!r}",
                )
            seen_names[f.name] = i
            if f.relpath in seen_paths:
                _fail(
                    where,
                    f"files[{i}].cache_path",
                    f"{f.relpath!r} is also used by files[{seen_paths[f.relpath]}]",
                )
            seen_paths[f.relpath] = i
        for key in ("package", "simulator"):
            if data.get(key) is not None:
                _fail(
                    where,
                    key,
                    f"only allowed for kind {key!r}, this manifest has kind 'files'",
                )
    else:
        if raw_files:
            _fail(
                where,
                "files",
                f"a dataset of kind {kind!r} has no files to download; remove 'files'",
            )
        if kind == "package":
            package = data.get("package")
            if not isinstance(package, dict):
                _fail(
                    where,
                    "package",
                    "kind 'package' needs a mapping with name, version[, resource]",
                )
            pname = _req_str(where, package, "name", "package.")
            pversion = _req_str(where, package, "version", "package.")
            resource = _opt_str(where, package, "resource", "package.")
            extra = sorted(set(package) - {"name", "version", "resource"})
            if extra:
                _fail(
                    where,
                    f"package.{extra[0]}",
                    "unknown field; allowed: name, version, resource",
                )
            package = {"name": pname, "version": pversion}
            if resource:
                _check_relpath(where, "package.resource", resource)
                package["resource"] = resource
            if data.get("simulator") is not None:
                _fail(where, "simulator", "only allowed for kind 'simulator'")
        else:
            simulator = data.get("simulator")
            if not isinstance(simulator, str) or not _DOTTED_RE.match(simulator):
                _fail(
                    where,
                    "simulator",
                    f"expected a dotted function path such as "
                    f"'attune_lib.datasets.simulate_multiome', got {simulator!r}",
                )
            if data.get("package") is not None:
                _fail(where, "package", "only allowed for kind 'package'")

    return Manifest(
        name=name,
        title=title,
        description=description,
        citation=Citation(text=ctext, doi=cdoi),
        licence=licence,
        organism=organism,
        genome=genome,
        source=source,
        notebooks=tuple(notebooks),
        kind=kind,
        files=tuple(files),
        package=package,
        simulator=simulator,
        path=Path(path) if path is not None else None,
    )


def load_manifest(path: str | os.PathLike) -> Manifest:
    """Read and validate one manifest YAML file.

    Parameters
    ----------
    path
        Path to ``<name>.yaml``.

    Returns
    -------
    Manifest

    Raises
    ------
    AttuneInputError
        When the file is missing, is not valid YAML, or violates the schema; the message names the
        file and the field.
    """
    import yaml

    path = Path(path)
    where = _display(path)
    if not path.is_file():
        raise AttuneInputError(f"{where}: manifest file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise AttuneInputError(f"{where}: not valid YAML: {exc}") from None
    return validate_manifest(data, where=where, path=path)


def manifest_paths() -> list[Path]:
    """Paths of every dataset manifest (``<manifest_dir>/*.yaml``), sorted by name."""
    return sorted(manifest_dir().glob("*.yaml"))


def get_manifest(name: str) -> Manifest:
    """Return the validated manifest of dataset ``name``.

    Parameters
    ----------
    name
        Dataset name, the stem of ``data_manifests/<name>.yaml`` (see :func:`list_datasets`).
    """
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise AttuneInputError(f"name: invalid dataset name {name!r}")
    path = manifest_dir() / f"{name}.yaml"
    if not path.is_file():
        known = [p.stem for p in manifest_paths()]
        raise AttuneInputError(
            f"name: unknown dataset {name!r}; known datasets: {known}"
        )
    return load_manifest(path)
