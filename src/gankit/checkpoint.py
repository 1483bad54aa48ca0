"""Checkpoints: safetensors for tensors, JSON for everything else, written atomically with a manifest.

A checkpoint is two files, ``step-00001000.safetensors`` and ``step-00001000.json``. The manifest
``checkpoints/manifest.json`` is rewritten (atomically) only after both are complete and lists each
checkpoint with its SHA-256, so a crash at any moment leaves the previous checkpoints usable. Nothing
here ever unpickles: weights are parsed by safetensors (a header of JSON and raw numbers), everything
else by ``json``, and file names read from a manifest are refused if they would leave its folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import Tensor, nn

from gankit.errors import UserError

MANIFEST = "manifest.json"


# ---------------------------------------------------------------------------------------------
# atomic files


@contextmanager
def atomic_open(path: Path, mode: str = "wb", **kw: Any) -> Iterator[IO[Any]]:
    """A file to write ``path`` through: a temporary file in the same folder, fsynced and renamed over
    ``path`` when the block ends, removed if it raises, so an interrupted write leaves an existing file as it
    was. A symlink keeps pointing where it did (its target is replaced), and the file gets the permissions it
    had, or those of a new file (umask), not mkstemp's owner-only 0600. An OS error without a file name of
    its own (a full disk) names ``path``, not the temporary file. ``mode``: "wb", or "w" (UTF-8 unless
    ``encoding`` says otherwise; ``kw`` goes to ``open``, e.g. ``newline=""``)."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes a whole file: mode 'w' or 'wb', not {mode!r}")
    if mode == "w":
        kw.setdefault("encoding", "utf-8")
    path = Path(path)
    if path.is_symlink():
        path = path.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    file_mode = path.stat().st_mode & 0o7777 if path.is_file() else 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        try:
            f = os.fdopen(fd, mode, **kw)
        except BaseException:
            os.close(fd)
            raise
        with f:
            os.fchmod(f.fileno(), file_mode)
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno is not None and exc.filename in (None, tmp):
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """``data`` written to ``path`` through :func:`atomic_open`."""
    with atomic_open(path) as f:
        f.write(data)


def _umask() -> int:
    mask = os.umask(0o022)  # (reading the umask means setting it; put back at once)
    os.umask(mask)
    return mask


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=1, sort_keys=False) + "\n").encode())


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------------------------
# safe reading


def read_safetensors(data: bytes, name: str) -> dict[str, Tensor]:
    """Parse safetensors bytes after checking the header, so a pickle or a truncated file gives a
    clear error instead of a confusing one (safetensors itself never executes code)."""
    if len(data) < 8:
        raise UserError(f"{name}: not a safetensors file (too short)")
    (header_len,) = struct.unpack("<Q", data[:8])
    if header_len <= 0 or 8 + header_len > len(data) or data[8:9] != b"{":
        raise UserError(f"{name}: not a safetensors file (bad header; pickled or truncated files are refused)")
    try:
        return st_load(data)
    except Exception as exc:  # noqa: BLE001 - untrusted bytes: any parser failure means a corrupt file
        raise UserError(f"{name}: corrupt safetensors file ({str(exc).splitlines()[0]})") from None


def load_safetensors_file(path: Path) -> dict[str, Tensor]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"file not found: {path}")
    return read_safetensors(path.read_bytes(), str(path))


def inside(folder: Path, name: Any, source: str | Path | None = None) -> Path:
    """``folder / name`` for a plain file name read from a manifest or a config; anything that could
    leave ``folder`` (a path separator, ``..``, a hidden or absolute name, a symlink pointing out) is a
    :class:`UserError` naming ``source``."""
    folder = Path(folder)
    bad = (not isinstance(name, str) or not name or "/" in name or "\\" in name or "\x00" in name
           or name.startswith(".") or ":" in name)
    if not bad:
        path = folder / name
        if not path.is_symlink() or path.resolve().parent == folder.resolve():
            return path
    raise UserError(f"{source or folder}: refusing file name {name!r} (it would leave {folder})")


_ENTRY_KEYS = {"weights": str, "meta": str, "sha256": str, "meta_sha256": str}


def read_manifest(ckpt_dir: Path) -> list[dict[str, Any]]:
    """The manifest's checkpoint entries, oldest first ([] when there is no manifest)."""
    path = Path(ckpt_dir) / MANIFEST
    if not path.is_file():
        return []
    try:
        entries = json.loads(path.read_bytes())["checkpoints"]
    except (ValueError, KeyError, TypeError, OSError):
        raise UserError(f"{path}: corrupt manifest (not the JSON gankit writes)") from None
    if not isinstance(entries, list):
        raise UserError(f"{path}: corrupt manifest ('checkpoints' is not a list)")
    for e in entries:
        if (not isinstance(e, dict) or type(e.get("step")) is not int
                or any(not isinstance(e.get(k), t) for k, t in _ENTRY_KEYS.items())):
            raise UserError(f"{path}: corrupt manifest (bad entry {str(e)[:80]})")
        for key in ("weights", "meta"):
            inside(ckpt_dir, e[key], path)
    return entries


class Meta(dict):
    """A checkpoint's JSON: a missing key is a :class:`UserError` naming the file, not a KeyError."""

    def __init__(self, data: dict[str, Any], source: str):
        super().__init__(data)
        self.source = source

    def __missing__(self, key: str) -> Any:
        raise UserError(f"{self.source}: no '{key}' entry (not a gankit checkpoint, or a damaged one)")


def verify(ckpt_dir: Path, entry: dict[str, Any]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Load one manifest entry, checking both files' SHA-256 against the manifest."""
    weights_path = inside(ckpt_dir, entry.get("weights"), ckpt_dir / MANIFEST)
    meta_path = inside(ckpt_dir, entry.get("meta"), ckpt_dir / MANIFEST)
    if not weights_path.is_file() or not meta_path.is_file():
        raise UserError(f"{ckpt_dir}: checkpoint of step {entry.get('step')} is missing a file")
    weights, meta_bytes = weights_path.read_bytes(), meta_path.read_bytes()
    if sha256(weights) != entry.get("sha256") or sha256(meta_bytes) != entry.get("meta_sha256"):
        raise UserError(f"{weights_path}: SHA-256 does not match the manifest (corrupt or altered file)")
    try:
        meta = json.loads(meta_bytes, object_hook=lambda d: Meta(d, str(meta_path)))
    except (ValueError, RecursionError):
        raise UserError(f"{meta_path}: not valid JSON") from None
    if not isinstance(meta, dict):
        raise UserError(f"{meta_path}: expected a JSON object")
    return read_safetensors(weights, str(weights_path)), meta


# ---------------------------------------------------------------------------------------------
# writing and pruning


def save_checkpoint(ckpt_dir: Path, step: int, tensors: dict[str, Tensor], meta: dict[str, Any],
                    keep_last: int = 3, keep_steps: set[int] | None = None) -> None:
    """Write one checkpoint and add it to the manifest; drop the oldest beyond ``keep_last``
    (steps in ``keep_steps``, e.g. the best one, are kept)."""
    ckpt_dir = Path(ckpt_dir)
    stem = f"step-{step:08d}"
    weights = st_save({k: v.detach().contiguous().cpu() for k, v in tensors.items()})
    meta_bytes = (json.dumps(meta, indent=1) + "\n").encode()
    atomic_write_bytes(ckpt_dir / f"{stem}.safetensors", weights)
    atomic_write_bytes(ckpt_dir / f"{stem}.json", meta_bytes)
    entries = [e for e in read_manifest(ckpt_dir) if e.get("step") != step]
    entries.append({"step": step, "weights": f"{stem}.safetensors", "meta": f"{stem}.json",
                    "sha256": sha256(weights), "meta_sha256": sha256(meta_bytes)})
    entries.sort(key=lambda e: e["step"])
    keep = set(keep_steps or ())
    regular = [e for e in entries if e["step"] not in keep]
    dropped = regular[:-keep_last] if keep_last > 0 else []
    kept = [e for e in entries if e not in dropped]
    atomic_write_json(ckpt_dir / MANIFEST, {"checkpoints": kept})
    # Only after the manifest no longer names them are old files removed, together with what a crash
    # may have left: temporary files and checkpoints written but never entered in the manifest.
    named = {e[key] for e in kept for key in ("weights", "meta")}
    for path in ckpt_dir.iterdir():
        if (_STALE.fullmatch(path.name) and path.name not in named) or _TEMP.fullmatch(path.name):
            path.unlink(missing_ok=True)


_STALE = re.compile(r"step-\d{8}\.(safetensors|json)")
_TEMP = re.compile(r"\..+\.tmp")


def load_latest(ckpt_dir: Path, step: int | None = None) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """The newest checkpoint that verifies (or the one at ``step``). A corrupt newest one is skipped
    with a warning, so a crash during a write costs at most one checkpoint interval."""
    ckpt_dir = Path(ckpt_dir)
    entries = read_manifest(ckpt_dir)
    if step is not None:
        entries = [e for e in entries if e.get("step") == step]
    if not entries:
        raise UserError(f"{ckpt_dir}: no checkpoint found" + (f" at step {step}" if step is not None else ""))
    errors = []
    for entry in reversed(entries):
        try:
            loaded = verify(ckpt_dir, entry)
        except UserError as exc:
            errors.append(str(exc))
            continue
        for error in errors:  # warn only when falling back: a refusal stays one line
            warnings.warn(f"skipping a bad checkpoint: {error}", stacklevel=2)
        return loaded
    raise UserError(f"no valid checkpoint in {ckpt_dir}: {errors[0]}")


# ---------------------------------------------------------------------------------------------
# flattening module and optimizer state into one tensor dict + JSON


def module_tensors(prefix: str, module: nn.Module) -> dict[str, Tensor]:
    return {f"{prefix}.{k}": v for k, v in module.state_dict().items()}


def load_module(prefix: str, module: nn.Module, tensors: dict[str, Tensor], name: str = "checkpoint") -> None:
    """Load ``prefix.*`` tensors into ``module``, turning shape mismatches into a clear error."""
    cut = len(prefix) + 1
    state = {k[cut:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise UserError(f"{name}: '{prefix}' does not match the network of this config "
                        f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    for k, v in state.items():
        if own[k].shape != v.shape:
            raise UserError(f"{name}: '{prefix}.{k}' has shape {tuple(v.shape)}, the config's network "
                            f"expects {tuple(own[k].shape)}")
    module.load_state_dict(state)


def optimizer_tensors(prefix: str, opt: torch.optim.Optimizer) -> tuple[dict[str, Tensor], dict[str, Any]]:
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for idx, state in sd["state"].items():
        for key, value in state.items():
            if isinstance(value, Tensor):
                tensors[f"{prefix}.state.{idx}.{key}"] = value
            else:
                scalars[f"{idx}.{key}"] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def load_optimizer(prefix: str, opt: torch.optim.Optimizer, tensors: dict[str, Tensor], info: dict[str, Any]) -> None:
    state: dict[int, dict[str, Any]] = {}
    head = f"{prefix}.state."
    for k, v in tensors.items():
        if k.startswith(head):
            idx, key = k[len(head):].split(".", 1)
            state.setdefault(int(idx), {})[key] = v
    for k, v in info.get("scalars", {}).items():
        idx, key = k.split(".", 1)
        state.setdefault(int(idx), {})[key] = v
    opt.load_state_dict({"state": state, "param_groups": info["param_groups"]})


def check_run_folder(out: Path, resume: bool) -> None:
    """Refuse to resume a folder that holds no run, or to start a new run over an existing one."""
    if resume and not (out / "config.yaml").is_file():
        raise UserError(f"{out}: nothing to resume (no config.yaml); drop --resume to start a new run")
    if not resume and (out / "checkpoints" / MANIFEST).exists():
        raise UserError(f"{out} already holds a run; use --resume to continue it or choose another --out")
