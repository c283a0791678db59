import pytest

from rag.errors import ModelError
from rag.llm.gguf import read_meta

from .conftest import write_unknown_architecture


def test_reads_shape_without_loading(tiny_model):
    meta = read_meta(tiny_model)
    assert (meta.architecture, meta.n_layer, meta.n_embd, meta.n_head, meta.n_head_kv) == ("llama", 2, 64, 4, 2)
    assert (meta.key_length, meta.value_length, meta.context_length, meta.n_vocab) == (16, 16, 4096, 512)
    assert meta.quantization == "Q4_0"
    assert len(meta.layer_bytes) == 2 and meta.layer_bytes[0] == meta.layer_bytes[1] > 0
    assert meta.weight_bytes < meta.file_size and meta.chat_template.startswith("{% for m in messages")
    assert meta.kv_bytes(4096) == 4096 * 2 * 2 * (16 + 16) * 2


def _bad(tmp_path, data: bytes):
    path = tmp_path / "model.gguf"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    "data, words",
    [
        (b"", "empty"),
        (b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 123\n", "Git LFS pointer"),
        (b"<!DOCTYPE html><html><body>Sign in</body></html>", "HTML"),
        (b"just some notes that were renamed to .gguf\n", "not a GGUF file"),
        (bytes(range(256)) * 8, "not a GGUF file"),
    ],
)
def test_wrong_files_get_specific_errors(tmp_path, data, words):
    with pytest.raises(ModelError, match=words):
        read_meta(_bad(tmp_path, data))


def test_missing_file(tmp_path):
    with pytest.raises(ModelError, match="does not exist.*models/"):
        read_meta(tmp_path / "nope.gguf")


@pytest.mark.parametrize("fraction", [0.01, 0.5, 0.999])
def test_truncated_files(tmp_path, tiny_model, fraction):
    data = tiny_model.read_bytes()
    with pytest.raises(ModelError, match="truncated"):
        read_meta(_bad(tmp_path, data[: int(len(data) * fraction)]))


def test_unknown_architecture(tmp_path):
    path = write_unknown_architecture(tmp_path / "odd.gguf")
    with pytest.raises(ModelError, match="architecture 'frobnicator'"):
        read_meta(path)


def test_sliding_window_layers_follow_the_architecture_pattern():
    from rag.llm.gguf import _swa_layers

    # gemma3: every 6th layer attends globally; gemma2: every other one
    assert _swa_layers({"gemma3.attention.sliding_window": 512}, "gemma3", 12) == (
        512,
        (True,) * 5 + (False,) + (True,) * 5 + (False,),
    )
    assert _swa_layers({"gemma2.attention.sliding_window": 4096}, "gemma2", 4) == (4096, (True, False, True, False))
    # no window, or a window on an architecture whose pattern is not known: planned as full attention
    assert _swa_layers({}, "gemma3", 3) == (0, (False, False, False))
    assert _swa_layers({"phi3.attention.sliding_window": 2047}, "phi3", 2) == (0, (False, False))
