"""review36 F2: qiskit-serverless 0.18-0.35's files API forms on qshpc's one data folder.

qiskit-serverless 0.20 on takes the function (``files(function)``, ``file_upload(path,
function)``, ``file_download(name, function, target_name, download_location)``,
``file_delete(name, function)``), 0.18 ``provider=``; on 327c4ed (main before fix36)
each raised TypeError. The function names the same folder (one per user in qshpc).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from qshpc import LocalClient, QiskitFunction, QuantumServerless, UserError


@pytest.mark.parametrize("wrapped", [False, True])
def test_every_qiskit_serverless_form_of_the_files_api_works(tmp_path: Path, wrapped: bool) -> None:
    client = QuantumServerless(LocalClient()) if wrapped else LocalClient()
    function = QiskitFunction(title="f36", entrypoint="p.py", working_dir=str(tmp_path))
    src = tmp_path / "input.tar"
    src.write_bytes(b"abc")
    out = tmp_path / "out"
    out.mkdir()
    assert client.file_upload(str(src), function) == "input.tar"  # 0.20 on
    assert client.file_upload(str(src), provider="mine") == "input.tar"  # 0.18
    assert client.files(function) == ["input.tar"]
    assert client.files(function="f36") == client.files(provider="p") == client.files()
    # file_download(file, function, target_name, download_location): 0.20 on
    assert client.file_download("input.tar", function, "a.tar", str(out)) == "a.tar"
    got = client.file_download("input.tar", function, download_location=str(out))
    assert got.startswith("downloaded_") and (out / got).read_bytes() == b"abc"
    assert client.file_download("input.tar", function=function, target_name="b.tar",
                                download_location=str(out)) == "b.tar"  # fmt: skip
    # file_download(file, target_name, download_location, provider): 0.10 to 0.18
    assert client.file_download("input.tar", "c.tar", str(out)) == "c.tar"
    assert client.file_download("input.tar", "d.tar", str(out), "prov") == "d.tar"
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith("downloaded_")) == [
        "a.tar", "b.tar", "c.tar", "d.tar"
    ]  # fmt: skip
    assert client.file_delete("input.tar", function) == "Requested file was deleted."
    assert client.files(function) == []


def test_a_bad_function_or_a_bad_call_says_what_it_takes(tmp_path: Path) -> None:
    client = LocalClient()
    src = tmp_path / "x.txt"
    src.write_text("x")
    with pytest.raises(
        UserError, match=r"function must be a QiskitFunction .* or its title, got int"
    ):
        client.files(3)
    with pytest.raises(UserError, match="provider must be a QiskitFunction"):
        client.file_upload(str(src), provider=1.5)
    client.file_upload(str(src))
    function = QiskitFunction(title="f", entrypoint="p.py", working_dir=str(tmp_path))
    with pytest.raises(UserError, match="two values for 'target_name'"):
        client.file_download("x.txt", function, "a", target_name="b")
    with pytest.raises(UserError, match="unknown argument 'location'"):
        client.file_download("x.txt", location=str(tmp_path))
    with pytest.raises(UserError, match="at most 4 positional arguments"):
        client.file_download("x.txt", function, "a", str(tmp_path), "extra")
    with pytest.raises(UserError, match="function must be"):
        client.file_delete("x.txt", object())
    assert client.files() == ["x.txt"]
