"""Publishing a pretrained run to the Hugging Face Hub (`make publish`).

`folder` checks a run and assembles the exact upload folder (weights, tokenizer, configs,
model card, results, report) and proves it loads offline; `card` writes the model card;
`hub` is the entry point that uploads the folder with retries. The Hub token is read from
`HF_TOKEN` or the user's login and is redacted from everything the stage prints or writes
(`secrets`).
"""
