"""The twin rung: a widened Llama computes exactly what its source computes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from edgespec.errors import EdgespecError  # noqa: E402
from edgespec.export.twin import head_positions, layer_positions, parameter_count, widen_llama  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def source(tiny_dir):
    path = tiny_dir("llama")  # hidden 64, 2 layers, 4 heads / 2 kv heads, intermediate 128
    return path, transformers.AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()


def _prompts(vocab: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    return torch.randint(3, vocab, (3, 33), generator=g)


@pytest.mark.parametrize("kv_heads", [None, 2], ids=["same-groups", "wider-groups"])
def test_twin_logits_equal_the_source_logits(source, kv_heads):
    _, small = source
    twin = widen_llama(small, hidden=128, layers=4, intermediate=256, kv_heads=kv_heads)
    assert twin.config.hidden_size == 128 and twin.config.num_hidden_layers == 4
    assert parameter_count(twin.config) == sum(p.numel() for p in twin.parameters())
    ids = _prompts(small.config.vocab_size)
    with torch.inference_mode():
        a, b = small(ids).logits, twin(ids).logits
    torch.testing.assert_close(b, a, atol=1e-4, rtol=0)


def test_twin_greedy_generation_is_the_source_generation(source):
    _, small = source
    twin = widen_llama(small, hidden=128, layers=4, intermediate=256)
    for row in _prompts(small.config.vocab_size):
        ids = row[None, :12]
        with torch.inference_mode():
            a = small.generate(ids, max_new_tokens=24, do_sample=False)
            b = twin.generate(ids, max_new_tokens=24, do_sample=False)
        assert a.tolist() == b.tolist()


def test_dead_weights_are_filled_with_random_values_not_zeros(source):
    _, small = source
    twin = widen_llama(small, hidden=128, layers=4, intermediate=256)
    extra = [j for j in range(4) if j not in layer_positions(2, 4)][0]
    layer = twin.model.layers[extra]
    assert layer.self_attn.q_proj.weight.std() > 0
    assert layer.mlp.gate_proj.weight.std() > 0
    assert torch.count_nonzero(layer.self_attn.o_proj.weight) == 0  # pass-through layer
    assert torch.count_nonzero(layer.mlp.down_proj.weight) == 0
    assert torch.count_nonzero(twin.model.embed_tokens.weight[:, 64:]) == 0  # padded channels start at 0


def test_original_heads_keep_their_own_kv_heads():
    # 4 query heads in groups of 2 -> groups of 4: heads 0,1 stay on kv 0; heads 2,3 move to kv 1
    assert head_positions(4, 2, 4) == [0, 1, 4, 5]
    assert head_positions(4, 2, 2) == [0, 1, 2, 3]
    assert layer_positions(2, 4) == [0, 2]
    assert layer_positions(3, 3) == [0, 1, 2]


def test_impossible_shapes_are_refused_with_a_sentence(source):
    _, small = source
    with pytest.raises(EdgespecError, match="multiple of head_dim"):
        widen_llama(small, hidden=100, layers=2, intermediate=128)
    with pytest.raises(EdgespecError, match="at least as large"):
        widen_llama(small, hidden=32, layers=2, intermediate=128)
    with pytest.raises(EdgespecError, match="kv heads"):
        widen_llama(small, hidden=128, layers=2, intermediate=128, kv_heads=8)  # groups of 1 < 2


def test_build_twin_cli_writes_a_checkpoint_that_reloads_equal(source, tmp_path):
    path, small = source
    out = tmp_path / "twin"
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "build_twin.py"), "--from", str(path), "--hidden", "128",
                        "--layers", "3", "--intermediate", "192", "-o", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "check: max |logit difference|" in r.stdout
    twin = transformers.AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    assert (out / "tokenizer.json").is_file()
    ids = _prompts(small.config.vocab_size)
    with torch.inference_mode():
        torch.testing.assert_close(twin(ids).logits, small(ids).logits, atol=1e-4, rtol=0)


def test_a_longer_context_keeps_the_function(source):
    _, small = source
    twin = widen_llama(small, hidden=128, layers=3, intermediate=128, context=1024)
    assert twin.config.max_position_embeddings == 1024
    ids = torch.randint(3, small.config.vocab_size, (1, 600), generator=torch.Generator().manual_seed(5))
    with torch.inference_mode():
        torch.testing.assert_close(twin(ids).logits, small(ids).logits, atol=1e-4, rtol=0)
