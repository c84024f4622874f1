"""Opening image files: mapped, zero-copy, and clear errors for bad paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from sel4vmm.errors import Sel4VmmError
from sel4vmm.images.blob import ImageBlob


def test_open_maps_the_file(tmp_path: Path) -> None:
    path = tmp_path / "Image"
    path.write_bytes(b"abcdef")
    with ImageBlob.open(path) as blob:
        assert blob.size == 6
        assert bytes(blob.data[2:4]) == b"cd"
        assert blob.location.path == str(path)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.write_bytes(b""), "empty"),
        (lambda p: None, "does not exist"),
        (lambda p: p.mkdir(), "is a directory"),
    ],
)
def test_bad_paths(tmp_path: Path, make: object, message: str) -> None:
    path = tmp_path / "kernel"
    make(path)  # type: ignore[operator]
    with pytest.raises(Sel4VmmError, match=message) as info:
        ImageBlob.open(path, role="kernel")
    assert info.value.location is not None and info.value.location.path == str(path)
    assert info.value.fix


def test_close_while_a_slice_is_held(tmp_path: Path) -> None:
    path = tmp_path / "initrd"
    path.write_bytes(b"0123456789")
    blob = ImageBlob.open(path)
    held = blob.data[2:5]
    blob.close()
    assert bytes(held) == b"234"
