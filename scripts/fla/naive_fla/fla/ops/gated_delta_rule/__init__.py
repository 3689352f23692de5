"""fla's naive gated delta rule (chunked and token by token) under the kernels' names and keywords."""
import importlib.util
import os

_path = os.path.join(os.environ["FLA_SRC"], "ops", "gated_delta_rule", "naive.py")
_spec = importlib.util.spec_from_file_location("fla_naive_gated_delta_rule", _path)
naive = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(naive)


def _kernel(reference):
    def call(q, k, v, g, beta, scale=None, initial_state=None, output_final_state=False,
             use_qk_l2norm_in_kernel=False, cu_seqlens=None):
        if use_qk_l2norm_in_kernel or cu_seqlens is not None:
            raise SystemExit("fla's naive references take no use_qk_l2norm_in_kernel or cu_seqlens")
        return reference(q=q, k=k, v=v, g=g, beta=beta, scale=scale, initial_state=initial_state,
                         output_final_state=output_final_state)
    return call


chunk_gated_delta_rule = _kernel(naive.naive_chunk_gated_delta_rule)
fused_recurrent_gated_delta_rule = _kernel(naive.naive_recurrent_gated_delta_rule)
