#!/usr/bin/env python3
"""PyTorch counterpart of `aligner bench train`: the same untied fp32 Llama models (transformers LlamaForCausalLM,
PyTorch's default SDPA attention, eager mode), trained the same way (random tokens, AdamW betas (0.9, 0.95),
weight decay 0.1 on matrices, lr 3e-4), on 2 threads, printing the same figures.

Each configuration runs in a fresh process so that its peak memory is its own.
Run: python3 scripts/bench/pytorch_train_bench.py [--config tiny|small|medium|all] [--steps 10] [--warmup 3]
"""
import argparse
import math
import resource
import statistics
import subprocess
import sys
import time

PRESETS = {
    "tiny": dict(vocab=512, hidden=128, intermediate=384, layers=4, heads=4, kv=4, seq=128, batch=16),
    "small": dict(vocab=4096, hidden=256, intermediate=768, layers=6, heads=8, kv=8, seq=256, batch=8),
    "medium": dict(vocab=8192, hidden=512, intermediate=1536, layers=8, heads=8, kv=8, seq=256, batch=8),
}


def forward_flops_per_token(p):
    c, f, v, layers, t = p["hidden"], p["intermediate"], p["vocab"], p["layers"], p["seq"]
    kv_dim = p["kv"] * (c // p["heads"])
    per_layer = 2 * (c * c * 2 + 2 * c * kv_dim + 3 * c * f) + 2 * 2 * t * c
    return layers * per_layer + 2 * c * v


def run(name, steps, warmup, threads):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    p = PRESETS[name]
    config = LlamaConfig(vocab_size=p["vocab"], hidden_size=p["hidden"], intermediate_size=p["intermediate"],
                         num_hidden_layers=p["layers"], num_attention_heads=p["heads"], num_key_value_heads=p["kv"],
                         max_position_embeddings=p["seq"], tie_word_embeddings=False, rms_norm_eps=1e-6,
                         bos_token_id=None, eos_token_id=None, pad_token_id=None)
    model = LlamaForCausalLM(config)
    model.train()
    params = sum(x.numel() for x in model.parameters())
    decay = [x for n, x in model.named_parameters() if x.dim() == 2 and "embed" not in n]
    rest = [x for n, x in model.named_parameters() if not (x.dim() == 2 and "embed" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
                            lr=3e-4, betas=(0.9, 0.95), eps=1e-8)
    tokens = p["batch"] * p["seq"]
    fwd, bwd, upd = [], [], []
    loss = None
    for step in range(warmup + steps):
        ids = torch.randint(0, p["vocab"], (p["batch"], p["seq"]))
        t0 = time.perf_counter()
        loss = model(input_ids=ids, labels=ids).loss
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        opt.zero_grad(set_to_none=True)
        t3 = time.perf_counter()
        if step >= warmup:
            fwd.append(t1 - t0); bwd.append(t2 - t1); upd.append(t3 - t2)
    f, b, o = (statistics.median(x) * 1e3 for x in (fwd, bwd, upd))
    step_s = (f + b + o) / 1e3
    gflops = 3 * forward_flops_per_token(p) * tokens / step_s / 1e9
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{name:<7} params {params / 1e6:6.2f}M  tokens/s {tokens / step_s:9.0f}  step {f + b + o:8.2f} ms "
          f"(fwd {f:7.2f}  bwd {b:7.2f}  opt {o:6.2f})  {gflops:6.1f} GFLOP/s  peak RSS {peak:6.0f} MiB  "
          f"loss {loss.item():.3f}", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="all")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    if args.config == "all":
        import torch
        print(f"PyTorch {torch.__version__}, {args.threads} threads, {torch.backends.cpu.get_cpu_capability()}", flush=True)
        for name in PRESETS:
            subprocess.run([sys.executable, __file__, "--config", name, "--steps", str(args.steps),
                            "--warmup", str(args.warmup), "--threads", str(args.threads)], check=True)
    else:
        run(args.config, args.steps, args.warmup, args.threads)


if __name__ == "__main__":
    main()
