class MomAttention:
    """fla's MomAttention needs Triton and a GPU: this CPU stand-in checks the core form only."""

    def __init__(self, *args, **kwargs):
        raise SystemExit("MomAttention is not available on CPU (scripts/fla/naive_fla): use core-form vectors (--rule, --suite edge)")
