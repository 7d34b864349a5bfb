#!/usr/bin/env python3
"""PyTorch side of `hanzo-live engine bench`: the same ops and the same DiT call in diffusers.

Wan2.1-T2V-1.3B config, random weights, bf16 with the modules diffusers keeps in f32
(`_keep_in_fp32_modules`, as `from_pretrained(torch_dtype=bfloat16)` does), inference mode,
default attention (SDPA). Rows, in the order and with the shapes of the Rust bench:
RMSNorm [1,L,1536], RoPE on [1,L,12,128] (diffusers' rotary apply), attention
[1,12,L,128] (SDPA), one block (a 1-layer model's forward), the full 30-layer forward, for
F latent frames of 480×832 (L = F·1560). CUDA-event timing, median of --iters after warm-up.
A bf16 GEMM of 8192³ first sets the card's peak as measured here; rows whose work is known
(attention, linears, the model calls; the same counts as the Rust bench's) give TFLOP/s and
their share of that peak.

Usage: python bench_dit_torch.py [--frames 3] [--iters 10] [--json out.json]
"""

import argparse
import json
import statistics

import torch
from diffusers import WanTransformer3DModel

CONFIG = dict(
    patch_size=(1, 2, 2),
    num_attention_heads=12,
    attention_head_dim=128,
    in_channels=16,
    out_channels=16,
    text_dim=4096,
    freq_dim=256,
    ffn_dim=8960,
    num_layers=30,
    cross_attn_norm=True,
    qk_norm="rms_norm_across_heads",
    eps=1e-6,
    rope_max_seq_len=1024,
)


def timed(fn, iters):
    fn()
    torch.cuda.synchronize()
    runs = []
    for _ in range(iters):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        runs.append(a.elapsed_time(b))
    return statistics.median(runs)


def attention_flops(lq, lk, dim):
    return 4.0 * lq * lk * dim


def dit_flops(layers, L, d=1536, ffn=8960, text=512, text_dim=4096, in_dim=16, out_dim=16, patch=4):
    """One forward without a cache: as `dit_flops` in engine/src/cli/mod.rs."""
    block = (8.0 * L * d * d + attention_flops(L, L, d) + 4.0 * L * d * d + 4.0 * text * d * d
             + attention_flops(L, text, d) + 4.0 * L * d * ffn)
    ends = 2.0 * L * in_dim * patch * d + 2.0 * text * (text_dim * d + d * d) + 2.0 * L * d * out_dim * patch
    return layers * block + ends


def build(layers, dtype):
    model = WanTransformer3DModel(**{**CONFIG, "num_layers": layers}).eval().cuda()
    model.to(dtype)
    keep = getattr(model, "_keep_in_fp32_modules", None) or []
    for name, module in model.named_modules():
        if any(k in name.split(".") or name.endswith(k) for k in keep):
            module.float()
    return model


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--frames", type=int, default=3)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--json")
    p.add_argument("--ncu-range", action="store_true",
                   help="one more full forward between cudaProfilerStart/Stop (ncu --profile-from-start off)")
    a = p.parse_args()
    torch.manual_seed(0)
    dev, dt = "cuda", torch.bfloat16
    h, w = 60, 104
    L = a.frames * (h // 2) * (w // 2)
    rows = []  # (op, ms, flops or None)
    with torch.inference_mode():
        n = 8192
        ga, gb = torch.randn(n, n, device=dev, dtype=dt), torch.randn(n, n, device=dev, dtype=dt)
        peak_ms = timed(lambda: ga @ gb.T, a.iters)
        rows.append((f"peak: GEMM {n}×{n}×{n} (the rate the rows are compared with)", peak_ms, 2.0 * n**3))
        del ga, gb
        x = torch.randn(1, L, 1536, device=dev, dtype=dt)
        norm = torch.nn.RMSNorm(1536, eps=1e-6).to(dev)
        rows.append((f"RMSNorm [1,{L},1536]", timed(lambda: norm(x.float()).to(dt), a.iters), None))
        q = torch.randn(1, L, 12, 128, device=dev, dtype=dt)
        freqs = torch.randn(1, L, 1, 64, device=dev, dtype=torch.float32)
        cos, sin = freqs.cos(), freqs.sin()

        def rope():
            x1, x2 = q.float().unflatten(-1, (-1, 2)).unbind(-1)
            out = torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)
            return out.flatten(-2).to(dt)

        rows.append((f"RoPE [1,{L},12,128]", timed(rope, a.iters), None))
        qh = q.transpose(1, 2).contiguous()
        sdpa = torch.nn.functional.scaled_dot_product_attention
        rows.append((f"attention SDPA [1,12,{L},128]", timed(lambda: sdpa(qh, qh, qh), a.iters), attention_flops(L, L, 1536)))
        # Attention over a KV cache: LongLive's 12-frame window and Self-Forcing's 21 frames.
        for frames in (12, 21):
            kv = torch.randn(1, 12, frames * (h // 2) * (w // 2), 128, device=dev, dtype=dt)
            lk = kv.shape[2]
            rows.append((f"attention SDPA q {L} kv {lk}", timed(lambda: sdpa(qh, kv, kv), a.iters), attention_flops(L, lk, 1536)))
            if frames == 12:
                # Which of PyTorch's fused backends the default picks: each alone, same call.
                from torch.nn.attention import SDPBackend, sdpa_kernel

                for name, backend in (("cuDNN", SDPBackend.CUDNN_ATTENTION), ("flash", SDPBackend.FLASH_ATTENTION)):
                    def only(backend=backend):
                        with sdpa_kernel(backend):
                            return sdpa(qh, kv, kv)
                    try:
                        rows.append((f"attention SDPA ({name} backend) q {L} kv {lk}", timed(only, a.iters), attention_flops(L, lk, 1536)))
                    except RuntimeError as e:
                        print(f"note: SDPA's {name} backend: {e}".splitlines()[0])
            if frames == 21:
                # LongLive's window as its code reads it: the 3-frame sink and the last 9 frames
                # concatenated, then SDPA.
                pf = (h // 2) * (w // 2)
                def window():
                    k2 = torch.cat([kv[:, :, : 3 * pf], kv[:, :, 12 * pf :]], 2)
                    v2 = torch.cat([kv[:, :, : 3 * pf], kv[:, :, 12 * pf :]], 2)
                    return sdpa(qh, k2, v2)
                rows.append((f"attention SDPA q {L} kv sink {3 * pf} + window {9 * pf} (cat first)", timed(window, a.iters), attention_flops(L, 12 * pf, 1536)))
            del kv
        # The DiT's linear layers (cuBLAS through F.linear; the engine's rows: burn matmul, cuBLASLt).
        for k_in, n_out in [(1536, 1536), (1536, 4608), (1536, 8960), (8960, 1536)]:
            xs = torch.randn(L, k_in, device=dev, dtype=dt)
            wt = torch.randn(n_out, k_in, device=dev, dtype=dt)
            lin = torch.nn.functional.linear
            rows.append((f"linear [{L},{k_in}]→{n_out}", timed(lambda: lin(xs, wt), a.iters), 2.0 * L * k_in * n_out))
            del xs, wt
        xin = torch.randn(1, 16, a.frames, h, w, device=dev, dtype=dt)
        t = torch.tensor([937.5], device=dev)
        ctx = torch.randn(1, 512, 4096, device=dev, dtype=dt)
        for layers, label in [(1, "one block (1-layer model)"), (30, "full forward (30 layers)")]:
            m = build(layers, dt)
            call = lambda: m(hidden_states=xin, timestep=t, encoder_hidden_states=ctx, return_dict=False)
            rows.append((label, timed(call, a.iters), dit_flops(layers, L)))
            if a.ncu_range and layers == 30:
                torch.cuda.synchronize()
                torch.cuda.profiler.start()
                call()
                torch.cuda.synchronize()
                torch.cuda.profiler.stop()
            del m
            torch.cuda.empty_cache()
    peak = 2.0 * 8192**3 / (peak_ms * 1e-3) / 1e12
    rate = lambda ms, fl: None if fl is None else fl / (ms * 1e-3) / 1e12
    print(f"| op | torch {torch.__version__} bf16 ms ({torch.cuda.get_device_name()}) | TFLOP/s | of peak |")
    print("|---|---|---|---|")
    for name, ms, fl in rows:
        t = rate(ms, fl)
        cells = ("", "") if t is None else (f"{t:.1f}", f"{t / peak * 100:.0f} %")
        print(f"| {name} | {ms:.3f} | {cells[0]} | {cells[1]} |")
    if a.json:
        out = [{"op": n, "ms": m, "tflops": rate(m, fl), "of_peak": None if fl is None else rate(m, fl) / peak * 100}
               for n, m, fl in rows]
        with open(a.json, "w") as f:
            json.dump({"torch": torch.__version__, "tokens": L, "peak_tflops": peak, "rows": out}, f)


if __name__ == "__main__":
    main()
