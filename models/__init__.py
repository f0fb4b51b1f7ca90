import logging

# transformers imports torchao whenever it loads a model; torchao 0.18 registers two Enum
# classes with torch 2.15's pytree, which warns that this is no longer needed: two
# harmless lines per process in every log, silenced here.
logging.getLogger("torch.utils._pytree").setLevel(logging.ERROR)
