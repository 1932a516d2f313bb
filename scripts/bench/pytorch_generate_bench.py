#!/usr/bin/env python3
"""PyTorch counterpart of `aligner bench generate`: prompt processing (prefill) and greedy decoding with the key/value
cache, in fp32 on 2 threads, printing the same figures (tokens/s, ms per new token, effective weight bandwidth, peak
RSS).

The model is SmolLM2-135M's shape with random weights (--config smollm2, needs no file) or a GGUF file read by
transformers' GGUF loader (--gguf FILE, dequantized to fp32, as `aligner bench generate --model FILE` does).
The prompt is the same deterministic token ids on both sides: id(i) = (7919 * i + 1) mod vocab; decoding never stops
at EOS, so both sides run exactly --new-tokens steps.

Two decoders are timed: a plain loop (model(..., past_key_values) then argmax: the same work as AlignerKit's) and
transformers' `generate` (greedy, min_new_tokens = max_new_tokens), which adds its own per-step overhead.
Run: python3 scripts/bench/pytorch_generate_bench.py [--config smollm2 | --gguf FILE] [--prompt-tokens 256]
     [--new-tokens 128] [--batch 1] [--repeats 3] [--threads 2]

The mixed-length workload (`aligner bench generate --model FILE --prompts M --slots S --prompts-out W.json`: the same
Aligner prompts of real records): --gguf FILE --prompts-file W.json [--batch S] runs transformers' batched `generate`
over them as a user would (batches of S in input order, left-padded, greedy, stopping at the end tokens or
max_new_tokens) and prints corrections per minute and generated tokens per second.
"""
import json
import argparse
import os
import resource
import statistics
import time

import torch


def prompt_ids(batch, length, vocab):
    row = [(7919 * i + 1) % vocab for i in range(length)]
    return torch.tensor([row] * batch, dtype=torch.long)


def build(args):
    from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM
    from transformers.utils import logging
    logging.set_verbosity_error()
    if args.gguf:
        folder, name = os.path.split(os.path.abspath(args.gguf))
        return AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32), os.path.basename(args.gguf)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                         num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=8192,
                         tie_word_embeddings=True, rms_norm_eps=1e-5, rope_theta=100000.0,
                         bos_token_id=None, eos_token_id=None, pad_token_id=None)
    return LlamaForCausalLM(config), "smollm2 (random weights)"


def mixed_workload(model, path, batch):
    """transformers' batched generate over the prompts AlignerKit wrote; returns (seconds, generated tokens, ended)."""
    w = json.load(open(path))
    prompts, eos, pad, new = w["prompts"], w["eos_token_ids"], w["pad_token_id"], w["max_new_tokens"]
    start = time.perf_counter()
    generated = ended = 0
    for first in range(0, len(prompts), batch):
        part = prompts[first:first + batch]
        width = max(len(p) for p in part)
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in part], dtype=torch.long)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in part], dtype=torch.long)
        with torch.no_grad():
            out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new, do_sample=False,
                                 eos_token_id=eos, pad_token_id=pad)
        for row in out[:, width:].tolist():
            n = next((i + 1 for i, t in enumerate(row) if t in eos), None)
            generated += n if n is not None else len(row)
            ended += n is not None
    return time.perf_counter() - start, generated, ended, len(prompts), sum(len(p) for p in prompts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts-file", help="the mixed-length workload written by aligner bench generate --prompts-out")
    ap.add_argument("--config", default="smollm2", choices=["smollm2"])
    ap.add_argument("--gguf", help="a GGUF file (transformers' GGUF loader, fp32)")
    ap.add_argument("--prompt-tokens", type=int, default=256)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model, label = build(args)
    model.eval()
    if args.prompts_file:
        seconds, generated, ended, count, prompt_tokens = mixed_workload(model, args.prompts_file, args.batch)
        print(f"PyTorch {torch.__version__} (transformers generate); model {label}, {count} prompts ({prompt_tokens} tokens), "
              f"batches of {args.batch}; {ended} ended with an end token")
        print(f"{seconds:.1f} s: {count / seconds * 60:.1f} corrections/min, {generated / seconds:.1f} generated tokens/s "
              f"({generated} tokens), {(prompt_tokens + generated) / seconds:.1f} prompt+generated tokens/s")
        print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
        return
    vocab = model.config.vocab_size
    params = sum(x.numel() for x in model.parameters())
    # Weights read per decoding step: every matrix once (the tied embedding once, as the output head).
    weight_bytes = 4 * params
    ids = prompt_ids(args.batch, args.prompt_tokens, vocab)
    # transformers 5.x names the key/value cache `cache`; 4.x named it `past_key_values`.
    import inspect
    cache_name = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    prefill, decode, generate = [], [], []
    with torch.no_grad():
        for _ in range(args.repeats + 1):  # the first round is a warm-up
            t0 = time.perf_counter()
            out = model(input_ids=ids, use_cache=True)
            t1 = time.perf_counter()
            past = getattr(out, cache_name)
            nxt = out.logits[:, -1].argmax(-1, keepdim=True)
            t2 = time.perf_counter()
            for _ in range(args.new_tokens - 1):
                out = model(input_ids=nxt, use_cache=True, **{cache_name: past})
                past = getattr(out, cache_name)
                nxt = out.logits[:, -1].argmax(-1, keepdim=True)
            t3 = time.perf_counter()
            model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=args.new_tokens,
                           min_new_tokens=args.new_tokens, pad_token_id=0)
            t4 = time.perf_counter()
            prefill.append(t1 - t0); decode.append(t3 - t2); generate.append(t4 - t3)
    p, d, g = (statistics.median(x[1:]) for x in (prefill, decode, generate))
    steps = max(args.new_tokens - 1, 1)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"PyTorch {torch.__version__}, {args.threads} threads, {torch.backends.cpu.get_cpu_capability()}; model {label}, "
          f"{params / 1e6:.1f}M parameters (fp32), batch {args.batch}, prompt {args.prompt_tokens}, new {args.new_tokens}")
    print(f"prefill   {args.batch * args.prompt_tokens / p:9.1f} tokens/s  ({p * 1e3:8.1f} ms)")
    print(f"decode    {args.batch * steps / d:9.1f} tokens/s  ({d / steps * 1e3:8.2f} ms per step, "
          f"{weight_bytes / (d / steps) / 1e9:5.1f} GB/s of weights)")
    print(f"generate  {args.batch * args.new_tokens / g:9.1f} tokens/s  (transformers generate(), prefill included)")
    print(f"peak RSS {peak:.0f} MiB")


if __name__ == "__main__":
    main()
