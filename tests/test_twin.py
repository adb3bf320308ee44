"""The twin rung: a widened Llama computes exactly what its source computes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from edgespec.export.twin import head_positions, layer_positions, parameter_count, widen_llama  # noqa: E402

from edgespec.errors import EdgespecError  # noqa: E402

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


def _build_twin(*args) -> subprocess.CompletedProcess:
    """tools/build_twin.py run as a user runs it, with ``args``; it must succeed."""
    r = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "build_twin.py"), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    return r


def test_build_twin_cli_writes_a_checkpoint_that_reloads_equal(source, tmp_path):
    path, small = source
    out = tmp_path / "twin"
    r = _build_twin("--from", path, "--hidden", 128, "--layers", 3, "--intermediate", 192, "-o", out)
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


def test_a_widened_eagle3_head_drafts_what_the_small_head_drafts(tiny_dir):
    from edgespec.export.draft import eagle3, fastdraft
    from edgespec.export.twin import widen_eagle3

    path = tiny_dir("llama", layers=4)
    small, tok = fastdraft.load_model(path)
    head = eagle3.new_head(small, torch.arange(3, 203).numpy(), [0, 2, 3], seed=1)
    with torch.no_grad():
        for n, p in head.named_parameters():
            if not n.startswith("embed_tokens") and "norm" not in n:
                p.normal_(0, 0.15)
    twin = widen_llama(small, hidden=128, layers=6, intermediate=256)
    wide = widen_eagle3(head, hidden=128, intermediate=256, source_layers=4, layers=6)
    aux = eagle3.aux_layers_of(wide.config)
    assert aux == [layer_positions(4, 6)[i] for i in (0, 2, 3)] == [0, 3, 4]
    # one decoder layer at the twin's width: what a head of the twin costs
    assert wide.fc.weight.shape == (128, 3 * 128) and wide.midlayer.self_attn.q_proj.weight.shape == (128, 256)
    assert wide.midlayer.mlp.gate_proj.weight.shape == (256, 128) and wide.lm_head.weight.shape == (200, 128)
    assert wide.midlayer.self_attn.q_proj.weight[:, 64:128].std() > 0  # dead weights are random, not zeros
    assert torch.count_nonzero(wide.fc.weight[64:]) == 0  # the stream's new channels stay zero
    ids = _prompts(small.config.vocab_size)
    f_small, _, _ = eagle3.target_features(small, ids, [0, 2, 3])
    f_twin, _, _ = eagle3.target_features(twin, ids, aux)
    with torch.inference_mode():
        a, ga, pa = head(ids, f_small)
        b, gb, pb = wide(ids, f_twin)
        torch.testing.assert_close(b, a, atol=1e-4, rtol=0)
        torch.testing.assert_close(gb[..., :64], ga, atol=1e-4, rtol=0)
        assert torch.count_nonzero(gb[..., 64:]) == 0
        a2 = head(ids[:, :1], ga[:, -1:], past=pa)[0]  # a draft step on the head's own output
        b2 = wide(ids[:, :1], gb[:, -1:], past=pb)[0]
        torch.testing.assert_close(b2, a2, atol=1e-4, rtol=0)
    prompts = ["def f(x):\n    return", "import os\n"]
    fs = eagle3.simulate_head(small, tok, head, prompts, k=3, max_new_tokens=16)
    ft = eagle3.simulate_head(twin, tok, wide, prompts, k=3, max_new_tokens=16)
    assert [r["output_ids"] for r in ft.per_prompt] == [r["output_ids"] for r in fs.per_prompt]
    assert (ft.accepted, ft.drafted) == (fs.accepted, fs.drafted)


def test_build_twin_cli_widens_a_head_beside_the_twin(tiny_dir, tmp_path):
    from edgespec.export.draft import eagle3, fastdraft

    path = tiny_dir("llama", layers=4)
    small, _ = fastdraft.load_model(path)
    head = eagle3.new_head(small, torch.arange(3, 103).numpy(), [0, 2, 3], seed=2)
    eagle3.save_head(head, tmp_path / "head")
    shape = ("--hidden", 128, "--layers", 6, "--intermediate", 256)
    r = _build_twin("--from", path, *shape, "--head", tmp_path / "head", "-o", tmp_path / "twin")
    assert "check: head logits twin vs source" in r.stdout
    wide = eagle3.load_head(tmp_path / "twin-head")
    assert wide.config.hidden_size == 128 and eagle3.aux_layers_of(wide.config) == [0, 3, 4]
    assert (tmp_path / "twin-head" / "tokenizer.json").is_file()
