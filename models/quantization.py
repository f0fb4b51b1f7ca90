"""Quantized rankers for CPU serving (issue 16): fewer bytes per weight, the same scores
within a stated tolerance.

    model = quantize(model, "int8")          # in place; the decoder blocks' linear layers
    save_quantized(model, "artifacts/ranker-int8", "int8")
    model = load_quantized("artifacts/ranker-int8")

Recipes (`RECIPES`):

  * `bf16`: every weight in bfloat16. Faster than float32 only where the CPU multiplies
    bf16 natively (AVX512-BF16, AMX); `compute_dtype` says which.
  * `int8`: the blocks' linear layers in int8 with int8 activations quantized per token
    at run time (torchao's `Int8DynamicActivationInt8WeightConfig`), everything else in
    the compute dtype. A few input channels carry activations far larger than the rest
    (the outliers that scrambled an earlier int8 try's scores), so the int8 grid per
    token is set by them; SmoothQuant (alpha 0.5) divides each channel by a factor
    measured on calibration prompts and multiplies the weights that read it by the same
    factor, moving the range into the weights. The division is folded into the op
    before (`smooth`: the norms, and the up projection for the down projection's
    input), so the smoothed float model computes exactly what the original does and
    the int8 model is plain W8A8: the same integers vLLM's int8 kernels multiply
    (`save_for_vllm` writes them in the compressed-tensors format it reads). Until
    2026-12-05 torchao's SmoothQuant divided inside each linear, with a factor per
    linear that no upstream op can absorb; on ranker-thin it had halved the largest
    score error and raised the slates' rank agreement with float from 0.981 to 0.991.
  * `int8-weight`: int8 weights per output channel, activations unquantized (torchao's
    `Int8WeightOnlyConfig`): half of bf16's bytes for the blocks.
  * `int4-weight`: 4-bit weights in groups of 64 input channels, each group with its
    scale and zero, multiplied by torch's own CPU kernel (`Int4Linear`). torchao 0.18
    has no CPU int4 layout (`tile_packed_to_4d` needs CUDA, `plain` needs mslk,
    `plain_int32` refuses a CPU tensor), so this one layer wraps the aten kernel that
    torchao's earlier CPU layout wrapped.

What stays in higher precision, as 360Brew keeps it: the embeddings, the norms and the
LM head are never quantized (the head's Yes/No rows carry the trained answer), and the
Yes/No logits are computed in float32 (`models.multi_item.label_logits`).

`int8` needs calibration prompts: `quantize(..., calibrate=fn)` calls `fn(model)` once
with observers in place; `fn` runs the ranker's own prompts through it.

A quantized artifact is the float checkpoint's folder with `model.safetensors` replaced
by `quantized.pt` (the state dict with torchao's tensor subclasses, loaded with
`weights_only=True`) and `ranker.json`'s `quantization` naming the recipe: a plain
`transformers` load does not read it, `Ranker.load` does. Pure tensors: no Kafka.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from models.cpu import native_bf16_cpu, native_int8_cpu

log = logging.getLogger(__name__)

WEIGHTS_FILE = "quantized.pt"
INT4_GROUP = 64
SMOOTHQUANT_ALPHA = 0.5  # the SmoothQuant paper's default; 0.75 ranked no better on ranker-thin


@dataclass(frozen=True)
class QuantRecipe:
    name: str
    summary: str
    make_config: Callable | None  # torchao config for the blocks' linears; None: no integer weights


def _int8_dynamic():
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig

    return Int8DynamicActivationInt8WeightConfig()


def _int8_weight_only():
    from torchao.quantization import Int8WeightOnlyConfig

    return Int8WeightOnlyConfig()


RECIPES = {
    "bf16": QuantRecipe("bf16", "every weight bf16", None),
    "int8": QuantRecipe("int8", "blocks' linears int8 weights and per-token int8 activations (torchao), "
                        f"SmoothQuant alpha {SMOOTHQUANT_ALPHA} folded into the norms", _int8_dynamic),
    "int8-weight": QuantRecipe("int8-weight", "blocks' linears int8 weights per channel (torchao)",
                               _int8_weight_only),
    "int4-weight": QuantRecipe("int4-weight", f"blocks' linears 4-bit weights in groups of {INT4_GROUP} "
                               "(torch's CPU int4 kernel)", None),
}


def compute_dtype() -> torch.dtype:
    """bf16 where the CPU (or GPU) multiplies it natively, else float32, with a warning."""
    if torch.cuda.is_available() or native_bf16_cpu():
        return torch.bfloat16
    log.warning("this CPU has no native bf16 (no AVX512-BF16/AMX): quantized rankers compute in float32")
    return torch.float32


def block_linear(module: nn.Module, fqn: str) -> bool:
    """The decoder blocks' projections: where the FLOPs are, and nothing that holds the answer."""
    return isinstance(module, nn.Linear) and ".layers." in f".{fqn}"


class Int4Linear(nn.Module):
    """y = x Wᵀ with W stored in 4 bits: per group of `group_size` input channels,
    W ≈ (q − 8)·scale + zero, q in 0..15 (the tinygemm convention torch's kernel uses)."""

    def __init__(self, in_features: int, out_features: int, group_size: int = INT4_GROUP,
                 dtype: torch.dtype = torch.bfloat16):
        super().__init__()
        if in_features % group_size:
            raise ValueError(f"int4: {in_features} input channels are not groups of {group_size}")
        self.in_features, self.out_features, self.group_size = in_features, out_features, group_size
        self.register_buffer("packed", torch.zeros(out_features, in_features // 2, dtype=torch.uint8))
        self.register_buffer("scales_zeros", torch.zeros(in_features // group_size, out_features, 2, dtype=dtype))

    @classmethod
    def from_linear(cls, linear: nn.Linear, group_size: int = INT4_GROUP,
                    dtype: torch.dtype = torch.bfloat16) -> "Int4Linear":
        if linear.bias is not None:
            raise ValueError("int4: linear layers with a bias are not supported")
        n, k = linear.weight.shape
        out = cls(k, n, group_size, dtype)
        w = linear.weight.detach().float().reshape(n, k // group_size, group_size)
        lo, hi = w.amin(-1, keepdim=True), w.amax(-1, keepdim=True)
        scale = (hi - lo).clamp(min=1e-8) / 15
        q = ((w - lo) / scale).round().clamp(0, 15).to(torch.int32).reshape(n, k)
        zero = lo + 8 * scale
        out.packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(q, 1)
        out.scales_zeros = torch.stack([scale.reshape(n, -1).t(), zero.reshape(n, -1).t()], -1) \
            .to(dtype).contiguous()
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.in_features).to(self.scales_zeros.dtype)
        y = torch.ops.aten._weight_int4pack_mm_for_cpu(flat, self.packed, self.group_size, self.scales_zeros)
        return y.reshape(*x.shape[:-1], self.out_features).to(x.dtype)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, group_size={self.group_size}"


def _to_int4(model: nn.Module, dtype: torch.dtype) -> None:
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if block_linear(child, f"{name}.{child_name}"):
                setattr(module, child_name, Int4Linear.from_linear(child, dtype=dtype))


@torch.no_grad()
def smooth(model: nn.Module, calibrate: Callable[[nn.Module], None], alpha: float = SMOOTHQUANT_ALPHA) -> None:
    """SmoothQuant folded into the float weights, in place: the model computes the same
    function (up to float rounding), with each smoothed input's channel j divided by

        s_j = max|X_j|^alpha / max|W_:,j|^(1 - alpha)

    (X over the calibration prompts `calibrate(model)` runs; W over every linear that
    reads the input) and those linears' column j multiplied by it. Smoothed where the
    division can be absorbed by the op before, as SmoothQuant and llm-compressor do:
    q/k/v read the input norm (its weight is divided), gate/up the post-attention norm,
    down reads silu(gate)·up (up's row j is divided). The attention output that o_proj
    reads is left as it is: its channels mix query heads that share a key/value group."""
    layers = [m for m in model.modules() if hasattr(m, "self_attn") and hasattr(m, "mlp")]
    if not layers:
        raise ValueError("smooth: no decoder layers with self_attn and mlp found")
    readers = {}  # the first linear of each smoothed input -> running max |x_j|
    hooks = []
    for layer in layers:
        for first in (layer.self_attn.q_proj, layer.mlp.gate_proj, layer.mlp.down_proj):
            readers[first] = torch.zeros(first.in_features, device=first.weight.device)

            def observe(module, args):
                x = args[0].detach().abs().float().reshape(-1, module.in_features)
                torch.maximum(readers[module], x.amax(0), out=readers[module])

            hooks.append(first.register_forward_pre_hook(observe))
    try:
        calibrate(model)
    finally:
        for h in hooks:
            h.remove()
    for layer in layers:
        attn, mlp = layer.self_attn, layer.mlp
        for before, linears in ((layer.input_layernorm.weight, [attn.q_proj, attn.k_proj, attn.v_proj]),
                                (layer.post_attention_layernorm.weight, [mlp.gate_proj, mlp.up_proj]),
                                (mlp.up_proj.weight, [mlp.down_proj])):
            x_max = readers[linears[0]].clamp(min=1e-5)
            w_max = torch.stack([l.weight.abs().float().amax(0) for l in linears]).amax(0).clamp(min=1e-5)
            scale = (x_max.pow(alpha) / w_max.pow(1 - alpha)).clamp(min=1e-5)
            for l in linears:
                l.weight.mul_(scale.to(l.weight.dtype))
            # a norm's weight is a vector over channels; up's rows are its output channels
            before.div_((scale if before.dim() == 1 else scale[:, None]).to(before.dtype))


def quantize(model: nn.Module, recipe: str, dtype: torch.dtype | None = None,
             calibrate: Callable[[nn.Module], None] | None = None) -> nn.Module:
    """`model` quantized in place by `recipe` (see `RECIPES`), its other weights in
    `dtype` (default: `compute_dtype()`). `calibrate(model)` runs prompts through it
    (`int8` needs it). Returns the model."""
    if recipe not in RECIPES:
        raise ValueError(f"unknown quantization recipe {recipe!r}: one of {', '.join(RECIPES)}")
    if recipe == "int8" and calibrate is None:
        raise ValueError("int8 needs calibration prompts (SmoothQuant measures each channel's range on them)")
    return _quantize(model, recipe, dtype, calibrate)


def _quantize(model: nn.Module, recipe: str, dtype: torch.dtype | None, calibrate) -> nn.Module:
    dtype = dtype or compute_dtype()
    if recipe == "int8" and calibrate is not None:
        smooth(model.float(), calibrate)  # measured and folded in float32, before any rounding
    model.to(torch.bfloat16 if recipe == "bf16" else dtype)
    if recipe == "int4-weight":
        _to_int4(model, dtype)
    elif RECIPES[recipe].make_config is not None:
        from torchao.quantization import quantize_

        quantize_(model, RECIPES[recipe].make_config(), filter_fn=block_linear)
    return model.eval()


def save_quantized(model: nn.Module, path: Path | str) -> Path:
    """The state dict (integer weights as they are) beside the checkpoint's config."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model.config.save_pretrained(path)
    (path / "model.safetensors").unlink(missing_ok=True)  # a float copy would be read instead
    torch.save(model.state_dict(), path / WEIGHTS_FILE)
    return path / WEIGHTS_FILE


def load_quantized(path: Path | str, recipe: str, dtype: torch.dtype | None = None) -> nn.Module:
    """The model `save_quantized` wrote: its shapes built from the config, quantized the
    same way (so every parameter has its saved type), then the saved tensors put in."""
    from transformers import AutoConfig, AutoModelForCausalLM

    path = Path(path)
    if recipe == "int8" and not torch.cuda.is_available() and not native_int8_cpu():
        log.warning("this CPU has no int8 dot-product instructions (AVX512-VNNI/AVX-VNNI/AMX-INT8): the int8 "
                    "checkpoint %s runs many times slower than its float source here; serve that instead", path)
    config = AutoConfig.from_pretrained(path)
    # Built on the CPU, not the meta device: the rotary frequencies are buffers the
    # state dict does not hold.
    model = _quantize(AutoModelForCausalLM.from_config(config, attn_implementation="sdpa"), recipe, dtype, None)
    state = torch.load(path / WEIGHTS_FILE, map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True, assign=True)
    return model.eval()


VLLM_DIR = "vllm"  # inside an int8 artifact: the same integers in the format vLLM reads


def save_for_vllm(model: nn.Module, path: Path | str) -> Path:
    """An `int8` model as vLLM's compressed-tensors loader reads it (W8A8: int8 weights
    with a float32 scale per output channel, activations quantized per token at run
    time): torchao's own integers and scales for the blocks' linears, every other
    weight as it is. A plain folder of config.json and model.safetensors."""
    import json

    from safetensors.torch import save_file

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tensors = {}
    blocks = {name: module for name, module in model.named_modules() if block_linear(module, name)}
    for name, module in blocks.items():
        weight = module.weight
        if not hasattr(weight, "qdata"):
            raise ValueError(f"save_for_vllm: {name} is not int8 (an `int8` recipe model is needed)")
        if getattr(weight, "act_pre_scale", None) is not None:  # torchao's own SmoothQuant, before 2026-12-05
            raise ValueError(f"save_for_vllm: {name} divides its input inside the layer, which vLLM "
                             "cannot: re-make the checkpoint with `hirestream compress --recipe int8`")
        tensors[f"{name}.weight"] = weight.qdata.contiguous()
        tensors[f"{name}.weight_scale"] = weight.scale.float().reshape(-1, 1).contiguous()
        if module.bias is not None:
            tensors[f"{name}.bias"] = module.bias.detach().contiguous()
    for name, tensor in model.state_dict().items():
        if name.rsplit(".", 1)[0] not in blocks:
            tensors[name] = tensor.detach().contiguous()
    save_file(tensors, str(path / "model.safetensors"))
    config = model.config.to_dict()
    quant = {"num_bits": 8, "type": "int", "symmetric": True, "group_size": None, "block_structure": None,
             "actorder": None, "observer": None, "observer_kwargs": {}}
    config["quantization_config"] = {
        "quant_method": "compressed-tensors", "format": "int-quantized", "quantization_status": "compressed",
        "config_groups": {"group_0": {
            "targets": ["Linear"],
            "weights": {**quant, "strategy": "channel", "dynamic": False},
            "input_activations": {**quant, "strategy": "token", "dynamic": True},
            "output_activations": None}},
        # everything outside the blocks stays float, as in the torch model
        "ignore": sorted(n for n, m in model.named_modules()
                         if isinstance(m, nn.Linear) and not block_linear(m, n)),
        "kv_cache_scheme": None,
    }
    (path / "config.json").write_text(json.dumps(config, indent=2, default=str))
    return path


def bytes_on_disk(path: Path | str) -> int:
    """Weights only: the float checkpoint's safetensors or the quantized state dict."""
    path = Path(path)
    return sum(f.stat().st_size for f in (path / "model.safetensors", path / WEIGHTS_FILE) if f.exists())


def n_weights(model: nn.Module) -> int:
    """Parameters as the float model counts them, integer-held ones included (an
    `Int4Linear`'s weights are buffers, not parameters)."""
    return sum(p.numel() for p in model.parameters()) + sum(
        m.in_features * m.out_features for m in model.modules() if isinstance(m, Int4Linear))
