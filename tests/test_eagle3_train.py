"""EAGLE-3 head training on a tiny target: the head is optimum-intel's class, TTT is the run-time
chain, the loss falls, the checkpoint loads, exports and resumes, DDP runs on 2 CPU ranks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from edgespec.export.draft import eagle3, fastdraft, trainstate  # noqa: E402  (after the importorskips)

from edgespec.errors import EdgespecError  # noqa: E402  (after the importorskips)

ROOT = Path(__file__).resolve().parent.parent
EDGESPEC = str(Path(sys.executable).parent / "edgespec")


@pytest.fixture(scope="module")
def target(tiny_dir):
    return tiny_dir("llama", layers=4)  # hidden 64, 4 heads / 2 kv heads: a head reads layers 0, 2, 3


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory):
    from tiny import corpus_lines

    d = tmp_path_factory.mktemp("corpus")
    (d / "code.py").write_text("\n".join(corpus_lines(60_000)) + "\n")
    return d


@pytest.fixture(scope="module")
def random_head(target):
    """A head with random weights of a wide spread (peaked logits), over 200 draft ids."""
    m, _ = fastdraft.load_model(target)
    kept = torch.arange(3, 203)
    head = eagle3.new_head(m, kept.numpy(), eagle3.default_aux_layers(4), seed=1)
    with torch.no_grad():
        for n, p in head.named_parameters():
            if not n.startswith("embed_tokens") and "norm" not in n:
                p.normal_(0, 0.15)
    return m, head.eval()


TRAIN_KW = dict(
    draft_vocab=128,
    ttt_steps=3,
    steps=20,
    seq_len=32,
    batch_size=8,
    lr=1e-2,
    warmup=2,
    seed=0,
    n_sequences=16,
    prompt_tokens=16,
    new_tokens=32,
    gen_batch=16,
    device="cpu",
    log_every=2,
    log=lambda s: None,
)


@pytest.fixture(scope="module")
def trained(target, tiny_corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("head") / "head"
    rep = eagle3.train(target, tiny_corpus, out, **TRAIN_KW)
    return out, rep


def _optimum_class(path):
    from optimum.exporters.openvino.model_patcher import LlamaEagle3ForCausalLM

    cfg = transformers.AutoConfig.from_pretrained(path)
    return LlamaEagle3ForCausalLM.from_pretrained(path, config=cfg, dtype=torch.float32).eval()


def test_head_computes_what_optimum_intels_class_computes(random_head, tmp_path):
    m, head = random_head
    eagle3.save_head(head, tmp_path / "h")
    ref = _optimum_class(tmp_path / "h")
    ours = {k: v for k, v in head.state_dict().items()}
    theirs = {k.removeprefix("model."): v for k, v in ref.state_dict().items()}
    assert set(theirs) == set(ours)  # same names: fc, midlayer.*, norm, lm_head, embed_tokens, d2t, t2d
    g_ref = {}
    ref.model.midlayer.register_forward_hook(lambda mod, i, o: g_ref.__setitem__("g", o))
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(3, 500, (1, 9), generator=gen)
    feats = torch.randn(1, 9, 3 * 64, generator=gen)
    with torch.no_grad():
        out = ref(input_ids=ids, hidden_states=feats, use_cache=True)
        lg, g, past = head(ids, feats)
        torch.testing.assert_close(lg, out.logits, atol=1e-5, rtol=0)
        torch.testing.assert_close(g, g_ref["g"], atol=1e-5, rtol=0)
        # a draft step: the head's own g and the drafted token, after the cache
        out2 = ref(input_ids=ids[:, :1], hidden_states=g[:, -1:], past_key_values=out.past_key_values, use_cache=True)
        lg2, g2, _ = head(ids[:, :1], g[:, -1:], past=past)
        torch.testing.assert_close(lg2, out2.logits, atol=1e-5, rtol=0)
        torch.testing.assert_close(g2, g_ref["g"], atol=1e-5, rtol=0)
    assert torch.equal(out.d2t, head.d2t) and int(head.d2t[0]) == 3 and head.t2d[3:203].all() and head.t2d.sum() == 200
    # without the embedding (the target's table): a smaller file; the target's is attached at load
    eagle3.save_head(head, tmp_path / "small", embedding=False, dtype=torch.float16)
    assert (tmp_path / "small" / "model.safetensors").stat().st_size < (
        tmp_path / "h" / "model.safetensors"
    ).stat().st_size / 2
    back = eagle3.load_head(tmp_path / "small")
    eagle3.attach_target_embedding(back, m)
    with torch.no_grad():
        torch.testing.assert_close(back(ids, feats)[0], lg, atol=0.05, rtol=0.01)  # fp16 weights


def test_training_time_test_is_the_run_time_chain(random_head):
    _, head = random_head
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(3, 500, (2, 14), generator=gen)
    feats = torch.randn(2, 14, 3 * 64, generator=gen)
    with torch.no_grad():
        steps = list(head.ttt_unroll(feats, ids, 4))
        for b in range(2):
            for t in (0, 5, 9):
                lg, g, past = head(ids[b : b + 1, 1 : t + 2], feats[b : b + 1, : t + 1])
                torch.testing.assert_close(lg[0, -1], steps[0][b, t], atol=1e-5, rtol=0)
                for j in range(1, 4):
                    lg, g, past = head(ids[b : b + 1, t + j + 1 : t + j + 2], g[:, -1:], past=past)
                    torch.testing.assert_close(lg[0, -1], steps[j][b, t], atol=1e-5, rtol=0)


def test_training_loss_falls_and_the_head_loads(trained, target):
    out, rep = trained
    meta = trainstate.read_meta(out / eagle3.STATE)
    losses = [h["loss"] for h in meta["history"]]
    assert rep["complete"] and meta["step"] == 20 and len(losses) == 10
    assert losses[-1] < 0.9 * losses[0], losses  # KL(target || head) of a random target: it falls slowly
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["architectures"] == ["LlamaForCausalLMEagle3"] and cfg["num_hidden_layers"] == 1
    assert cfg["draft_vocab_size"] == 128 and cfg["eagle_config"]["eagle_aux_hidden_state_layer_ids"] == [0, 2, 3]
    head = eagle3.load_head(out)
    ref = _optimum_class(out)
    m, _ = fastdraft.load_model(target)
    torch.testing.assert_close(head.embed_tokens.weight, m.get_input_embeddings().weight)
    ids = torch.tensor([[1, 40, 41, 42, 43, 44]])
    feats, _, _ = eagle3.target_features(m, ids, [0, 2, 3])
    with torch.no_grad():
        torch.testing.assert_close(
            head(ids, feats)[0], ref(input_ids=ids, hidden_states=feats).logits, atol=1e-5, rtol=0
        )
    kept = head.d2t + torch.arange(128)
    assert kept.tolist() == sorted(set(kept.tolist())) and head.t2d[kept].all() and int(head.t2d.sum()) == 128


@pytest.mark.slow
def test_the_trained_head_exports_with_optimum_intel_and_the_ir_computes_the_same(trained, tmp_path):
    import types

    import numpy as np
    import openvino as ov
    from optimum.exporters.openvino.convert import export_from_model
    from optimum.exporters.openvino.model_patcher import LlamaEagle3ForCausalLM
    from optimum.intel.openvino.configuration import OVConfig

    out, _ = trained
    # main_export reaches this class through a remote-code auto_map whose import check wants
    # diffusers and einops; the same class under transformers_modules takes the same export path.
    name = "transformers_modules.edgespec_eagle3_test"
    mod = sys.modules.setdefault(name, types.ModuleType(name))
    mod.LlamaEagle3ForCausalLM = type("LlamaEagle3ForCausalLM", (LlamaEagle3ForCausalLM,), {"__module__": name})
    cfg = transformers.AutoConfig.from_pretrained(out)
    model = mod.LlamaEagle3ForCausalLM.from_pretrained(out, config=cfg, dtype=torch.float32).eval()
    export_from_model(
        model, str(tmp_path / "ir"), task="text-generation-with-past", stateful=True, ov_config=OVConfig(dtype="fp32")
    )
    xml = tmp_path / "ir" / "openvino_model.xml"
    model = ov.Core().read_model(xml)
    names = {n for i in model.inputs for n in i.get_names()}
    assert "hidden_states" in names and any("d2t" in n for o in model.outputs for n in o.get_names())
    compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32", "KV_CACHE_PRECISION": "f32"})
    req = compiled.create_infer_request()
    head = eagle3.load_head(out)
    gen = torch.Generator().manual_seed(2)
    ids = torch.randint(3, 500, (1, 7), generator=gen)
    feats = torch.randn(1, 7, 3 * 64, generator=gen)
    inputs = {
        "input_ids": ids.numpy(),
        "hidden_states": feats.numpy(),
        "attention_mask": np.ones((1, 7), np.int64),
        "position_ids": np.arange(7)[None],
        "beam_idx": np.zeros(1, np.int32),
    }
    res = req.infer({k: v for k, v in inputs.items() if k in names})
    with torch.no_grad():
        want = head(ids, feats)[0].numpy()
    np.testing.assert_allclose(res["logits"], want, atol=1e-4, rtol=0)


def test_interrupted_training_resumes_to_the_same_head(target, tiny_corpus, trained, tmp_path):
    out, _ = trained
    gen_dir = out / eagle3.GEN_DIR  # the same continuations, not generated again
    kw = {**TRAIN_KW, "gen_dir": gen_dir, "steps": 8}
    eagle3.train(target, tiny_corpus, tmp_path / "a", **kw)
    assert eagle3.train(target, tiny_corpus, tmp_path / "b", **kw, stop_after=3) is None
    assert trainstate.read_meta(tmp_path / "b" / eagle3.STATE)["step"] == 3
    eagle3.load_head(tmp_path / "b")  # a usable head already, mid-run
    logs = []
    eagle3.train(target, tiny_corpus, tmp_path / "b", **{**kw, "log": logs.append})
    assert any("resuming from step 3" in s for s in logs)
    a, b = eagle3.load_head(tmp_path / "a").state_dict(), eagle3.load_head(tmp_path / "b").state_dict()
    for n in a:
        torch.testing.assert_close(a[n], b[n], atol=1e-6, rtol=0, msg=n)
    with pytest.raises(EdgespecError, match="other settings"):
        eagle3.train(target, tiny_corpus, tmp_path / "b", **{**kw, "ttt_steps": 2})


def test_training_from_init_starts_from_that_head(target, tiny_corpus, trained, tiny_dir, tmp_path):
    out, _ = trained
    kw = {**TRAIN_KW, "gen_dir": out / eagle3.GEN_DIR, "steps": 4, "lr": 1e-3}
    del kw["draft_vocab"]
    rep = eagle3.train(target, tiny_corpus, tmp_path / "ft", **kw, init=out)
    eagle3.train(target, tiny_corpus, tmp_path / "fresh", **{**kw, "draft_vocab": 128})
    first = [
        trainstate.read_meta(d / eagle3.STATE)["history"][0]["loss"] for d in (tmp_path / "ft", tmp_path / "fresh")
    ]
    assert first[0] < first[1], first  # the trained head's loss, not a random head's
    a, b = eagle3.load_head(out), eagle3.load_head(tmp_path / "ft")
    assert torch.equal(a.d2t, b.d2t) and torch.equal(a.t2d, b.t2d)
    assert not torch.equal(a.fc.weight, b.fc.weight)  # and it trained
    assert rep["recipe"]["init"] == str(out) and rep["recipe"]["aux_layers"] == [0, 2, 3]
    with pytest.raises(EdgespecError, match="keeps its draft vocabulary"):
        eagle3.train(target, tiny_corpus, tmp_path / "x", **kw, init=out, aux_layers=[0, 1, 2])
    with pytest.raises(EdgespecError, match="reads target layers"):
        eagle3.train(tiny_dir("llama", layers=3), tiny_corpus, tmp_path / "y", **kw, init=out)


def test_simulation_output_is_the_target_greedy_output(trained, target):
    out, _ = trained
    m, tok = fastdraft.load_model(target)
    head = eagle3.load_head(out)
    prompts = ["def f(x):\n    return", "import os\nimport sys\n"]
    fig = eagle3.simulate_head(m, tok, head, prompts, k=3, max_new_tokens=20)
    for p, row in zip(prompts, fig.per_prompt):
        ids = torch.tensor([tok(p)["input_ids"]])
        ref = m.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=20,
            do_sample=False,
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
        )[0, ids.shape[1] :].tolist()
        assert row["output_ids"] == ref[: len(row["output_ids"])] and len(row["output_ids"]) in (len(ref), 20)
    assert fig.accepted > 0 and 0 < fig.alpha <= 1
    assert fig.generated <= fig.accepted + fig.target_calls  # each call adds its accepted tokens and one of its own


def test_cli_eval_reports_heads_like_drafters_at_several_k(trained, target, tmp_path):
    out, _ = trained
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in ["def f(x):\n", "class A:\n"]))
    r = subprocess.run(
        [
            EDGESPEC,
            "draft",
            "eval",
            "--target",
            str(target),
            "--draft",
            str(out),
            "--k",
            "2",
            "--k",
            "4",
            "--prompts",
            str(prompts),
            "--max-new-tokens",
            "12",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert set(rows) == {f"{out} k=2", f"{out} k=4"}
    for row in rows.values():
        assert {"acceptance_rate", "alpha", "mean_accepted", "mbsu", "size_ratio"} <= set(row)


def test_cli_bad_inputs_are_one_sentence(target, tiny_corpus, tmp_path):
    cases = [
        (["--corpus", str(tiny_corpus)], "needs --target"),
        (["--corpus", str(tiny_corpus), "--target", str(target), "--aux-layers", "1,x,2"], "three comma-separated"),
        (
            ["--corpus", str(tiny_corpus), "--target", str(target), "--aux-layers", "0,1,9", "--sequences", "2"],
            "three distinct target layer ids",
        ),
        (
            ["--corpus", str(tiny_corpus), "--target", str(target), "--draft-vocab", "10", "--coverage", "0.9"],
            "either --draft-vocab or --coverage",
        ),
    ]
    for args, msg in cases:
        r = subprocess.run(
            [EDGESPEC, "draft", "train", "--method", "eagle3", *args, "-o", str(tmp_path / "o")],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert r.returncode == 2 and msg in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)
    assert not (tmp_path / "o" / "config.json").exists()


def test_torchrun_trains_data_parallel_on_two_cpu_ranks(target, tiny_corpus, trained, tmp_path):
    out, _ = trained
    torchrun = str(Path(sys.executable).parent / "torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(
        [
            torchrun,
            "--nproc_per_node",
            "2",
            "--master_port",
            "29517",
            EDGESPEC,
            "draft",
            "train",
            "--method",
            "eagle3",
            "--target",
            str(target),
            "--corpus",
            str(tiny_corpus),
            "--gen-dir",
            str(out / eagle3.GEN_DIR),
            "--sequences",
            "16",
            "--new-tokens",
            "32",
            "--gen-batch",
            "16",
            "--draft-vocab",
            "128",
            "--ttt-steps",
            "2",
            "--steps",
            "6",
            "--seq-len",
            "32",
            "--batch-size",
            "4",
            "--eval-prompts",
            "0",
            "--device",
            "cpu",
            "-o",
            str(tmp_path / "ddp"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "rank 0/2 ready" in r.stderr and "rank 1/2 ready" in r.stderr
    assert r.stderr.count("checkpoint at step 6 written") == 1  # rank 0 alone writes
    meta = trainstate.read_meta(tmp_path / "ddp" / eagle3.STATE)
    assert meta["step"] == 6 and meta["config"]["world_size"] == 2
    eagle3.load_head(tmp_path / "ddp")


def test_cached_head_context_drafts_what_a_fresh_one_drafts(random_head):
    m, head = random_head
    gen = torch.Generator().manual_seed(4)
    seq = torch.randint(3, 500, (30,), generator=gen).tolist()
    feats, _, _ = eagle3.target_features(m, torch.tensor([seq]), eagle3.aux_layers_of(head.config))
    ctx = eagle3.HeadContext()
    for n in (10, 11, 15, 30):
        assert eagle3.propose(head, feats, seq[:n], 4, ctx) == eagle3.propose(head, feats, seq[:n], 4)
