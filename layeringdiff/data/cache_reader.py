"""Reading a sharded cache (layout: :mod:`layeringdiff.data.cache_shards`) by sample key or in order.

:class:`CacheReader` reads a cache from a folder, an fsspec URL (``file://``, ``s3://`` ...) or a
``pipe:`` command (webdataset's convention: ``pipe:cat /data/latents`` reads
``cat /data/latents/<file>``; a ``{name}`` in the command is replaced by the file name instead).
Paths and fsspec URLs are read by byte range (one sample at a time); ``pipe:`` reads whole shards
and keeps the latest one in memory, so it suits in-order reading (:meth:`CacheReader.samples`).
:func:`open_cache` also opens the older per-sample folders (``{dir}/{key}.safetensors``).
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

import torch

from layeringdiff.data.cache_shards import (
    FORMAT,
    MANIFEST,
    CacheFormatError,
    MissingSidecarError,
    decode_entry,
)

__all__ = ["CacheReader", "MissingSidecarError", "SidecarFolder", "join_url", "open_cache", "read_bytes"]


def join_url(root: str, name: str) -> str:
    """``root`` + ``/name`` for paths and URLs; ``pipe:`` commands get ``{name}`` replaced or the
    name appended as a path."""
    if root.startswith("pipe:") and "{name}" in root:
        return root.replace("{name}", name)
    return root.rstrip("/") + "/" + name


def _is_url(root: str) -> bool:
    return root.startswith("pipe:") or "://" in root


def read_bytes(url: str) -> bytes:
    """The whole of a file given as a path, an fsspec URL or a ``pipe:`` command."""
    if url.startswith("pipe:"):
        import subprocess

        done = subprocess.run(url[5:], shell=True, capture_output=True)
        if done.returncode != 0:
            err = done.stderr.decode(errors="replace").strip().splitlines()
            raise MissingSidecarError(f"{url}: command failed ({err[-1] if err else done.returncode})")
        return done.stdout
    if "://" in url:
        import fsspec

        try:
            with fsspec.open(url, "rb") as f:
                return f.read()
        except FileNotFoundError:
            raise MissingSidecarError(f"{url}: no such file") from None
    try:
        return Path(url).read_bytes()
    except FileNotFoundError:
        raise MissingSidecarError(f"{url}: no such file") from None


class CacheReader:
    """Random access (by sample key) and in-order reading of a sharded cache.

    Picklable before and after use (file handles are opened lazily, per process), so DataLoader
    workers may share one instance.

    Args:
        root: the cache folder, an fsspec URL of it, or a ``pipe:`` command (module docstring).
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = str(root)
        self._manifest: dict | None = None
        self._handles: dict[int, object] = {}
        self._pid = os.getpid()
        self._whole: tuple[int, dict[str, bytes]] | None = None  # pipe: the last shard read

    def __getstate__(self) -> dict:
        return {"root": self.root, "_manifest": self._manifest}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["root"])
        self._manifest = state["_manifest"]

    @property
    def manifest(self) -> dict:
        if self._manifest is None:
            url = join_url(self.root, MANIFEST)
            try:
                manifest = json.loads(read_bytes(url))
            except MissingSidecarError as e:
                reason = str(e).removeprefix(f"{url}: ")
                raise MissingSidecarError(
                    f"{url}: no cache manifest ({reason}; write the cache with data/encode_latents.py or "
                    "data/cache_fbdd_outputs.py; after sharded runs, their --merge)"
                ) from None
            if manifest.get("format") != FORMAT:
                raise CacheFormatError(f"{url}: format {manifest.get('format')!r}, expected {FORMAT!r}")
            self._manifest = manifest
        return self._manifest

    def __len__(self) -> int:
        return len(self.manifest["samples"])

    def __contains__(self, key: str) -> bool:
        return key in self.manifest["samples"]

    def keys(self) -> list[str]:
        return list(self.manifest["samples"])

    def _missing(self, key: str) -> MissingSidecarError:
        todo = self.manifest.get("missing") or []
        why = (
            f"cache incomplete: {len(todo)} shard(s) missing, e.g. {todo[0]}" if todo else "not in the cache"
        )
        return MissingSidecarError(f"{self.root}: no entry for sample {key!r} ({why})")

    def raw(self, key: str) -> bytes:
        """The stored safetensors bytes of ``key``."""
        try:
            shard, offset, size = self.manifest["samples"][key]
        except KeyError:
            raise self._missing(key) from None
        if self.root.startswith("pipe:"):
            return self._whole_shard(shard)[key]
        if os.getpid() != self._pid:  # forked: never share file offsets with the parent
            self._handles, self._pid = {}, os.getpid()
        handle = self._handles.get(shard)
        if handle is None:
            handle = self._handles[shard] = self._open(
                join_url(self.root, self.manifest["shards"][shard]["name"])
            )
        if isinstance(handle, int):
            data = os.pread(handle, size, offset)
        else:
            handle.seek(offset)
            data = handle.read(size)
        if len(data) != size:
            raise CacheFormatError(
                f"{self.root}: shard {self.manifest['shards'][shard]['name']} is shorter than its record"
            )
        return data

    def _open(self, url: str):
        if "://" in url:
            import fsspec

            return fsspec.open(url, "rb").open()
        try:
            return os.open(url, os.O_RDONLY)
        except FileNotFoundError:
            raise MissingSidecarError(f"{url}: shard listed in the manifest is missing") from None

    def _whole_shard(self, shard: int) -> dict[str, bytes]:
        if self._whole is None or self._whole[0] != shard:
            self._whole = (shard, dict(self._members(shard)))
        return self._whole[1]

    def _members(self, shard: int) -> Iterator[tuple[str, bytes]]:
        """``(key, bytes)`` of one shard in order, read as one stream."""
        name = self.manifest["shards"][shard]["name"]
        data = read_bytes(join_url(self.root, name))
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            for member in tar:
                blob = tar.extractfile(member).read()
                meta = _metadata(blob)
                yield meta.get("key", member.name), blob

    def get(self, key: str) -> dict[str, torch.Tensor]:
        """The tensors of ``key`` (uint8 -> float in [0, 1], floats -> float32).

        Raises:
            MissingSidecarError: no entry for ``key`` (one line; says when shards are missing).
        """
        return decode_entry(self.raw(key))

    def samples(self) -> Iterator[tuple[str, dict[str, torch.Tensor]]]:
        """Every ``(key, tensors)`` of the cache, shard by shard in stored order (sequential reads)."""
        for shard in range(len(self.manifest["shards"])):
            for key, blob in self._members(shard):
                yield key, decode_entry(blob)

    def close(self) -> None:
        for handle in self._handles.values():
            os.close(handle) if isinstance(handle, int) else handle.close()
        self._handles = {}


def _metadata(blob: bytes) -> dict:
    """The ``__metadata__`` of safetensors bytes (8-byte header length, then the JSON header)."""
    n = int.from_bytes(blob[:8], "little")
    return json.loads(blob[8 : 8 + n]).get("__metadata__") or {}


class SidecarFolder:
    """The older per-sample layout, ``{root}/{key}.safetensors`` (``layeringdiff.data.sidecar``)."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = str(root)

    def __contains__(self, key: str) -> bool:
        from layeringdiff.data.sidecar import has_sidecar

        return has_sidecar(self.root, key)

    def get(self, key: str) -> dict[str, torch.Tensor]:
        from layeringdiff.data.sidecar import load_sidecar, sidecar_path

        if key not in self:
            raise MissingSidecarError(
                f"{sidecar_path(self.root, key)}: no sidecar for sample {key!r} (cache incomplete?)"
            )
        return load_sidecar(self.root, key)


def open_cache(root: str | os.PathLike) -> CacheReader | SidecarFolder:
    """The reader of a cache: sharded (a path or URL), or an older per-sample folder."""
    root = str(root)
    legacy = (
        not _is_url(root) and not (Path(root) / MANIFEST).is_file() and any(Path(root).glob("*.safetensors"))
    )
    return SidecarFolder(root) if legacy else CacheReader(root)
