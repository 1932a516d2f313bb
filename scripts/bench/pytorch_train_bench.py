#!/usr/bin/env python3
"""PyTorch counterpart of `aligner bench train`: the same Llama models (transformers LlamaForCausalLM, PyTorch's
default SDPA attention, eager mode), trained the same way (random tokens, AdamW betas (0.9, 0.95), weight decay 0.1 on
matrices, lr 3e-4), on 2 threads, printing the same figures. Modes: fp32 (every weight), bf16 (the same under
torch.autocast("cpu", bfloat16): bf16 matrix products, fp32 master weights), lora (PEFT LoRA r 16, alpha 32, dropout
0.05 on all seven projections, the model frozen) and lora-bf16 (both).

Each configuration runs in a fresh process so that its peak memory is its own.
Run: python3 scripts/bench/pytorch_train_bench.py [--config tiny|small|medium|smollm2|all] [--mode fp32|bf16|lora|lora-bf16]
     [--steps 10] [--warmup 3]
"""
import contextlib
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
    # SmolLM2-135M's shape (tied embeddings), batch 4 x 256 tokens.
    "smollm2": dict(vocab=49152, hidden=576, intermediate=1536, layers=30, heads=9, kv=3, seq=256, batch=4, tied=True),
}
MODES = ["fp32", "bf16", "lora", "lora-bf16"]


def forward_flops_per_token(p):
    c, f, v, layers, t = p["hidden"], p["intermediate"], p["vocab"], p["layers"], p["seq"]
    kv_dim = p["kv"] * (c // p["heads"])
    per_layer = 2 * (c * c * 2 + 2 * c * kv_dim + 3 * c * f) + 2 * 2 * t * c
    return layers * per_layer + 2 * c * v


def run(name, mode, steps, warmup, threads, checkpointing=False):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    p = PRESETS[name]
    config = LlamaConfig(vocab_size=p["vocab"], hidden_size=p["hidden"], intermediate_size=p["intermediate"],
                         num_hidden_layers=p["layers"], num_attention_heads=p["heads"], num_key_value_heads=p["kv"],
                         max_position_embeddings=p["seq"], tie_word_embeddings=p.get("tied", False), rms_norm_eps=1e-6,
                         bos_token_id=None, eos_token_id=None, pad_token_id=None)
    model = LlamaForCausalLM(config)
    params = sum(x.numel() for x in model.parameters())
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if mode.startswith("lora"):
        from peft import LoraConfig, get_peft_model
        model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, task_type="CAUSAL_LM",
                                                 target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                                 "up_proj", "down_proj"]))
    model.train()
    trainable = [(n, x) for n, x in model.named_parameters() if x.requires_grad]
    decay = [x for n, x in trainable if x.dim() == 2 and "embed" not in n]
    rest = [x for n, x in trainable if not (x.dim() == 2 and "embed" not in n)]
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if mode.endswith("bf16") else contextlib.nullcontext
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
                            lr=3e-4, betas=(0.9, 0.95), eps=1e-8)
    tokens = p["batch"] * p["seq"]
    fwd, bwd, upd = [], [], []
    loss = None
    for step in range(warmup + steps):
        ids = torch.randint(0, p["vocab"], (p["batch"], p["seq"]))
        t0 = time.perf_counter()
        with autocast():
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
    label = mode + ("+ckpt" if checkpointing else "")
    print(f"{name:<7} {label:<9} params {params / 1e6:6.2f}M  tokens/s {tokens / step_s:9.0f}  step {f + b + o:8.2f} ms "
          f"(fwd {f:7.2f}  bwd {b:7.2f}  opt {o:6.2f})  {gflops:6.1f} GFLOP/s  peak RSS {peak:6.0f} MiB  "
          f"loss {loss.item():.3f}", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="all")
    ap.add_argument("--mode", default="fp32", choices=MODES)
    ap.add_argument("--checkpointing", action="store_true", help="activation checkpointing per decoder block")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    if args.config == "all":
        import torch
        print(f"PyTorch {torch.__version__}, {args.threads} threads, {torch.backends.cpu.get_cpu_capability()}", flush=True)
        for name in ["tiny", "small", "medium"]:
            subprocess.run([sys.executable, __file__, "--config", name, "--mode", args.mode, "--steps", str(args.steps),
                            "--warmup", str(args.warmup), "--threads", str(args.threads)]
                           + (["--checkpointing"] if args.checkpointing else []), check=True)
    else:
        run(args.config, args.mode, args.steps, args.warmup, args.threads, args.checkpointing)


if __name__ == "__main__":
    main()
