"""Prefix methods in the shared trainer (review W1): the infix tokens train, and they sit in the same place
in training (between prompt and target) as in generation (between prompt and output)."""
import pytest
import torch

from lora_repro.methods import apply_method
from lora_repro.train.features import collate, encode_decoder
from lora_repro.train.loop import fit, model_inputs, token_loss
from tests import toy_tasks
from tests.helpers import tiny_model
from tests.toy_tasks import toy_registered  # noqa: F401  (the fixture registers toy/describe)

LP, LI = 3, 2
SPLIT = [{"meaning_representation": "name [alpha], food [pizza]", "human_reference": "alpha serves pizza"},
         {"meaning_representation": "name [beta], food [fish], area [river]", "human_reference": "beta has fish"}]


class WordTokenizer:
    """Word-level ids inside the tiny models' vocabulary (the tokenizer is not what these tests check)."""
    eos_token_id = pad_token_id = 0

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [3 + sum(map(ord, w)) % 90 for w in text.split()]}


@pytest.fixture(params=["prefix_embed", "prefix_layer"])
def prefixed(request):
    model = tiny_model("gpt2")
    apply_method(model, {"name": request.param, "prefix_len": LP, "infix_len": LI})
    with torch.no_grad():
        model.transformer.prefix_tuning.tokens.normal_()
    return model


def _tokens(model):
    return model.transformer.prefix_tuning.tokens


def test_training_batches_put_the_infix_after_the_prompt_and_it_gets_gradient(prefixed):
    examples = encode_decoder(toy_tasks.ToyDescribe(), SPLIT, WordTokenizer(), max_length=40)
    batch = collate(examples, 0, decoder=True)
    prompts = [len(WordTokenizer()(toy_tasks.ToyDescribe().prompt(ex))["input_ids"]) for ex in SPLIT]
    assert batch["prompt_len"].tolist() == prompts
    inputs = model_inputs(batch, prefixed)
    assert inputs["infix_position"].tolist() == prompts and "prompt_len" not in inputs
    labels = inputs.pop("labels")
    prefixed.train()
    token_loss(prefixed(**inputs).logits, labels, 0.1).backward()
    grad = _tokens(prefixed).grad                       # [n, d] (embed) or [L, n, d] (layer)
    per_token = grad.abs().sum(-1).reshape(-1, LP + LI)
    assert bool((per_token[:, LP:] > 0).all()), per_token  # the infix rows (last LI) train: the old layout gave 0


def test_model_inputs_leave_models_without_an_infix_alone():
    batch = collate(encode_decoder(toy_tasks.ToyDescribe(), SPLIT, WordTokenizer(), 40), 0, decoder=True)
    assert "infix_position" not in model_inputs(batch, tiny_model("gpt2"))


def test_the_first_target_logit_in_training_is_the_first_generation_step(prefixed):
    """Training's logit that predicts the first target token (the last prompt position, the infix right after
    it) equals the score of generation's first step on the prompt alone: the infix is in the same place."""
    example = encode_decoder(toy_tasks.ToyDescribe(), SPLIT[:1], WordTokenizer(), max_length=40)
    batch = collate(example, 0, decoder=True)
    n_prompt = int(batch["prompt_len"][0])
    inputs = model_inputs(batch, prefixed)
    inputs.pop("labels")
    prefixed.eval()
    with torch.no_grad():
        train_logit = prefixed(**inputs).logits[0, n_prompt - 1]
        prompt = batch["input_ids"][:, :n_prompt]
        out = prefixed.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=1, do_sample=False,
                                pad_token_id=0, output_scores=True, return_dict_in_generate=True)
    torch.testing.assert_close(torch.log_softmax(out.scores[0][0], -1), torch.log_softmax(train_logit, -1),
                               atol=1e-5, rtol=1e-5)


@pytest.mark.usefixtures("toy_registered")
def test_fit_trains_the_infix(prefixed):
    """Through the trainer itself: one optimizer step without weight decay moves every inserted token."""
    tokens_before = _tokens(prefixed).detach().clone()
    task = toy_tasks.ToyDescribe()
    data = {"train": SPLIT * 2, "validation": SPLIT}
    fit(prefixed, WordTokenizer(), task, data, {"lr": 1e-2, "epochs": 1, "batch_size": 4, "weight_decay": 0.0,
                                                "warmup_ratio": 0.0, "precision": "fp32"},
        seed=1, decoder=True, max_length=40, stop_after_steps=1, progress_bar=False)
    moved = (_tokens(prefixed).detach() - tokens_before).abs().sum(-1).reshape(-1, LP + LI)
    assert bool((moved > 0).all()), moved


def test_the_text_budget_leaves_room_for_the_inserted_tokens():
    from lora_repro.methods.prefix import inserted_positions
    model = tiny_model("gpt2")
    assert inserted_positions(model) == 0
    apply_method(model, {"name": "prefix_embed", "prefix_len": LP, "infix_len": LI})
    assert inserted_positions(model) == LP + LI
