"""Tensors in PyTorch's `torch.save` format (a zip of a pickle and raw storages), read and written without torch
and without ever unpickling code: PARD-2 ships its draft's `target_proj` this way (warp_model.bin).

Reading accepts only what a saved dict of tensors contains (dicts, `torch._utils._rebuild_tensor_v2`, storage
classes); any other class in the pickle is refused. Writing produces the file `torch.load` reads (also with
`weights_only=True`).
"""

from __future__ import annotations

import io
import pickle
import zipfile

import ml_dtypes
import numpy as np

from pard_jax.errors import UserError

_STORAGES = {"FloatStorage": np.float32, "HalfStorage": np.float16, "DoubleStorage": np.float64,
             "BFloat16Storage": "bfloat16", "LongStorage": np.int64, "IntStorage": np.int32}
_NAMES = {np.dtype(ml_dtypes.bfloat16 if v == "bfloat16" else v): k for k, v in _STORAGES.items()}


def _np_dtype(storage: str) -> np.dtype:
    dtype = _STORAGES[storage]
    return np.dtype(ml_dtypes.bfloat16 if dtype == "bfloat16" else dtype)


class _Storage:
    def __init__(self, kind: str, key: str):
        self.kind, self.key = kind, key


class _Reader(pickle.Unpickler):
    def __init__(self, data: bytes, storages: dict[str, bytes], path: str):
        super().__init__(io.BytesIO(data))
        self._storages, self._path = storages, path

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return dict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return self._rebuild
        if module == "torch" and name in _STORAGES:
            return name
        raise UserError(f"{self._path} holds {module}.{name}, which a file of tensors does not; refusing to load it")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid[0] == "storage" and pid[1] in _STORAGES):
            raise UserError(f"{self._path} has a storage this reader does not know ({pid!r:.80})")
        return _Storage(pid[1], str(pid[2]))

    def _rebuild(self, storage: _Storage, offset, size, stride, *_):
        dtype = _np_dtype(storage.kind)
        flat = np.frombuffer(self._storages[storage.key], dtype=dtype)
        if not size:
            return flat[offset].copy()
        view = np.lib.stride_tricks.as_strided(flat[offset:], shape=tuple(size),
                                               strides=tuple(s * dtype.itemsize for s in stride))
        return np.array(view)


def read_tensors(path: str) -> dict[str, np.ndarray]:
    """{name: array} of a `torch.save`d dict of tensors."""
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
            pkl = next((n for n in names if n.endswith("/data.pkl") or n == "data.pkl"), None)
            if pkl is None:
                raise UserError(f"{path} is not a torch.save file (no data.pkl inside); re-save it with torch.save")
            prefix = pkl[:-len("data.pkl")]
            storages = {n[len(prefix) + 5:]: z.read(n) for n in names if n.startswith(prefix + "data/")}
            out = _Reader(z.read(pkl), storages, path).load()
    except zipfile.BadZipFile:
        raise UserError(f"{path} is not a torch.save zip file (a legacy format?); re-save it with torch.save") \
            from None
    if not isinstance(out, dict) or not all(isinstance(v, np.ndarray) for v in out.values()):
        raise UserError(f"{path} is not a dict of tensors")
    return out


class _Global:
    """A reference to module.name, written as pickle's GLOBAL (the object itself need not exist here)."""

    def __init__(self, module: str, name: str):
        self.module, self.name = module, name

    def __call__(self, *args):  # pickle wants a callable in a reduce tuple
        raise TypeError("a name only")


class _Tensor:
    """An array to write, and the key of its storage in the archive."""

    def __init__(self, array: np.ndarray, key: str):
        self.array, self.key = array, key


class _StorageRef:
    def __init__(self, kind: str, key: str, numel: int):
        self.kind, self.key, self.numel = kind, key, numel


class _EmptyOrderedDict:
    pass


class _Writer(pickle._Pickler):
    """The pure-Python pickler, writing tensors as torch.save does: `_rebuild_tensor_v2(storage, offset, size,
    stride, requires_grad, hooks)` with the storage a persistent id ('storage', torch.<Kind>Storage, key, 'cpu',
    numel)."""

    def save(self, obj, save_persistent_id=True):
        if isinstance(obj, _Global):
            self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
            return
        super().save(obj, save_persistent_id)

    def persistent_id(self, obj):
        if isinstance(obj, _StorageRef):
            return ("storage", _Global("torch", obj.kind), obj.key, "cpu", obj.numel)
        return None

    def reducer_override(self, obj):
        if isinstance(obj, _Tensor):
            a = obj.array
            strides = tuple(s // a.itemsize for s in a.strides)
            return (_Global("torch._utils", "_rebuild_tensor_v2"),
                    (_StorageRef(_NAMES[a.dtype], obj.key, a.size), 0, tuple(a.shape), strides, False,
                     _EmptyOrderedDict()))
        if isinstance(obj, _EmptyOrderedDict):
            return (_Global("collections", "OrderedDict"), ())
        return NotImplemented


def write_tensors(path: str, tensors: dict[str, np.ndarray], archive: str = "archive") -> None:
    """Write {name: array} as `torch.save` would (float32 / bfloat16 / float16 / float64 / int arrays)."""
    arrays = {name: np.ascontiguousarray(a) for name, a in tensors.items()}
    for name, a in arrays.items():
        if a.dtype not in _NAMES:
            raise UserError(f"cannot write {name} of dtype {a.dtype} as a torch tensor; cast it to float32")
        if a.dtype.byteorder == ">":
            raise UserError(f"cannot write {name}: big-endian arrays are not supported; convert it first")
    buf = io.BytesIO()
    _Writer(buf, protocol=2).dump({name: _Tensor(a, str(i)) for i, (name, a) in enumerate(arrays.items())})
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr(f"{archive}/data.pkl", buf.getvalue())
        z.writestr(f"{archive}/byteorder", "little")
        for i, a in enumerate(arrays.values()):
            z.writestr(f"{archive}/data/{i}", a.tobytes())
        z.writestr(f"{archive}/version", "3\n")
