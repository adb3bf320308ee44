"""FastDraft stages, VocabTrim and the acceptance simulation on tiny models (seconds each)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from edgespec.export.draft import acceptance, fastdraft, lmtrain, trainstate, vocabtrim

from edgespec.errors import EdgespecError


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory):
    from tiny import corpus_lines

    d = tmp_path_factory.mktemp("corpus")
    lines = corpus_lines(120_000)
    for i in range(4):
        (d / f"part{i}.py").write_text("\n".join(lines[i::4]) + "\n")
    return d


@pytest.fixture(scope="module")
def target(tiny_dir):
    return tiny_dir("llama")


@pytest.fixture(scope="module")
def stage1(target, tiny_corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("d1")
    rep = fastdraft.pretrain(
        tiny_corpus,
        out,
        target=target,
        hidden=32,
        layers=1,
        steps=40,
        seq_len=32,
        batch_size=8,
        lr=1e-2,
        warmup=5,
        seed=0,
        log=lambda s: None,
    )
    return out, rep


def _torch_greedy(model_dir, prompt, n):
    import torch
    import transformers as tf

    m = tf.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    tok = tf.AutoTokenizer.from_pretrained(model_dir)
    ids = torch.tensor([tok(prompt)["input_ids"]])
    out = m.generate(
        ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, do_sample=False, pad_token_id=tok.pad_token_id
    )
    return out[0, ids.shape[1] :].tolist(), tok


def test_stage1_loss_falls_and_writes_a_loadable_drafter(stage1):
    out, rep = stage1
    hist = rep["train"]["history_tail"]
    state = trainstate.read_meta(out / lmtrain.STATE)
    losses = [h["loss"] for h in state["history"]]
    model, tok = fastdraft.load_model(out)
    assert losses[-1] < losses[0] and losses[-1] < np.log(len(tok)) - 0.8, losses  # from ~ln V at random init
    assert model.config.vocab_size == len(tok) and hist
    assert json.loads((out / "edgespec_draft.json").read_text())["stage"] == "pretrain"


def test_interrupted_training_resumes_to_the_same_weights(tmp_path):
    import torch
    import transformers as tf

    data = np.arange(5000, dtype=np.int32) % 97

    def fresh():
        torch.manual_seed(0)
        return tf.LlamaForCausalLM(lmtrain.llama_config(100, 32, 1, ctx=64))

    def cfg(steps):

        return lmtrain.TrainConfig(steps=steps, seq_len=16, batch_size=4, lr=1e-2, warmup=2, log_every=1000)

    full = fresh()
    lmtrain.train(full, data, tmp_path / "a", cfg(12), log=lambda s: None, progress=False)
    part = fresh()
    lmtrain.train(part, data, tmp_path / "b", cfg(12), log=lambda s: None, progress=False, stop_after=5)
    logs = []
    resumed = fresh()  # a new process would start from fresh weights and find the checkpoint
    lmtrain.train(resumed, data, tmp_path / "b", cfg(12), log=logs.append, progress=False)
    assert any("resuming from step 5" in s for s in logs)
    for (n, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), n


def test_periodic_held_out_loss_is_logged_and_recorded(tmp_path):
    import torch
    import transformers as tf

    data = np.arange(5000, dtype=np.int32) % 97
    torch.manual_seed(0)
    model = tf.LlamaForCausalLM(lmtrain.llama_config(100, 32, 1, ctx=64))
    cfg = lmtrain.TrainConfig(steps=6, seq_len=16, batch_size=4, lr=1e-2, warmup=2, log_every=1000, eval_every=2)
    logs = []
    rep = lmtrain.train(model, data, tmp_path / "a", cfg, eval_data=data[:400], log=logs.append, progress=False)
    evals = [s for s in logs if "held-out loss" in s]
    assert [s.split(":")[0] for s in evals] == ["step 2", "step 4"]  # the final one goes into the summary
    state = trainstate.read_meta(tmp_path / "a" / lmtrain.STATE)
    recorded = [h["heldout_loss"] for h in state["history"] if "heldout_loss" in h]
    assert len(recorded) == 2 and rep["heldout_loss"] < recorded[0]


def test_training_device_names_are_checked():
    import torch

    assert lmtrain.resolve_device("cpu") == "cpu"
    assert lmtrain.resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(EdgespecError, match="unknown training device"):
        lmtrain.resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(EdgespecError, match="no CUDA GPU; use --device cpu"):
            lmtrain.resolve_device("cuda")


def test_cpu_training_precision_is_chosen_and_checked(tmp_path):
    import torch
    import transformers as tf

    a, b = torch.randn(4, 8), torch.randn(8, 4)
    for precision, dtype in (("bf16", torch.bfloat16), ("fp32", torch.float32)):
        with lmtrain.autocast("cpu", precision):
            assert (a @ b).dtype == dtype
    with lmtrain.autocast("cpu"):  # measurements: fp32 on a CPU whatever it supports
        assert (a @ b).dtype == torch.float32
    assert lmtrain.cpu_bf16("auto") == bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    with pytest.raises(EdgespecError, match="unknown precision 'fp8'"):
        lmtrain.check_config(lmtrain.TrainConfig(steps=1, precision="fp8"))
    # bf16 training learns, and its weights (fp32) differ from fp32 training's
    data = np.arange(5000, dtype=np.int32) % 97
    out = {}
    for precision in ("bf16", "fp32"):
        torch.manual_seed(0)
        model = tf.LlamaForCausalLM(lmtrain.llama_config(100, 32, 1, ctx=64))
        cfg = lmtrain.TrainConfig(steps=30, seq_len=16, batch_size=4, lr=1e-2, warmup=2, precision=precision)
        rep = lmtrain.train(model, data, tmp_path / precision, cfg, log=lambda s: None, progress=False)
        losses = [h["loss"] for h in rep["history_tail"]]
        assert losses[-1] < losses[0] < 4.6, (precision, losses)  # ln 97 = 4.57 at the start
        assert all(p.dtype == torch.float32 for p in model.parameters())
        out[precision] = model.lm_head.weight.detach().clone()
    assert not torch.equal(out["bf16"], out["fp32"])


def test_stage2_generates_resumable_shards_and_fine_tunes(target, stage1, tiny_corpus, tmp_path):
    d1, _ = stage1
    kw = dict(
        n_sequences=6,
        prompt_tokens=8,
        new_tokens=12,
        gen_batch=3,
        steps=4,
        seq_len=16,
        batch_size=4,
        kl_weight=0.5,
        log=lambda s: None,
    )
    rep = fastdraft.distill(target, d1, tiny_corpus, tmp_path / "d2", **kw)
    shards = sorted((tmp_path / "d2" / fastdraft.GEN_DIR).glob("*.jsonl"))
    assert len(shards) == 2 and rep["recipe"]["n_sequences"] == 6
    rows = fastdraft.read_shards(shards)
    assert [r["sampled"] for r in rows] == [False] * 3 + [True] * 3
    mtimes = [s.stat().st_mtime_ns for s in shards]
    logs = []
    fastdraft.distill(target, d1, tiny_corpus, tmp_path / "d2", **{**kw, "log": logs.append})
    assert [s.stat().st_mtime_ns for s in shards] == mtimes  # kept, not regenerated
    assert any("already there" in s for s in logs)
    fastdraft.load_model(tmp_path / "d2")
    # Another seed cuts other prompts: its shards are its own, and the old ones are not read.
    logs = []
    rep = fastdraft.distill(target, d1, tiny_corpus, tmp_path / "d2", **{**kw, "seed": 9, "log": logs.append})
    every = sorted((tmp_path / "d2" / fastdraft.GEN_DIR).glob("*.jsonl"))
    assert len(every) == 4 and [s.stat().st_mtime_ns for s in shards] == mtimes
    assert rep["recipe"]["n_sequences"] == 6
    assert any("2 shards of another generation" in s and "not used" in s for s in logs)


def test_a_gen_dir_that_is_a_file_is_refused_before_the_target_loads(tmp_path):
    f = tmp_path / "gen"
    f.write_text("")
    with pytest.raises(EdgespecError, match="is a file, not a directory"):
        fastdraft.distill(tmp_path / "no-target", tmp_path / "no-draft", tmp_path, tmp_path / "d2", gen_dir=f)


def test_generated_shards_are_keyed_by_what_wrote_them(target, tiny_corpus, tmp_path):
    """A shard is reused only where the same target, prompts and settings would write it again:
    a retrained target, other prompts or another temperature name other shards."""
    import torch
    import transformers as tf

    m = tf.AutoModelForCausalLM.from_pretrained(target).eval()
    tok = tf.AutoTokenizer.from_pretrained(target)
    docs = fastdraft.corpus_mod.load_documents(tiny_corpus)
    gen = fastdraft.Generation(4, 8, 6, 2, 0.8, 0)
    prompts, shards = gen.plan(m, tok, docs, tmp_path)
    assert len(shards) == 2 and gen.plan(m, tok, docs, tmp_path)[1] == shards  # deterministic
    assert gen.write(m, tok, docs, tmp_path, log=lambda s: None) == shards
    rows = fastdraft.read_shards(shards)
    assert [r["prompt_ids"] for r in rows] == prompts
    other = [
        fastdraft.Generation(4, 8, 6, 2, 0.8, 1).plan(m, tok, docs, tmp_path)[1],  # other prompts
        fastdraft.Generation(4, 8, 6, 2, 0.5, 0).plan(m, tok, docs, tmp_path)[1],  # other temperature
        fastdraft.Generation(4, 8, 9, 2, 0.8, 0).plan(m, tok, docs, tmp_path)[1],  # longer continuations
    ]
    with torch.no_grad():
        m.lm_head.weight.mul_(1.01)  # "retrained"
    other.append(gen.plan(m, tok, docs, tmp_path)[1])
    for o in other:
        assert not set(o) & set(shards), o


def test_target_as_its_own_drafter_accepts_everything(target):
    import transformers as tf

    m = tf.AutoModelForCausalLM.from_pretrained(target).eval()
    tok = tf.AutoTokenizer.from_pretrained(target)
    fig = acceptance.simulate(m, tok, m, tok, ["def f(x):", "import os\n"], k=3, max_new_tokens=16)
    assert fig.acceptance_rate == 1.0 and fig.mean_accepted > 3.0
    assert fig.mbsu == pytest.approx(fig.mean_accepted / 4)


def test_speculative_simulation_output_equals_target_greedy(target, stage1):
    d1, _ = stage1
    fig = acceptance.evaluate(target, d1, ["def f(x):"], k=4, max_new_tokens=20, show_progress=False)
    ref, _ = _torch_greedy(target, "def f(x):", 20)
    assert fig.per_prompt[0]["output_ids"] == ref[: len(fig.per_prompt[0]["output_ids"])]
    assert 0 <= fig.acceptance_rate <= 1 and fig.target_calls >= 1


def test_trim_keeps_specials_and_top_k_and_maps_to_target_ids(target, stage1, tiny_corpus, tmp_path):
    d1, _ = stage1
    rep = vocabtrim.trim(d1, tmp_path / "t", calibration=tiny_corpus, keep=64, log=lambda s: None)
    out = tmp_path / "t"
    m = np.fromfile(out / vocabtrim.MAP_FILE, dtype="<i4")
    assert rep["keep"] == 64 and len(m) == 64 and list(m) == sorted(set(m.tolist()))
    assert {0, 1, 2} <= set(m.tolist())  # <unk> <s> </s> always kept, at ids 0/1/2
    model, tok = fastdraft.load_model(out)
    assert model.get_output_embeddings().weight.shape[0] == 64 == model.config.vocab_size
    full, _ = fastdraft.load_model(d1)
    import torch

    assert torch.equal(model.get_output_embeddings().weight, full.get_output_embeddings().weight[torch.as_tensor(m)])
    meta = json.loads((out / vocabtrim.META_FILE).read_text())
    assert meta["original_vocab_size"] == len(tok) and meta["tokenizer_vocab_sha256"] == vocabtrim.vocab_sha256(tok)
    # lossless: the trimmed drafter's speculative output is the target's greedy output
    fig = acceptance.evaluate(target, out, ["def f(x):", "import os\n"], k=4, max_new_tokens=20, show_progress=False)
    for p, pp in zip(["def f(x):", "import os\n"], fig.per_prompt):
        ref, _ = _torch_greedy(target, p, 20)
        assert pp["output_ids"] == ref[: len(pp["output_ids"])]


def test_trim_by_coverage_and_bad_k(stage1, tiny_corpus, tmp_path):
    d1, _ = stage1
    rep = vocabtrim.trim(d1, tmp_path / "c", calibration=tiny_corpus, coverage=0.9, log=lambda s: None)
    assert rep["coverage"] >= 0.9 and rep["keep"] < rep["original_vocab_size"]
    with pytest.raises(EdgespecError, match="larger than the vocabulary"):
        vocabtrim.trim(d1, tmp_path / "x", calibration=tiny_corpus, keep=10**6, log=lambda s: None)
    assert not (tmp_path / "x").exists()


def test_choose_keep_counts_ties_by_id():
    counts = np.array([0, 0, 0, 5, 1, 5, 0, 9])
    assert choose(counts, keep=5) == [0, 1, 2, 3, 7]
    assert choose(counts, coverage=0.45) == [0, 1, 2, 7]
    assert choose(counts, coverage=0.5) == [0, 1, 2, 3, 7]


def choose(counts, **kw):
    return vocabtrim.choose_keep(counts, [0, 1, 2], **kw).tolist()


def test_mbsu_formula():
    assert acceptance.mbsu(3.0, 4, 1, 4) == pytest.approx(1.5)


def _assert_user_error(r, *words):
    assert r.returncode == 2, (r.stdout, r.stderr)
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error:") and "Traceback" not in r.stderr, r.stderr
    for w in words:
        assert w in last, r.stderr


def _cli_in_process(capsys, *args):
    from edgespec.cli import main

    code = main(list(args))
    cap = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, cap.out, cap.err)


def test_cli_bad_corpus_is_one_sentence_without_traceback(target, tmp_path):
    (tmp_path / "empty").mkdir()
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgespec",
            "draft",
            "train",
            "--stage",
            "pretrain",
            "--corpus",
            str(tmp_path / "empty"),
            "--target",
            str(target),
            "-o",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
    )
    _assert_user_error(r, "empty")
    assert not (tmp_path / "o").exists()


def test_cli_bad_inputs_are_one_sentence(target, stage1, tiny_corpus, tmp_path, capsys):
    import shutil

    from tiny import train_tokenizer

    d1, _ = stage1
    # tokenizer files that do not belong to the checkpoint (more tokens than embedding rows)
    bad = tmp_path / "bad"
    shutil.copytree(d1, bad)
    train_tokenizer(900).save_pretrained(bad)
    pretrain = ("draft", "train", "--stage", "pretrain", "--target", target)
    distill = ("draft", "train", "--stage", "distill", "--target", target, "--corpus", tiny_corpus)
    for args, words in [
        ((*pretrain, "--corpus", tmp_path / "nope", "-o", tmp_path / "o"), "does not exist"),
        (
            (*pretrain, "--corpus", tiny_corpus, "--hidden", 256, "--layers", 4, "--steps", 1, "-o", tmp_path / "o"),
            "not smaller",
        ),
        (
            ("draft", "trim", "--draft", d1, "--calibration", tiny_corpus, "--keep", 99999, "-o", tmp_path / "t"),
            "larger than the vocabulary",
        ),
        ((*distill, "-o", tmp_path / "o3"), "--draft"),
        (
            ("draft", "eval", "--target", target, "--draft", bad, "--prompts", tiny_corpus / "part0.py", "-n", 1),
            "do not belong",
        ),
        ((*distill, "--draft", bad, "-o", tmp_path / "o2"), "do not belong"),
    ]:
        _assert_user_error(_cli_in_process(capsys, *map(str, args)), words)
    assert not (tmp_path / "o2").exists() and not (tmp_path / "o").exists() and not (tmp_path / "t").exists()


def test_cross_vocab_drafter_trains_on_text_and_stays_lossless(target, tiny_corpus, tmp_path):
    import demo_tokenizers  # tools/, on sys.path from conftest.py
    from edgespec.export.draft import corpus

    tok = demo_tokenizers.train_metaspace(corpus.load_documents(tiny_corpus), 400)
    tok.save_pretrained(tmp_path / "tok")
    d1 = tmp_path / "x1"
    fastdraft.pretrain(
        tiny_corpus,
        d1,
        tokenizer=tmp_path / "tok",
        hidden=32,
        layers=1,
        steps=20,
        seq_len=32,
        batch_size=8,
        lr=1e-2,
        warmup=5,
        log=lambda s: None,
    )
    rep = fastdraft.distill(
        target,
        d1,
        tiny_corpus,
        tmp_path / "x2",
        n_sequences=4,
        prompt_tokens=8,
        new_tokens=12,
        gen_batch=4,
        steps=3,
        seq_len=16,
        batch_size=4,
        log=lambda s: None,
    )
    assert rep["recipe"]["same_vocab"] is False
    with pytest.raises(EdgespecError, match="kl-weight"):
        fastdraft.distill(target, d1, tiny_corpus, tmp_path / "x3", kl_weight=0.5, log=lambda s: None)
    fig = acceptance.evaluate(target, tmp_path / "x2", ["def f(x):"], k=4, max_new_tokens=20, show_progress=False)
    ref, _ = _torch_greedy(target, "def f(x):", 20)
    assert fig.per_prompt[0]["output_ids"] == ref[: len(fig.per_prompt[0]["output_ids"])]
    assert fig.drafted > 0
