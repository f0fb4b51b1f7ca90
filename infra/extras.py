"""Which extra of `hirestream` brings each optional import, for a clear error when it is missing.

The base install (producers and clients) has the schemas, the producer, the Python
client and the CLI; every other role is an extra (pyproject.toml). Modules import their
extras' packages where they need them, so a command that needs a missing extra fails
with `ModuleNotFoundError`; the CLI turns that into "install hirestream[worker]".
tests/test_extras.py checks this table against pyproject's extras and the code's imports.
"""
from __future__ import annotations

# Top-level import name -> the extra whose requirements install it (directly, or
# through a package the extra names, as faust brings mode and aiokafka).
EXTRA_OF_MODULE = {
    "faust": "worker",
    "mode": "worker",
    "aiokafka": "worker",
    "aiohttp": "worker",
    "yarl": "worker",
    "rocksdict": "worker",
    "orjson": "worker",
    "uvloop": "worker",
    "numpy": "index",
    "scipy": "index",
    "numba": "index",
    "threadpoolctl": "index",
    "faiss": "index",
    "torch": "models",
    "transformers": "models",
    "tokenizers": "models",
    "safetensors": "models",
    "gguf": "models",
    "peft": "models",
    "torchao": "models",
    "huggingface_hub": "models",
    "fastapi": "serving",
    "uvicorn": "serving",
    "prometheus_client": "serving",
    "sklearn": "eval",
    "matplotlib": "eval",
    "pyarrow": "parquet",
    "cupy": "gpu",
    "cupyx": "gpu",
}

# Commands that need a whole role: the extra to name, whichever of its packages is
# missing first (`serve` would otherwise name [worker], then [index], ...). Other
# commands name the missing module's extra.
EXTRA_OF_COMMAND = {
    "worker": "worker",
    "serve": "serving",
    "run": "all",
    "simulate": "all",  # the simulator draws on numpy and scikit-learn
    "replay": "all",
    "train": "all",
    "compress": "all",
}


class MissingExtra(RuntimeError):
    """A command needs a package that an extra of hirestream installs."""

    def __init__(self, module: str, extra: str):
        super().__init__(f"needs {module}, which this installation lacks: "
                         f"pip install 'hirestream[{extra}]' (or 'hirestream[all]' for every role)")
        self.module = module
        self.extra = extra


def missing_extra(err: ModuleNotFoundError, command: str | None = None) -> MissingExtra | None:
    """The extra to install for `command` after `err`; None when the missing module is
    no extra's (a bug or a broken environment, not a role left out)."""
    top = (err.name or "").partition(".")[0]
    extra = EXTRA_OF_MODULE.get(top)
    if extra is None:
        return None
    return MissingExtra(top, EXTRA_OF_COMMAND.get(command or "", extra))
