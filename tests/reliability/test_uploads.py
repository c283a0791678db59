import pytest

from rag import failpoints
from rag.errors import IngestError
from rag.uploads import display_name, save_upload


@pytest.mark.parametrize(
    "hostile, shown",
    [
        ("../../etc/passwd", "passwd"),
        ("/absolute/path/report.pdf", "report.pdf"),
        ("C:\\Users\\me\\notes.txt", "notes.txt"),
        ("", "unnamed"),
        ("..", "unnamed"),
        ("evil\x00.pdf", "evil.pdf"),
        ("invoice\u202egpj.pdf", "invoicegpj.pdf"),  # right-to-left override removed
        ("a" * 300 + ".pdf", "a" * 115 + "….pdf"),
    ],
)
def test_display_names_are_harmless(hostile, shown):
    assert display_name(hostile) == shown


@pytest.mark.parametrize(
    "hostile",
    [
        "../../etc/passwd.txt",
        "/etc/cron.d/x.txt",
        "..\\..\\boot.ini.txt",
        "a\x00b.txt",
        "\u202etxt.exe.txt",
        "b" * 300 + ".txt",
    ],
)
def test_uploads_are_stored_under_generated_names_inside_the_dir(tmp_path, hostile):
    uploads = tmp_path / "uploads"
    path = save_upload(b"hello", hostile, uploads, 1000)
    assert path.parent == uploads and path.read_bytes() == b"hello"
    assert len(path.stem) == 32 and path.suffix == ".txt"
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == [path.name]


def test_size_cap_and_type_are_checked(tmp_path):
    uploads = tmp_path / "uploads"
    with pytest.raises(IngestError, match="is 2.0 MB; the limit is 1 MB"):
        save_upload(b"x" * (2 * 2**20), "big.pdf", uploads, 2**20)
    with pytest.raises(IngestError, match="unsupported type .exe"):
        save_upload(b"MZ", "tool.exe", uploads, 2**20)
    assert not uploads.exists() or list(uploads.iterdir()) == []


def test_full_disk_is_a_clean_error(tmp_path, monkeypatch):
    monkeypatch.setenv("AI_CHAT_FAILPOINT", "upload.write=enospc")
    failpoints.reset()
    with pytest.raises(IngestError, match="disk holding .* is full"):
        save_upload(b"data", "notes.txt", tmp_path / "uploads", 2**20)
    assert list((tmp_path / "uploads").iterdir()) == []  # no half-written file left behind
